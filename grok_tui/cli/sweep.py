"""`grok-tui sweep`: a grid of runs trained together, or --resume DIR.

    grok-tui sweep --preset quick --weight-decay 0.3,1,3 --frac-train 0.3,0.5 --seeds 4
    grok-tui sweep grid.toml --headless
    grok-tui sweep --resume runs/sweep-quick-20261201-120000
    grok-tui sweep --resume runs/sweep-quick-20261201-120000 --extend 2000

In order: the whole command line is checked (the grid: cli/grid.py; where it trains:
cli/distribution.py), then the device is resolved (or Ray joined), then the sweep directory
made (or opened), then it trains in the sweep screen, headless, or beyond this process.
"""

from __future__ import annotations

import argparse

from grok_tui.cli.apps import SWEEP_HINT, need_terminal, sweep_app
from grok_tui.cli.distribution import distribution_from_args
from grok_tui.cli.grid import grid_given, spec_from_args
from grok_tui.cli.options import DEFAULT_RUNS_DIR, say
from grok_tui.console.sweep import train_sweep_headless
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.lab.sweep import Sweep, SweepSpec, default_sweep_path
from grok_tui.engine.lab.sweep_status import extend_undecided
from grok_tui.errors import UsageError


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = None if args.resume is not None else spec_from_args(args)
    if spec is None and (grid_given(args) or args.sweep_dir is not None):
        raise UsageError("--resume DIR continues a sweep as it was made: drop the grid options")
    if spec is None and args.dry_run:
        raise UsageError("--dry-run plans a new sweep: drop --resume")
    if args.extend is not None and (spec is not None or args.extend <= 0):
        raise UsageError(
            "--extend N continues a sweep's undecided members: give it with --resume DIR"
            if spec is not None
            else f"--extend must be a number of epochs > 0, got {args.extend}"
        )
    dist = distribution_from_args(args)
    group_size = spec.group_size if spec is not None else None
    if args.dry_run:
        if dist is not None:  # the devices are checked as a real run would, Ray not joined
            dist.place(args.device, group_size, connect_ray=False)
        else:
            resolve_device(args.device)
        return show_plan(spec, members=True)
    device = dist.place(args.device, group_size) if dist else resolve_device(args.device)
    try:
        sweep = Sweep.open(args.resume) if spec is None else None  # its own errors first
        if dist is None and not args.headless:  # then, before a sweep directory is made
            need_terminal(SWEEP_HINT)
        if sweep is None:
            sweep = make_sweep(args, spec, device)
        if args.extend is not None:
            extend(sweep, args.extend)
        if dist is not None:
            return dist.run(sweep, device)
        if args.headless:
            return train_sweep_headless(sweep, device)
        return sweep_app(sweep, device, train=True)
    finally:
        if dist is not None:
            dist.close()


def extend(sweep: Sweep, epochs: int) -> None:
    """Raise the undecided members' budgets by `epochs`, and say which (or that none are)."""
    names = extend_undecided(sweep, epochs)
    if not names:
        say("no undecided member (stopped while its test accuracy still rose): nothing to extend")
    else:
        say(f"extending {len(names)} undecided member(s) by {epochs:,} epochs: {', '.join(names)}")


def show_plan(spec: SweepSpec, members: bool = False) -> int:
    """The members and the checkpoint plan, on stderr."""
    names = [m.name for m in spec.members()]
    say(spec.plan().describe(len(names)))
    for name in names if members else ():
        say(f"  {name}")
    return 0


def make_sweep(args: argparse.Namespace, spec: SweepSpec, device: str) -> Sweep:
    """The new sweep directory (a shard joins the one another shard made with this grid)."""
    show_plan(spec)
    if args.shard is not None:  # every shard runs this: the first makes it, the rest join
        sweep = Sweep.create_or_join(args.sweep_dir, spec, device)
    else:
        sweep = Sweep.create(
            args.sweep_dir or default_sweep_path(DEFAULT_RUNS_DIR, spec), spec, device
        )
    groups = sweep.meta().groups
    if all(len(g) == 1 for g in groups):  # a small model on a CPU: members train alone
        say(f"{len(groups)} group(s) of one member, each its own single run, on {device} "
            f"-> {sweep.path}")  # fmt: skip
    else:
        say(f"{len(groups)} batched group(s) on {device} -> {sweep.path}")
    return sweep
