"""A sweep end to end, as a user runs it: `grok-tui sweep --headless`, every file written.

Three ways of training the same 16 quick-preset members (4 seeds x 4 weight decays),
alternating, each a fresh sweep directory, timed by the wall clock:
- default: what `grok-tui sweep` does (on a CPU, a small model's members alone, one
  worker process per usable core);
- one group: the members as one batched model in this process (`--group-size 16`: chunks
  of several members side by side on threads, the default before);
- one by one: one group, one member at a time (`--group-size 16 --chunk-size 1`), what
  training them one after another costs.
The default's members are checked bit for bit (every metrics row but the wall clock)
against one by one's.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/sweep_end_to_end.py --epochs 300 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_speed import cpu_model

REPO = Path(__file__).resolve().parent.parent
WAYS = {
    "default": [],
    "one group": ["--group-size", "16"],
    "one by one": ["--group-size", "16", "--chunk-size", "1"],
}


def sweep(where: Path, epochs: int, extra: list[str]) -> float:
    """Seconds for one headless sweep into `where`."""
    cmd = [sys.executable, "-c", "import sys; from grok_tui.cli import main; sys.exit(main())",
           "sweep", "--headless", "--preset", "quick", "--epochs", str(epochs),
           "--seed", "0,1,2,3", "--weight-decay", "1,1.5,2,3", "--sweep-dir", str(where),
           *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def rows(metrics: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k != "wall_s"}
        for line in metrics.read_text().splitlines()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for way, extra in WAYS.items():
                times[way].append(sweep(Path(tmp) / f"{way}-{rep}", args.epochs, extra))
        members = sorted((Path(tmp) / "default-0" / "members").iterdir())
        same = sum(
            rows(m / "metrics.jsonl")
            == rows(Path(tmp) / "one by one-0" / "members" / m.name / "metrics.jsonl")
            for m in members
        )
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"{cpu_model()}, OMP_WAIT_POLICY={wait}; 16 quick members, {args.epochs} epochs")
    base = times["one by one"]
    for way, t in times.items():
        ratios = [b / x for b, x in zip(base, t, strict=True)]
        print(f"{way:>10}: {statistics.median(t):6.1f} s (" + ", ".join(f"{x:.1f}" for x in t)
              + f"); {statistics.median(ratios):.2f}x one by one "
              f"({min(ratios):.2f}-{max(ratios):.2f}x)")  # fmt: skip
    print(f"default's members equal to one by one's, bit for bit: {same} of {len(members)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
