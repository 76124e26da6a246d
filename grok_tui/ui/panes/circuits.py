"""Circuits: the OV contributions of each head to one neuron.

Blog view 5: W_neur = W_E W_V W_O W_in gives, per head, how much each input token adds to a
neuron's input through that head. In a grokked model every head's curve is a sinusoid of
the neuron's frequency, so per frequency (the default view) each head is one spike at that
frequency; the text gives the neuron's frequency, its fraction explained and each head's
share of its curve in that frequency. The selected head is bold, the others faint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.widgets.plot import (
    PALETTE,
    STEM_SPREAD,
    Figure,
    Plot,
    faint,
    head_series,
    hex_color,
)

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

SIDE_BY_SIDE = 120  # pane width from which "both" puts the two plots side by side


class CircuitsPane(AnalysisPane):
    """W_neur[h, :, neuron] for every head h, per frequency and over the input token."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("neuron", "cluster", "head", "view")
    VIEWS: ClassVar[tuple[str, ...]] = ("fourier", "token", "both")
    VIEW_NAMES: ClassVar[dict[str, str]] = {
        "fourier": "OV contributions per frequency",
        "token": "OV contributions over the input token",
        "both": "OV contributions per frequency and over the token",
    }

    DEFAULT_CSS = """
    CircuitsPane #circ-info { height: auto; }
    CircuitsPane #circ-plots { height: 1fr; layout: vertical; }
    CircuitsPane #circ-plots.-side { layout: horizontal; }
    CircuitsPane #circ-plots > Plot { height: 1fr; width: 1fr; min-height: 4; }
    """

    def compose(self) -> ComposeResult:
        yield PaneNote()
        yield Static("", id="circ-info", classes="pane-body")
        with Container(id="circ-plots", classes="pane-body"):
            yield self.make_plot("circ-token")
            yield self.make_plot("circ-fourier")

    def figure(self, which: str) -> Figure:
        """What the "token" or "fourier" plot shows."""
        return self.query_one(f"#circ-{which}", Plot).figure

    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        token = self.query_one("#circ-token", Plot)
        spectrum = self.query_one("#circ-fourier", Plot)
        if changed & {"view", "size"}:
            token.display = self.view in ("token", "both")
            spectrum.display = self.view in ("fourier", "both")
            self.query_one("#circ-plots").set_class(self.size.width >= SIDE_BY_SIDE, "-side")
        n = self.neuron
        if changed & {"snapshot", "neuron", "head"}:
            curves = np.asarray(snap.W_neur[:, :, n], dtype=np.float64)  # (h, p)
            xs = [float(x) for x in range(curves.shape[1])]
            token.show(Figure(f"OV circuit W_neur[head, token, {n}]",
                              head_series(curves, xs, self.head), "input token",
                              legend=False))  # fmt: skip
            amps = snap.W_neur_freq[:, :, n]  # (h, K + 1)
            freq = int(snap.neuron_freq[n])
            spectrum.show(Figure(
                f"|W_neur| per frequency, neuron {n} (its freq: {freq})",
                head_series(amps, [float(k) for k in range(amps.shape[1])], self.head,
                            side_by_side=STEM_SPREAD),
                "frequency (0 = const)", style="stems", legend=False,
            ))  # fmt: skip
        self.query_one("#circ-info", Static).update(self._info(snap))

    def _info(self, snap: Snapshot) -> Text:
        n = self.neuron
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        cluster = int(snap.neuron_cluster[n])
        members = snap.neurons_in(cluster)
        text = Text()
        text.append(f"neuron {n}", style="bold")
        text.append(f"/{snap.d_mlp}  ", style="dim")
        text.append(f"freq {freq}", style="bold")
        text.append(f" · {frac:.1%} explained · ")
        text.append(snap.describe_cluster(cluster), style="bold" if cluster >= 0 else "dim")
        place = np.flatnonzero(members == n)
        if place.size:
            text.append(f", #{int(place[0]) + 1} by fraction", style="dim")
        text.append(f"\nheads (share in freq {freq}):", style="dim")
        for h, share in enumerate(snap.ov_freq_shares(n)):
            colour = PALETTE[h % len(PALETTE)]
            text.append("  ")
            text.append("━━", style=hex_color(colour if h == self.head else faint(colour)))
            text.append(f" {h} {share:.0%}", style="bold" if h == self.head else "")
        return text
