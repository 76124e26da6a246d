"""The grammar of `grok-tui`: every command, its arguments, and the function that runs it.

Only argparse and the options module: the command modules (which load the engine and
torch) are imported by `entry.main` once the command line has parsed, the one it names.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grok_tui.cli.options import (
    Parser,
    add_config_list_options,
    add_config_options,
    add_device_option,
)

# The command -> "module:function" under grok_tui.cli that runs it.
COMMANDS = {
    "train": "train:cmd_train",
    "open": "train:cmd_open",
    "import": "runs:cmd_import",
    "export": "runs:cmd_export",
    "analyze": "runs:cmd_analyze",
    "compare": "runs:cmd_compare",
    "ablate": "ablate:cmd_ablate",
    "sweep": "sweep:cmd_sweep",
    "serve": "serve:cmd_serve",
}


class VersionAction(argparse.Action):
    """--version: the installed package's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("grok-tui")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        print(f"grok-tui {number}")
        parser.exit()


def build_parser() -> Parser:
    parser = Parser(
        prog="grok-tui",
        description="Train and take apart the grokking transformer of Nanda et al. 2023.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_train_parsers(sub)
    add_run_parsers(sub)
    add_ablate_parser(sub)
    add_sweep_parser(sub)
    add_serve_parser(sub)
    return parser


def add_train_parsers(sub: Any) -> None:
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
    open_.add_argument(
        "--extend",
        type=int,
        metavar="N",
        help="with --resume: N more epochs than the run's budget (a run that ended before "
        "grokking goes on from its last checkpoint)",
    )
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


def add_run_parsers(sub: Any) -> None:
    """Commands on finished runs: import, export, analyze, compare."""
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
        "--llc",
        action="store_true",
        help="first estimate the local learning coefficient of every checkpoint up to the "
        "epoch that has none (cached; seconds each)",
    )
    ana.add_argument(
        "--key-epoch",
        type=int,
        help="take the key frequencies from this checkpoint (the paper used 40000 of 50000); "
        "default: as known at the newest checkpoint",
    )
    add_device_option(ana)

    compare = sub.add_parser(
        "compare",
        help="overlay the curves of several runs (or sweep members), aligned by epoch or grok",
    )
    compare.add_argument("runs", nargs="+", type=Path, help="run directories (two or more)")
    add_device_option(compare)


def add_ablate_parser(sub: Any) -> None:
    """`ablate`: lists stay strings here; cli/ablate.py parses them into one-line errors."""
    abl = sub.add_parser(
        "ablate", help="train/test loss and accuracy with heads, neurons or frequencies removed"
    )
    abl.add_argument("run", type=Path)
    abl.add_argument("--epoch", default=None, help="a checkpoint (default: the newest), or all")
    abl.add_argument("--heads", metavar="LIST", help="heads whose output is ablated, e.g. 0,2")
    abl.add_argument("--neurons", metavar="LIST", help="MLP neurons ablated (post-ReLU)")
    abl.add_argument(
        "--clusters", metavar="LIST", help="neuron clusters ablated, by frequency (-1: unclustered)"
    )
    abl.add_argument("--freqs", metavar="LIST", help="frequencies removed from the logits")
    abl.add_argument(
        "--keep-freqs",
        metavar="LIST",
        help="keep only these frequencies of the logits (and their mean)",
    )
    abl.add_argument(
        "--mode",
        choices=("zero", "mean"),
        default="zero",
        help="heads and neurons: zeroed or replaced by their mean over inputs",
    )
    abl.add_argument("--json", action="store_true", help="JSON on stdout (a list for --epoch all)")
    add_device_option(abl)


def add_sweep_parser(sub: Any) -> None:
    """`grok-tui sweep`: a grid from list-valued options or a TOML file (cli/grid.py), or
    --resume DIR; where it trains (cli/distribution.py)."""
    sweep = sub.add_parser(
        "sweep",
        help="train a grid of runs together as one batched model (a sweep directory)",
        description="List-valued options (0.3,1,3) are the grid's axes; every combination "
        "is a member run. Members of one p train together as one batched model.",
    )
    sweep.add_argument("file", nargs="?", type=Path, help="a TOML sweep file (optional)")
    sweep.add_argument("--resume", type=Path, metavar="DIR", help="continue a killed sweep")
    sweep.add_argument(
        "--extend",
        type=int,
        metavar="N",
        help="with --resume: train the undecided members (stopped while still improving) "
        "N more epochs",
    )
    sweep.add_argument("--sweep-dir", type=Path, help="where the sweep lives (default: runs/)")
    sweep.add_argument("--headless", action="store_true", help="no UI: a live table")
    sweep.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    g = add_config_list_options(sweep)
    g.add_argument("--seeds", type=int, metavar="N", help="initialisation seeds 0..N-1 (an axis)")
    g.add_argument("--disk-budget", help="disk for all members' files (default 2GB)")
    g.add_argument("--group-size", type=int, help="most members per batched model (default: auto)")
    g.add_argument(
        "--chunk-size",
        type=int,
        metavar="N",
        help="members per forward/backward pass (default 0: from the model's size, and on a "
        "CPU one chunk per core at once; 1: one member at a time, each bit for bit its "
        "single run)",
    )
    add_device_option(sweep)
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


def add_serve_parser(sub: Any) -> None:
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
