"""Importing a published run (a .pth file, an hf: spec) with a progress bar on stderr."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from grok_tui.engine.store.arena import import_arena_from
from grok_tui.engine.store.runs import Run


def import_with_bar(source: str, dest: Path, device: str) -> Run:
    """Import `source` into the new run directory `dest`; a transient bar on stderr while it
    reads, when stderr is a terminal (elsewhere a bar leaves only a blank line behind)."""
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"importing {source}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run = import_arena_from(source, dest, device=device, on_progress=on_progress)
    n = len(run.checkpoint_epochs())
    print(f"grok-tui: imported {source} -> {dest} ({n} checkpoints)", file=sys.stderr)
    return run
