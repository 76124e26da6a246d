"""`grok-tui import`, `export`, `analyze` and `compare`: commands on runs that exist."""

from __future__ import annotations

import argparse
import json

from grok_tui.cli.apps import compare_app
from grok_tui.cli.options import say
from grok_tui.console.importing import import_with_bar
from grok_tui.console.report import print_report
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.measures.export import export_csv
from grok_tui.engine.measures.report import analysis_report
from grok_tui.engine.store.arena import export_arena
from grok_tui.engine.store.runs import Run
from grok_tui.errors import UsageError


def cmd_import(args: argparse.Namespace) -> int:
    import_with_bar(args.source, args.run, resolve_device(args.device))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    run = Run.open_to_read(args.run)
    out = export_arena(run, args.out) if args.format == "arena" else export_csv(run, args.out)
    say(f"wrote {out}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    run = Run.open_to_read(args.run)
    if run.read_only:
        say(f"{run.path} cannot be written here: its measures are computed, not cached")
    report = analysis_report(
        run, args.epoch, resolve_device(args.device), key_epoch=args.key_epoch, llc=args.llc,
        say=say,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print_report(report)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise UsageError("compare needs two or more runs")
    runs = [Run.open_to_read(p) for p in args.runs]
    return compare_app(runs, resolve_device(args.device))
