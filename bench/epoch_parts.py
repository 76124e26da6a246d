"""Where a training epoch's time goes: the closed-form step's stages, timed in place.

`ClosedFormStep.clock` is told each stage's name as it ends, on the thread that ran it;
this script times the Trainer's own stepper (as `train_speed.py`'s "fast loop") with it and
prints each stage's milliseconds per epoch (median of blocks) beside the float32 GEMM floor
of the same model, so that the gap between an epoch and its floor has names. The AdamW
step is timed around `Stepper.step`. Stages of shards that ran side by side are each shard
thread's own time (they overlap); "shards' results" is then the caller's wait for them.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/epoch_parts.py [--preset quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_speed import FastLoop, GemmFloor, cpu_model, load, time_epochs

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.training.train import keep_freed_memory


class StageClock:
    """Seconds per (thread, stage) since the thread's previous stage ended."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.last: dict[int, float] = {}
        self.threads: dict[int, str] = {}
        self.caller = threading.get_ident()

    def thread_name(self, ident: int) -> str:
        if ident not in self.threads:
            n = len(self.threads) - (self.caller in self.threads)
            self.threads[ident] = "caller" if ident == self.caller else f"shard thread {n + 1}"
        return self.threads[ident]

    def __call__(self, stage: str) -> None:
        now, ident = time.perf_counter(), threading.get_ident()
        if not stage.endswith("start"):
            self.seconds[self.thread_name(ident), stage] += now - self.last[ident]
        self.last[ident] = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=0, help="per block (0: ~1 s of epochs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    cfg = preset(args.preset) if args.preset != "paper" else RunConfig()
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        loop = FastLoop(cfg, "cpu", Path(tmp), "closed-form")
        stepper, floor = loop.stepper, GemmFloor(cfg, "cpu")
        clock = StageClock()
        for chunk in stepper.chunks:
            chunk.closed_form.clock = clock
        step = stepper.step

        def timed_step() -> None:
            start = time.perf_counter()
            step()
            clock.seconds["caller", "AdamW step"] += time.perf_counter() - start

        stepper.step = timed_step
        warm = time_epochs(loop, 10, "cpu")
        n = args.epochs or max(20, int(1.0 / warm))
        # the floor on the threads the stepper steps on (one for a small model: stepper.py)
        threads = stepper.caller_threads or torch.get_num_threads()
        with torch_threads(threads):
            time_epochs(floor, 10, "cpu")
        blocks: list[tuple[float, float, dict[tuple[str, str], float]]] = []
        for _ in range(args.blocks):
            clock.seconds.clear()
            epoch = time_epochs(loop, n, "cpu")
            with torch_threads(threads):
                gemms = time_epochs(floor, n, "cpu")
            blocks.append((1e3 * epoch, 1e3 * gemms, dict(clock.seconds)))
    shards = len(stepper.chunks[0].closed_form.shards)
    print(f"{cpu_model()}, torch {torch.__version__}, {args.preset} preset (p = {cfg.p}), "
          f"the Trainer's stepper on {threads} thread(s), {shards} shard(s); "
          f"{load_before} before, {load()} after")  # fmt: skip
    epoch = statistics.median(b[0] for b in blocks)
    gemm = statistics.median(b[1] for b in blocks)
    print(f"epoch {epoch:.2f} ms, GEMM floor {gemm:.2f} ms ({epoch / gemm:.2f}x); "
          f"median of {args.blocks} blocks of {n} epochs, ms per epoch:")  # fmt: skip
    keys = list(dict.fromkeys(k for b in blocks for k in b[2]))
    caller = 0.0
    for key in keys:
        ms = statistics.median(1e3 * b[2].get(key, 0.0) / n for b in blocks)
        caller += ms if key[0] == "caller" else 0.0
        print(f"  {key[0]:15s} {key[1]:26s} {ms:7.3f}  ({ms / epoch:5.1%})")
    rest = epoch - caller
    print(f"  {'caller':15s} {'the rest (loop, Python)':26s} {rest:7.3f}  ({rest / epoch:5.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
