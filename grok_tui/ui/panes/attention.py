"""Attention: per-head maps of attention to x, the average pattern, and the QK circuit.

Blog views 2 (average attention per head and key), 4 (attention from `=` to x as (x, y)
maps, per head), 6 (the QK contribution W_attn per head) and 11 (the maps in the 2D Fourier
basis, as amplitudes per frequency pair). The QK plot shows W_attn per frequency by default
(a few spikes at the key frequencies, where the curves over the token overlap as waves);
the third view shows it over the input token. The selected head is bold, the others faint.

Layout: a grid of one heatmap per head, as wide as keeps its maps square; beside it the
average pattern as a table and the QK plot.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.ui.panes.base import AnalysisPane, PaneBody, PaneNote
from grok_tui.ui.widgets.heatmap import Heatmap, natural_width, shared_range
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

MIN_SIDE = 30  # cells kept for the table and the QK plot beside the maps


class AttentionPane(AnalysisPane):
    """Per-head attention maps, the average pattern, and the QK circuit of one checkpoint."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("head", "enlarge", "view")
    VIEWS: ClassVar[tuple[str, ...]] = ("maps", "fourier", "tokens")
    VIEW_NAMES: ClassVar[dict[str, str]] = {
        "maps": "attention to x; QK per frequency",
        "fourier": "|fft2| per freq pair; QK per frequency",
        "tokens": "attention to x; QK over the input token",
    }

    DEFAULT_CSS = """
    AttentionPane #attn-body { height: 1fr; }
    AttentionPane #attn-grid { grid-size: 2 2; grid-gutter: 0 1; width: 40; height: 1fr; }
    AttentionPane #attn-grid > Heatmap { width: 1fr; height: 1fr; }
    AttentionPane #attn-grid > Heatmap.-selected > .heatmap--title {
        color: $accent;
        text-style: bold reverse;
    }
    AttentionPane #attn-side { width: 1fr; height: 1fr; padding-left: 1; }
    AttentionPane #attn-table { height: auto; }
    AttentionPane #attn-qk { height: 1fr; min-height: 4; }
    """

    def __init__(self, n_heads: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._maps = [self._new_map(h) for h in range(n_heads)]

    def compose(self) -> ComposeResult:
        yield PaneNote()
        with PaneBody(id="attn-body"):
            with Grid(id="attn-grid"):
                yield from self._maps
            with Vertical(id="attn-side"):
                yield Static("", id="attn-table")
                yield self.make_plot("attn-qk")

    def _new_map(self, h: int) -> Heatmap:
        return self.make_heatmap(title=f"head {h}", x_label="y", y_label="x")

    @property
    def maps(self) -> list[Heatmap]:
        """The per-head heatmaps, in head order."""
        return list(self._maps)

    @property
    def qk_plot(self) -> Plot:
        return self.query_one("#attn-qk", Plot)

    def enlarge_target(self) -> Widget | None:
        return self._maps[self.head] if 0 <= self.head < len(self._maps) else None

    def enlarged_name(self) -> str:
        return f"head {self.head}"

    # -- drawing -----------------------------------------------------------------------------
    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        if snap.n_heads != len(self._maps):
            self._rebuild_maps(snap.n_heads)
            changed |= {"view", "size"}
        if changed & {"snapshot", "view"}:
            self._draw_maps(snap)
        if changed & {"head", "view"}:
            for h, heatmap in enumerate(self._maps):
                heatmap.set_class(h == self.head, "-selected")
        if "size" in changed:
            self._fit_grid(snap)
        if changed & {"snapshot", "view", "head"}:
            self._draw_qk(snap)
        self._update_table(snap)

    def _rebuild_maps(self, n_heads: int) -> None:
        """Another run with another head count: one map per head."""
        if self.enlarged:
            self.screen.minimize()
        grid = self.query_one("#attn-grid", Grid)
        for heatmap in self._maps:
            heatmap.remove()
        grid.styles.grid_size_rows = max(1, math.ceil(n_heads / 2))
        self._maps = [self._new_map(h) for h in range(n_heads)]
        grid.mount(*self._maps)

    def _draw_maps(self, snap: Snapshot) -> None:
        if self.view == "fourier":
            norms = snap.attn_pair_norms
            lo, hi = shared_range(norms, saturate_origin=True)
            for h, heatmap in enumerate(self._maps):
                heatmap.set_data(norms[h], diverging=False, vmin=0.0, vmax=hi,
                                 title=f"head {h} |fft2|", x_label="ky", y_label="kx")  # fmt: skip
            return
        # One colour scale for all heads (comparable), spanning what they use.
        lo, hi = shared_range(snap.attn_key0)
        for h, heatmap in enumerate(self._maps):
            heatmap.set_data(snap.attn_key0[h], diverging=False, vmin=lo, vmax=hi,
                             title=f"head {h}", x_label="y", y_label="x")  # fmt: skip

    def _fit_grid(self, snap: Snapshot) -> None:
        """Give the grid the width that keeps its maps square; the side panel the rest."""
        width, height = self.query_one("#attn-body").size
        if width <= 0 or height <= 0:
            return
        rows = max(1, math.ceil(len(self._maps) / 2))
        want = 2 * max(natural_width((snap.p, snap.p), height // rows, "y"), 16) + 1
        target = max(min(want, max(width - MIN_SIDE, width // 2)), 1)
        grid = self.query_one("#attn-grid", Grid)
        if grid.styles.width is None or grid.styles.width.value != target:
            grid.styles.width = target

    def _draw_qk(self, snap: Snapshot) -> None:
        if self.view == "tokens":
            xs = [float(x) for x in range(snap.p)]
            series = head_series(np.asarray(snap.W_attn), xs, self.head)
            figure = Figure("QK: W_attn per head", series, "input token", legend=False)
        else:
            amps = snap.W_attn_freq
            xs = [float(k) for k in range(amps.shape[1])]
            series = head_series(amps, xs, self.head, side_by_side=STEM_SPREAD)
            figure = Figure("QK: |W_attn| per frequency", series, "frequency (0 = const)",
                            style="stems", legend=False)  # fmt: skip
        self.qk_plot.show(figure)

    def _update_table(self, snap: Snapshot) -> None:
        avg = np.asarray(snap.avg_attn)
        text = Text()
        text.append("  head     ", style="dim")
        text.append("to x   to y   to =", style="bold")
        text.append("  mean\n", style="dim")
        for h in range(avg.shape[0]):
            selected = h == self.head
            colour = PALETTE[h % len(PALETTE)]
            text.append(f"{'▶' if selected else ' '} {h:>2} ", style="bold" if selected else "")
            text.append("━━", style=hex_color(colour if selected else faint(colour)))
            values = "".join(f"  {v:5.3f}" for v in avg[h, :3])
            text.append(values + "\n", style="bold" if selected else "")
        text.append(f"view {self.VIEWS.index(self.view) + 1}/{len(self.VIEWS)}: ", style="dim")
        text.append(self.VIEW_NAMES[self.view] + "\n")
        keys = ", ".join(map(str, snap.key_freqs)) or "none yet"
        text.append(f"key freqs {keys}", style="dim")
        if self._maps and self._maps[0].reduced_colours:  # the maps' notes have no room
            text.append(" · 256 colours", style="yellow")
        if self.view == "fourier":
            room = self.query_one("#attn-table", Static).size.width - 5
            pairs = snap.top_attn_pairs(self.head, count=min(4, max(1, room // 14)))
            text.append("\ntop: ", style="dim")
            text.append("  ".join(f"({kx},{ky}) {v:.3g}" for kx, ky, v in pairs))
        if self.cursor_text:
            text.append("\n" + self.cursor_text, style="dim")
        self.query_one("#attn-table", Static).update(text)

    # -- words -------------------------------------------------------------------------------
    def head_words(self, snap: Snapshot, head: int) -> str:
        avg = np.asarray(snap.avg_attn)[head]
        return f"head {head}: to x {avg[0]:.3f}, to y {avg[1]:.3f}, to = {avg[2]:.3f}"

    def describe_cursor(self, snap: Snapshot, heatmap: Heatmap, x: int, y: int) -> str:
        where = f"kx={y} ky={x}" if self.view == "fourier" else f"x={y} y={x}"
        return f"head {self.head} at {where}"
