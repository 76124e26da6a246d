"""Sweep throughput: members trained as one batched model against one after another.

Both sides run the engine's own epoch (`Stepper.measure`, `Stepper.step`, the metrics read
back every epoch) on the same members in one process: the batched side steps all members
as one model; the sequential side steps each member's own single-member stepper in turn
(what training the same runs one after another costs, without the file writes either side
has). Blocks of each alternate, so drifting machine load hits both; the ratio is the median
of per-block ratios.

    .venv/bin/python bench/sweep_speed.py --chunks 0,16        # 16 quick-preset members
    .venv/bin/python bench/sweep_speed.py --preset paper --members 64 --device cuda

"Default" here is the stepper's (one batched group in this process). What `grok-tui sweep`
does with a small model on a CPU, its members alone in one worker process per core, is
bench/sweep_processes.py (the epochs) and bench/sweep_end_to_end.py (with the files).

`--clock cpu` times by the process's CPU time (with `--threads 1`: what each member-epoch
costs, which a loaded machine inflates far less than the wall time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.training.stepper import MemberState, Stepper
from grok_tui.engine.training.train import keep_freed_memory

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def cpu_model() -> str:
    """'Intel(R) Xeon(R) Processor (model 167)': what the ratios were measured on."""
    name, model = "unknown CPU", "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "model":
                    model = value.strip()
                if line.strip() == "":
                    break
    except OSError:
        pass
    return f"{name} (model {model}), {os.cpu_count()} logical CPUs"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def members(base: RunConfig, n: int) -> list[RunConfig]:
    """n members over four weight decays and as many seeds as it takes (one shape)."""
    decays = [base.weight_decay * f for f in (0.5, 1.0, 1.5, 2.0)]
    return [base.replace(weight_decay=decays[i % 4], seed=i // 4) for i in range(n)]


def stepper(cfgs: list[RunConfig], device: str, chunk: int = 0, workers: int = 0) -> Stepper:
    states = [MemberState(0, paper_init(c)) for c in cfgs]
    return Stepper(cfgs, device, states, chunk_size=chunk, workers=workers)


def parse_setting(text: str) -> tuple[int, int]:
    """'8' -> (8, 0): 8 members per pass, default workers; '8x2': 2 chunks at once; 0: default."""
    chunk, _, workers = text.partition("x")
    return int(chunk), int(workers or 0)


def epochs(st: Stepper, n: int, device: str) -> float:
    """Seconds for n epochs of one stepper."""
    sync(device)
    start = clock()
    for _ in range(n):
        metrics = st.measure()
        st.step()
        metrics.tolist()  # what a flush costs when it happens every epoch
    sync(device)
    return clock() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--p", type=int, default=0, help="another modulus (0: the preset's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per block and member")
    parser.add_argument(
        "--chunks",
        default="0",
        help="settings to measure, comma-separated: members per pass, optionally x chunks "
        "stepped at once (8x2; 0: the default; 1x1: one member at a time, bit-exact)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall or CPU time")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device == "cpu":
        keep_freed_memory()
    base = preset(args.preset)
    cfgs = members(base.replace(p=args.p) if args.p else base, args.members)
    chunks = args.chunks.split(",")
    batched = {c: stepper(cfgs, device, *parse_setting(c)) for c in chunks}
    singles = [stepper([c], device) for c in cfgs]
    for b in batched.values():
        epochs(b, 3, device)  # warm-up
    for s in singles:
        epochs(s, 3, device)
    n = args.epochs
    rates_b: dict[str, list[float]] = {c: [] for c in chunks}
    ratios: dict[str, list[float]] = {c: [] for c in chunks}
    rates_s = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()[0]
    for _ in range(args.blocks):
        rs = len(cfgs) * n / sum(epochs(s, n, device) for s in singles)
        rates_s.append(rs)
        for c, b in batched.items():
            rb = len(cfgs) * n / epochs(b, n, device)
            rates_b[c].append(rb)
            ratios[c].append(rb / rs)

    cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else cpu_model()
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    threads = torch.get_num_threads()
    print(f"device: {device} ({name}), torch {torch.__version__}, {threads} threads, "
          f"OMP_WAIT_POLICY={wait}, {args.clock} clock")  # fmt: skip
    print(f"load average {load0:.2f} before the blocks, {os.getloadavg()[0]:.2f} after; "
          f"this process used {cores:.2f} cores on average over them")  # fmt: skip
    print(f"{len(cfgs)} members of the {args.preset} preset (p = {cfgs[0].p}), "
          f"{n} epochs per member per block, {args.blocks} blocks")  # fmt: skip
    print(f"one by one: {statistics.median(rates_s):9.1f} member-epochs/s  (blocks: "
          + ", ".join(f"{x:.0f}" for x in rates_s) + ")")  # fmt: skip
    for c, b in batched.items():
        per_pass = min(b.chunk_size, len(cfgs))
        at_once = b.pool.workers if b.pool is not None else 1
        label = f"{c}: {per_pass} per pass, {at_once} at once"
        print(f"{label}: {statistics.median(rates_b[c]):9.1f} member-epochs/s  (blocks: "
              + ", ".join(f"{x:.0f}" for x in rates_b[c]) + ")")  # fmt: skip
        r = ratios[c]
        print(f"  speed-up over one by one: {statistics.median(r):.2f}x (median of per-block "
              f"ratios; min {min(r):.2f}x, max {max(r):.2f}x)")  # fmt: skip
    for b in batched.values():
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
