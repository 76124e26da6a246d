"""The Textual front ends, as the commands launch them: a run, a sweep, a comparison.

The one module of the command line that imports the UI, and only inside these functions:
a headless command never loads Textual.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grok_tui.engine.lab.sweep import Sweep
    from grok_tui.engine.store.runs import Run


def run_app(
    run: Run, train: bool, device: str, viewer: bool = False, key_epoch: int | None = None
) -> int:
    """The run's screen until the user quits; the exit code."""
    from grok_tui.ui.app import GrokApp

    app = GrokApp(run, train=train, device=device, viewer=viewer, key_epoch=key_epoch)
    try:
        app.run()
    finally:
        # However the UI ended (q, a signal, a dead terminal), the trainer thread saves a
        # checkpoint and releases the lock, and every thread is joined, before the
        # process goes.
        app.stop_threads()
    if app.trainer_failure:  # the screen is gone: say it once more where it stays
        print(f"grok-tui: error: {app.trainer_failure}", file=sys.stderr)
        return 1
    return app.return_code or 0


def sweep_app(sweep: Sweep, device: str, train: bool) -> int:
    """The sweep screen (training the sweep if `train`) until the user quits; the exit code."""
    from grok_tui.ui.sweep_app import run_sweep_ui

    return run_sweep_ui(sweep, device, train=train)


def compare_app(runs: list[Run], device: str) -> int:
    """The curves of `runs` overlaid until the user quits."""
    from grok_tui.ui.compare_app import CompareApp

    CompareApp(runs, device).run()
    return 0
