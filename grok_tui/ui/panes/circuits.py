"""Circuits: the OV contributions of each head to one neuron, over the input token.

Blog view 5: W_neur = W_E W_V W_O W_in gives, per head, how much each input token adds to a
neuron's input through that head. In a grokked model every head's curve is a sinusoid of
the neuron's frequency, so the "fourier" view (the curves per frequency) is one spike at
that frequency; the text gives the neuron's frequency, its fraction explained (from the
neuron clustering) and each head's share of its curve in that frequency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.events import Resize
from textual.widgets import Static

from grok_tui.engine import fourier
from grok_tui.ui.panes.attention import dimmed, head_series, plot_series
from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.panes.curves import PALETTE, SafePlot, Series, hex_color

if TYPE_CHECKING:
    from grok_tui.engine.analysis import Snapshot

VIEWS = ("token", "fourier", "both")
VIEW_NAMES = {"token": "over the input token", "fourier": "per frequency", "both": "both"}
SIDE_BY_SIDE = 120  # pane width from which "both" puts the two plots side by side


class CircuitsPane(AnalysisPane):
    """W_neur[h, :, neuron] for every head h, and the same curves in the Fourier basis."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("neuron", "cluster", "head", "view")

    DEFAULT_CSS = """
    CircuitsPane { height: 1fr; }
    CircuitsPane #circ-info { height: auto; }
    CircuitsPane #circ-plots { height: 1fr; layout: vertical; }
    CircuitsPane #circ-plots.-side { layout: horizontal; }
    CircuitsPane #circ-plots > SafePlot { height: 1fr; width: 1fr; min-height: 4; }
    CircuitsPane #circ-note { display: none; }
    CircuitsPane.-empty #circ-note { display: block; }
    CircuitsPane.-empty #circ-info { display: none; }
    CircuitsPane.-empty #circ-plots { display: none; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.neuron = 0  # the selected neuron, kept across snapshots
        self.head: int | None = None  # the emphasised head (None: all alike)
        self.view = VIEWS[0]
        # Series as last handed to each plot ("token", "fourier"), and their titles (tests).
        self.drawn: dict[str, list[Series]] = {}
        self.titles: dict[str, str] = {}
        self._plot_keys: dict[str, tuple[object, ...] | None] = {}
        self._layout_drawn: tuple[str, bool] | None = None

    def compose(self) -> ComposeResult:
        yield PaneNote(self.note, id="circ-note")
        yield Static("", id="circ-info")
        with Container(id="circ-plots"):
            yield SafePlot(id="circ-token")
            yield SafePlot(id="circ-fourier")

    def on_mount(self) -> None:
        self.refresh_view()

    # -- selection ---------------------------------------------------------------------------
    def _n_neurons(self) -> int:
        return int(self.snapshot.W_neur.shape[2]) if self.snapshot is not None else 0

    def _clamp_selection(self) -> None:
        """Keep the choice valid for this snapshot (another run may have fewer neurons)."""
        snap = self.snapshot
        if snap is None:
            return
        self.neuron = min(max(self.neuron, 0), self._n_neurons() - 1)
        if self.head is not None and not 0 <= self.head < snap.W_neur.shape[0]:
            self.head = None

    def select_neuron(self, neuron: int) -> str | None:
        """Show a neuron (wrapping around the MLP)."""
        m = self._n_neurons()
        if m == 0:
            return None
        self.neuron = neuron % m
        self.refresh_view()
        return self.neuron_words()

    def step_cluster(self, step: int) -> str | None:
        """Jump to the first neuron of the next/previous non-empty cluster."""
        snap = self.snapshot
        if snap is None:
            return None
        self._clamp_selection()
        order = [k for k, idx in snap.clusters.items() if len(idx)]
        if not order:
            return None
        current = int(snap.neuron_cluster[self.neuron])
        at = order.index(current) if current in order else (-1 if step > 0 else 0)
        target = order[(at + step) % len(order)]
        self.neuron = int(snap.clusters[target][0])
        self.refresh_view()
        return f"{cluster_name(target)}: " + self.neuron_words()

    def neuron_words(self) -> str:
        """'neuron 12: freq 9, 93.4% explained, cluster k=9 (33 neurons)'."""
        snap = self.snapshot
        if snap is None:
            return ""
        self._clamp_selection()
        n = self.neuron
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        cluster = int(snap.neuron_cluster[n])
        size = len(snap.clusters.get(cluster, ()))
        where = f"{cluster_name(cluster)} ({size} neurons)"
        return f"neuron {n}: freq {freq}, {frac:.1%} explained, {where}"

    # -- keys --------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        """neuron: next/prev neuron; cluster: next/prev cluster; head: emphasise; view: cycle."""
        if self.snapshot is None:
            return None
        if name == "neuron":
            return self.select_neuron(self.neuron + step)
        if name == "cluster":
            return self.step_cluster(step)
        if name == "head":
            n = int(self.snapshot.W_neur.shape[0])
            choices: list[int | None] = [None, *range(n)]
            at = choices.index(self.head) if self.head in choices else 0
            self.head = choices[(at + step) % len(choices)]
            self.refresh_view()
            return "all heads alike" if self.head is None else f"head {self.head} emphasised"
        if name == "view":
            self.view = VIEWS[(VIEWS.index(self.view) + step) % len(VIEWS)]
            self.refresh_view()
            return f"OV contributions {VIEW_NAMES[self.view]}"
        return None

    def forget_drawn(self) -> None:
        self._plot_keys.clear()

    # -- drawing -----------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Text always (cheap); each plot only when its numbers, emphasis or width changed."""
        if not self.is_mounted:
            return
        if self.draw_empty():
            return
        snap = self.snapshot
        self._clamp_selection()
        curves = np.asarray(snap.W_neur[:, :, self.neuron], dtype=np.float64)  # (h, p)
        spectrum = fourier.freq_amplitudes(snap.ov_fourier(self.neuron))  # (h, K+1)
        token_plot = self.query_one("#circ-token", SafePlot)
        fourier_plot = self.query_one("#circ-fourier", SafePlot)
        plots = self.query_one("#circ-plots")
        layout = (self.view, self.size.width >= SIDE_BY_SIDE)
        if layout != self._layout_drawn:
            # The plots change size only at the next layout: draw again once it is done,
            # so their ticks fit the width they end up with.
            self._layout_drawn = layout
            self.call_after_refresh(self.refresh_view)
        token_plot.display = self.view in ("token", "both")
        fourier_plot.display = self.view in ("fourier", "both")
        plots.set_class(layout[1], "-side")
        if token_plot.display:
            self._draw_token(token_plot, snap, curves)
        if fourier_plot.display:
            self._draw_fourier(fourier_plot, snap, spectrum)
        self.query_one("#circ-info", Static).update(self._info(snap, spectrum))

    def _draw_token(self, plot: SafePlot, snap: Snapshot, curves: np.ndarray) -> None:
        key = (self.generation, self.neuron, self.head, plot.size.width // 8)
        if self._plot_keys.get("token") == key:
            return
        self._plot_keys["token"] = key
        series = head_series(curves, [float(x) for x in range(curves.shape[1])], self.head)
        title = f"OV circuit W_neur[head, token, {self.neuron}]"
        self.drawn["token"], self.titles["token"] = series, title
        plot_series(plot, series, title=title, xlabel="input token",
                    last_x=curves.shape[1] - 1)  # fmt: skip

    def _draw_fourier(self, plot: SafePlot, snap: Snapshot, spectrum: np.ndarray) -> None:
        key = (self.generation, self.neuron, self.head, plot.size.width // 8)
        if self._plot_keys.get("fourier") == key:
            return
        self._plot_keys["fourier"] = key
        series = head_series(spectrum, [float(k) for k in range(spectrum.shape[1])], self.head)
        freq = int(snap.neuron_freq[self.neuron])
        title = f"|W_neur| per frequency, neuron {self.neuron} (its freq: {freq})"
        self.drawn["fourier"], self.titles["fourier"] = series, title
        plot_series(plot, series, title=title, xlabel="frequency (0 = const)",
                    last_x=spectrum.shape[1] - 1, stems=True)  # fmt: skip

    def _info(self, snap: Snapshot, spectrum: np.ndarray) -> Text:
        n, m = self.neuron, self._n_neurons()
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        cluster = int(snap.neuron_cluster[n])
        members = snap.clusters.get(cluster, np.zeros(0, dtype=np.int64))
        text = Text()
        text.append(f"neuron {n}", style="bold")
        text.append(f"/{m}  ", style="dim")
        text.append(f"freq {freq}", style="bold")
        text.append(f" · {frac:.1%} explained · ")
        text.append(cluster_name(cluster), style="bold" if cluster >= 0 else "dim")
        place = np.flatnonzero(np.asarray(members) == n)
        rank = f", #{int(place[0]) + 1}" if place.size else ""
        text.append(f" ({len(members)} neurons{rank})\n", style="dim")
        energy = np.square(spectrum).sum(axis=1)
        share = np.square(spectrum[:, freq]) / np.where(energy > 0, energy, 1.0)
        text.append(f"heads (share in freq {freq}):", style="dim")
        for h in range(spectrum.shape[0]):
            colour = PALETTE[h % len(PALETTE)]
            emphasised = self.head is None or h == self.head
            text.append("  ")
            text.append("━━", style=hex_color(colour if emphasised else dimmed(colour)))
            text.append(f" {h} {share[h]:.0%}", style="bold" if h == self.head else "")
        return text

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.refresh_view)


def cluster_name(cluster: int) -> str:
    return "unclustered" if cluster < 0 else f"cluster k={cluster}"
