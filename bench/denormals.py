"""Subnormal floats after grokking: an epoch with and without the gradient floor, in one process.

Once a model has grokked its softmax gives wrong answers probabilities below float32's
smallest normal number, the loss gradient fills with subnormals and x86 GEMMs slow down on
them (bench/RESULTS.md, "Subnormal floats after grokking"). The trainer now sets the
gradient's entries below 2^-100 to 0 (engine/core/loss.py, `GRADIENT_FLOOR`). Three modes
alternate in blocks of epochs on the same stepper, timed in CPU time of this thread, one
torch thread:

- `none`: no floor (the trainer before), the CPU's subnormal arithmetic as it is;
- `floor`: the trainer now;
- `ftz`: no floor, the thread's flush-to-zero flag on (`torch.set_flush_denormal`): what
  the hardware gives when every subnormal is flushed, the figure the floor is aiming at.

Timed: an epoch's forward and backward (the AdamW step is the same work in every mode and
would move the weights between modes).

The state: by default the quick model at p = 97 at its initialisation with W_U scaled up
until its softmax has the same subnormal tail (a confidently wrong model, not a grokked
one); with `--train N`, a real run: h12's multiply member (p = 97, train fraction 0.5,
weight decay 1.5, seed 23, data seed 19), trained N epochs first (with the floor).

    .venv/bin/python bench/denormals.py [--p 97] [--scale 250] [--blocks 6] [--epochs 3]
    .venv/bin/python bench/denormals.py --train 800       # the real grokked member
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
from grok_tui.engine.core.loss import GRADIENT_FLOOR  # noqa: E402
from grok_tui.engine.core.model import paper_init  # noqa: E402
from grok_tui.engine.training.stepper import MemberState, Stepper  # noqa: E402

MODES = ("none", "floor", "ftz")


def grokked_like(p: int, scale: float) -> Stepper:
    """A stepper whose logits are so far apart that most probabilities are subnormal."""
    cfg = preset("quick").replace(p=p, frac_train=0.5).validated()
    weights = paper_init(cfg)
    weights["unembed.W_U"] = weights["unembed.W_U"] * scale
    return Stepper([cfg], "cpu", [MemberState(0, weights)])


def trained(p: int, epochs: int) -> Stepper:
    """h12's multiply member (bench/forecast_corpus.py), trained `epochs` epochs."""
    cfg = preset("quick").replace(
        p=p, frac_train=0.5, weight_decay=1.5, op="multiply", seed=23, data_seed=19
    )
    cfg = cfg.validated()
    stepper = Stepper([cfg], "cpu", [MemberState(0, paper_init(cfg))])
    start = time.perf_counter()
    for epoch in range(epochs):
        stepper.measure()
        stepper.step()
        if (epoch + 1) % 100 == 0:
            print(f"  trained {epoch + 1} epochs, {time.perf_counter() - start:.0f} s", flush=True)
    return stepper


def set_mode(stepper: Stepper, mode: str) -> None:
    torch.set_flush_denormal(mode == "ftz")
    for chunk in stepper.chunks:
        chunk.closed_form.gradient_floor = GRADIENT_FLOOR if mode == "floor" else 0.0


def epoch_ms(stepper: Stepper, mode: str, epochs: int) -> float:
    """An epoch's forward and backward (`measure`), in ms of CPU time. The AdamW step, the
    same work in every mode, is left out so that every mode sees the same weights: a
    confidently wrong model would otherwise train itself out of its subnormal tail."""
    set_mode(stepper, mode)
    start = time.process_time()
    for _ in range(epochs):
        stepper.measure()
    elapsed = time.process_time() - start
    set_mode(stepper, "floor")
    return 1000 * elapsed / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=97)
    parser.add_argument("--scale", type=float, default=250.0)
    parser.add_argument("--train", type=int, default=0, metavar="EPOCHS")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not torch.set_flush_denormal(True):
        sys.exit("this CPU cannot flush subnormals (no FTZ/DAZ): nothing to measure")
    torch.set_flush_denormal(False)
    state = f"h12 multiply trained {args.train} epochs" if args.train else f"W_U x {args.scale:g}"
    print(f"{cpu_model()}, 1 torch thread, p {args.p}, {state}, {load()}", flush=True)
    stepper = trained(args.p, args.train) if args.train else grokked_like(args.p, args.scale)
    for mode in MODES:  # warm-up (buffers, caches)
        epoch_ms(stepper, mode, 1)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for block in range(args.blocks):
        for i in range(len(MODES)):  # rotate which goes first
            mode = MODES[(block + i) % len(MODES)]
            times[mode].append(epoch_ms(stepper, mode, args.epochs))
    metrics = stepper.measure()[0].tolist()  # train loss, test loss, train acc, test acc
    medians = {mode: statistics.median(ts) for mode, ts in times.items()}
    print(f"train loss {metrics[0]:.2e}, test accuracy {metrics[3]:.4f}; {load()}")
    blocks = f"{args.blocks} blocks of {args.epochs}"
    print(f"medians of {blocks} (ms of CPU time a forward + backward):")
    for mode in MODES:
        lo, hi = min(times[mode]), max(times[mode])
        ratio = medians["none"] / medians[mode]
        print(f"  {mode:5s} {medians[mode]:7.1f}  ({lo:.1f}-{hi:.1f})  none / this {ratio:.2f}x")


if __name__ == "__main__":
    main()
