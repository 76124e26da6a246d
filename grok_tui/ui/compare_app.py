"""`grok-tui compare RUN RUN ...`: several runs' curves overlaid, aligned by epoch or grok.

Top: train (dim) and test (bright) loss of each run, a colour per run. Bottom: a progress
measure or an accuracy (`m` cycles), from each run's measures cache, filled in by a
background thread. `a` aligns the x axis by each run's grok epoch (first test accuracy >=
99%) instead of the epoch. The legend names each run by the config fields in which the
runs differ. Runs another process trains are followed live.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from grok_tui.engine.core.threads import ANALYSIS_NICENESS, lower_this_thread
from grok_tui.engine.measures.compare import ComparedRun, load_runs, measure_runs
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.runs import Run
from grok_tui.ui.palette import PaletteGuard
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, Series, hex_color, sampled_series

BACK = -1  # the app's result when escape asked to go back to the sweep screen
# name -> (title, log y, source, column): source "metrics" (every epoch) or "measures".
VIEWS: dict[str, tuple[str, bool, str, str]] = {
    "test_acc": ("test accuracy", False, "metrics", "test_acc"),
    "train_acc": ("train accuracy", False, "metrics", "train_acc"),
    "restricted": ("restricted loss", True, "measures", "restricted_loss"),
    "excluded": ("excluded loss", True, "measures", "excluded_loss"),
    "gini_W_E": ("Gini of W_E's Fourier norms", False, "measures", "gini_W_E"),
    "gini_W_L": ("Gini of W_L's Fourier norms", False, "measures", "gini_W_L"),
    "weights": ("sum of squared weights", False, "measures", "sum_sq_weights"),
}


def dim(rgb: tuple[int, int, int], factor: float = 0.55) -> tuple[int, int, int]:
    return (int(rgb[0] * factor), int(rgb[1] * factor), int(rgb[2] * factor))


class CompareApp(PaletteGuard, App[int]):  # PaletteGuard: see ui/palette.py
    TITLE = "grok-tui compare"
    CSS = """
    Screen { layout: vertical; }
    #compare-status { height: 1; background: $panel; padding: 0 1; }
    Plot { height: 1fr; min-height: 6; }
    #compare-legend { height: auto; max-height: 8; padding: 0 1; }
    """
    BINDINGS = [
        Binding("a", "toggle_align", "Align epoch/grok"),
        Binding("m", "view(1)", "Measure"),
        Binding("M", "view(-1)", "Previous measure", show=False),
        Binding("l", "toggle_log", "Log y"),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, runs: list[Run], device: str = "cpu", back: bool = False) -> None:
        super().__init__()
        self.runs = runs
        self.device = device
        self.back = back
        self.align = "epoch"
        self.view = "restricted"
        self.log_y = True
        self.compared: list[ComparedRun] = []
        self._readers: list[MetricsReader] = []
        self.tables: dict[int, Any] = {}  # run index -> ProgressTable
        self.measuring = ""  # what the measures thread does now
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status")
        yield Plot(id="loss-plot")
        yield Plot(id="view-plot")
        yield Static("", id="compare-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.compared = load_runs(self.runs)
        self._readers = []
        for run in self.runs:
            reader = MetricsReader(run)
            reader.read_new()  # load_runs read what is there; follow from here
            self._readers.append(reader)
        self.set_interval(1.0, self.poll)
        self.start_measuring()
        self.redraw()

    def on_unmount(self) -> None:
        self._stop.set()

    # -- data --------------------------------------------------------------------------------
    def poll(self) -> None:
        changed = False
        for c, reader in zip(self.compared, self._readers, strict=True):
            rows, reset = reader.poll()
            if reset:
                c.history.clear()
                rows = c.run.read_metrics()
            if rows:
                c.history.extend(rows)
                changed = True
        if changed:
            self.redraw()

    @work(thread=True, exclusive=True, group="measures", exit_on_error=False)
    def start_measuring(self) -> None:
        """Progress measures of every run (the engine's, from each run's cache if it has them)."""
        lower_this_thread(ANALYSIS_NICENESS)

        def on_table(i: int, table: Any, error: str) -> None:
            if error:
                self.call_from_thread(self.notify, error, severity="warning")
            else:
                self.tables[i] = table
            self.call_from_thread(self.redraw)

        def on_start(i: int) -> None:
            self.measuring = f"measuring {self.compared[i].name} ({i + 1}/{len(self.compared)})"
            self.call_from_thread(self.redraw)

        measure_runs([c.run for c in self.compared], self.device, self._stop.is_set, on_start,
                     on_table)  # fmt: skip
        self.measuring = ""
        if not self._stop.is_set():
            self.call_from_thread(self.redraw)

    # -- drawing -----------------------------------------------------------------------------
    def series(self, view: str | None) -> tuple[list[Series], list[str]]:
        """The plotted series and the names of runs left out (no grok epoch to align by)."""
        plot = self.query_one("#loss-plot", Plot)
        width = max(plot.size.width, 20)
        out: list[Series] = []
        skipped = []
        for i, c in enumerate(self.compared):
            color = PALETTE[i % len(PALETTE)]
            grok = c.grok_epoch
            if self.align == "grok" and grok is None:
                skipped.append(c.name)
                continue
            shift = 0.0 if self.align == "epoch" else float(grok or 0)
            h = c.history
            if view is None:
                xs = h.epoch - shift
                out.append(sampled_series(f"{c.label} train", xs, h.train_loss, dim(color), width))
                out.append(sampled_series(f"{c.label} test", xs, h.test_loss, color, width))
                continue
            _, _, source, column = VIEWS[view]
            if source == "metrics":
                out.append(sampled_series(c.label, h.epoch - shift, h.column(column), color, width))
            elif i in self.tables and len(self.tables[i]):
                table = self.tables[i]
                xs = table.epochs.astype(np.float64) - shift
                ys = np.asarray(table[column], dtype=np.float64)
                out.append(sampled_series(c.label, xs, ys, color, width))
        return out, skipped

    def redraw(self) -> None:
        if not self.is_mounted or not self.compared:
            return
        x_label = "epoch" if self.align == "epoch" else "epochs from grokking"
        marks = [0.0] if self.align == "grok" else []
        series, skipped = self.series(None)
        log = "log" if self.log_y else "linear"
        self.query_one("#loss-plot", Plot).show(Figure(
            f"loss per epoch, dim: train, bright: test ({log} y)", series, x_label,
            log_y=self.log_y, marks=marks, legend=False,
        ))  # fmt: skip
        title, log_y, source, _ = VIEWS[self.view]
        series, _ = self.series(self.view)
        note = f": {self.measuring or 'no measures'}" if source == "measures" and not series else ""
        log_y = log_y and self.log_y
        self.query_one("#view-plot", Plot).show(Figure(
            f"{title}{note} ({'log' if log_y else 'linear'} y) [m: next]", series, x_label,
            log_y=log_y, marks=marks, legend=False,
        ))  # fmt: skip
        self.query_one("#compare-legend", Static).update(self.legend(skipped))
        status = f"{len(self.compared)} runs, x: {x_label}"
        if self.measuring:
            status += f"  ·  {self.measuring}"
        self.query_one("#compare-status", Static).update(status)

    def legend(self, skipped: list[str]) -> Text:
        text = Text()
        for i, c in enumerate(self.compared):
            color = PALETTE[i % len(PALETTE)]
            grok = c.grok_epoch
            text.append("━━ ", style=hex_color(color))
            text.append(f"{c.label}", style="bold")
            text.append(
                f"  {c.name}  grokked at {grok if grok is not None else '-'}\n", style="dim"
            )
        if skipped:
            text.append(f"not shown (never grokked): {', '.join(skipped)}", style="yellow")
        return text

    # -- actions -----------------------------------------------------------------------------
    def action_toggle_align(self) -> None:
        self.align = "grok" if self.align == "epoch" else "epoch"
        self.redraw()

    def action_view(self, step: int) -> None:
        names = list(VIEWS)
        self.view = names[(names.index(self.view) + step) % len(names)]
        self.redraw()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.redraw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return self.back
        return True

    def action_back(self) -> None:
        self._stop.set()
        self.exit(BACK)

    async def action_quit(self) -> None:
        self._stop.set()
        self.exit(0)
