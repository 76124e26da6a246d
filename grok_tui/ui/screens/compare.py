"""`grok-tui compare RUN RUN ...`: several runs' curves overlaid, aligned by epoch or grok.

Top: train (dim) and test (bright) loss of each run, a colour per run. Bottom: a progress
measure or an accuracy (`m` cycles), from each run's measures cache, filled in by a
background thread. `a` aligns the x axis by each run's grok epoch (first test accuracy >=
99%) instead of the epoch. The legend names each run by the config fields in which the
runs differ. Runs another process trains are followed live. The runs, their histories and
the measures thread are the screen's `CompareSession`; opened over the sweep screen (`c`
on marked members), escape goes back to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from grok_tui.engine.measures.compare import ComparedRun
from grok_tui.ui.messages import ComparisonChanged
from grok_tui.ui.screens import being_removed
from grok_tui.ui.sessions.compare import CompareSession
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, Series, hex_color, sampled_series

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


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("a", "toggle_align", "Align epoch/grok"),
        Binding("m", "view(1)", "Measure"),
        Binding("M", "view(-1)", "Previous measure", show=False),
        Binding("l", "toggle_log", "Log y"),
        Binding("s", "app.save_svg", "Screenshot", show=False),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, session: CompareSession) -> None:
        super().__init__()
        self.session = session
        self.align = "epoch"
        self.view = "restricted"
        self.log_y = True

    @property
    def compared(self) -> list[ComparedRun]:
        return self.session.compared

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status")
        yield Plot(id="loss-plot")
        yield Plot(id="view-plot")
        yield Static("", id="compare-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.session.start(self.post_message)
        self.set_interval(1.0, self.poll)
        self.redraw()

    def on_screen_resume(self) -> None:
        self.app.title = "grok-tui compare"

    def on_unmount(self) -> None:
        self.session.stop()  # the app joins its thread before the process ends

    def screenshot_target(self) -> tuple[Path | None, str]:
        """`s` saves beside the runs compared (their common directory: a sweep's members)."""
        runs = self.session.runs
        if any(r.read_only for r in runs):
            return None, "compare"
        return Path(os.path.commonpath([str(r.path.parent) for r in runs])), "compare"

    def poll(self) -> None:
        if not being_removed(self) and self.session.poll():
            self.redraw()

    def on_comparison_changed(self, message: ComparisonChanged) -> None:
        if being_removed(self):
            return
        if message.error:
            self.notify(message.error, severity="warning")
        self.redraw()

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
            elif i in self.session.tables and len(self.session.tables[i]):
                table = self.session.tables[i]
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
        measuring = self.session.measuring or "no measures"
        note = f": {measuring}" if source == "measures" and not series else ""
        log_y = log_y and self.log_y
        self.query_one("#view-plot", Plot).show(Figure(
            f"{title}{note} ({'log' if log_y else 'linear'} y) [m: next]", series, x_label,
            log_y=log_y, marks=marks, legend=False,
        ))  # fmt: skip
        self.query_one("#compare-legend", Static).update(self.legend(skipped))
        status = f"{len(self.compared)} runs, x: {x_label}"
        if self.session.measuring:
            status += f"  ·  {self.session.measuring}"
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
        if action == "back":  # over the sweep screen
            return self.app.screen_stack[0] is not self
        return True

    def action_back(self) -> None:
        self.dismiss()
