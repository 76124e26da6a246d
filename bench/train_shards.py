"""One member's epoch with its examples in one shard or two (issue 21), in one process.

A large model's epoch (the paper preset) on a CPU: one shard on the caller's torch threads
(the step before shards), against two shards of its examples stepped side by side on a
thread each (`stepper.example_shards`, the default now), and both on one thread. Blocks of
each alternate, so drifting machine load hits all; ratios are medians of per-block
ratios. The CPU model and the load average (before and after) are printed beside the
figures.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/train_shards.py [--preset paper] [--blocks 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_speed import cpu_model, load, ratio_text

import grok_tui.engine.training.stepper as stepper_module
from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.training.stepper import MemberState, Stepper
from grok_tui.engine.training.train import keep_freed_memory


def make(cfg: RunConfig, shards: int, threads: int) -> Stepper:
    """A one-member stepper whose chunk has `shards` shards, built on `threads` threads
    (two or more: the shards get half of them each)."""
    default = stepper_module.example_shards
    stepper_module.example_shards = lambda cfgs, device: shards
    try:
        with torch_threads(threads):
            return Stepper([cfg], "cpu", [MemberState(0, paper_init(cfg))])
    finally:
        stepper_module.example_shards = default


def ms_per_epoch(stepper: Stepper, threads: int, epochs: int) -> float:
    with torch_threads(threads):
        start = time.perf_counter()
        for _ in range(epochs):
            stepper.measure()
            stepper.step()
        return 1e3 * (time.perf_counter() - start) / epochs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per block")
    parser.add_argument("--threads", type=int, default=0, help="0: torch's count")
    args = parser.parse_args()
    keep_freed_memory()
    threads = args.threads or torch.get_num_threads()
    cfg = RunConfig() if args.preset == "paper" else preset(args.preset)
    variants = {
        f"one shard, {threads} intra-op threads (before)": (make(cfg, 1, threads), threads),
        f"two shards side by side, {max(1, threads // 2)} thread(s) each (now)": (
            make(cfg, 2, threads),
            threads,
        ),
        "one shard, 1 thread": (make(cfg, 1, 1), 1),
        "two shards one after the other, 1 thread": (make(cfg, 2, 1), 1),
    }
    for stepper, n in variants.values():
        ms_per_epoch(stepper, n, 3)  # warm-up: buffers allocated, threads started
    load_before = load()
    ms: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, (stepper, n) in variants.items():
            ms[name].append(ms_per_epoch(stepper, n, args.epochs))
    for stepper, _ in variants.values():
        stepper.close()
    print(f"{cpu_model()}, torch {torch.__version__}, {threads} thread(s)")
    print(f"{args.preset} (p = {cfg.p}); {load_before} before, {load()} after")
    names = list(variants)
    for name in names:
        times = ms[name]
        print(f"{name}: {statistics.median(times):.2f} ms/epoch "
              f"(blocks: {', '.join(f'{t:.1f}' for t in times)})")  # fmt: skip
    for a, b in ((0, 1), (2, 1), (2, 3)):
        print(f"{names[b]} vs {names[a]}: {ratio_text(ms[names[a]], ms[names[b]])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
