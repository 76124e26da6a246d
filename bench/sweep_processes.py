"""What two cores give a sweep: the members split over worker processes, against threads.

A bound for the sweep goal (16 quick members >= 1.7x their one-by-one throughput): each of
`--procs` processes (spawned, one torch thread each) steps its share of the members as one
`Stepper` (`--chunk` members per pass, one chunk at a time), so nothing is shared between
them (no GIL, no caches of one process) but the machine. Blocks alternate with one by one
(each member's own stepper in turn, in this process) and the default (the members as one
stepper, chunks side by side on the chunk pool's threads), as bench/sweep_speed.py does.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/sweep_processes.py --chunk 1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from sweep_speed import cpu_model, epochs, members, stepper

from grok_tui.engine.core.config import preset


def worker(conn: Any, name: str, n_members: int, lo: int, hi: int, chunk: int) -> None:
    """Step members lo..hi-1 for the epochs asked, reply with the seconds it took."""
    torch.set_num_threads(1)
    st = stepper(members(preset(name), n_members)[lo:hi], "cpu", chunk, 1)
    epochs(st, 3, "cpu")
    conn.send("ready")
    while (n := conn.recv()) is not None:
        conn.send(epochs(st, n, "cpu"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1, help="members per pass in a process")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per block and member")
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    n, m = args.epochs, args.members
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for k in range(args.procs):
        lo, hi = k * m // args.procs, (k + 1) * m // args.procs
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(theirs, args.preset, m, lo, hi, args.chunk))
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    for conn in pipes:
        conn.recv()
    cfgs = members(preset(args.preset), m)
    default = stepper(cfgs, "cpu")
    singles = [stepper([c], "cpu") for c in cfgs]
    epochs(default, 3, "cpu")
    for s in singles:
        epochs(s, 3, "cpu")
    one, threads, split = [], [], []
    for _ in range(args.blocks):
        one.append(m * n / sum(epochs(s, n, "cpu") for s in singles))
        threads.append(m * n / epochs(default, n, "cpu"))
        start = time.perf_counter()
        for conn in pipes:
            conn.send(n)
        for conn in pipes:
            conn.recv()
        split.append(m * n / (time.perf_counter() - start))
    for conn in pipes:
        conn.send(None)
    for proc in procs:
        proc.join()
    default.close()
    med = statistics.median
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"{cpu_model()}, torch {torch.__version__}, OMP_WAIT_POLICY={wait}")
    print(f"{m} members of the {args.preset} preset, {n} epochs a block, {args.blocks} blocks")
    print(f"one by one:  {med(one):7.1f} member-epochs/s")
    for label, rates in (
        (f"default ({default.chunk_size} per pass, threads)", threads),
        (f"{args.procs} processes, {args.chunk} per pass", split),
    ):
        ratios = [r / o for r, o in zip(rates, one, strict=True)]
        print(f"{label}: {med(rates):7.1f} member-epochs/s, {med(ratios):.2f}x one by one "
              f"({min(ratios):.2f}-{max(ratios):.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
