"""`grok-tui`: parse the command line, turn every user error into one line and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from grok_tui.engine.core.config import (
    GROKFAST_MA_LAMB,
    GROKFAST_MODES,
    OPS,
    PRESETS,
    RunConfig,
    preset,
)
from grok_tui.sweep_cli import (
    add_compare_parser,
    add_sweep_parser,
    cmd_compare,
    cmd_sweep,
    open_sweep,
)

if TYPE_CHECKING:
    from grok_tui.engine.store.runs import Run

# The user errors of modules that import torch, by module: `--help` must not import them
# (torch alone takes a second), so an error is matched only against modules already loaded.
USER_ERRORS = {
    "grok_tui.engine.core.config": "ConfigError",
    "grok_tui.engine.core.device": "DeviceError",
    "grok_tui.engine.store.runs": "RunError",
    "grok_tui.engine.core.model": "WeightsError",
}
DEFAULT_RUNS_DIR = Path("runs")


def is_user_error(exc: BaseException) -> bool:
    """True for the engine's one-line user errors (bad config, device, run, weights)."""
    for module, name in USER_ERRORS.items():
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return True
    return False


def resolve_device(name: str) -> str:
    from grok_tui.engine.core.device import resolve_device as resolve

    return resolve(name)


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
    g.add_argument("--op", choices=OPS, help="the operation mod p (default add; divide: y != 0)")
    gf = p.add_argument_group("Grokfast (Lee et al. 2024): a low-pass gradient filter")
    gf.add_argument("--grokfast", choices=GROKFAST_MODES, help="the filter (default off)")
    gf.add_argument("--grokfast-alpha", type=float, help="EMA momentum (default 0.98)")
    gf.add_argument(
        "--grokfast-lamb", type=float, help="amplification (default 2.0 for ema, 5.0 for ma)"
    )
    gf.add_argument("--grokfast-window", type=int, help="MA window in steps (default 100)")


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
    # A viewer opens the run read-only unless serve was given --allow-writes.
    open_.add_argument("--allow-writes", action="store_true", help=argparse.SUPPRESS)
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

    add_sweep_parser(sub)
    add_compare_parser(sub)

    serve = sub.add_parser("serve", help="serve the viewer of a run in a browser (textual-serve)")
    serve.add_argument("run", type=Path)
    serve.add_argument("--host", default="localhost", help="address to serve on (loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-sessions", type=int, default=4, help="browser sessions at once (each a process)"
    )
    serve.add_argument(
        "--allow-writes",
        action="store_true",
        help="let viewers write into the run directory (measures cache, screenshots)",
    )
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
            "op",
            "grokfast",
            "grokfast_alpha",
            "grokfast_lamb",
            "grokfast_window",
        )
        if getattr(args, field, None) is not None
    }
    if changes.get("grokfast") == "ma" and "grokfast_lamb" not in changes:
        changes["grokfast_lamb"] = GROKFAST_MA_LAMB  # the paper's MA default
    return base.replace(**changes).validated()


def new_run_path(cfg: RunConfig) -> Path:
    from grok_tui.engine.store.runs import stamped_path

    name = cfg.preset
    if cfg.op != "add":
        name += f"-{cfg.op}"
    if cfg.grokfast != "off":
        name += f"-grokfast-{cfg.grokfast}"
    return stamped_path(DEFAULT_RUNS_DIR, name)


def cmd_train(args: argparse.Namespace) -> int:
    from grok_tui.engine.store.runs import Run

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
    if (Path(args.run) / "sweep.json").is_file():  # a sweep directory: the sweep screen
        return open_sweep(Path(args.run), device, args.resume, args.headless)
    run = open_or_import(args.run, device)
    run.read_only = args.viewer and not args.allow_writes
    if args.resume:
        run.ensure_resumable()
    if args.headless:
        return train_headless_locked(run, device, measures=not args.no_measures)
    if args.key_epoch is not None and args.key_epoch not in run.checkpoint_epochs():
        raise UsageError(f"--key-epoch {args.key_epoch}: no checkpoint at that epoch in {run.path}")
    return run_app(
        run, train=args.resume, device=device, viewer=args.viewer, key_epoch=args.key_epoch
    )


def open_or_import(target: str, device: str) -> Run:
    """A run directory as it is; a .pth file or hf: spec imported once under runs/."""
    from grok_tui.engine.store.hub import is_hub_spec
    from grok_tui.engine.store.runs import Run, RunError

    path = Path(target)
    if not is_hub_spec(target) and (path.is_dir() or path.suffix != ".pth"):
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
            print(f"grok-tui: opening {dest}, imported earlier from {target}", file=sys.stderr)
            return run
        raise RunError(f"{dest} holds another run; import {target} elsewhere with grok-tui import")
    return import_with_progress(target, dest, device)


def import_dir_name(stem: str) -> str:
    """A directory name under runs/ for an imported file: letters, digits, '-', '_' and
    inner dots only, so `..pth` (stem '.') or a stem of dots never names runs/ itself or
    its parent."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip(".")
    return cleaned[:64] or "imported"


def import_with_progress(source: str, dest: Path, device: str) -> Run:
    from rich.progress import Progress

    from grok_tui.engine.store.arena import import_arena_from

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
    from grok_tui.engine.measures.export import export_csv
    from grok_tui.engine.store.arena import export_arena
    from grok_tui.engine.store.runs import Run

    run = Run.open(args.run)
    out = export_arena(run, args.out) if args.format == "arena" else export_csv(run, args.out)
    print(f"grok-tui: wrote {out}", file=sys.stderr)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from grok_tui.engine.measures.report import analysis_report, render_report
    from grok_tui.engine.store.runs import Run

    run = Run.open(args.run)
    report = analysis_report(run, args.epoch, resolve_device(args.device), key_epoch=args.key_epoch)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        Console().print(render_report(report))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The viewer in a browser: each session runs `grok-tui open RUN --viewer` (serve.py)."""
    try:
        from grok_tui.serve import serve_viewer
    except ImportError:
        raise UsageError("serve needs textual-serve: pip install 'grok-tui[serve]'") from None
    if not 1 <= args.max_sessions <= 64:
        raise UsageError(f"--max-sessions must be in 1..64, got {args.max_sessions}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {args.port}")
    from grok_tui.engine.store.runs import Run

    run = Run.open(args.run)
    serve_viewer(run.path, run.name, args.host, args.port, args.max_sessions, args.allow_writes)
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
    from grok_tui.ui.app import launch, make_run_app

    return launch(make_run_app(run, train=train, device=device, viewer=viewer, key_epoch=key_epoch))


def show_run_warnings() -> None:
    """A RunWarning (a damaged line skipped, a file kept) is one line on stderr."""
    import warnings

    from grok_tui.engine.store.untrusted import RunWarning

    original = warnings.showwarning
    if getattr(original, "grok_tui", False):
        return

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, RunWarning):
            print(f"grok-tui: warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    show.grok_tui = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def passive_openmp_threads() -> None:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions (unless the
    user chose a policy). Spinning threads on a machine whose cores are shared (a GPU
    server's CPUs, a laptop running anything else) wait for a descheduled partner at every
    barrier: measured here, 2 threads trained the paper preset at 1.2 epochs/s with the
    default policy and ~25 epochs/s with PASSIVE while another process used one core. Must
    run before torch is imported (the CLI imports it lazily)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passive_openmp_threads()
    show_run_warnings()
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
            "sweep": lambda a: cmd_sweep(a, DEFAULT_RUNS_DIR),
            "compare": cmd_compare,
        }[args.command]
        return handler(args)
    except UsageError as exc:
        print(f"grok-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `grok-tui analyze --json | head`: the reader left, that's fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"grok-tui: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
