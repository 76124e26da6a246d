"""Resident memory of the progress tracker over many checkpoints (Linux: reads VmRSS).

The paper model (p = 113, d_mlp = 512) with N synthetic checkpoints (init weights plus
noise: memory does not depend on the values), recorded the way the progress service does:
one record at a time, a table every 8. Prints the process's resident size and the bytes its
records hold at chosen checkpoints, one JSON line each.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_per_checkpoint.py --checkpoints 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

REPORT_AT = (1, 10, 25, 50, 100, 150, 200, 250, 300, 400, 500)


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=300)
    args = parser.parse_args()
    n = args.checkpoints
    cfg = RunConfig(epochs=n, checkpoint_every=1)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(Path(tmp) / "run", cfg, "cpu")
        weights = paper_init(cfg)
        gen = torch.Generator().manual_seed(0)
        for epoch in range(n):
            run.save_checkpoint(
                epoch,
                {
                    k: v + 1e-3 * epoch * torch.randn(v.shape, generator=gen)
                    for k, v in weights.items()
                },
            )
        tracker = ProgressTracker(run, "cpu")
        for i in range(1, n + 1):
            tracker.update(limit=1)
            if i in REPORT_AT:  # after the record, before any table (whose leftovers it frees)
                held = sum(a.nbytes for r in tracker.records.values() for a in r.arrays.values())
                print(json.dumps({"checkpoint": i, "rss_mb": rss_mb(),
                                  "records_mb": round(held / 2**20, 2)}), flush=True)  # fmt: skip
            if i % 8 == 0:
                tracker.table()


if __name__ == "__main__":
    main()
