"""The options several commands share, each defined once: the run configuration, --device.

Light on purpose (the config module is plain data): `grok-tui --help` builds every parser
from here without loading torch.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from grok_tui.engine.core.config import (
    GROKFAST_MA_LAMB,
    GROKFAST_MODES,
    LOSSES,
    OPS,
    PRESETS,
    RunConfig,
    preset,
)
from grok_tui.errors import UsageError

DEFAULT_RUNS_DIR = Path("runs")

# The config fields the command line sets, in RunConfig's order: every field but the preset
# (its own option) and the architecture (the preset's). `train` takes one value of each,
# `sweep` a comma-separated list of each (checkpoint_every: one number, the densest spacing).
NOT_ON_COMMAND_LINE = ("preset", "d_model", "n_heads", "d_head", "d_mlp")
CONFIG_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in NOT_ON_COMMAND_LINE)
CHOICES = {"op": OPS, "grokfast": GROKFAST_MODES, "loss": LOSSES}
HELP = {
    "p": "the modulus, a prime (paper: 113)",
    "frac_train": "share of pairs to train on (paper: 0.3)",
    "data_seed": "train/test split seed (paper: 0)",
    "op": "the operation mod p (default add; divide: y != 0)",
    "lr": "AdamW learning rate (paper: 1e-3)",
    "weight_decay": "AdamW weight decay (paper: 1.0)",
    "beta1": "AdamW beta1 (paper: 0.9)",
    "beta2": "AdamW beta2 (paper: 0.98)",
    "warmup_steps": "steps of linear learning-rate warm-up (paper: 10)",
    "epochs": "full-batch steps (paper: 50000)",
    "checkpoint_every": "epochs between checkpoints (paper: 100)",
    "seed": "model initialisation seed (paper: 0)",
    "grokfast": "the filter (default off)",
    "grokfast_alpha": "EMA momentum (default 0.98)",
    "grokfast_lamb": "amplification (default 2.0 for ema, 5.0 for ma)",
    "grokfast_window": "MA window in steps (default 100)",
    "loss": "the training loss (default cross-entropy; stablemax: theirs, in float64)",
    "orthogonal_grad": "their ⊥Grad: each parameter's gradient less its component along the "
    "parameter, rescaled to its norm, before AdamW (default off)",
}
GROKFAST_GROUP = "Grokfast (Lee et al. 2024): a low-pass gradient filter"
NUMERICS_GROUP = "numerical stability (Prieto et al. 2025, Grokking at the edge of ...)"
NUMERICS_FIELDS = ("loss", "orthogonal_grad")


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def flag(field: str) -> str:
    """The option that sets a config field: frac_train -> --frac-train."""
    return "--" + field.replace("_", "-")


def field_type(field: str) -> type:
    """int, float, str or bool: the type of the field's default."""
    return type(getattr(RunConfig(), field))


def add_config_options(p: argparse.ArgumentParser) -> None:
    """--preset and one option per config field, one value each (train)."""
    g = p.add_argument_group("run configuration (defaults: the preset's)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    gf = p.add_argument_group(GROKFAST_GROUP)
    nm = p.add_argument_group(NUMERICS_GROUP)
    for field in CONFIG_FIELDS:
        group = gf if field.startswith("grokfast") else nm if field in NUMERICS_FIELDS else g
        if field in CHOICES:
            group.add_argument(flag(field), choices=CHOICES[field], help=HELP[field])
        elif field_type(field) is bool:
            group.add_argument(
                flag(field), action=argparse.BooleanOptionalAction, default=None, help=HELP[field]
            )
        else:
            group.add_argument(flag(field), type=field_type(field), help=HELP[field])


def add_config_list_options(p: argparse.ArgumentParser) -> Any:
    """--preset and one comma-separated list per config field (sweep: the grid's axes);
    the argument group, for the sweep's own grid options."""
    g = p.add_argument_group("grid (comma-separated lists; defaults: the preset's)")
    g.add_argument("--preset", choices=sorted(PRESETS))
    for field in CONFIG_FIELDS:
        if field == "checkpoint_every":
            g.add_argument(flag(field), type=int, help="the densest checkpoint spacing allowed")
        else:
            g.add_argument(flag(field), metavar="LIST", help=HELP[field])
    return g


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda[:N], mps")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset with every config option given on the command line, checked."""
    changes: dict[str, Any] = {
        field: getattr(args, field)
        for field in CONFIG_FIELDS
        if getattr(args, field, None) is not None
    }
    if changes.get("grokfast") == "ma" and "grokfast_lamb" not in changes:
        changes["grokfast_lamb"] = GROKFAST_MA_LAMB  # the paper's MA default
    return preset(args.preset).replace(**changes).validated()


def say(text: str) -> None:
    """One line for the user on stderr."""
    print(f"grok-tui: {text}", file=sys.stderr)
