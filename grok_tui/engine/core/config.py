"""Run configuration: the paper's recipe as data, presets, and validation.

A config is everything that decides what a run computes. It is stored in `run.json`, so a
run can be resumed or re-analysed by another process without guessing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from grok_tui.errors import UserError

MAX_P = 997  # p^2 inputs x d_mlp activations must fit a snapshot in memory
# Caps on what a config may ask for: far above any real run (the paper's: 128, 4, 32, 512,
# 50,000 epochs), low enough that a run.json from elsewhere cannot make us allocate
# terabytes. Checked on input and on every read.
MAX_DIMS = {"d_model": 4096, "n_heads": 64, "d_head": 1024, "d_mlp": 16384}
MAX_EPOCHS = 10_000_000
MAX_SEED = 2**63 - 1
MAX_ACTIVATIONS = 2**29  # p^2 x max(d_model, d_mlp) floats: one analysis pass (2 GiB)
MAX_PRESET_CHARS = 64
# The operations (engine/core/ops.py, which needs torch; kept here as data so the CLI's --help
# stays light) and the Grokfast filters.
OPS = ("add", "subtract", "multiply", "divide", "x2+y2", "x2+xy+y2", "x3+xy", "random")
GROKFAST_MODES = ("off", "ema", "ma")
MAX_GROKFAST_WINDOW = 1000  # the MA filter keeps this many gradients per member
# Lee et al.'s defaults: EMA alpha 0.98, lamb 2.0; MA window 100, lamb 5.0.
GROKFAST_MA_LAMB = 5.0
# The training loss (engine/core/loss.py): cross-entropy, or Prieto et al. 2025's StableMax.
LOSSES = ("cross-entropy", "stablemax")


def max_tensor_elements() -> int:
    """The most elements any tensor of an accepted run holds (a weight, or a loss per epoch)."""
    widest = MAX_DIMS["d_model"] * max(MAX_DIMS["d_mlp"], MAX_P + 1)
    return max(widest, MAX_EPOCHS + 1)


class ConfigError(UserError, ValueError):
    """A config value a run cannot use; the message names the value."""


@dataclass(frozen=True)
class RunConfig:
    # Task: op(x, y) mod p ((x + y) for the paper) from a frac_train share of its inputs.
    p: int = 113
    frac_train: float = 0.3
    data_seed: int = 0
    op: str = "add"  # one of ops.OPS
    # Model: one layer, no LayerNorm, ReLU MLP (Nanda et al. 2023, section 3).
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    # Optimiser: full batch AdamW, linear warm-up, one step per epoch.
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 10
    epochs: int = 50_000
    checkpoint_every: int = 100
    seed: int = 0
    preset: str = "paper"
    # Grokfast (Lee et al. 2024): a low-pass filter of the gradient before the optimiser
    # step, "off", "ema" (alpha, lamb) or "ma" (window, lamb).
    grokfast: str = "off"
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 2.0
    grokfast_window: int = 100
    # Prieto et al. 2025 ("Grokking at the edge of numerical stability"): the training loss
    # (LOSSES), and their orthogonal gradient (engine/core/orthograd.py) before AdamW.
    loss: str = "cross-entropy"
    orthogonal_grad: bool = False

    @property
    def d_vocab(self) -> int:
        """p number tokens plus the `=` token."""
        return self.p + 1

    @property
    def eq_token(self) -> int:
        return self.p

    @property
    def n_ctx(self) -> int:
        return 3

    @property
    def n_inputs(self) -> int:
        """All inputs of the op: p^2 pairs (divide: p (p - 1), no y = 0)."""
        return self.p * (self.p - 1) if self.op == "divide" else self.p * self.p

    @property
    def n_train(self) -> int:
        return int(self.frac_train * self.n_inputs)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Build from untrusted JSON: unknown keys are ignored, wrong types are errors."""
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            want = type(getattr(cls(), f.name))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
                raise ConfigError(f"config field {f.name!r} must be {want.__name__}, got {value!r}")
            values[f.name] = value
        return cls(**values).validated()

    def validated(self) -> RunConfig:
        """Return self, or raise ConfigError naming the first bad value."""
        if self.p < 3 or self.p > MAX_P or not is_prime(self.p):
            raise ConfigError(f"--p must be a prime >= 3 and <= {MAX_P}, got {self.p}")
        if not 0.0 < self.frac_train < 1.0:
            raise ConfigError(f"--frac-train must be in (0, 1), got {self.frac_train}")
        if self.op not in OPS:
            raise ConfigError(f"--op must be one of {', '.join(OPS)}; got {self.op[:40]!r}")
        if self.n_train < 1 or self.n_train >= self.n_inputs:
            raise ConfigError(
                f"--frac-train {self.frac_train} leaves an empty train or test set for p={self.p}"
            )
        if not 0 <= self.epochs <= MAX_EPOCHS:
            raise ConfigError(f"--epochs must be in 0..{MAX_EPOCHS:,}, got {self.epochs}")
        if not 1 <= self.checkpoint_every <= MAX_EPOCHS:
            raise ConfigError(
                f"--checkpoint-every must be in 1..{MAX_EPOCHS:,}, got {self.checkpoint_every}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a finite number > 0, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ConfigError(
                f"--weight-decay must be a finite number >= 0, got {self.weight_decay}"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"betas must be in [0, 1), got ({self.beta1}, {self.beta2})")
        if not 0 <= self.warmup_steps <= MAX_EPOCHS:
            raise ConfigError(f"warmup_steps must be in 0..{MAX_EPOCHS:,}, got {self.warmup_steps}")
        for name in ("seed", "data_seed"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SEED:  # torch and numpy take seeds in 0..2**63-1
                raise ConfigError(f"--{name.replace('_', '-')} must be in 0..2**63-1, got {value}")
        for name, most in MAX_DIMS.items():
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(f"{name} must be in 1..{most:,}, got {getattr(self, name):,}")
        if self.p * self.p * max(self.d_model, self.d_mlp) > MAX_ACTIVATIONS:
            raise ConfigError(
                f"p={self.p} with d_model {self.d_model} and d_mlp {self.d_mlp} is too large "
                f"to analyse (p^2 x width above {MAX_ACTIVATIONS:,})"
            )
        self._validate_grokfast()
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}; got {self.loss[:40]!r}")
        if len(self.preset) > MAX_PRESET_CHARS or not self.preset.isprintable():
            raise ConfigError(f"preset name {self.preset[:20]!r}... is not a short name")
        if self.d_model != self.n_heads * self.d_head:
            raise ConfigError(
                f"d_model ({self.d_model}) must equal n_heads * d_head "
                f"({self.n_heads} * {self.d_head})"
            )
        return self

    def _validate_grokfast(self) -> None:
        if self.grokfast not in GROKFAST_MODES:
            raise ConfigError(
                f"--grokfast must be one of {', '.join(GROKFAST_MODES)}; got {self.grokfast[:40]!r}"
            )
        if not 0.0 <= self.grokfast_alpha < 1.0:
            raise ConfigError(f"--grokfast-alpha must be in [0, 1), got {self.grokfast_alpha}")
        if not (self.grokfast_lamb >= 0 and math.isfinite(self.grokfast_lamb)):
            raise ConfigError(
                f"--grokfast-lamb must be a finite number >= 0, got {self.grokfast_lamb}"
            )
        if not 1 <= self.grokfast_window <= MAX_GROKFAST_WINDOW:
            raise ConfigError(
                f"--grokfast-window must be in 1..{MAX_GROKFAST_WINDOW}, got {self.grokfast_window}"
            )


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % k for k in range(2, int(n**0.5) + 1))


PRESETS: dict[str, RunConfig] = {
    # Nanda et al. 2023: memorises by ~1.4k epochs, groks near 10k, cleans up by ~14k.
    "paper": RunConfig(),
    # Small enough to grok in under three minutes on two CPU cores (measured: README).
    "quick": RunConfig(
        p=53,
        frac_train=0.4,
        lr=3e-3,
        weight_decay=2.0,
        epochs=3_000,
        checkpoint_every=50,
        preset="quick",
    ),
}


def preset(name: str) -> RunConfig:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise ConfigError(f"unknown preset {name!r} (known: {known})") from None
