"""What `Trainer.train()` adds to the bare epoch: metrics rows, flushes, checkpoints.

Issue 21 asks for training with its I/O within 10% of the bare loop. One process, blocks
that alternate: N bare epochs (`Stepper.measure`, `step`, the metrics read back, as the
Trainer does) on one model, then a fresh run of N epochs through `Trainer.train()` (which
writes metrics.jsonl and checkpoints as a user's run does). The ratio of each pair is
printed, and their median; drift of the machine hits both halves of a pair alike.

    .venv/bin/python bench/train_io_overhead.py [--preset quick] [--epochs 500] [--blocks 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer, keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    keep_freed_memory()
    cfg = preset(args.preset) if args.preset != "paper" else RunConfig()
    n = args.epochs
    with tempfile.TemporaryDirectory() as tmp:
        bare = Trainer(Run.create(Path(tmp) / "bare", cfg, "cpu"), "cpu").stepper
        for _ in range(10):  # warm-up
            bare.measure().tolist()
            bare.step()
        ratios = []
        for block in range(args.blocks):
            start = time.perf_counter()
            for _ in range(n):
                metrics = bare.measure()
                bare.step()
                metrics.tolist()
            bare_s = (time.perf_counter() - start) / n
            run = Run.create(Path(tmp) / f"run{block}", cfg.replace(epochs=n), "cpu")
            trainer = Trainer(run, "cpu")
            start = time.perf_counter()
            trainer.train()
            train_s = (time.perf_counter() - start) / n
            ratios.append(train_s / bare_s)
            print(f"bare {1e3 * bare_s:.2f} ms/epoch, Trainer.train() {1e3 * train_s:.2f} "
                  f"ms/epoch: {train_s / bare_s:.3f}", flush=True)  # fmt: skip
    print(f"{args.preset} preset, {n} epochs a block, checkpoint every {cfg.checkpoint_every}; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"Trainer.train() / bare loop: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
