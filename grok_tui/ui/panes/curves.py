"""The grokking curve: train and test loss over epochs, log y, with the phases marked; under
it, from the first checkpoint on, the progress measures per checkpoint (`m` cycles their
views: curves, the grok forecast as made at each checkpoint against the truth once known,
and the W_E / W_L spectrograms).

The loss buffers are plain (the run session's MetricsHistory), not reactive: new epochs
repaint on a 1 Hz timer (plotext is pure Python, and every millisecond the UI thread holds
the GIL is one the trainer thread waits); keys repaint at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from grok_tui.engine.store.follow import MetricsHistory
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, Series, sampled_series
from grok_tui.ui.widgets.spectrogram import Spectrogram

TRAIN_COLOR = PALETTE[0]
TEST_COLOR = PALETTE[1]
FORECAST_COLOR = PALETTE[4]
FORECAST_BAND = PALETTE[7]
TRUTH_COLOR = PALETTE[2]
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
    "per-frequency": ("excluded loss per key frequency", True, []),
    "gini": (
        "Gini of Fourier norms (sparsity): per component as in the paper, and per frequency",
        False,
        [
            ("W_E", "gini_W_E"),
            ("W_L", "gini_W_L"),
            ("W_E per freq", "gini_W_E_freq"),
            ("W_L per freq", "gini_W_L_freq"),
        ],
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
    # The numerical view (Prieto et al. 2025): engine/measures/numerics.py.
    "numerics": (
        "share of train examples: float32 softmax collapsed, float32 loss exactly 0",
        False,
        [("collapsed", "softmax_collapse"), ("zero loss", "zero_loss")],
    ),
    "logit gap": (
        "top minus runner-up logit over train examples, p10/p50/p90 "
        "(float32 softmax collapses above ~17, exp underflows above ~104)",
        False,
        [("p10", "logit_gap_p10"), ("p50", "logit_gap_p50"), ("p90", "logit_gap_p90")],
    ),
    # The local learning coefficient (Lau et al. 2023): engine/measures/llc.py.
    "learning coefficient": (
        # short enough to show at 80 columns (a wider title is not drawn)
        "local learning coefficient, SGLD (+- sd over chains)",
        False,
        [("llc", "llc")],
    ),
    "attention": ("average attention from = to x, per head", False, []),
    "forecast": (
        "grok forecast made at each checkpoint, its interval, the truth once known",
        False,
        [],
    ),
    "spectrogram W_E": ("W_E Fourier norms per frequency", False, []),
    "spectrogram W_L": ("W_L Fourier norms per frequency", False, []),
}
KEYED_VIEWS = ("losses", "per-frequency", "trig", "neurons")  # curves that use the key set
PHASE_NAMES = {
    "memorisation_end": "memorisation ends",
    "circuit_formation_end": "circuit formed",
    "cleanup_end": "cleanup ends",
}


def primary_last(series: list[Series]) -> list[Series]:
    """The train and test curves moved to the end: drawn last, on top of the rest."""
    return [s for s in series if s[0] not in PRIMARY] + [s for s in series if s[0] in PRIMARY]


def forecast_series(outlook: Any, truth: float | None) -> list[Series]:
    """The forecasts as they were made (engine/measures/asof.py's `Outlook.forecasts`):
    forecast and interval against the epoch each was made at, and the grok epoch once
    known, as a level line over the same epochs. Formatting only: the engine made them."""
    made = [] if outlook is None else [f for f in outlook.forecasts if f[1] is not None]
    xs = [float(f[0]) for f in made]
    series: list[Series] = [
        ("80% low", xs, [float(f[2]) for f in made], FORECAST_BAND),
        ("80% high", xs, [float(f[3]) for f in made], FORECAST_BAND),
        ("forecast", xs, [float(f[1]) for f in made], FORECAST_COLOR),
    ]
    if truth is not None and made:
        series.append(("grokked", [xs[0], xs[-1]], [float(truth)] * 2, TRUTH_COLOR))
    return series


class CurvesPane(Vertical):
    """Loss curves per epoch and progress measures per checkpoint, with the phases marked."""

    DEFAULT_CSS = """
    CurvesPane { height: 1fr; }
    CurvesPane Plot { height: 1fr; min-height: 5; }
    CurvesPane #measures-plot { display: none; }
    CurvesPane.-measures #measures-plot { display: block; }
    CurvesPane #spectrogram { display: none; }
    CurvesPane.-measures.-spectrogram #measures-plot { display: none; }
    CurvesPane.-measures.-spectrogram #spectrogram { display: block; }
    CurvesPane #curves-summary { height: auto; max-height: 4; color: $text-muted; }
    /* A short terminal (80x24) shows one plot: the measures, whose first view has the train
       and test loss too, once there are any; the per-epoch loss plot before. */
    CurvesPane.-compact.-measures #loss-plot { display: none; }
    CurvesPane.-compact #curves-summary { max-height: 3; }
    """
    COMPACT_ROWS = 32  # a terminal shorter than this shows one plot at a time

    def __init__(self, history: MetricsHistory, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history
        self.log_y = True
        self.log_x = False  # `x`: epochs on a log axis (grokking spans decades)
        self.measures: Any = None  # engine.progress.ProgressTable
        self.outlook: Any = None  # engine.outlook.Outlook: phases, phase now, forecast
        self.view = "losses"
        self.phases: dict[str, int | None] = {}
        self.selected_epoch: int | None = None
        self._dirty = True
        # New epochs arrive twice a second, new measures once per checkpoint: the measures
        # plot (plotext is pure Python, and the trainer thread waits for the GIL it holds)
        # is drawn again only when what it shows changed.
        self._measures_dirty = True
        self.measures_note = ""  # why there are no progress measures, when there is a reason

    def compose(self) -> ComposeResult:
        yield Plot(id="loss-plot")
        yield Plot(id="measures-plot")
        yield Spectrogram(id="spectrogram")
        yield Static("", id="curves-summary")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._repaint_if_dirty)
        self._fit_to_screen()

    def on_resize(self) -> None:
        self._fit_to_screen()

    def _fit_to_screen(self) -> None:
        self.set_class(self.app.size.height < self.COMPACT_ROWS, "-compact")

    # -- inputs ------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    def set_measures(self, table: Any, outlook: Any = None, note: str = "") -> None:
        self.measures = table
        self.outlook = outlook
        self.measures_note = note
        if outlook is not None:
            self.phases = outlook.phases
        else:
            self.phases = table.phases() if table is not None and len(table) else {}
        self.set_class(table is not None and len(table) > 0, "-measures")
        self._dirty = self._measures_dirty = True
        # The phase line now, not on the next repaint: the status bar reads this outlook in
        # the same message, and for up to a second the two named different phases.
        if self.is_mounted:
            self.query_one("#curves-summary", Static).update(self._summary())

    def set_selected(self, epoch: int | None) -> None:
        if epoch != self.selected_epoch:
            self.selected_epoch = epoch
            self._dirty = self._measures_dirty = True
            if self.is_mounted:
                self.set_timer(0.1, self._repaint_if_dirty)  # a scrub shows soon, held keys once

    def toggle_log(self) -> None:
        self.log_y = not self.log_y
        self._dirty = self._measures_dirty = True
        self._repaint_if_dirty()

    def toggle_log_x(self) -> None:
        self.log_x = not self.log_x
        self._dirty = self._measures_dirty = True
        self._repaint_if_dirty()

    def cycle_view(self, step: int = 1) -> str:
        names = list(MEASURE_VIEWS)
        self.view = names[(names.index(self.view) + step) % len(names)]
        self.set_class(self.view.startswith("spectrogram"), "-spectrogram")
        self._dirty = self._measures_dirty = True
        self._repaint_if_dirty()
        return self.view

    def has_measures_drawn(self, at_least: int = 1) -> bool:
        """The measures plot shows at least this many checkpoints (tests, screenshots)."""
        shown = self.measures is not None and len(self.measures) >= at_least
        return shown and not self._measures_dirty

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
                         self._x_name, log_y=self.log_y, marks=self.marks,
                         selected=self.selected_epoch, log_x=self.log_x))  # fmt: skip
        if self._measures_dirty and self.measures is not None and len(self.measures):
            self._measures_dirty = False
            self._draw_measures()
        self.query_one("#curves-summary", Static).update(self._summary())

    def _draw_measures(self) -> None:
        if self.view.startswith("spectrogram"):
            self.query_one(Spectrogram).show_table(self.measures, self.view.split()[-1])
            return
        title, log_y, series = self.measure_series()
        log_y = log_y and self.log_y
        plot = self.query_one("#measures-plot", Plot)
        short = self._title(title, log_y)
        full = f"{short} [{self.key_set_label()}]" if self.view in KEYED_VIEWS else short
        # plotext drops a title wider than the plot: keep the long one where it fits (the
        # key set is in the summary line below either way).
        room = max(plot.size.width - 16, 20)
        title = next(
            t for t in (f"{full} [m: next view]", full, short) if len(t) <= room or t == short
        )
        plot.show(Figure(title, series, self._x_name, log_y=log_y, marks=self.marks,
                         selected=self.selected_epoch, log_x=self.log_x))  # fmt: skip

    @property
    def _x_name(self) -> str:
        return "epoch (log: x)" if self.log_x else "epoch"

    def _title(self, title: str, log_y: bool) -> str:
        scale = "log y" if log_y else "linear y"
        return f"{title} ({scale}{', log epochs' if self.log_x else ''})"

    def measure_series(self) -> tuple[str, bool, list[Series]]:
        """The current measures view: title, log y, and its series (primary ones last)."""
        table = self.measures
        title, log_y, columns = MEASURE_VIEWS[self.view]
        width = max(self.query_one("#measures-plot", Plot).size.width, 20)
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
        elif self.view == "learning coefficient":
            low, high = table.llc_band()
            # The band first: where the chains agree the three lines share cells, and the
            # one drawn last (the estimate) must be the one seen.
            named = [("- sd", low), ("+ sd", high), *named]
        elif self.view == "forecast":
            truth = self.history.first_epoch_at_least("test_acc", 0.99)
            return title, log_y, forecast_series(self.outlook, truth)
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
        text.append(f"train acc >= 99% at {memorised if memorised is not None else '-'}")
        text.append(f", test acc >= 99% at {generalised if generalised is not None else '-'}")
        if self.phases:
            parts = [
                f"{PHASE_NAMES.get(k, k)} {v:,}" if v is not None else f"{PHASE_NAMES.get(k, k)} -"
                for k, v in self.phases.items()
            ]
            text.append("\nphases (from the measures): " + ", ".join(parts))
        if self.measures is not None and len(self.measures):
            text.append(f"; {self.key_set_label()}")
            if self.measures.warning:
                text.append(f"\n{self.measures.warning}", style="yellow")
        if self.outlook is not None:
            o = self.outlook
            forecast = "" if o.forecast.observed else f"; {o.forecast.describe()}"
            text.append(f"\nnow: {o.describe_phase()}{forecast}")
        elif self.measures_note:
            text.append(f"\n{self.measures_note}", style="yellow")
        return text

    def key_set_label(self) -> str:
        """Which key set the frequency-dependent curves use, and since which checkpoint."""
        table = self.measures
        if table is None or not table.key_freqs:
            return "key freqs: none yet (no stable neuron clusters)"
        keys = ", ".join(map(str, table.key_freqs))
        history = table.key_history
        if history.provisional:
            return f"key freqs {keys} provisional (strongest in W_E / W_L; no neuron clusters yet)"
        if history.fixed:
            return f"key freqs {keys} from epoch {history.reference_epoch:,}"
        return f"key freqs {keys} since {table.key_since:,}"
