"""Subnormal floats after grokking: an epoch with and without flushing them, in one process.

Once a model has grokked its softmax gives wrong answers probabilities below float32's
smallest normal number, the loss gradient fills with subnormals and x86 GEMMs slow down on
them (bench/RESULTS.md, "Subnormal floats after grokking"). A state with that many
subnormal probabilities is made here without training: the quick model at its
initialisation with W_U scaled up until its logits lie ~100 nats apart (a confidently wrong
model, not a grokked one, but its softmax has the same subnormal tail). Epochs alternate in
blocks between flushing on and off (the thread's FTZ/DAZ flag, `torch.set_flush_denormal`),
timed in CPU time of this thread, one torch thread. (The trainer does not flush:
bench/RESULTS.md says why.)

    .venv/bin/python bench/denormals.py [--p 97] [--scale 250] [--blocks 6] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from train_speed import cpu_model, load  # noqa: E402  (the same context as its figures)

from grok_tui.engine.core.config import preset  # noqa: E402
from grok_tui.engine.core.model import paper_init  # noqa: E402
from grok_tui.engine.training.stepper import MemberState, Stepper  # noqa: E402


def grokked_like(p: int, scale: float) -> Stepper:
    """A stepper whose logits are so far apart that most probabilities are subnormal."""
    cfg = preset("quick").replace(p=p, frac_train=0.5).validated()
    weights = paper_init(cfg)
    weights["unembed.W_U"] = weights["unembed.W_U"] * scale
    return Stepper([cfg], "cpu", [MemberState(0, weights)])


def epoch_ms(stepper: Stepper, flush: bool, epochs: int) -> float:
    torch.set_flush_denormal(flush)
    start = time.process_time()
    for _ in range(epochs):
        stepper.measure()
        stepper.step()
    return 1000 * (time.process_time() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=97)
    parser.add_argument("--scale", type=float, default=250.0)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not torch.set_flush_denormal(True):
        sys.exit("this CPU cannot flush subnormals (no FTZ/DAZ): nothing to measure")
    print(f"{cpu_model()}, 1 torch thread, p {args.p}, W_U x {args.scale:g}, {load()}")
    stepper = grokked_like(args.p, args.scale)
    epoch_ms(stepper, True, 1)  # warm-up (buffers, caches)
    times: dict[bool, list[float]] = {True: [], False: []}
    for block in range(args.blocks):
        for flush in (block % 2 == 0, block % 2 == 1):  # alternate which goes first
            times[flush].append(epoch_ms(stepper, flush, args.epochs))
    train_loss = stepper.measure()[0, 0].item()  # (members, 4): train loss first
    plain, flushed = statistics.median(times[False]), statistics.median(times[True])
    print(f"train loss {train_loss:.2e}; medians of {args.blocks} blocks of {args.epochs} epochs:")
    print(f"no flush {plain:.1f} ms/epoch, flush {flushed:.1f} ms/epoch: {plain / flushed:.2f}x")


if __name__ == "__main__":
    main()
