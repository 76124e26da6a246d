"""Training speed alone and with analysis threads beside it, under OpenMP wait policies.

The app trains in one thread while others analyse checkpoints, all in one process. Each
torch thread drives an OpenMP team; idle team members spin by default, so two busy teams
on two cores can starve each other. This measures the trainer's epochs/s (paper preset)
alone and with a snapshot thread analysing continuously: by default, with
OMP_WAIT_POLICY=PASSIVE, and with the thread priorities the app sets (engine/core/threads.py),
each in a fresh process (OpenMP reads its settings when it starts).

    .venv/bin/python bench/contention.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def child(seconds: float, with_analysis: bool) -> dict[str, float]:
    from grok_tui.engine.core.config import RunConfig
    from grok_tui.engine.core.model import paper_init
    from grok_tui.engine.core.threads import ANALYSIS_NICENESS, TRAINER_NICENESS, lower_this_thread
    from grok_tui.engine.measures.analysis import Analyzer
    from grok_tui.engine.store.runs import Run
    from grok_tui.engine.training.train import Progress, TrainControl, Trainer

    cfg = RunConfig()
    run = Run.create(Path(tempfile.mkdtemp()) / "run", cfg, "cpu")
    control = TrainControl()
    epochs: list[tuple[float, int]] = []

    def on_event(event: object) -> None:
        if isinstance(event, Progress):
            epochs.append((time.perf_counter(), event.rows[-1]["epoch"]))

    snapshots = 0
    stop = threading.Event()

    def analyse() -> None:
        nonlocal snapshots
        if os.environ.get("GROK_BENCH_NICE"):
            lower_this_thread(ANALYSIS_NICENESS)
        analyzer, weights = Analyzer(cfg), paper_init(cfg)
        while not stop.is_set():
            analyzer.snapshot(weights, 0)
            snapshots += 1

    def train() -> None:
        if os.environ.get("GROK_BENCH_NICE"):
            lower_this_thread(TRAINER_NICENESS)
        trainer.train(control)

    trainer = Trainer(run, "cpu", on_event)
    thread = threading.Thread(target=train)
    thread.start()
    time.sleep(3.0)  # warm-up
    if with_analysis:
        helper = threading.Thread(target=analyse)
        helper.start()
    start_t, start_e = epochs[-1]
    t0 = time.perf_counter()
    time.sleep(seconds)
    end_t, end_e = epochs[-1]
    elapsed = time.perf_counter() - t0
    control.request_stop()
    stop.set()
    thread.join()
    if with_analysis:
        helper.join()
    return {"epochs_per_s": (end_e - start_e) / (end_t - start_t),
            "snapshots_per_s": snapshots / elapsed}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--child", choices=("alone", "analysis"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.seconds, args.child == "analysis")))
        return 0
    print("| setting | training alone (epochs/s) | with a snapshot thread | snapshots/s |")
    print("|---|---|---|---|")
    for policy in ("", "PASSIVE", "nice"):
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if policy == "nice":
            env["GROK_BENCH_NICE"] = "1"
        elif policy:
            env["OMP_WAIT_POLICY"] = policy
        results = {}
        for mode in ("alone", "analysis"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--seconds", str(args.seconds)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        name = {"": "default", "PASSIVE": "OMP_WAIT_POLICY=PASSIVE",
                "nice": "trainer nice +5, analysis nice +10"}[policy]  # fmt: skip
        print(f"| {name} | {results['alone']['epochs_per_s']:.1f} | "
              f"{results['analysis']['epochs_per_s']:.1f} | "
              f"{results['analysis']['snapshots_per_s']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
