"""The local learning coefficient on this model: calibrating the sampler, its cost beside
training, and its curve over a run (bench/RESULTS.md, "The local learning coefficient").

    # a quick-preset run to work on (p = 53, 3,000 epochs, a checkpoint every 50)
    OMP_NUM_THREADS=1 nice .venv/bin/grok-tui train --preset quick --headless \
        --run-dir runs/llc-quick
    # the sampler's settings over a grid, on a few checkpoints: estimate, divergence, drift
    OMP_NUM_THREADS=1 nice .venv/bin/python bench/llc.py calibrate runs/llc-quick \
        --epochs 0,200,1000,3000
    # training epochs/s alone and with the LLC thread beside it (each in a fresh process,
    # OMP_WAIT_POLICY=PASSIVE as grok-tui sets it)
    nice .venv/bin/python bench/llc.py overhead --epochs 1500 --repeats 2
    # the LLC of every checkpoint with the settings in use, beside the run's phases
    OMP_NUM_THREADS=1 nice .venv/bin/python bench/llc.py curve runs/llc-quick

Drift (`calibrate`): the draws' mean loss in their last third minus their first third,
over the draws' mean loss above L(w*): a chain still sliding (towards lower loss, a valley
of a singular minimum; or higher, not yet burnt in) shows as |drift| well above the noise.
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
from dataclasses import replace
from pathlib import Path

import numpy as np


def drift(trace: np.ndarray, burn_in: int, init_loss: float) -> float:
    draws = trace[:, burn_in:]
    third = max(draws.shape[1] // 3, 1)
    above = float(draws.mean()) - init_loss
    return float((draws[:, -third:].mean() - draws[:, :third].mean()) / above) if above else 0.0


def calibrate(args: argparse.Namespace) -> None:
    from grok_tui.engine.measures.llc import default_nbeta
    from grok_tui.engine.measures.llc_checkpoint import LLC_SETTINGS, checkpoint_llc
    from grok_tui.engine.store.runs import Run

    run = Run.open(args.run)
    cfg = run.meta().config
    epochs = [int(e) for e in args.epochs.split(",")]
    for epoch in epochs:
        weights = run.load_checkpoint(epoch, cfg)
        for batch in [int(b) for b in args.batch.split(",")]:
            for eps in [float(e) for e in args.eps.split(",")]:
                for gamma in [float(g) for g in args.gamma.split(",")]:
                    s = replace(LLC_SETTINGS, epsilon=eps, gamma=gamma,
                                nbeta=default_nbeta(batch), chains=args.chains,
                                draws=args.draws, burn_in=args.burn_in)  # fmt: skip
                    est = checkpoint_llc(cfg, weights, s, batch_size=batch)
                    assert est is not None
                    row = {
                        "epoch": epoch,
                        "batch": batch,
                        "epsilon": eps,
                        "gamma": gamma,
                        "nbeta": round(s.nbeta, 3),
                        "llc": round(est.llc, 3),
                        "llc_std": round(est.llc_std, 3),
                        "init_loss": float(f"{est.init_loss:.4g}"),
                        "diverged": est.diverged,
                        "drift": None
                        if est.diverged
                        else round(drift(est.trace, s.burn_in, est.init_loss), 3),
                        "seconds": round(est.seconds, 2),
                    }
                    print(json.dumps(row), flush=True)


def overhead_child(mode: str, epochs: int) -> dict:
    """Train the quick preset for `epochs` in this process, alone or with the LLC thread."""
    from grok_tui.engine.core.config import preset
    from grok_tui.engine.core.threads import TRAINER_NICENESS, lower_this_thread
    from grok_tui.engine.measures.llc_service import TRAINING_SHARE, LLCService
    from grok_tui.engine.store.runs import Run
    from grok_tui.engine.training.train import CheckpointSaved, Trainer

    cfg = preset("quick").replace(epochs=epochs)
    run = Run.create(Path(tempfile.mkdtemp()) / "run", cfg, "cpu")
    llc = None
    if mode != "alone":
        share = TRAINING_SHARE if mode == "llc" else 1.0
        llc = LLCService(run, "cpu", lambda s: None, share=share)

    def on_event(event: object) -> None:
        if isinstance(event, CheckpointSaved) and llc is not None:
            llc.poke()

    result: list = []

    def train() -> None:
        lower_this_thread(TRAINER_NICENESS)  # as the app's trainer thread
        result.append(Trainer(run, "cpu", on_event).train())

    start = time.perf_counter()
    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    wall = time.perf_counter() - start
    out = {"mode": mode, "epochs": epochs, "wall_s": round(wall, 2),
           "epochs_per_s": round(epochs / wall, 2)}  # fmt: skip
    if llc is not None:
        llc.stop()
        llc.join()
        out.update(llc_estimates=len(llc.computed), llc_busy_s=round(llc.busy_s, 1))
    return out


def overhead(args: argparse.Namespace) -> None:
    print(json.dumps({"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
                      "omp": os.environ.get("OMP_NUM_THREADS")}), flush=True)  # fmt: skip
    modes = args.modes.split(",")
    for _ in range(args.repeats):
        for mode in modes:
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            out = subprocess.run(
                [sys.executable, __file__, "overhead-child", mode, str(args.epochs)],
                check=True, capture_output=True, text=True, env=env,
            ).stdout.strip().splitlines()[-1]  # fmt: skip
            row = json.loads(out)
            row["loadavg"] = os.getloadavg()[0]
            print(json.dumps(row), flush=True)


def curve(args: argparse.Namespace) -> None:
    from grok_tui.api import GrokRun
    from grok_tui.engine.measures.llc_checkpoint import settings_json
    from grok_tui.engine.store.runs import Run

    run = GrokRun(Run.open(args.run))
    start = time.perf_counter()
    chosen = [int(e) for e in args.epochs.split(",")] if args.epochs else run.epochs
    c = run.llc(chosen[:: args.every])
    table = run.measures()
    phases = table.phases()
    print(json.dumps({"settings": settings_json(), "seconds": round(time.perf_counter() - start),
                      "phases": phases}), flush=True)  # fmt: skip
    index = {int(e): i for i, e in enumerate(table.epochs)}
    for j, epoch in enumerate(c["epoch"].tolist()):
        i = index.get(epoch)
        row = {
            "epoch": epoch,
            "llc": round(float(c["llc"][j]), 2),
            "llc_std": round(float(c["llc_std"][j]), 2),
            "init_loss": float(f"{c['init_loss'][j]:.3g}"),
            "drift": round(drift(c["trace"][j], c["settings"]["burn_in"], c["init_loss"][j]), 3),
            "seconds": round(float(c["seconds"][j]), 1),
        }
        if i is not None:
            for name in ("train_acc", "test_acc", "train_loss", "test_loss", "sum_sq_weights"):
                row[name] = float(f"{table[name][i]:.4g}")
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    cal = sub.add_parser("calibrate")
    cal.add_argument("run")
    cal.add_argument("--epochs", default="0,200,1000,3000")
    cal.add_argument("--eps", default="3e-5,1e-4,3e-4,1e-3")
    cal.add_argument("--gamma", default="100,1000,10000")
    cal.add_argument("--batch", default="256")
    cal.add_argument("--chains", type=int, default=2)
    cal.add_argument("--draws", type=int, default=200)
    cal.add_argument("--burn-in", type=int, default=100)
    ov = sub.add_parser("overhead")
    ov.add_argument("--epochs", type=int, default=1500)
    ov.add_argument("--repeats", type=int, default=2)
    ov.add_argument("--modes", default="alone,llc")
    child = sub.add_parser("overhead-child")
    child.add_argument("mode")
    child.add_argument("epochs", type=int)
    cur = sub.add_parser("curve")
    cur.add_argument("run")
    cur.add_argument("--every", type=int, default=1, help="every n-th checkpoint")
    cur.add_argument("--epochs", default="", help="these checkpoints (comma-separated)")
    args = parser.parse_args()
    if args.cmd == "calibrate":
        calibrate(args)
    elif args.cmd == "overhead":
        overhead(args)
    elif args.cmd == "overhead-child":
        print(json.dumps(overhead_child(args.mode, args.epochs)))
    else:
        curve(args)


if __name__ == "__main__":
    main()
