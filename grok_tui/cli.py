"""`grok-tui`: parse the command line, turn every user error into one line and exit code 2."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from grok_tui.engine.config import PRESETS, ConfigError, RunConfig, preset
from grok_tui.engine.device import DeviceError, resolve_device
from grok_tui.engine.model import WeightsError
from grok_tui.engine.runs import Run, RunError

USER_ERRORS = (ConfigError, DeviceError, RunError, WeightsError)
DEFAULT_RUNS_DIR = Path("runs")


class UsageError(Exception):
    """Bad command-line input."""


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def add_config_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run configuration (defaults: the preset's)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    g.add_argument("--p", type=int, help="the modulus, a prime (paper: 113)")
    g.add_argument("--frac-train", type=float, help="share of pairs to train on (paper: 0.3)")
    g.add_argument("--lr", type=float, help="AdamW learning rate (paper: 1e-3)")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (paper: 1.0)")
    g.add_argument("--epochs", type=int, help="full-batch steps (paper: 50000)")
    g.add_argument("--checkpoint-every", type=int, help="epochs between checkpoints (paper: 100)")
    g.add_argument("--seed", type=int, help="model initialisation seed (paper: 0)")
    g.add_argument("--data-seed", type=int, help="train/test split seed (paper: 0)")


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda[:N], mps")


def build_parser() -> Parser:
    parser = Parser(
        prog="grok-tui",
        description="Train and take apart the grokking transformer of Nanda et al. 2023.",
    )
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    train = sub.add_parser("train", help="train a new run (in the app, or --headless)")
    train.add_argument("--run-dir", type=Path, help="where the run lives (default: runs/NAME)")
    train.add_argument("--headless", action="store_true", help="no UI: a progress bar")
    train.add_argument(
        "--no-measures",
        action="store_true",
        help="with --headless: do not record progress measures as checkpoints are written",
    )
    add_config_options(train)
    add_device_option(train)

    open_ = sub.add_parser(
        "open", help="open a run: view it, follow it live, resume it; or import a .pth / hf: file"
    )
    open_.add_argument("run", help="a run directory, a full_run_data.pth file, or hf:OWNER/REPO")
    open_.add_argument("--resume", action="store_true", help="continue training if unfinished")
    open_.add_argument("--headless", action="store_true", help="with --resume: no UI")
    open_.add_argument("--no-measures", action="store_true", help=argparse.SUPPRESS)
    open_.add_argument(
        "--key-epoch",
        type=int,
        help="progress measures use the key frequencies of this checkpoint (default: as known "
        "at each point of the run)",
    )
    open_.add_argument("--viewer", action="store_true", help=argparse.SUPPRESS)  # never trains
    add_device_option(open_)

    imp = sub.add_parser("import", help="make a run directory from a full_run_data.pth file")
    imp.add_argument("source", help="a .pth file in the paper/ARENA format, or hf:OWNER/REPO")
    imp.add_argument("run", type=Path, help="the new run directory")
    add_device_option(imp)

    exp = sub.add_parser("export", help="write a run as an ARENA .pth file or as CSV")
    exp.add_argument("run", type=Path)
    exp.add_argument("--format", choices=("arena", "csv"), required=True)
    exp.add_argument("out", type=Path, help="the file to write")

    ana = sub.add_parser("analyze", help="key frequencies, clusters, progress measures, phases")
    ana.add_argument("run", type=Path)
    ana.add_argument("--epoch", type=int, help="the checkpoint (default: the newest)")
    ana.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ana.add_argument(
        "--key-epoch",
        type=int,
        help="take the key frequencies from this checkpoint (the paper used 40000 of 50000); "
        "default: as known at the newest checkpoint",
    )
    add_device_option(ana)

    serve = sub.add_parser("serve", help="serve the viewer of a run in a browser (textual-serve)")
    serve.add_argument("run", type=Path)
    serve.add_argument("--host", default="localhost")
    serve.add_argument("--port", type=int, default=8000)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base = preset(args.preset)
    changes = {
        field: getattr(args, field)
        for field in (
            "p",
            "frac_train",
            "lr",
            "weight_decay",
            "epochs",
            "checkpoint_every",
            "seed",
            "data_seed",
        )
        if getattr(args, field) is not None
    }
    return base.replace(**changes).validated()


def new_run_path(cfg: RunConfig) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = DEFAULT_RUNS_DIR / f"{cfg.preset}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = DEFAULT_RUNS_DIR / f"{cfg.preset}-{stamp}-{n}"
    return path


def cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    device = resolve_device(args.device)
    run = Run.create(args.run_dir or new_run_path(cfg), cfg, device)
    if args.headless:
        return train_headless_locked(run, device, measures=not args.no_measures)
    return run_app(run, train=True, device=device)


def cmd_open(args: argparse.Namespace) -> int:
    if args.headless and not args.resume:
        raise UsageError("open --headless needs --resume (there is nothing to show)")
    if args.viewer and args.resume:
        raise UsageError("--viewer never trains: drop --resume")
    device = resolve_device(args.device)
    run = open_or_import(args.run, device)
    if args.resume:
        run.ensure_resumable()
    if args.headless:
        return train_headless_locked(run, device, measures=not args.no_measures)
    if args.key_epoch is not None and args.key_epoch not in run.checkpoint_epochs():
        raise RunError(f"--key-epoch {args.key_epoch}: no checkpoint at that epoch in {run.path}")
    return run_app(
        run, train=args.resume, device=device, viewer=args.viewer, key_epoch=args.key_epoch
    )


def open_or_import(target: str, device: str) -> Run:
    """A run directory as it is; a .pth file or hf: spec imported once under runs/."""
    from grok_tui.engine.hub import is_hub_spec

    path = Path(target)
    if not is_hub_spec(target) and (path.is_dir() or path.suffix != ".pth"):
        return Run.open(path)
    if is_hub_spec(target):
        name = "arena-" + target.split(":", 1)[1].strip("/").split("/")[-1]
        source = f"arena:{target}"
    else:
        if not path.is_file():
            raise RunError(f"no file at {path}")
        name, source = path.stem, f"arena:{path.name}"
    dest = DEFAULT_RUNS_DIR / name
    if (dest / "run.json").is_file():
        run = Run.open(dest)
        if run.meta().source == source:
            print(f"grok-tui: opening {dest}, imported earlier from {target}", file=sys.stderr)
            return run
        raise RunError(f"{dest} holds another run; import {target} elsewhere with grok-tui import")
    return import_with_progress(target, dest, device)


def import_with_progress(source: str, dest: Path, device: str) -> Run:
    from rich.progress import Progress

    from grok_tui.engine.arena import import_arena_from

    with Progress(transient=True) as bar:
        task = bar.add_task(f"importing {source}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = import_arena_from(source, dest, device=device, on_progress=on_progress)
    n = len(run.checkpoint_epochs())
    print(f"grok-tui: imported {source} -> {dest} ({n} checkpoints)", file=sys.stderr)
    return run


def cmd_import(args: argparse.Namespace) -> int:
    import_with_progress(args.source, args.run, resolve_device(args.device))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from grok_tui.engine.arena import export_arena
    from grok_tui.engine.export import export_csv

    run = Run.open(args.run)
    out = export_arena(run, args.out) if args.format == "arena" else export_csv(run, args.out)
    print(f"grok-tui: wrote {out}", file=sys.stderr)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from grok_tui.engine.report import analysis_report, render_report

    run = Run.open(args.run)
    report = analysis_report(run, args.epoch, resolve_device(args.device), key_epoch=args.key_epoch)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        Console().print(render_report(report))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The viewer in a browser: each page load runs `grok-tui open RUN --viewer`."""
    import shlex

    try:
        from textual_serve.server import Server
    except ImportError:
        raise UsageError("serve needs textual-serve: pip install 'grok-tui[serve]'") from None
    run = Run.open(args.run)
    command = shlex.join([sys.executable, "-m", "grok_tui", "open", str(run.path), "--viewer"])
    Server(command, host=args.host, port=args.port, title=f"grok-tui: {run.name}").serve()
    return 0


def train_headless_locked(run: Run, device: str, measures: bool = True) -> int:
    from grok_tui.headless import train_headless

    notice = run.acquire_lock()
    if notice:
        print(f"grok-tui: {notice}", file=sys.stderr)
    try:
        return train_headless(run, device, measures=measures)
    finally:
        run.release_lock()


def run_app(
    run: Run, train: bool, device: str, viewer: bool = False, key_epoch: int | None = None
) -> int:
    from grok_tui.ui.app import GrokApp

    app = GrokApp(run, train=train, device=device, viewer=viewer, key_epoch=key_epoch)
    try:
        app.run()
    finally:
        # However the UI ended (q, a signal, a dead terminal), the trainer thread saves a
        # checkpoint and releases the lock before the process goes.
        app.control.request_stop()
        app.trainer_done.wait()
    return app.return_code or 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = ["train", *argv]  # bare `grok-tui [options]` trains a new run
        args = parser.parse_args(argv)
        handler = {
            "train": cmd_train,
            "open": cmd_open,
            "import": cmd_import,
            "export": cmd_export,
            "analyze": cmd_analyze,
            "serve": cmd_serve,
        }[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"grok-tui: error: {exc}", file=sys.stderr)
        return 2
    except USER_ERRORS as exc:
        print(f"grok-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `grok-tui analyze --json | head`: the reader left, that's fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
