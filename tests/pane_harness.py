"""What the pane tests share: a tiny real run's snapshots and apps that hold one pane."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from textual.app import App, ComposeResult
from textual.widgets import Static, TabbedContent, TabPane

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.analysis import Analyzer, Snapshot
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer
from grok_tui.ui.panes.base import AnalysisPane

TINY = RunConfig(
    p=23, frac_train=0.6, lr=3e-3, weight_decay=1.0, epochs=600, checkpoint_every=100, preset="t"
)
EPOCHS = (300, 600)
SIZES = ((80, 24), (200, 60), (20, 8))


@functools.cache
def tiny_snapshots() -> dict[int, Snapshot]:
    """Snapshots of a tiny real run, trained once per test session (seconds on one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: OpenMP threads crawl when the box is busy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = Run.create(Path(tmp) / "run", TINY, "cpu")
            assert Trainer(run, "cpu").train().status == "done"
            analyzer = Analyzer(TINY)
            return {e: analyzer.snapshot(run.load_checkpoint(e), e) for e in EPOCHS}
    finally:
        torch.set_num_threads(threads)


async def curves_series(table: object, view: str, size: tuple[int, int] = (80, 24)) -> list:
    """The series a Curves pane, alone in an app and showing `table`, plots in `view`
    (reached with `m`, as a user would): (label, xs, ys, colour) each."""
    from grok_tui.engine.store.follow import MetricsHistory
    from grok_tui.ui.panes.curves import CurvesPane

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield CurvesPane(MetricsHistory())

    app = One()
    async with app.run_test(size=size) as pilot:
        pane = app.query_one(CurvesPane)
        pane.set_measures(table)
        while pane.view != view:
            pane.cycle_view()
        await pilot.pause()
        return pane.measure_series()[2]


class PaneApp(App[None]):
    """One analysis pane filling the screen, as a tab would hold it."""

    def __init__(self, pane: AnalysisPane, snapshot: Snapshot | None = None) -> None:
        super().__init__()
        self.pane = pane
        self.first = snapshot

    def compose(self) -> ComposeResult:
        yield self.pane

    def on_mount(self) -> None:
        if self.first is not None:
            self.pane.show_snapshot(self.first, "")


class TabsApp(App[None]):
    """The pane in the second tab ("pane"), as the app holds it: it may get its snapshot
    while hidden."""

    def __init__(self, pane: AnalysisPane) -> None:
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="first"):
            with TabPane("First", id="first"):
                yield Static("another pane")
            with TabPane("Pane", id="pane"):
                yield self.pane


def text_of(widget: Static) -> str:
    return str(widget.render())
