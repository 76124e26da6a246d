"""The Textual front ends, as the commands launch them: a run, a sweep, a comparison.

The one module of the command line that imports the UI, and only inside these functions:
a headless command never loads Textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grok_tui.engine.lab.sweep import Sweep
    from grok_tui.engine.store.runs import Run


def run_app(
    run: Run, train: bool, device: str, viewer: bool = False, key_epoch: int | None = None
) -> int:
    """The run's screen until the user quits; the exit code. However the UI ended (q, a
    signal, a dead terminal), every thread is stopped and joined before this returns."""
    from grok_tui.ui.app import launch, make_run_app

    return launch(make_run_app(run, train=train, device=device, viewer=viewer, key_epoch=key_epoch))


def sweep_app(sweep: Sweep, device: str, train: bool) -> int:
    """The sweep screen (training the sweep if `train`) until the user quits; the exit code."""
    from grok_tui.ui.app import launch, make_sweep_app

    return launch(make_sweep_app(sweep, device, train=train))


def compare_app(runs: list[Run], device: str) -> int:
    """The curves of `runs` overlaid until the user quits; the exit code."""
    from grok_tui.ui.app import launch, make_compare_app

    return launch(make_compare_app(runs, device))
