"""Resident memory of progress measures over many checkpoints (Linux: reads VmRSS).

The paper model (p = 113, d_mlp = 512) with N synthetic checkpoints (init weights plus a
little noise: memory does not depend on the values, and the key set stays put as in a long
run after grokking), written one at a time and measured by what measures a live run: the
`ProgressService` (its tracker's records, the excluded losses of the key set, a table and
the outlook stepped and posted after each checkpoint, the newest update kept as the app
keeps it). `--tracker-only` measures with a bare tracker instead (a record per checkpoint,
a table every 8). Prints the process's resident size, the bytes the records keep in
memory and those their files hold, at chosen checkpoints, one JSON line each.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_per_checkpoint.py --checkpoints 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.measures.record import held_bytes
from grok_tui.engine.measures.services import ProgressService, ProgressUpdate
from grok_tui.engine.store.runs import Run

REPORT_AT = (1, 10, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 750, 1000)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return round(kb / 1024, 1)


def report(i: int, tracker: ProgressTracker, run: Run) -> None:
    held = sum(held_bytes(r) for r in tracker.records.values())
    on_disk = sum(f.stat().st_size for f in (run.path / "measures").glob("*.safetensors"))
    print(json.dumps({"checkpoint": i, "rss_mb": rss_mb(), "records_mb": round(held / 2**20, 2),
                      "files_mb": round(on_disk / 2**20, 1)}), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--tracker-only", action="store_true", help="no service: a bare tracker")
    args = parser.parse_args()
    n = args.checkpoints
    cfg = RunConfig(epochs=n, checkpoint_every=1)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(Path(tmp) / "run", cfg, "cpu")
        weights = paper_init(cfg)
        gen = torch.Generator().manual_seed(0)

        def checkpoint(epoch: int) -> None:
            noise = {k: v + 1e-3 * torch.randn(v.shape, generator=gen) for k, v in weights.items()}
            run.save_checkpoint(epoch, noise)

        if args.tracker_only:
            tracker = ProgressTracker(run, "cpu")
            for i in range(1, n + 1):
                checkpoint(i - 1)
                tracker.update(limit=1)
                if i in REPORT_AT:  # after the record, before any table
                    report(i, tracker, run)
                if i % 8 == 0:
                    tracker.table()
            return
        latest: list[Any] = [None]

        def keep(update: ProgressUpdate) -> None:
            latest[0] = update  # the app keeps the newest update, as this does

        service = ProgressService(run, "cpu", keep)
        try:
            for i in range(1, n + 1):
                checkpoint(i - 1)
                service.drain()  # recorded, excluded losses filled, table and outlook posted
                if service.error:
                    raise SystemExit(f"checkpoint {i}: {service.error}")
                if i in REPORT_AT:
                    report(i, service._tracker, run)
        finally:
            service.stop()
            service.join()


if __name__ == "__main__":
    main()
