"""OpenMP's wait policy: training speed with PASSIVE, ACTIVE and the runtime's default, alone
and beside a busy neighbour.

OpenMP reads OMP_WAIT_POLICY once, when its runtime starts, so every measurement is a fresh
process (the policies alternate, round after round, so a drifting machine hits both). Each
child times the fast loop (train_speed.FastLoop: the Trainer's epoch, closed form) with
torch's thread count. "Beside a neighbour" starts one process that spins a core in pure
Python for the child's whole life: what a second job on a shared 2-core server does. The
CLI sets PASSIVE unless the user set the variable (cli/entry.py).

    .venv/bin/python bench/omp_wait_policy.py [--rounds 3] [--epochs 60] [--preset paper]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
POLICIES = ("PASSIVE", "ACTIVE", "unset")
SPINNER = "while True: pass"


def child(preset_name: str, epochs: int) -> None:
    """Time `epochs` epochs (after a warm-up) and print ms/epoch as JSON."""
    import tempfile
    import time

    sys.path.insert(0, str(BENCH))
    from train_speed import FastLoop

    from grok_tui.engine.core.config import preset

    cfg = preset(preset_name)
    with tempfile.TemporaryDirectory() as tmp:
        loop = FastLoop(cfg, "cpu", Path(tmp), "closed-form")
        for _ in range(5):
            loop.epoch()
        start = time.perf_counter()
        for _ in range(epochs):
            loop.epoch()
        ms = 1e3 * (time.perf_counter() - start) / epochs
    print(json.dumps({"ms": ms}))


def policy_env(policy: str) -> dict[str, str]:
    """The environment of a child under `policy`: an OMP_WAIT_POLICY value, "unset" (the
    runtime's default), or "spin:N" (unset, and libgomp's GOMP_SPINCOUNT=N: spin N rounds
    before sleeping, between PASSIVE's 0 and the default's 300,000)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)
    if policy.startswith("spin:"):
        env["GOMP_SPINCOUNT"] = policy.removeprefix("spin:")
    elif policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    return env


def measure(policy: str, preset_name: str, epochs: int, busy: bool) -> float:
    env = policy_env(policy)
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER]) if busy else None
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", preset_name, str(epochs)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.strip().splitlines()[-1])["ms"]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    args = parser.parse_args()
    policies = tuple(args.policies.split(","))

    sys.path.insert(0, str(BENCH))
    from train_speed import cpu_model, load

    print(f"{cpu_model()}, {os.cpu_count()} CPUs, preset {args.preset}, {load()}")
    results: dict[tuple[str, bool], list[float]] = {}
    for r in range(args.rounds):
        for busy in (False, True):
            for policy in policies if r % 2 == 0 else policies[::-1]:
                ms = measure(policy, args.preset, args.epochs, busy)
                results.setdefault((policy, busy), []).append(ms)
                where = "beside a busy neighbour" if busy else "alone"
                print(f"  round {r + 1}: {policy:11s} {where:24s} {ms:8.1f} ms/epoch", flush=True)
    print(f"\nmedian ms/epoch over {args.rounds} rounds ({load()}):")
    for busy in (False, True):
        where = "beside a busy neighbour" if busy else "alone"
        first = statistics.median(results[(policies[0], busy)])
        cells = []
        for policy in policies:
            ms = statistics.median(results[(policy, busy)])
            cells.append(f"{policy} {ms:7.1f} ({ms / first:4.2f}x)")
        print(f"  {where:24s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
