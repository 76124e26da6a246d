"""`grok-tui sweep`: a grid from list-valued options or a TOML file, or --resume DIR.

    grok-tui sweep --preset quick --weight-decay 0.3,1,3 --frac-train 0.3,0.5 --seeds 4
    grok-tui sweep grid.toml --headless
    grok-tui sweep --resume runs/sweep-quick-20261201-120000

A TOML sweep file holds the same options under their config names (op and grokfast take
names: op = ["add", "multiply"]): a list is an axis, a
single value is fixed, plus `preset`, `seeds`, `disk_budget` and `group_size`:

    preset = "quick"
    weight_decay = [0.3, 1.0, 3.0]
    frac_train = [0.3, 0.5]
    seeds = 4
    disk_budget = "1GB"

Options given on the command line override the file's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from grok_tui.engine.core.config import PRESETS, ConfigError, preset

# Sweepable options on the command line (each takes a comma-separated list).
LIST_OPTIONS = (
    "p",
    "frac_train",
    "lr",
    "weight_decay",
    "beta1",
    "beta2",
    "warmup_steps",
    "epochs",
    "seed",
    "data_seed",
    "op",
    "grokfast",
    "grokfast_alpha",
    "grokfast_lamb",
    "grokfast_window",
)
FILE_KEYS = {"preset", "seeds", "disk_budget", "group_size", "checkpoint_every"}


def add_sweep_parser(sub: Any) -> None:
    sweep = sub.add_parser(
        "sweep",
        help="train a grid of runs together as one batched model (a sweep directory)",
        description="List-valued options (0.3,1,3) are the grid's axes; every combination "
        "is a member run. Members of one p train together as one batched model.",
    )
    sweep.add_argument("file", nargs="?", type=Path, help="a TOML sweep file (optional)")
    sweep.add_argument("--resume", type=Path, metavar="DIR", help="continue a killed sweep")
    sweep.add_argument("--sweep-dir", type=Path, help="where the sweep lives (default: runs/)")
    sweep.add_argument("--headless", action="store_true", help="no UI: a live table")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    g = sweep.add_argument_group("grid (comma-separated lists; defaults: the preset's)")
    g.add_argument("--preset", choices=sorted(PRESETS))
    for name in LIST_OPTIONS:
        g.add_argument("--" + name.replace("_", "-"), metavar="LIST")
    g.add_argument("--seeds", type=int, metavar="N", help="initialisation seeds 0..N-1 (an axis)")
    g.add_argument("--checkpoint-every", type=int, help="the densest checkpoint spacing allowed")
    g.add_argument("--disk-budget", help="disk for all members' files (default 2GB)")
    g.add_argument("--group-size", type=int, help="most members per batched model (default: auto)")
    sweep.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda[:N], mps")
    add_distribution_options(sweep)


def add_distribution_options(sweep: Any) -> None:
    """Where the groups train: shards of an array job, several devices, a Ray cluster."""
    d = sweep.add_argument_group(
        "beyond one process (each implies --headless; follow with grok-tui open DIR)"
    )
    d.add_argument(
        "--shard",
        metavar="I/N",
        help="train only shard I of N (0 <= I < N), e.g. "
        "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; needs --sweep-dir",
    )
    d.add_argument("--devices", metavar="LIST", help="one worker process per device: cuda:0,cuda:1")
    d.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="ray: one Ray task per group (pip install grok-tui[ray])",
    )
    d.add_argument("--address", help="the Ray cluster to join (default: RAY_ADDRESS or a new one)")
    d.add_argument(
        "--cpus-per-group",
        type=int,
        metavar="N",
        help="CPU slots a Ray task asks for when groups train on CPUs (default 1)",
    )
    d.add_argument(
        "--claim-lease",
        type=float,
        metavar="S",
        help="seconds without a heartbeat after which a worker on another host counts as "
        "gone and its group is taken over (default 600)",
    )


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
    unknown = set(data) - set(LIST_OPTIONS) - FILE_KEYS
    if unknown:
        known = ", ".join([*LIST_OPTIONS, *sorted(FILE_KEYS)])
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: {known})")
    return data


def spec_from_args(args: argparse.Namespace) -> Any:
    """A SweepSpec from a TOML file (if any) overridden by command-line options."""
    from grok_tui.engine.lab.sweep import DEFAULT_BUDGET, SweepSpec, parse_values
    from grok_tui.engine.training.checkpoints import parse_bytes

    data = load_toml(args.file) if args.file else {}
    preset_name = args.preset or data.get("preset", "paper")
    if not isinstance(preset_name, str):
        raise ConfigError("preset must be a string")
    base = preset(preset_name)
    values: dict[str, list[Any]] = {}
    for name in LIST_OPTIONS:
        raw = getattr(args, name)
        if raw is not None:
            values[name] = parse_values(name, raw)
        elif name in data:
            values[name] = _file_values(name, data[name])
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
        fixed["checkpoint_every"] = _int_value("checkpoint_every", every)
    base = base.replace(**fixed).validated()
    axes = {k: v for k, v in values.items() if len(v) > 1}
    budget_raw = args.disk_budget if args.disk_budget is not None else data.get("disk_budget")
    budget = DEFAULT_BUDGET if budget_raw is None else parse_bytes(str(budget_raw))
    group_size = args.group_size if args.group_size is not None else data.get("group_size", 0)
    return SweepSpec(base, axes, budget, _int_value("group_size", group_size)).validated()


def _file_values(name: str, raw: Any) -> list[Any]:
    from grok_tui.engine.core.config import RunConfig

    items = raw if isinstance(raw, list) else [raw]
    want = type(getattr(RunConfig(), name))
    out: list[Any] = []
    for item in items:
        if want is str:
            if not isinstance(item, str):
                raise ConfigError(f"{name}: {item!r} is not a name")
            out.append(item)
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ConfigError(f"{name}: {item!r} is not a number")
        if want is int and not isinstance(item, int):
            raise ConfigError(f"{name}: {item!r} is not an integer")
        out.append(want(item))
    return out


def _int_value(name: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError(f"{name} must be an integer, got {raw!r}")
    return raw


def cmd_sweep(args: argparse.Namespace, runs_root: Path) -> int:
    from grok_tui.dist_cli import distribution_from_args
    from grok_tui.engine.core.device import resolve_device

    plan_run = distribution_from_args(args)
    if plan_run is None:
        device = resolve_device(args.device)
    else:
        device = plan_run.device_for_create(args.device, args.group_size)
    try:
        return sweep_with(args, runs_root, device, plan_run)
    finally:
        if plan_run is not None:
            plan_run.close()


def sweep_with(args: argparse.Namespace, runs_root: Path, device: str, plan_run: Any) -> int:
    from grok_tui.engine.lab.sweep import Sweep, default_sweep_path

    if args.resume is not None:
        given = [n for n in (*LIST_OPTIONS, "seeds", "preset", "disk_budget", "group_size")
                 if getattr(args, n) is not None]  # fmt: skip
        if given or args.file or args.sweep_dir or args.checkpoint_every is not None:
            raise ConfigError(
                "--resume DIR continues a sweep as it was made: drop the grid options"
            )
        sweep = Sweep.open(args.resume)
    else:
        spec = spec_from_args(args)
        members = spec.members()
        plan = spec.plan()
        say(plan.describe(len(members)))
        if args.dry_run:
            for m in members:
                say(f"  {m.name}")
            return 0
        if args.shard is not None:  # every shard runs this: the first makes it, the rest join
            sweep = Sweep.create_or_join(args.sweep_dir, spec, device)
        else:
            where = args.sweep_dir or default_sweep_path(runs_root, spec)
            sweep = Sweep.create(where, spec, device)
        meta = sweep.meta()
        say(f"{len(meta.groups)} batched group(s) on {device} -> {sweep.path}")
    if plan_run is not None:
        return plan_run.run(sweep, device)
    if args.headless:
        from grok_tui.headless_sweep import train_sweep_headless

        return train_sweep_headless(sweep, device)
    from grok_tui.ui.app import launch, make_sweep_app

    return launch(make_sweep_app(sweep, device, train=True))


def open_sweep(path: Path, device: str, resume: bool, headless: bool) -> int:
    """`grok-tui open SWEEPDIR`: the sweep screen, following it live; --resume trains it."""
    from grok_tui.engine.lab.sweep import Sweep

    sweep = Sweep.open(path)
    if headless:
        from grok_tui.headless_sweep import train_sweep_headless

        return train_sweep_headless(sweep, device)
    from grok_tui.ui.app import launch, make_sweep_app

    return launch(make_sweep_app(sweep, device, train=resume))


def add_compare_parser(sub: Any) -> None:
    compare = sub.add_parser(
        "compare",
        help="overlay the curves of several runs (or sweep members), aligned by epoch or grok",
    )
    compare.add_argument("runs", nargs="+", type=Path, help="run directories (two or more)")
    compare.add_argument("--device", default="auto", help="for the progress measures")


def cmd_compare(args: argparse.Namespace) -> int:
    from grok_tui.engine.core.device import resolve_device
    from grok_tui.engine.store.runs import Run

    if len(args.runs) < 2:
        raise ConfigError("compare needs two or more runs")
    runs = [Run.open(p) for p in args.runs]
    from grok_tui.ui.app import launch, make_compare_app

    return launch(make_compare_app(runs, resolve_device(args.device)))


def say(text: str) -> None:
    print(f"grok-tui: {text}", file=sys.stderr)
