"""`grok-tui train` and `grok-tui open`: a new run, or an existing one (a run directory, a
.pth or hf: file imported once, a sweep directory), in the app or headless."""

from __future__ import annotations

import argparse
from pathlib import Path

from grok_tui.cli.apps import RUN_HINT, SWEEP_HINT, need_terminal, run_app, sweep_app
from grok_tui.cli.options import DEFAULT_RUNS_DIR, config_from_args, say
from grok_tui.console.importing import import_with_bar
from grok_tui.console.sweep import train_sweep_headless
from grok_tui.console.training import train_headless
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.hub import is_hub_spec
from grok_tui.engine.store.naming import stamped_path
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.writer import RunWriter
from grok_tui.errors import UsageError


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    device = resolve_device(args.device)
    if not args.headless:  # before the run directory is made
        need_terminal(RUN_HINT)
    run = Run.create(args.run_dir or new_run_path(cfg), cfg, device)
    if args.headless:
        return train_headless_locked(run, device, measures=not args.no_measures)
    return run_app(run, train=True, device=device)


def cmd_open(args: argparse.Namespace) -> int:
    if args.headless and not args.resume:
        raise UsageError("open --headless needs --resume (there is nothing to show)")
    if args.viewer and args.resume:
        raise UsageError("--viewer never trains: drop --resume")
    if args.extend is not None and not args.resume:
        raise UsageError("--extend N raises the budget of a run to train on: add --resume")
    if args.extend is not None and args.extend <= 0:
        raise UsageError(f"--extend must be a number of epochs > 0, got {args.extend}")
    device = resolve_device(args.device)
    if Sweep.is_sweep(args.run):  # a sweep directory: the sweep screen
        if args.extend is not None:
            raise UsageError("a sweep's members are extended with: grok-tui sweep --resume DIR "
                             "--extend N")  # fmt: skip
        if not args.headless:
            need_terminal(SWEEP_HINT)
        return open_sweep(Path(args.run), device, args.resume, args.headless)
    if not args.headless and imports(args.run):  # the terminal before the import
        need_terminal(RUN_HINT)
    run = open_or_import(args.run, device)
    run.read_only = args.viewer and not args.allow_writes
    if args.resume:
        run.ensure_resumable()
        run.check_trainable()  # these two before --extend changes run.json
        RunWriter(run).check_resume()
        if args.extend is not None:
            run.check_extend(args.extend)
    if args.key_epoch is not None and args.key_epoch not in run.checkpoint_epochs():
        raise UsageError(f"--key-epoch {args.key_epoch}: no checkpoint at that epoch in {run.path}")
    if not args.headless:
        need_terminal(RUN_HINT)
    if args.extend is not None:  # the last check passed: only now is run.json changed
        meta = run.extend(args.extend)
        say(f"{run.path}: {meta.message}")
    if args.headless:
        return train_headless_locked(run, device, measures=not args.no_measures)
    return run_app(
        run, train=args.resume, device=device, viewer=args.viewer, key_epoch=args.key_epoch
    )


def new_run_path(cfg: RunConfig) -> Path:
    """runs/PRESET[-OP][-grokfast-MODE][-stablemax][-orthograd]-STAMP."""
    name = cfg.preset
    if cfg.op != "add":
        name += f"-{cfg.op}"
    if cfg.grokfast != "off":
        name += f"-grokfast-{cfg.grokfast}"
    if cfg.loss != "cross-entropy":
        name += f"-{cfg.loss}"
    if cfg.orthogonal_grad:
        name += "-orthograd"
    return stamped_path(DEFAULT_RUNS_DIR, name)


def imports(target: str) -> bool:
    """Whether `open_or_import` reads `target` as a file to import (not a run directory)."""
    path = Path(target)
    return is_hub_spec(target) or (not path.is_dir() and path.suffix == ".pth")


def open_or_import(target: str, device: str) -> Run:
    """A run directory as it is; a .pth file or hf: spec imported once under runs/."""
    path = Path(target)
    if not imports(target):
        return Run.open(path)
    if is_hub_spec(target):
        name = "arena-" + import_dir_name(target.split(":", 1)[1].strip("/").split("/")[-1])
        source = f"arena:{target}"
    else:
        if not path.is_file():
            raise RunError(f"no file at {path}")
        name, source = import_dir_name(path.stem), f"arena:{path.name}"
    dest = DEFAULT_RUNS_DIR / name
    if (dest / "run.json").is_file():
        run = Run.open(dest)
        if run.meta().source == source:
            say(f"opening {dest}, imported earlier from {target}")
            return run
        raise RunError(f"{dest} holds another run; import {target} elsewhere with grok-tui import")
    return import_with_bar(target, dest, device)


def import_dir_name(stem: str) -> str:
    """A directory name under runs/ for an imported file: letters, digits, '-', '_' and
    inner dots only, so `..pth` (stem '.') or a stem of dots never names runs/ itself or
    its parent."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip(".")
    return cleaned[:64] or "imported"


def train_headless_locked(run: Run, device: str, measures: bool = True) -> int:
    """Train under the run's lock (a stale one is taken over, and said so)."""
    notice = run.acquire_lock()
    if notice:
        say(notice)
    try:
        return train_headless(run, device, measures=measures)
    finally:
        run.release_lock()


def open_sweep(path: Path, device: str, resume: bool, headless: bool) -> int:
    """`grok-tui open SWEEPDIR`: the sweep screen, following it live; --resume trains it."""
    sweep = Sweep.open(path)
    if headless:
        return train_sweep_headless(sweep, device)
    return sweep_app(sweep, device, train=resume)
