"""When a member writes a checkpoint: a base spacing, and denser ones where it matters.

A single run checkpoints every `checkpoint_every` epochs. A sweep has many members, and
their checkpoints add up (64 paper-recipe members x 200 checkpoints is ~12 GB), so
`plan_checkpoints` picks the base spacing from a disk budget and keeps part of the budget
for denser checkpoints while a member's metrics move (memorising, grokking, cleaning up):
where the progress measures and the panes have something to show.

A member is "moving" when, since its last checkpoint, its train or test accuracy changed by
`ACC_STEP` or more or its test loss by a factor 10^LOG_LOSS_STEP or more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from grok_tui.engine.core.config import ConfigError, RunConfig
from grok_tui.engine.core.model import param_shapes

ACC_STEP = 0.02
LOG_LOSS_STEP = 0.15
DENSE_SHARE = 0.25  # of the budget left after fixed costs, kept for dense checkpoints
DENSE_FACTOR = 5  # dense spacing = base spacing / this
ROW_BYTES = 170  # one metrics.jsonl row, measured: 140-170 bytes
FILE_OVERHEAD = 4096  # a safetensors header, rounding to disk blocks
RESUME_OVERHEAD = 32768  # torch.save's zip: ~40 tensors, each with headers and alignment


def _moved(a: dict[str, float], b: dict[str, float]) -> bool:
    for key in ("train_acc", "test_acc"):
        if abs(b[key] - a[key]) >= ACC_STEP:
            return True
    x, y = a["test_loss"], b["test_loss"]
    if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
        return abs(math.log10(y) - math.log10(x)) >= LOG_LOSS_STEP
    return False


@dataclass
class CheckpointPolicy:
    """One member's checkpoint schedule, decided epoch by epoch.

    `due(epoch)`: a base checkpoint. `wants_row(epoch)`: a dense candidate, whose decision
    needs this epoch's metrics row (the trainer flushes first), then `dense_due(row)`.
    """

    every: int
    dense_every: int = 0
    dense_left: int = 0
    last: dict[str, float] | None = None  # metrics row of the last checkpoint

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def wants_row(self, epoch: int) -> bool:
        return (
            self.dense_left > 0
            and self.dense_every > 0
            and epoch % self.dense_every == 0
            and not self.due(epoch)
        )

    def dense_due(self, row: dict[str, float]) -> bool:
        return self.last is not None and _moved(self.last, row)

    def saved(self, row: dict[str, float] | None, dense: bool) -> None:
        if row is not None:
            self.last = row
        if dense:
            self.dense_left -= 1


def checkpoint_bytes(cfg: RunConfig) -> int:
    """One safetensors checkpoint: every weight in float32, plus its header."""
    return 4 * sum(math.prod(s) for s in param_shapes(cfg).values()) + FILE_OVERHEAD


def resume_bytes(cfg: RunConfig) -> int:
    """resume.pt: the weights and AdamW's two moments of the trained ones."""
    from grok_tui.engine.core.model import PAPER_TRAINED

    shapes = param_shapes(cfg)
    trained = sum(math.prod(shapes[s]) for s in PAPER_TRAINED)
    return checkpoint_bytes(cfg) + 8 * trained + RESUME_OVERHEAD


@dataclass(frozen=True)
class DiskPlan:
    """Checkpoint spacing for a set of members, and what it will take on disk."""

    every: int
    dense_every: int
    dense_quota: int  # dense checkpoints per member, at most
    base_bytes: int  # checkpoints at the base spacing, resume states, metrics
    dense_bytes: int  # the dense checkpoints if every member uses its whole quota
    budget: int

    def describe(self, n_members: int) -> str:
        dense = (
            f", up to {self.dense_quota} more per member every {self.dense_every} epochs while"
            f" its metrics move (at most {fmt_bytes(self.base_bytes + self.dense_bytes)})"
            if self.dense_quota
            else ""
        )
        return (
            f"{n_members} members, a checkpoint every {self.every} epochs{dense}: expected disk"
            f" use {fmt_bytes(self.base_bytes)} of a {fmt_bytes(self.budget)} budget"
        )


def _base_checkpoints(epochs: int, every: int) -> int:
    """Checkpoints at 0, every, 2 every, ... and at the last epoch."""
    return epochs // every + 1 + (1 if epochs % every else 0)


def _spacings(smallest: int, largest: int) -> list[int]:
    """smallest x 1, 2, 5, 10, 20, 50, ... up to largest (and largest itself)."""
    out, scale = [], 1
    while True:
        for k in (1, 2, 5):
            value = smallest * k * scale
            if value >= largest:
                return [*out, max(largest, smallest)]
            out.append(value)
        scale *= 10


def plan_checkpoints(cfgs: Sequence[RunConfig], budget: int) -> DiskPlan:
    """The densest base spacing (no finer than the configs' checkpoint_every) whose
    checkpoints fit (1 - DENSE_SHARE) of the budget left after resume states and metrics;
    the rest funds dense checkpoints. Raises ConfigError if even two checkpoints per member
    (the first and the last) do not fit."""
    smallest = max(c.checkpoint_every for c in cfgs)
    longest = max(max(c.epochs for c in cfgs), 1)
    fixed = sum(resume_bytes(c) + (c.epochs + 1) * ROW_BYTES for c in cfgs)
    per_ckpt = [checkpoint_bytes(c) for c in cfgs]
    minimum = fixed + 2 * sum(per_ckpt)
    if budget < minimum:
        raise ConfigError(
            f"--disk-budget {fmt_bytes(budget)} is too small for {len(cfgs)} members: "
            f"they need at least {fmt_bytes(minimum)}"
        )

    def base_cost(every: int) -> int:
        return fixed + sum(
            b * _base_checkpoints(c.epochs, every) for c, b in zip(cfgs, per_ckpt, strict=True)
        )

    spare = budget - fixed
    candidates = _spacings(smallest, longest)
    every = next(
        (e for e in candidates if base_cost(e) - fixed <= (1 - DENSE_SHARE) * spare),
        None,
    )
    if every is None or every == smallest:
        # Either only the sparsest spacing fits, or the densest asked for fits already:
        # no room (or no need) for dense checkpoints; use the whole budget for the base.
        every = next((e for e in candidates if base_cost(e) <= budget), candidates[-1])
        return DiskPlan(every, 0, 0, base_cost(every), 0, budget)
    dense_every = max(smallest, every // DENSE_FACTOR)
    left = budget - base_cost(every)
    quota = int(left // sum(per_ckpt))
    quota = min(quota, longest // dense_every)
    return DiskPlan(every, dense_every, quota, base_cost(every), quota * sum(per_ckpt), budget)


def parse_bytes(text: str) -> int:
    """'2GB', '500M', '1.5g', '123456' -> bytes (decimal units)."""
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = raw, ""
    if raw and raw[-1] in units:
        number, unit = raw[:-1], raw[-1]
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ConfigError(f"--disk-budget {text!r} is not a size like 2GB or 500MB") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--disk-budget must be positive, got {text!r}")
    return int(value)


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
