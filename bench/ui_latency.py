"""Keyboard latency and training speed with the app open, in a real terminal (tmux).

1. Starts `grok-tui train` (paper preset) in a tmux pane and lets it train.
2. Presses `l` (log/linear y: the heaviest redraw, the loss plot) N times at random moments
   and polls `tmux capture-pane` until the plot title flips: key-to-screen latency.
3. Reads training speed from the run's metrics (wall_s per epoch) over N seconds with the
   app open and redrawing (this script asleep), then from `grok-tui train --headless
   --no-measures` (the plain trainer) and from `grok-tui train --headless` (which records
   progress measures as checkpoints are written) for the same time; repeats the three with
   a fresh app (--rounds) and reports the median ratios against the plain trainer. The app
   records progress measures live from the first checkpoint (issue 9): at the end of its
   window the script also reports how far the newest record lags the newest checkpoint.
   (The speed during step 2 is printed too; there the script's own screen polling takes
   CPU from the trainer.)

    .venv/bin/python bench/ui_latency.py [--presses 40] [--seconds 30] [--rounds 3]
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


def last_wall(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["wall_s"]


class AppInTmux:
    """`grok-tui train` in a detached tmux session of a given size."""

    def __init__(self, run_dir: Path, cols: str, rows: str, env: str) -> None:
        self.run_dir = run_dir
        self.session = f"grokbench{os.getpid()}{run_dir.name}"
        command = f"COLORTERM=truecolor TERM=xterm-256color {env} {GROK} train --run-dir {run_dir}"
        tmux("new-session", "-d", "-s", self.session, "-x", cols, "-y", rows, command)
        wait_for(lambda: "training" in self.screen() and f"{TITLE} (" in self.screen(), 120,
                 "the app to train")  # fmt: skip
        time.sleep(5.0)  # past start-up

    def screen(self) -> str:
        return screen(self.session)

    def quit(self) -> None:
        tmux("send-keys", "-t", self.session, "q")
        wait_for(lambda: not (self.run_dir / "lock").exists(), 60, "the app to save and quit")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


def measure_latency(app: AppInTmux, presses: int) -> list[float]:
    """Press `l` at random moments; time each until the plot title shows the new scale."""
    latencies = []
    rng = random.Random(0)
    for _ in range(presses):
        before = "log y" if f"{TITLE} (log y)" in app.screen() else "linear y"
        after = "linear y" if before == "log y" else "log y"
        t0 = time.perf_counter()
        tmux("send-keys", "-t", app.session, "l")
        wait_for(lambda after=after: f"{TITLE} ({after})" in app.screen(), 10,
                 "the redraw", poll=0.002)  # fmt: skip
        latencies.append(1e3 * (time.perf_counter() - t0))
        time.sleep(rng.uniform(0.1, 0.4))
    return latencies


def app_speed(app: AppInTmux, seconds: float) -> float:
    """Epochs/s over `seconds` with the app open and redrawing, this script asleep."""
    since = last_wall(app.run_dir)
    time.sleep(seconds)
    return rate_from_metrics(app.run_dir, since)


def measure_lag(run_dir: Path) -> tuple[int, int]:
    """(newest checkpoint epoch - newest recorded epoch, checkpoints recorded)."""

    def epochs(folder: str) -> list[int]:
        names = (run_dir / folder).glob("epoch_*.safetensors")
        return sorted(int(p.stem.split("_")[1]) for p in names)

    checkpoints, records = epochs("checkpoints"), epochs("measures")
    if not checkpoints:
        return 0, 0
    return checkpoints[-1] - (records[-1] if records else -1), len(records)


def headless_speed(run_dir: Path, seconds: float, measures: bool) -> float:
    command = [GROK, "train", "--headless", "--run-dir", str(run_dir)]
    if not measures:
        command.append("--no-measures")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics = run_dir / "metrics.jsonl"
        wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, 120, "headless start")
        time.sleep(5.0)
        since = last_wall(run_dir)
        time.sleep(seconds)
        return rate_from_metrics(run_dir, since)
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0, help="per speed window")
    parser.add_argument("--rounds", type=int, default=3, help="app/headless window pairs")
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--env", default="", help="extra VAR=value for the app process")
    args = parser.parse_args()
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed")
    cols, rows = args.size.split("x")
    tmp = Path(tempfile.mkdtemp())
    pairs: list[tuple[float, float, float]] = []
    lags: list[tuple[int, int]] = []
    busy_rate = 0.0
    latencies: list[float] = []
    for i in range(args.rounds):
        app = AppInTmux(tmp / f"app{i}", cols, rows, args.env)
        try:
            if i == 0:
                since = last_wall(app.run_dir)
                latencies = measure_latency(app, args.presses)
                # The script's capture-pane polling spawns a tmux client every 2 ms: load a
                # headless run never gets, so this window is reported apart.
                busy_rate = rate_from_metrics(app.run_dir, since)
            app_rate = app_speed(app, args.seconds)
            lags.append(measure_lag(app.run_dir))
            app.quit()
        finally:
            app.close()
        # Alternating windows: drifting load on a shared machine hits both sides.
        plain = headless_speed(tmp / f"plain{i}", args.seconds, measures=False)
        measured = headless_speed(tmp / f"headless{i}", args.seconds, measures=True)
        pairs.append((app_rate, plain, measured))
    shutil.rmtree(tmp, ignore_errors=True)

    ratios = [a / h for a, h, _ in pairs]
    measured_ratios = [m / h for _, h, m in pairs]
    print(f"terminal {args.size}, {args.presses} presses of `l` while training the paper run")
    print(f"key-to-screen latency: median {statistics.median(latencies):.0f} ms, "
          f"p95 {percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms")  # fmt: skip
    for i, ((a, h, m), (lag, n)) in enumerate(zip(pairs, lags, strict=True)):
        print(f"round {i + 1}: app open (live measures) {a:.1f} epochs/s = {a / h:.1%}, "
              f"headless with measures {m:.1f} = {m / h:.1%}, plain headless {h:.1f}; "
              f"app recorded {n} checkpoints, newest record {lag} epochs behind")  # fmt: skip
    print(f"training with the app open / plain headless: median {statistics.median(ratios):.1%} "
          f"over {len(ratios)} alternating {args.seconds:.0f} s windows")  # fmt: skip
    print(f"headless with measures / plain headless: median "
          f"{statistics.median(measured_ratios):.1%}")  # fmt: skip
    print(f"(while this script polled the screen for the latencies: {busy_rate:.1f} epochs/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
