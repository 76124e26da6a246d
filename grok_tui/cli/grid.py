"""The grid of `grok-tui sweep`: from list-valued options, a TOML file, or both.

    grok-tui sweep --preset quick --weight-decay 0.3,1,3 --frac-train 0.3,0.5 --seeds 4
    grok-tui sweep grid.toml --headless

A TOML sweep file holds the same options under their config names (op and grokfast take
names: op = ["add", "multiply"]): a list is an axis, a single value is fixed, plus
`preset`, `seeds`, `disk_budget`, `group_size` and `chunk_size`:

    preset = "quick"
    weight_decay = [0.3, 1.0, 3.0]
    frac_train = [0.3, 0.5]
    seeds = 4
    disk_budget = "1GB"

Options given on the command line override the file's. Every bad value is a one-line
ConfigError naming the option.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from grok_tui.cli.options import CONFIG_FIELDS, field_type, flag
from grok_tui.engine.core.config import ConfigError, preset
from grok_tui.engine.lab.sweep import AXES, DEFAULT_BUDGET, SweepSpec
from grok_tui.engine.training.checkpoints import parse_bytes

# The config fields that take a comma-separated list, in the engine's order of axes (which
# orders the parts of member names); checkpoint_every takes one number.
LIST_FIELDS = tuple(f for f in AXES if f in CONFIG_FIELDS)
# The options that make a grid beyond the config fields.
GRID_KEYS = ("preset", "seeds", "disk_budget", "group_size", "chunk_size", "checkpoint_every")


def grid_given(args: argparse.Namespace) -> bool:
    """Whether the command line gives any of the grid (a file or an option)."""
    return args.file is not None or any(
        getattr(args, name) is not None for name in (*LIST_FIELDS, *GRID_KEYS)
    )


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    """A SweepSpec from a TOML file (if any) overridden by command-line options."""
    data = load_toml(args.file) if args.file else {}
    preset_name = args.preset or data.get("preset", "paper")
    if not isinstance(preset_name, str):
        raise ConfigError("preset must be a string")
    base = preset(preset_name)
    values: dict[str, list[Any]] = {}
    for name in LIST_FIELDS:
        raw = getattr(args, name)
        if raw is not None:
            values[name] = parse_values(name, raw)
        elif name in data:
            values[name] = file_values(name, data[name])
    seeds = args.seeds if args.seeds is not None else data.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
            raise ConfigError(f"--seeds must be a positive integer, got {seeds!r}")
        if "seed" in values:
            raise ConfigError("give --seeds N or --seed LIST, not both")
        values["seed"] = list(range(seeds))
    fixed = {k: v[0] for k, v in values.items() if len(v) == 1}
    every = (
        args.checkpoint_every if args.checkpoint_every is not None else data.get("checkpoint_every")
    )
    if every is not None:
        fixed["checkpoint_every"] = int_value("checkpoint_every", every)
    base = base.replace(**fixed).validated()
    axes = {k: v for k, v in values.items() if len(v) > 1}
    budget_raw = args.disk_budget if args.disk_budget is not None else data.get("disk_budget")
    budget = DEFAULT_BUDGET if budget_raw is None else parse_bytes(str(budget_raw))
    group_size = args.group_size if args.group_size is not None else data.get("group_size", 0)
    chunk_size = args.chunk_size if args.chunk_size is not None else data.get("chunk_size", 0)
    return SweepSpec(
        base, axes, budget, int_value("group_size", group_size), int_value("chunk_size", chunk_size)
    ).validated()


def load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(
                "TOML sweep files need Python 3.11+ (or: pip install tomli)"
            ) from None
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no sweep file at {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text, so not a TOML sweep file") from None
    unknown = set(data) - set(LIST_FIELDS) - set(GRID_KEYS)
    if unknown:
        known = ", ".join([*LIST_FIELDS, *sorted(GRID_KEYS)])
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: {known})")
    return data


def parse_values(field_name: str, text: str) -> list[Any]:
    """'0.3,1,3' -> [0.3, 1.0, 3.0] in the config field's type; one line on a bad value."""
    want = field_type(field_name)
    out: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        if want is str:  # op, grokfast: names, checked when each member's config is
            out.append(part)
            continue
        if want is bool:  # orthogonal_grad
            out.append(bool_value(field_name, part))
            continue
        try:
            value = want(part) if want is float else int(part)
        except ValueError:
            raise ConfigError(
                f"{flag(field_name)}: {part!r} is not a{'n int' if want is int else ' number'}"
            ) from None
        if want is float and not math.isfinite(value):
            raise ConfigError(f"{flag(field_name)}: {part!r} is not finite")
        out.append(value)
    return out


def file_values(name: str, raw: Any) -> list[Any]:
    """A TOML value (one or a list) in the config field's type; one line on a bad one."""
    items = raw if isinstance(raw, list) else [raw]
    want = field_type(name)
    out: list[Any] = []
    for item in items:
        if want is str:
            if not isinstance(item, str):
                raise ConfigError(f"{name}: {item!r} is not a name")
            out.append(item)
            continue
        if want is bool:
            if not isinstance(item, bool):
                raise ConfigError(f"{name}: {item!r} is not true or false")
            out.append(item)
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ConfigError(f"{name}: {item!r} is not a number")
        if want is int and not isinstance(item, int):
            raise ConfigError(f"{name}: {item!r} is not an integer")
        out.append(want(item))
    return out


BOOL_WORDS = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


def bool_value(name: str, text: str) -> bool:
    """'on', 'true', '1' / 'off', 'false', '0' (any case) -> a bool; one line otherwise."""
    try:
        return BOOL_WORDS[text.lower()]
    except KeyError:
        raise ConfigError(f"{flag(name)}: {text!r} is not on/off (true/false, 1/0)") from None


def int_value(name: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    return raw
