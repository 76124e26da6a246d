"""The Textual front ends, as the commands launch them: a run, a sweep, a comparison.

The one module of the command line that imports the UI, and only inside these functions:
a headless command never loads Textual.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from grok_tui.errors import UsageError

if TYPE_CHECKING:
    from grok_tui.engine.lab.sweep import Sweep
    from grok_tui.engine.store.runs import Run


RUN_HINT = " (--headless trains without one; `grok-tui analyze RUN` reads a run)"
SWEEP_HINT = " (--headless trains a sweep without one)"


def need_terminal(hint: str = "") -> None:
    """A UsageError unless stdin and stderr are a terminal (the app reads its keys from
    stdin, and would wait on a pipe for keys that never come; Textual draws on stderr, so
    `open RUN > log` is fine) or the app is a served session (`serve`: the browser is its
    screen, Textual's driver set by the environment)."""
    if os.environ.get("TEXTUAL_DRIVER"):
        return
    err = sys.__stderr__
    if not (sys.stdin.isatty() and err is not None and err.isatty()):
        raise UsageError(f"the app needs a terminal, and stdin or stderr is not one{hint}")


def run_app(
    run: Run, train: bool, device: str, viewer: bool = False, key_epoch: int | None = None
) -> int:
    """The run's screen until the user quits; the exit code. However the UI ended (q, a
    signal, a dead terminal), every thread is stopped and joined before this returns."""
    need_terminal(RUN_HINT)
    from grok_tui.ui.app import launch, make_run_app

    return launch(make_run_app(run, train=train, device=device, viewer=viewer, key_epoch=key_epoch))


def sweep_app(sweep: Sweep, device: str, train: bool) -> int:
    """The sweep screen (training the sweep if `train`) until the user quits; the exit code."""
    need_terminal(SWEEP_HINT)
    from grok_tui.ui.app import launch, make_sweep_app

    return launch(make_sweep_app(sweep, device, train=train))


def compare_app(runs: list[Run], device: str) -> int:
    """The curves of `runs` overlaid until the user quits; the exit code."""
    need_terminal()
    from grok_tui.ui.app import launch, make_compare_app

    return launch(make_compare_app(runs, device))
