"""Attention: per-head maps of attention to x, the average pattern, and the QK circuit.

Blog views 2 (average attention per head and key), 4 (attention from `=` to x as (x, y)
maps, per head), 6 (the QK contribution W_attn per head over the input token) and, on the
"view" key, 11 (those maps in the 2D Fourier basis) with W_attn's spectrum per frequency.

Layout: a grid of one heatmap per head on the left, sized so the maps stay square; beside
it the average pattern as a table, the selected head and the value under its cursor, and a
line plot of the QK circuit. "enlarge" maximises the selected head's map and focuses it, so
the arrow keys move its cursor; the heatmap's own readout shows the value there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.engine import fourier
from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.panes.curves import PALETTE, SafePlot, Series, draw_series, hex_color
from grok_tui.ui.widgets.heatmap import Heatmap, fit_scale

if TYPE_CHECKING:
    from grok_tui.engine.analysis import Snapshot

VIEWS = ("maps", "fourier")
VIEW_NAMES = {"maps": "attention to x", "fourier": "|fft2| per freq pair"}
MIN_SIDE = 30  # cells kept for the table and the QK plot beside the maps
MAP_EXTRAS = 3  # heatmap lines that are not pixels: title, axis, colour bar
DIM = 0.35  # how much of its own colour a non-selected head's curve keeps


def dimmed(rgb: tuple[int, int, int], keep: float = DIM) -> tuple[int, int, int]:
    """A colour pulled towards grey, so the selected head's curve stands out."""
    grey = 110
    r, g, b = (round(grey + keep * (c - grey)) for c in rgb)
    return (r, g, b)


def head_series(
    values: np.ndarray, xs: list[float], selected: int | None, label: str = "head"
) -> list[Series]:
    """One line per head (rows of `values`); the selected head drawn last in full colour."""
    series: list[Series] = []
    for h in range(values.shape[0]):
        colour = PALETTE[h % len(PALETTE)]
        if selected is not None and h != selected:
            colour = dimmed(colour)
        name = f"{label} {h}" + (" ◀" if h == selected else "")
        series.append((name, xs, [float(v) for v in values[h]], colour))
    if selected is not None and 0 <= selected < len(series):
        series.append(series.pop(selected))
    return series


def axis_ticks(last: int, width: int) -> list[int]:
    """Round ticks over 0..last (tokens or frequencies), about one per 10 columns."""
    count = max(2, min(12, width // 10))
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100) if last / s <= count), 200)
    ticks = list(range(0, last + 1, step))
    if last - ticks[-1] >= step / 2:
        ticks.append(last)
    return ticks


def as_stems(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A spike per point: (x, 0) -> (x, y) -> (x, 0), joined along the axis."""
    sx = [x for x in xs for _ in range(3)]
    sy = [v for y in ys for v in (0.0, y, 0.0)]
    return sx, sy


def plot_series(
    plot: SafePlot,
    series: list[Series],
    *,
    title: str,
    xlabel: str,
    last_x: int,
    stems: bool = False,
) -> None:
    """draw_series without a legend (the pane's text names the colours), with x ticks for
    tokens or frequencies instead of epochs; `stems` draws each value as a spike from 0,
    as a spectrum's discrete components should look (a line would suggest in-betweens).
    No vertical marks: plotext draws them over the braille points they share a column with."""
    shown = [("", *as_stems(xs, ys), c) if stems else ("", xs, ys, c) for _, xs, ys, c in series]
    draw_series(plot, shown, title=title, log_y=False, marks=[], selected=None,
                x_label=xlabel, round_x_ticks=False)  # fmt: skip
    ticks = axis_ticks(last_x, max(plot.size.width - 8, 20))
    plot.plt.xticks(ticks, [str(t) for t in ticks])
    plot.refresh()


def top_pairs(norms: np.ndarray, count: int = 3) -> list[tuple[int, int, float]]:
    """The strongest (kx, ky, norm) of one head's pair norms, the constant pair left out."""
    flat = np.asarray(norms, dtype=np.float64).copy()
    flat[0, 0] = -np.inf
    order = np.argsort(flat, axis=None)[::-1][:count]
    rows, cols = np.unravel_index(order, flat.shape)
    return [(int(r), int(c), float(flat[r, c])) for r, c in zip(rows, cols, strict=True)]


def map_width(p: int, height: int, label: str = "y") -> int:
    """Cells a square p x p heatmap needs at this height (its gutter and x label too)."""
    plot_lines = height - MAP_EXTRAS if height >= 5 else max(height - 2, 1)
    scale = fit_scale((p, p), 10_000, 2 * max(plot_lines, 1))
    dw = scale.display_shape((p, p))[1] if scale else p
    gutter = len(str(p - 1)) + 1
    return max(gutter + dw + 1 + len(label), 16)


class AttentionPane(AnalysisPane):
    """Per-head attention maps, the average pattern, and the QK circuit of one checkpoint."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("head", "enlarge", "view")

    DEFAULT_CSS = """
    AttentionPane { height: 1fr; }
    AttentionPane #attn-body { height: 1fr; }
    AttentionPane #attn-grid {
        grid-size: 2 2;
        grid-gutter: 0 1;
        width: 40;
        height: 1fr;
    }
    AttentionPane #attn-grid > Heatmap { width: 1fr; height: 1fr; }
    AttentionPane #attn-grid > Heatmap.-selected > .heatmap--title {
        color: $accent;
        text-style: bold reverse;
    }
    AttentionPane #attn-side { width: 1fr; height: 1fr; padding-left: 1; }
    AttentionPane #attn-table { height: auto; }
    AttentionPane #attn-qk { height: 1fr; min-height: 4; }
    AttentionPane #attn-note { display: none; }
    AttentionPane.-empty #attn-note { display: block; }
    AttentionPane.-empty #attn-body { display: none; }
    """

    def __init__(self, n_heads: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.head = 0  # the selected head, kept across snapshots
        self.view = VIEWS[0]
        self.cursor_text = ""  # the selected map's cursor, in words (for the side text)
        self.last_series: list[Series] = []  # the QK plot's series as last drawn (for tests)
        self.last_plot_title = ""
        self._n_heads = n_heads
        self._maps_key: tuple[int, str] | None = None  # (snapshot id, view) drawn in the maps
        self._plot_key: tuple[object, ...] | None = None
        self._focus_before: Widget | None = None
        self._maps: list[Heatmap] = []
        self._pair_norms: np.ndarray | None = None  # (h, K + 1, K + 1) in the fourier view

    # -- composition -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield PaneNote(self.note, id="attn-note")
        with Horizontal(id="attn-body"):
            with Grid(id="attn-grid"):
                self._maps = [self._new_map(h) for h in range(self._n_heads)]
                yield from self._maps
            with Vertical(id="attn-side"):
                yield Static("", id="attn-table")
                yield SafePlot(id="attn-qk")

    @staticmethod
    def _new_map(h: int) -> Heatmap:
        heatmap = Heatmap(title=f"head {h}", x_label="y", y_label="x", show_cursor=False)
        heatmap.can_focus = False  # left/right stay with the app's checkpoint timeline
        return heatmap

    def on_mount(self) -> None:
        self.watch(self.screen, "maximized", self._maximized_changed, init=False)
        self.refresh_view()

    @property
    def maps(self) -> list[Heatmap]:
        """The per-head heatmaps, in head order."""
        return list(self._maps)

    @property
    def selected_map(self) -> Heatmap | None:
        maps = self.maps
        return maps[self.head] if 0 <= self.head < len(maps) else None

    @property
    def enlarged(self) -> bool:
        """True while one of this pane's maps fills the screen."""
        return self.is_mounted and self.screen.maximized in self.maps

    def forget_drawn(self) -> None:
        self._maps_key = self._plot_key = None

    # -- drawing -----------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Redraw what changed: the maps on a new snapshot or view, the rest always (cheap)."""
        if not self.is_mounted:
            return
        if self.draw_empty():
            return
        snap = self.snapshot
        n_heads = snap.n_heads
        if n_heads != len(self.maps):
            self._rebuild_maps(n_heads)
        self.head = min(max(self.head, 0), n_heads - 1)
        if self._maps_key != (self.generation, self.view):
            self._maps_key = (self.generation, self.view)
            self._draw_maps(snap)
        for h, heatmap in enumerate(self.maps):
            heatmap.set_class(h == self.head, "-selected")
        self._fit_grid()
        self._draw_plot(snap)
        self._update_cursor_text()
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
        self._maps_key = None

    def _draw_maps(self, snap: Snapshot) -> None:
        maps = self.maps
        if self.view == "maps":
            # One colour scale for all heads (comparable), spanning what they use: a grokked
            # model's attention stays within ~0.3..0.7, which a fixed 0..1 scale washes out.
            attn = np.asarray(snap.attn_key0)
            lo, hi = float(np.nanmin(attn)), float(np.nanmax(attn))
            lo, hi = (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else (0, 1)
            for h, heatmap in enumerate(maps):
                heatmap.set_data(attn[h], diverging=False, vmin=lo, vmax=hi,
                                 title=f"head {h}", x_label="y", y_label="x")  # fmt: skip
            return
        norms = fourier.freq_pair_amplitudes(snap.attn_key0_fourier)
        self._pair_norms = norms
        rest = norms.copy()
        rest[:, 0, 0] = 0.0  # the constant term dwarfs the rest: let it saturate
        top = float(rest.max()) if rest.size else 1.0
        top = top if math.isfinite(top) and top > 0 else 1.0
        for h, heatmap in enumerate(maps):
            heatmap.set_data(norms[h], diverging=False, vmin=0.0, vmax=top,
                             title=f"head {h} |fft2|", x_label="ky", y_label="kx")  # fmt: skip

    def _fit_grid(self) -> None:
        """Give the grid the width that keeps its maps square; the side panel the rest."""
        snap = self.snapshot
        body = self.query_one("#attn-body", Horizontal)
        grid = self.query_one("#attn-grid", Grid)
        width, height = body.size
        if snap is None or width <= 0 or height <= 0:
            return
        rows = max(1, math.ceil(len(self.maps) / 2))
        want = 2 * map_width(snap.p, height // rows) + 1
        cap = max(width - MIN_SIDE, width // 2)
        target = max(min(want, cap), 1)
        if grid.styles.width is None or grid.styles.width.value != target:
            grid.styles.width = target
            self.call_after_refresh(self.refresh_view)  # the plot beside it changes size

    def _draw_plot(self, snap: Snapshot) -> None:
        plot = self.query_one("#attn-qk", SafePlot)
        key = (self.generation, self.view, self.head, plot.size.width // 8)
        if key == self._plot_key:
            return
        self._plot_key = key
        if self.view == "maps":
            xs = [float(x) for x in range(snap.p)]
            series = head_series(np.asarray(snap.W_attn), xs, self.head)
            title, xlabel = "QK: W_attn per head", "input token"
        else:
            norms = fourier.freq_amplitudes(snap.W_attn_fourier)
            xs = [float(k) for k in range(norms.shape[1])]
            series = head_series(norms, xs, self.head)
            title, xlabel = "QK: |W_attn| per freq", "frequency (0 = const)"
        self.last_series, self.last_plot_title = series, title
        plot_series(plot, series, title=title, xlabel=xlabel, last_x=len(xs) - 1,
                    stems=self.view == "fourier")  # fmt: skip

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
            text.append("━━", style=hex_color(colour if selected else dimmed(colour)))
            values = "".join(f"  {v:5.3f}" for v in avg[h, :3])
            text.append(values + "\n", style="bold" if selected else "")
        text.append(f"view {VIEWS.index(self.view) + 1}/{len(VIEWS)}: ", style="dim")
        text.append(VIEW_NAMES[self.view] + "\n")
        keys = ", ".join(map(str, snap.key_freqs)) or "none yet"
        text.append(f"key freqs {keys}", style="dim")
        maps = self.maps
        if maps and maps[0].reduced_colours:  # the maps' own notes have no room in a grid
            text.append("  256 colours", style="yellow")
        if self.view == "fourier" and self._pair_norms is not None:
            room = self.query_one("#attn-table", Static).size.width - 5
            pairs = top_pairs(self._pair_norms[self.head], count=min(4, max(1, room // 14)))
            text.append("\ntop: ", style="dim")
            text.append("  ".join(f"({kx},{ky}) {v:.3g}" for kx, ky, v in pairs))
        if self.cursor_text:
            text.append("\n" + self.cursor_text, style="dim")
        self.query_one("#attn-table", Static).update(text)

    def _update_cursor_text(self) -> None:
        heatmap, snap = self.selected_map, self.snapshot
        value = heatmap.cursor_value if heatmap is not None else None
        if heatmap is None or snap is None or value is None:
            self.cursor_text = ""
            return
        col, row = heatmap.cursor
        where = f"x={row} y={col}" if self.view == "maps" else f"kx={row} ky={col}"
        self.cursor_text = f"head {self.head} at {where}: {value:.4g}"

    # -- keys --------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        """head: select the next/previous head; enlarge: toggle full size; view: cycle."""
        if name == "head":
            return self.select_head(self.head + step)
        if name == "view":
            self.view = VIEWS[(VIEWS.index(self.view) + step) % len(VIEWS)]
            self.refresh_view()
            return f"attention view: {VIEW_NAMES[self.view]}"
        if name == "enlarge":
            return self.toggle_enlarge()
        return None

    def select_head(self, head: int) -> str | None:
        """Select a head (wrapping); an enlarged map follows the selection."""
        n = len(self.maps) if self.is_mounted else self._n_heads
        if self.snapshot is None or n == 0:
            return None
        was_enlarged, old = self.enlarged, self.selected_map
        self.head = head % n
        if was_enlarged and old is not None and self.selected_map is not old:
            cursor = old.cursor
            self._maximize(self.selected_map)
            if self.selected_map is not None:
                self.selected_map.set_cursor(*cursor)
        self.refresh_view()
        return f"head {self.head}: " + self._pattern_words()

    def _pattern_words(self) -> str:
        avg = np.asarray(self.snapshot.avg_attn)[self.head]
        return f"to x {avg[0]:.3f}, to y {avg[1]:.3f}, to = {avg[2]:.3f}"

    def toggle_enlarge(self) -> str | None:
        """Maximise the selected head's map (focused, cursor on), or restore the grid."""
        if not self.is_mounted:
            return None
        if self.enlarged:
            self.screen.minimize()
            return "maps restored"
        heatmap = self.selected_map
        if self.snapshot is None or heatmap is None:
            return None
        self._focus_before = self.screen.focused
        self._maximize(heatmap)
        return f"head {self.head} enlarged: arrows move the cursor"

    def _maximize(self, heatmap: Heatmap | None) -> None:
        if heatmap is None:
            return
        for other in self.maps:
            if other is not heatmap:
                other.show_cursor = False
                other.can_focus = False
        heatmap.can_focus = True
        heatmap.show_cursor = True
        self.screen.maximize(heatmap, container=False)
        heatmap.focus()

    def _maximized_changed(self, maximized: Widget | None) -> None:
        """Back to the grid (our key, escape, or another pane): cursors off, focus back."""
        if maximized is not None and maximized in self.maps:
            return
        focused = self.screen.focused
        for heatmap in self.maps:
            heatmap.show_cursor = False
            heatmap.can_focus = False
        if focused in self.maps:
            before = self._focus_before
            usable = before is not None and before.is_attached and before.focusable
            self.screen.set_focus(before if usable else None)
        self._focus_before = None

    # -- events ------------------------------------------------------------------------------
    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        if message.heatmap is self.selected_map and self.snapshot is not None:
            self._update_cursor_text()
            self._update_table(self.snapshot)

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.refresh_view)
