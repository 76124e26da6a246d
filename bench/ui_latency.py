"""Keyboard latency and training speed with the app open, in a real terminal (tmux).

1. Starts `grok-tui train` (paper preset) in a tmux pane and lets it train.
2. Presses `l` (log/linear y: the heaviest redraw, the loss plot) N times at random moments
   and polls `tmux capture-pane` until the plot title flips: key-to-screen latency.
3. Reads training speed from the run's metrics (wall_s per epoch) over the next N seconds,
   the app open and redrawing but this script idle, and from `grok-tui train --headless`
   on the same config for the same time: the ratio. (The speed during step 2 is printed
   too; there the script's own screen polling takes CPU from the trainer.)

    .venv/bin/python bench/ui_latency.py [--presses 40] [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROK = str(Path(sys.executable).with_name("grok-tui"))
TITLE = "loss per epoch"  # the title of the Curves pane's loss plot


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise SystemExit(f"timed out waiting for {what}")


def rate_from_metrics(run_dir: Path, since_wall: float) -> float:
    """Epochs per second of training wall time, over the rows after since_wall."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["wall_s"] >= since_wall]
    if len(rows) < 2:
        return 0.0
    return (rows[-1]["epoch"] - rows[0]["epoch"]) / (rows[-1]["wall_s"] - rows[0]["wall_s"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=40.0, help="per speed measurement")
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--env", default="", help="extra VAR=value for the app process")
    args = parser.parse_args()
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed")
    cols, rows = args.size.split("x")
    tmp = Path(tempfile.mkdtemp())
    session = f"grokbench{os.getpid()}"
    app_run = tmp / "app"
    env = f"COLORTERM=truecolor TERM=xterm-256color {args.env} {GROK} train --run-dir {app_run}"
    tmux("new-session", "-d", "-s", session, "-x", cols, "-y", rows, env)
    try:
        wait_for(lambda: "training" in screen(session) and f"{TITLE} (" in screen(session), 120,
                 "the app to train")  # fmt: skip
        time.sleep(5.0)  # past start-up
        start_wall = json.loads((app_run / "metrics.jsonl").read_text().splitlines()[-1])["wall_s"]
        latencies = []
        rng = random.Random(0)
        for _ in range(args.presses):
            before = "log y" if f"{TITLE} (log y)" in screen(session) else "linear y"
            after = "linear y" if before == "log y" else "log y"
            t0 = time.perf_counter()
            tmux("send-keys", "-t", session, "l")
            wait_for(lambda after=after: f"{TITLE} ({after})" in screen(session), 10,
                     "the redraw", poll=0.002)  # fmt: skip
            latencies.append(1e3 * (time.perf_counter() - t0))
            time.sleep(rng.uniform(0.1, 0.4))
        busy_rate = rate_from_metrics(app_run, start_wall)
        # The speed window proper: the app open and redrawing live, this script asleep (its
        # capture-pane polling above spawns a tmux client every 2 ms: load the headless run
        # below would not get, so that window is reported apart).
        quiet_wall = json.loads((app_run / "metrics.jsonl").read_text().splitlines()[-1])["wall_s"]
        time.sleep(args.seconds)
        app_rate = rate_from_metrics(app_run, quiet_wall)
        tmux("send-keys", "-t", session, "q")
        wait_for(lambda: not (app_run / "lock").exists(), 60, "the app to save and quit")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    head_run = tmp / "headless"
    proc = subprocess.Popen([GROK, "train", "--headless", "--run-dir", str(head_run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        metrics = head_run / "metrics.jsonl"
        wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, 120, "headless start")
        time.sleep(5.0)
        first = json.loads((head_run / "metrics.jsonl").read_text().splitlines()[-1])["wall_s"]
        time.sleep(args.seconds)
        head_rate = rate_from_metrics(head_run, first)
    finally:
        proc.terminate()
        proc.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"terminal {args.size}, {args.presses} presses of `l` while training the paper run")
    print(f"key-to-screen latency: median {statistics.median(latencies):.0f} ms, "
          f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms")  # fmt: skip
    print(f"training with the app open: {app_rate:.1f} epochs/s; headless: {head_rate:.1f} "
          f"epochs/s; ratio {app_rate / head_rate:.1%}")  # fmt: skip
    print(f"(while this script polled the screen for the latencies: {busy_rate:.1f} epochs/s, "
          f"{busy_rate / head_rate:.1%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
