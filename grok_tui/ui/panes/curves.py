"""The grokking curve: train and test loss over epochs, log y, with the phases marked."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from grok_tui.engine.follow import MetricsHistory
from grok_tui.ui.widgets.spectrogram import Spectrogram

TRAIN_COLOR = (80, 160, 255)
TEST_COLOR = (255, 120, 60)
MARK_COLOR = (150, 150, 150)


def sample_indices(n: int, width: int) -> list[int]:
    """About one point per column (the last point always), so 50k epochs draw fast."""
    if n <= 0:
        return []
    budget = max(width, 16)
    if n <= budget:
        return list(range(n))
    step = n / budget
    idx = [int(i * step) for i in range(budget)]
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def sampled_series(
    name: str, xs: np.ndarray, ys: np.ndarray, color: tuple[int, int, int], width: int
) -> Series:
    """The finite points of a column, thinned to the plot's width.

    Thinning after dropping NaN keeps sparse columns (an imported run has a test loss
    every 10th epoch only) drawn as lines rather than as the few samples that hit.
    """
    finite = np.flatnonzero(np.isfinite(ys))
    pick = finite[sample_indices(len(finite), width)]
    return (name, xs[pick].tolist(), ys[pick].tolist(), color)


class SafePlot(PlotextPlot):
    """plotext raises on some inputs (log scale of an empty series, ...): draw a note instead."""

    def render(self) -> RenderResult:
        try:
            return super().render()
        except Exception as exc:  # a plotting library's corner case must not end the app
            return Text(f"(plot unavailable: {type(exc).__name__})", style="dim")


def epoch_ticks(last: int, count: int = 5) -> list[int]:
    """Round epoch numbers for the x axis: 0, then multiples of 1, 2 or 5 times 10^k."""
    if last <= 0:
        return [0]
    raw = last / max(count - 1, 1)
    magnitude = 10 ** max(len(str(int(raw))) - 1, 0)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, last + 1, step))


def decade_ticks(values: list[float]) -> list[float]:
    """Powers of ten spanning the positive values: the ticks of a log axis."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return []
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    step = max(1, (hi - lo) // 6 + 1)
    return [10.0**k for k in range(lo, hi + 1, step)]


PALETTE = [
    (80, 160, 255),
    (255, 120, 60),
    (120, 220, 120),
    (230, 200, 60),
    (200, 120, 230),
    (90, 220, 220),
    (240, 110, 160),
    (170, 170, 170),
]

Series = tuple[str, list[float], list[float], tuple[int, int, int]]

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
    "per-frequency": ("excluded loss per key frequency", True, []),
    "gini": (
        "Gini of Fourier norms (sparsity)",
        False,
        [("W_E", "gini_W_E"), ("W_L", "gini_W_L")],
    ),
    "weights": (
        "sum of squared weights, total and per matrix",
        True,
        [("total", "sum_sq_weights")],
    ),
    "trig": (
        "trig fraction: share of variance on cos/sin(w_k(x+y)), k in key set "
        "(ideal ReLU neuron <~0.15, logits ~0.9-0.97)",
        True,
        [("pre", "trig_frac_pre"), ("post", "trig_frac_post"), ("logits", "trig_frac_logits")],
    ),
    "neurons": (
        "the paper's neuron measures: variance explained",
        False,
        [
            ("neuron freq (clusters frozen at ref)", "neuron_frac_explained"),
            ("MLP out on W_L dirs (Table 1)", "mlp_out_frac"),
            ("x+y share of logits", "xy_share_logits"),
        ],
    ),
    "attention": ("average attention from = to x, per head", False, []),
    "spectrogram W_E": ("W_E Fourier norms per frequency", False, []),
    "spectrogram W_L": ("W_L Fourier norms per frequency", False, []),
}
KEYED_VIEWS = ("losses", "per-frequency", "trig", "neurons")  # curves that use the key set


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def draw_series(
    plot: SafePlot,
    series: list[Series],
    *,
    title: str,
    log_y: bool,
    marks: list[int],
    selected: int | None,
    x_label: str = "epoch",
    round_x_ticks: bool = True,
) -> bool:
    """Draw line series (already sampled) with decade ticks on a log axis; True if any.

    With round_x_ticks the x axis gets round epoch numbers; callers with another x (tokens,
    frequencies) pass False and set their own ticks.
    """
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    plt.xlabel(x_label)
    width = max(plot.size.width, 20)
    plotted: list[float] = []
    last_x = 0
    for name, xs, ys, color in series:
        keep = [
            (x, y) for x, y in zip(xs, ys, strict=True)
            if math.isfinite(y) and (y > 0 or not log_y)
        ]  # fmt: skip
        if not keep:
            continue
        px, py = zip(*keep, strict=True)
        plt.plot(list(px), list(py), label=name, color=color, marker="braille")
        plotted.extend(py)
        last_x = max(last_x, int(px[-1]))
    if not plotted:
        plt.title(f"{title}: nothing yet")
        plot.refresh()
        return False
    plt.title(f"{title} ({'log' if log_y else 'linear'} y)")
    if log_y:
        plt.yscale("log")
        ticks = decade_ticks(plotted)
        plt.yticks(ticks, [f"1e{round(math.log10(t))}" for t in ticks])
    if round_x_ticks:
        ticks = epoch_ticks(last_x, count=max(2, min(6, width // 14)))
        plt.xticks(ticks, [f"{t:,}" for t in ticks])
    for epoch in marks:
        plt.vline(epoch, color=MARK_COLOR)
    if selected is not None:
        plt.vline(selected, color=(255, 255, 255))
    plot.refresh()
    return True


class CurvesPane(Vertical):
    """Loss curves per epoch and progress measures per checkpoint, with the phases marked.

    Repaints on a timer, only when new data arrived (keys repaint at once): the buffers are
    plain, not reactive.
    """

    DEFAULT_CSS = """
    CurvesPane { height: 1fr; }
    CurvesPane SafePlot { height: 1fr; min-height: 5; }
    CurvesPane #measures-plot { display: none; }
    CurvesPane.-measures #measures-plot { display: block; }
    CurvesPane #spectrogram { display: none; }
    CurvesPane.-measures.-spectrogram #measures-plot { display: none; }
    CurvesPane.-measures.-spectrogram #spectrogram { display: block; }
    CurvesPane #curves-summary { height: auto; max-height: 4; color: $text-muted; }
    """

    def __init__(self, history: MetricsHistory, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.log_y = True
        self.measures: Any = None  # engine.progress.ProgressTable
        self.outlook: Any = None  # engine.outlook.Outlook: phases, phase now, forecast
        self.view = "losses"
        self.phases: dict[str, int | None] = {}
        self.measures_note = ""  # why there are no measures yet, when there is a reason
        self.selected_epoch: int | None = None
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield SafePlot(id="loss-plot")
        yield SafePlot(id="measures-plot")
        yield Spectrogram(id="spectrogram")
        yield Static("", id="curves-summary")

    def on_mount(self) -> None:
        # New epochs repaint once a second: plotext is pure Python, and on two cores every
        # millisecond the UI thread holds the GIL is one the trainer thread waits.
        self.set_interval(1.0, self._repaint_if_dirty)

    # -- inputs ------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    def set_measures(self, table: Any, outlook: Any = None) -> None:
        self.measures = table
        self.outlook = outlook
        if outlook is not None:
            self.phases = outlook.phases
        else:
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
        self.set_class(self.view.startswith("spectrogram"), "-spectrogram")
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
    def marks(self) -> list[int]:
        return [e for e in self.phases.values() if e is not None]

    def _draw(self) -> None:
        h = self.history
        plot = self.query_one("#loss-plot", SafePlot)
        width = max(plot.size.width, 20)
        series = [
            sampled_series("train", h.epoch, h.train_loss, TRAIN_COLOR, width),
            sampled_series("test", h.epoch, h.test_loss, TEST_COLOR, width),
        ]
        draw_series(plot, series, title="loss per epoch", log_y=self.log_y, marks=self.marks,
                    selected=self.selected_epoch)  # fmt: skip
        if self.measures is not None and len(self.measures):
            self._draw_measures()
        self.query_one("#curves-summary", Static).update(self._summary())

    def measure_series(self) -> tuple[str, bool, list[Series]]:
        table = self.measures
        title, log_y, columns = MEASURE_VIEWS[self.view]
        width = max(self.query_one("#measures-plot", SafePlot).size.width, 20)
        xs = table.epochs.astype(np.float64)
        named = [(label, table[column]) for label, column in columns]
        if self.view == "per-frequency":
            named += [("train", table["train_loss"]), ("test", table["test_loss"])]
            named += [
                (f"k={k}", table.excluded_per_freq[:, j]) for j, k in enumerate(table.key_freqs)
            ]
        elif self.view == "weights":
            named += [
                (name.split(".")[-1], values)
                for name, values in table.sum_sq_per_param.items()
                if not name.split(".")[-1].startswith("b_") and np.nanmax(values, initial=0) > 0
            ]
        elif self.view == "attention":
            named += [
                (f"head {h}", table.avg_attn[:, h, 0]) for h in range(table.avg_attn.shape[1])
            ]
        series = [
            sampled_series(
                label, xs, np.asarray(ys, dtype=np.float64), PALETTE[i % len(PALETTE)], width
            )
            for i, (label, ys) in enumerate(named)
        ]
        return title, log_y, series

    def _draw_measures(self) -> None:
        if self.view.startswith("spectrogram"):
            self.query_one(Spectrogram).show_table(self.measures, self.view.split()[-1])
            return
        title, log_y, series = self.measure_series()
        plot = self.query_one("#measures-plot", SafePlot)
        full = f"{title} [{self.key_set_label()}]" if self.view in KEYED_VIEWS else title
        # plotext drops a title wider than the plot: keep the long one where it fits (the
        # key set is in the summary line below either way).
        room = max(plot.size.width - 16, 20)
        title = next(
            t for t in (f"{full} [m: next view]", full, title) if len(t) <= room or t == title
        )
        draw_series(plot, series, title=title, log_y=log_y and self.log_y,
                    marks=self.marks, selected=self.selected_epoch)  # fmt: skip

    def key_set_label(self) -> str:
        """Which key set the frequency-dependent curves use, and since which checkpoint."""
        table = self.measures
        if table is None or not table.key_freqs:
            return "key freqs: none yet (no stable neuron clusters)"
        keys = ", ".join(map(str, table.key_freqs))
        history = table.key_history
        if history.fixed:
            return f"key freqs {keys} from epoch {history.reference_epoch:,}"
        return f"key freqs {keys} since {table.key_since:,}"

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
            names = {"memorisation_end": "memorisation ends",
                     "circuit_formation_end": "circuit formed",
                     "cleanup_end": "cleanup ends"}  # fmt: skip
            parts = [
                f"{names.get(k, k)} {v:,}" if v is not None else f"{names.get(k, k)} -"
                for k, v in self.phases.items()
            ]
            text.append("\nphases (from the measures): " + ", ".join(parts))
        if self.measures is not None and len(self.measures):
            text.append(f"   {self.key_set_label()}")
            if self.measures.warning:
                text.append(f"\n{self.measures.warning}", style="yellow")
        if self.outlook is not None:
            o = self.outlook
            forecast = "" if o.forecast.observed else f"; {o.forecast.describe()}"
            text.append(f"\nnow: {o.describe_phase()}{forecast}")
        elif self.measures_note:
            text.append(f"\n{self.measures_note}")
        return text
