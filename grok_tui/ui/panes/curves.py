"""The grokking curve: train and test loss over epochs, log y, with the phases marked; under
it, once there are any, the progress measures per checkpoint (`m` cycles their views).

The loss buffers are plain (the app's MetricsHistory), not reactive: new epochs repaint on a
1 Hz timer (plotext is pure Python, and every millisecond the UI thread holds the GIL is one
the trainer thread waits); keys repaint at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from grok_tui.engine.follow import MetricsHistory
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, Series, hex_color, sampled_series

TRAIN_COLOR = PALETTE[0]
TEST_COLOR = PALETTE[1]
PRIMARY = ("train", "test")  # drawn last in every plot, so no other series hides them

# name -> (title, log y, [(label, scalar column)]); columns of engine.progress.ProgressTable.
MEASURE_VIEWS: dict[str, tuple[str, bool, list[tuple[str, str]]]] = {
    "losses": (
        "restricted and excluded loss",
        True,
        [
            ("train", "train_loss"),
            ("test", "test_loss"),
            ("restricted", "restricted_loss"),
            ("excluded", "excluded_loss"),
        ],
    ),
    "per-frequency": (
        "excluded loss per key frequency",
        True,
        [("train", "train_loss"), ("test", "test_loss")],
    ),
    "gini": (
        "Gini of Fourier norms (sparsity)",
        False,
        [("W_E", "gini_W_E"), ("W_L", "gini_W_L")],
    ),
    "weights": ("sum of squared weights", False, [("total", "sum_sq_weights")]),
    "trig": (
        "trig fraction (key frequencies)",
        False,
        [("pre", "trig_frac_pre"), ("post", "trig_frac_post"), ("logits", "trig_frac_logits")],
    ),
    "attention": ("average attention from = to x, per head", False, []),
}
PHASE_NAMES = {
    "memorisation_end": "memorisation ends",
    "circuit_formation_end": "circuit formed",
    "cleanup_end": "cleanup ends",
}


def primary_last(series: list[Series]) -> list[Series]:
    """The train and test curves moved to the end: drawn last, on top of the rest."""
    return [s for s in series if s[0] not in PRIMARY] + [s for s in series if s[0] in PRIMARY]


class CurvesPane(Vertical):
    """Loss curves per epoch and progress measures per checkpoint, with the phases marked."""

    DEFAULT_CSS = """
    CurvesPane { height: 1fr; }
    CurvesPane Plot { height: 1fr; min-height: 5; }
    CurvesPane #measures-plot { display: none; }
    CurvesPane.-measures #measures-plot { display: block; }
    CurvesPane #curves-summary { height: auto; max-height: 3; color: $text-muted; }
    """

    def __init__(self, history: MetricsHistory, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.log_y = True
        self.measures: Any = None  # engine.progress.ProgressTable
        self.view = "losses"
        self.phases: dict[str, int | None] = {}
        self.measures_note = ""  # why there are no measures yet, when there is a reason
        self.selected_epoch: int | None = None
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Plot(id="loss-plot")
        yield Plot(id="measures-plot")
        yield Static("", id="curves-summary")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._repaint_if_dirty)

    # -- inputs ------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    def set_measures(self, table: Any) -> None:
        self.measures = table
        self.phases = table.phases() if table is not None and len(table) else {}
        self.set_class(table is not None and len(table) > 0, "-measures")
        self._dirty = True

    def set_selected(self, epoch: int | None) -> None:
        if epoch != self.selected_epoch:
            self.selected_epoch = epoch
            self._dirty = True
            if self.is_mounted:
                self.set_timer(0.1, self._repaint_if_dirty)  # a scrub shows soon, held keys once

    def toggle_log(self) -> None:
        self.log_y = not self.log_y
        self._dirty = True
        self._repaint_if_dirty()

    def cycle_view(self, step: int = 1) -> str:
        names = list(MEASURE_VIEWS)
        self.view = names[(names.index(self.view) + step) % len(names)]
        self._dirty = True
        self._repaint_if_dirty()
        return self.view

    # -- drawing -----------------------------------------------------------------------------
    def _repaint_if_dirty(self) -> None:
        if not self._dirty or not self.is_mounted or not self.display:
            return
        self._dirty = False
        self._draw()

    @property
    def marks(self) -> list[float]:
        return [float(e) for e in self.phases.values() if e is not None]

    def _draw(self) -> None:
        h = self.history
        plot = self.query_one("#loss-plot", Plot)
        width = max(plot.size.width, 20)
        series = [
            sampled_series("train", h.epoch, h.train_loss, TRAIN_COLOR, width),
            sampled_series("test", h.epoch, h.test_loss, TEST_COLOR, width),
        ]
        plot.show(Figure(self._title("loss per epoch", self.log_y), primary_last(series),
                         "epoch", log_y=self.log_y, marks=self.marks,
                         selected=self.selected_epoch))  # fmt: skip
        if self.measures is not None and len(self.measures):
            title, log_y, series = self.measure_series()
            log_y = log_y and self.log_y
            self.query_one("#measures-plot", Plot).show(Figure(
                self._title(title, log_y) + " [m: next view]", series, "epoch", log_y=log_y,
                marks=self.marks, selected=self.selected_epoch,
            ))  # fmt: skip
        self.query_one("#curves-summary", Static).update(self._summary())

    @staticmethod
    def _title(title: str, log_y: bool) -> str:
        return f"{title} ({'log' if log_y else 'linear'} y)"

    def measure_series(self) -> tuple[str, bool, list[Series]]:
        """The current measures view: title, log y, and its series (primary ones last)."""
        table = self.measures
        title, log_y, columns = MEASURE_VIEWS[self.view]
        width = max(self.query_one("#measures-plot", Plot).size.width, 20)
        named = [(label, table[column]) for label, column in columns]
        if self.view == "per-frequency":
            named += [
                (f"k={k}", table.excluded_per_freq[:, j]) for j, k in enumerate(table.key_freqs)
            ]
        elif self.view == "attention":
            named += [
                (f"head {h}", table.avg_attn[:, h, 0]) for h in range(table.avg_attn.shape[1])
            ]
        xs = table.epochs.astype(np.float64)
        series = [
            sampled_series(label, xs, ys, PALETTE[i % len(PALETTE)], width)
            for i, (label, ys) in enumerate(named)
        ]
        return title, log_y, primary_last(series)

    def _summary(self) -> Text:
        h = self.history
        if not len(h):
            return Text("no epochs yet")
        memorised = h.first_epoch_at_least("train_acc", 0.99)
        generalised = h.first_epoch_at_least("test_acc", 0.99)
        text = Text()
        text.append("train ", style=hex_color(TRAIN_COLOR))
        text.append("test ", style=hex_color(TEST_COLOR))
        text.append(f" train acc >= 99% at {memorised if memorised is not None else '-'}")
        text.append(f", test acc >= 99% at {generalised if generalised is not None else '-'}")
        if self.phases:
            parts = [
                f"{PHASE_NAMES.get(k, k)} {v:,}" if v is not None else f"{PHASE_NAMES.get(k, k)} -"
                for k, v in self.phases.items()
            ]
            text.append("\nphases (from the measures): " + ", ".join(parts))
        if self.measures is not None and self.measures.key_freqs:
            text.append(f"   key frequencies: {', '.join(map(str, self.measures.key_freqs))}")
        elif self.measures_note:
            text.append(f"\n{self.measures_note}")
        return text
