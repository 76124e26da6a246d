"""Neurons: a grid of MLP neurons as (x, y) maps, one enlarged beside it with its 2D spectrum.

Blog views 3 (activations of the first neurons as (x, y) heatmaps) and 12 (those maps in
the 2D Fourier basis), with the clustering of Nanda et al. 2023 (a neuron's frequency, the
fraction of its centred spectrum that frequency explains, clusters of >= 85%).

Layout: the grid on the left (as many tiles as fit: 3 x 3 at 80x24, 6 x 4 at 200x60 for
p = 113), each tile a heatmap whose axis and colour-bar lines are clipped off (in a grid of
thumbnails they would take a third of every tile). Beside it, the selected neuron: a text
block, its activation map and its 2D spectrum side by side.

The grid lists the selected cluster (all neurons by index, or one cluster best first; `c`
cycles, as in every pane) and pages to follow the selected neuron; `v` shows activation
maps, centred spectra or spectra with the constant. Spectra are magnitudes: signed
coefficients of neurons' various phases say less than "which components".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Grid, Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.ui.panes.base import AnalysisPane, PaneBody, PaneNote
from grok_tui.ui.widgets.heatmap import Heatmap, Scale, fit_scale, heatmap_layout, natural_width

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

TILE_CLIP = 2  # heatmap lines hidden below each tile: the axis line and the colour bar
INFO_LINES = 5  # the selected neuron's text block
MIN_TILE_W = 9  # room for a tile title such as "117 k14"


# ---- layout rules ------------------------------------------------------------------------------


def even_pooling(p: int, factor: int) -> Scale:
    """The smallest pooling factor >= `factor` whose last block is at least half full.

    A last block of one row is pooled from one row where the others see `factor` rows, so it
    stands out as an edge line; p = 113 leaves one row for 2, 4, 7, 8, 14, 16.
    """
    f = factor
    while f < p and 0 < p % f < (f + 1) // 2:
        f += 1
    return Scale(f, f)


def grid_shape(width: int, height: int, p: int) -> tuple[int, int, int, int]:
    """(rows, cols, tile width, tile height) of the neuron grid in width x height cells.

    Rows first, from the height: 3 at 80x24 (tiles of 5 lines), about one per 10 lines when
    taller, at most 6 (8 if pooling leaves room). A tile is its title line plus the lines
    its map's pixels fill (pooled by an `even_pooling` factor), so the axis and colour bar
    below are exactly the lines its cell clips. Then as many columns of square tiles as the
    width holds.
    """
    rows = max(1, min(3, height // 5)) if height < 15 else min(max(height // 10, 3), 6)
    budget = max(height // rows, 2)
    scale = fit_scale((p, p), 10_000, 2 * (budget - 1))
    if scale is not None and scale.fy > 1:
        scale = even_pooling(p, scale.fy)
    dh, dw = scale.display_shape((p, p)) if scale is not None else (p, p)
    tile_h = min(budget, 1 + -(-dh // 2))
    rows = max(rows, min(height // tile_h, 8))  # pooling left room: more rows
    tile_w = max(len(str(p - 1)) + 1 + dw, MIN_TILE_W)
    cols = max(1, (width + 1) // (tile_w + 1))
    return rows, cols, tile_w, tile_h


def big_map_pixels(side: int, height: int, p: int) -> int:
    """Pixel width of each of the two side-by-side maps in a side panel `side` cells wide."""
    return heatmap_layout((p, p), max((side - 2) // 2, 0), height).dw


def grid_columns(width: int, map_height: int, p: int, most: int, tile_w: int) -> int:
    """How many tile columns to give the grid; the side panel (two maps) gets the rest.

    As many as fit while the enlarged maps keep 3/4 of the size they could have and stay
    1.5 times as wide as a tile (integer pooling makes sizes jump: a p = 23 map is 12 or 23
    pixels wide, nothing between); at least two while they are as wide as a tile.
    """
    natural = 2 * natural_width((p, p), max(map_height, 1), "y") + 2
    tile_px = tile_w - (len(str(p - 1)) + 1)

    def side_for(cols: int) -> int:
        return min(natural, width - cols * (tile_w + 1))

    best = big_map_pixels(side_for(1), map_height, p)
    for cols in range(max(most, 1), 1, -1):
        big = big_map_pixels(side_for(cols), map_height, p)
        if (4 * big >= 3 * best and 2 * big >= 3 * tile_px) or (cols == 2 and big >= tile_px):
            return cols
    return 1


def tile_title(snap: Any, neuron: int, room: int) -> str:
    """A tile's title, e.g. '17 k9 93%' (index, frequency, fraction explained), shortened
    to fit `room` cells."""
    freq, frac = int(snap.neuron_freq[neuron]), float(snap.neuron_frac[neuron])
    for title in (f"{neuron} k{freq} {frac:.0%}", f"{neuron} k{freq}"):
        if len(title) <= room:
            return title
    return str(neuron)


class NeuronTile(Container):
    """One grid cell: a heatmap taller than the cell, so its axis and colour bar are clipped."""

    def __init__(self) -> None:
        super().__init__(classes="neuron-tile")
        self.heatmap = AnalysisPane.make_heatmap(x_label="y", y_label="")

    def compose(self) -> ComposeResult:
        yield self.heatmap


# ---- the pane -----------------------------------------------------------------------------------


class NeuronsPane(AnalysisPane):
    """A grid of neuron maps (all neurons or one cluster), one neuron enlarged with its spectrum."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("neuron", "cluster", "view", "enlarge")
    VIEWS: ClassVar[tuple[str, ...]] = ("maps", "spectra", "raw spectra")
    VIEW_NAMES: ClassVar[dict[str, str]] = {
        "maps": "neuron grid: activation maps",
        "spectra": "neuron grid: 2D spectra, centred",
        "raw spectra": "neuron grid: 2D spectra with the constant",
    }

    DEFAULT_CSS = """
    NeuronsPane #neurons-body { height: 1fr; }
    NeuronsPane #neurons-left { width: 40; height: 1fr; }
    NeuronsPane #neurons-grid-title { height: 1; color: $text-muted; }
    NeuronsPane #neurons-grid { grid-gutter: 0 1; height: auto; width: auto; }
    NeuronsPane .neuron-tile { overflow: hidden; height: 5; width: 12; }
    NeuronsPane .neuron-tile > Heatmap { height: 7; width: 1fr; }
    NeuronsPane .neuron-tile > Heatmap.-unclustered > .heatmap--title {
        text-style: italic;
        color: $text-muted;
    }
    NeuronsPane .neuron-tile > Heatmap.-selected > .heatmap--title {
        color: $accent;
        text-style: bold reverse;
    }
    NeuronsPane #neurons-empty { display: none; color: $text-muted; text-style: italic; }
    NeuronsPane.-no-list #neurons-empty { display: block; }
    NeuronsPane.-no-list #neurons-grid { display: none; }
    NeuronsPane #neurons-side { width: 1fr; height: 1fr; padding-left: 1; }
    NeuronsPane #neurons-info { height: auto; max-height: 5; }
    NeuronsPane #neurons-big { height: 1fr; }
    NeuronsPane #neurons-big > Heatmap { width: 1fr; height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape: tuple[int, int, int, int] = (3, 3, 12, 5)  # rows, cols, tile w, tile h
        self.page: np.ndarray = np.zeros(0, dtype=np.int64)  # the neurons in the grid now
        self.page_start = 0

    def compose(self) -> ComposeResult:
        yield PaneNote()
        with PaneBody(id="neurons-body"):
            with Vertical(id="neurons-left"):
                yield Static("", id="neurons-grid-title")
                yield Grid(id="neurons-grid")
                yield Static("", id="neurons-empty")
            with Vertical(id="neurons-side"):
                yield Static("", id="neurons-info")
                with Horizontal(id="neurons-big"):
                    yield self.make_heatmap("neuron-map", x_label="y", y_label="x")
                    yield self.make_heatmap("neuron-spectrum", x_label="k_y", y_label="k_x")

    # -- public views of the state -------------------------------------------------------------
    @property
    def tiles(self) -> list[Heatmap]:
        """The grid's heatmaps, in reading order (only the first len(page) are shown)."""
        if not self.is_mounted:
            return []
        grid = self.query_one("#neurons-grid", Grid)
        return [tile.heatmap for tile in grid.query_children(NeuronTile)]

    @property
    def neuron_map(self) -> Heatmap:
        return self.query_one("#neuron-map", Heatmap)

    @property
    def spectrum_map(self) -> Heatmap:
        return self.query_one("#neuron-spectrum", Heatmap)

    @property
    def centred(self) -> bool:
        """Spectra with the mean removed (the clustering's view) unless "raw spectra"."""
        return self.view != "raw spectra"

    def neuron_list(self) -> np.ndarray:
        """The grid's list: all neurons by index, or the selected cluster best first."""
        snap = self.snapshot
        return np.zeros(0, dtype=np.int64) if snap is None else snap.neurons_in(self.cluster)

    def list_name(self) -> str:
        if self.cluster is None:
            return "all neurons"
        unclustered = self.snapshot is not None and self.cluster == self.snapshot.UNCLUSTERED
        return "unclustered neurons" if unclustered else f"cluster {self.cluster}"

    def select_neuron(self, neuron: int) -> str | None:
        """Select a neuron by index (the grid pages to it if it is in the list)."""
        snap = self.snapshot
        if snap is None:
            return None
        self.select(neuron=int(neuron) % snap.d_mlp)
        return snap.describe_neuron(self.neuron)

    def enlarge_target(self) -> Widget | None:
        return self.neuron_map if self.view == "maps" else self.spectrum_map

    def enlarged_name(self) -> str:
        return f"neuron {self.neuron}"

    # -- drawing -----------------------------------------------------------------------------
    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        rebuilt = "size" in changed and self._fit(snap)
        listed = snap.neurons_in(self.cluster)
        per_page = self.shape[0] * self.shape[1]
        where = np.flatnonzero(listed == self.neuron)
        start = (int(where[0]) // per_page) * per_page if where.size else 0
        page = listed[start : start + per_page]
        moved = start != self.page_start or not np.array_equal(page, self.page)
        self.page, self.page_start = page, start
        self.set_class(len(listed) == 0, "-no-list")
        if rebuilt or moved or changed & {"snapshot", "view", "cluster"}:
            self._draw_tiles(snap)
        self._mark_tiles(snap)
        if changed & {"snapshot", "neuron", "view"}:
            self._draw_big(snap)
        self._update_texts(snap, listed)

    def _fit(self, snap: Snapshot) -> bool:
        """Size the grid and the side panel to the body; True if the tiles were rebuilt."""
        width, height = self.query_one("#neurons-body").size
        if width <= 0 or height <= 0:
            return False
        p = snap.p
        rows, cols, tile_w, tile_h = grid_shape(width, height - 1, p)
        cols = grid_columns(width, height - INFO_LINES, p, cols, tile_w)
        left = self.query_one("#neurons-left", Vertical)
        grid_w = max(cols * (tile_w + 1) - 1, 1)
        if width - grid_w < 20:  # too narrow for a side panel: the grid takes it all
            grid_w = width
        if left.styles.width is None or left.styles.width.value != grid_w:
            left.styles.width = grid_w
        shape = (rows, cols, tile_w, tile_h)
        if shape == self.shape and len(self.tiles) == rows * cols:
            return False
        self.shape = shape
        grid = self.query_one("#neurons-grid", Grid)
        grid.styles.grid_size_columns = cols
        grid.styles.grid_size_rows = rows
        grid.styles.grid_columns = str(tile_w)
        grid.styles.grid_rows = str(tile_h)
        old = list(grid.query_children(NeuronTile))
        want = rows * cols
        for tile in old[want:]:
            tile.remove()
        new = [NeuronTile() for _ in range(want - len(old))]
        for tile in [*old[:want], *new]:
            tile.styles.width = tile_w
            tile.styles.height = tile_h
            tile.heatmap.styles.height = tile_h + TILE_CLIP
        if new:
            grid.mount(*new)
        return True

    def tile_data(self, snap: Snapshot, neuron: int) -> np.ndarray:
        """What a tile shows for one neuron in the current view."""
        if self.view == "maps":
            return snap.neuron_acts[:, :, neuron]
        return snap.neuron_spectrum(int(neuron), centred=self.centred, magnitude=True)

    def _draw_tiles(self, snap: Snapshot) -> None:
        room = self.shape[2] - (len(str(snap.p - 1)) + 1)
        for heatmap, neuron in zip(self.tiles, self.page.tolist(), strict=False):
            heatmap.set_data(self.tile_data(snap, neuron), diverging=False, vmin=0.0,
                             title=tile_title(snap, neuron, room), x_label="y",
                             y_label="")  # fmt: skip
        for i, heatmap in enumerate(self.tiles):
            tile = heatmap.parent
            if isinstance(tile, Widget):
                tile.display = i < len(self.page)

    def _mark_tiles(self, snap: Snapshot) -> None:
        # Classes on the heatmap itself: its title style is cached until its classes change.
        for heatmap, neuron in zip(self.tiles, self.page.tolist(), strict=False):
            heatmap.set_class(neuron == self.neuron, "-selected")
            heatmap.set_class(int(snap.neuron_cluster[neuron]) == snap.UNCLUSTERED, "-unclustered")

    def _draw_big(self, snap: Snapshot) -> None:
        n = self.neuron
        self.neuron_map.set_data(snap.neuron_acts[:, :, n], diverging=False, vmin=0.0,
                                 title=f"{n}: act(x, y)", x_label="y", y_label="x")  # fmt: skip
        # Its axes are Fourier components (of x down, of y across), not inputs.
        title = "|spectrum| (k_x, k_y)" if self.centred else "|spectrum| raw (k_x, k_y)"
        self.spectrum_map.set_data(
            snap.neuron_spectrum(n, centred=self.centred, magnitude=True),
            diverging=False, vmin=0.0, title=title, x_label="k_y", y_label="k_x",
        )  # fmt: skip

    def _update_texts(self, snap: Snapshot, listed: np.ndarray) -> None:
        start, shown = self.page_start, len(self.page)
        span = f"{start + 1}-{start + shown}/{len(listed)}" if len(listed) else "none now"
        order = "" if self.cluster is None else ", best first"
        room = self.query_one("#neurons-left", Vertical).size.width
        short = {None: "all", snap.UNCLUSTERED: "uncl."}.get(self.cluster, f"k={self.cluster}")
        options = [
            f"{self.list_name()}{order}: {span} · {self.view}",
            f"{self.list_name()}: {span} · {self.view}",
            f"{short}: {span} · {self.view}",
            f"{span} · {self.view}",
        ]
        grid_title = next((t for t in options if len(t) <= room), options[-1])
        self.query_one("#neurons-grid-title", Static).update(grid_title)
        self.query_one("#neurons-empty", Static).update(
            f"no {self.list_name()} at epoch {snap.epoch:,}: c/C cycles the clusters"
        )
        n = self.neuron
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        text = Text()
        text.append(f"neuron {n} · freq {freq} · {frac:.0%} explained", style="bold")
        text.append("\n" + snap.describe_cluster(int(snap.neuron_cluster[n])))
        if n not in set(listed.tolist()):
            text.append(f" · not in {self.list_name()}", style="italic")
        top = snap.neuron_top_freqs(n)
        text.append("\nby freq: " + "  ".join(f"{k}:{share:.0%}" for k, share in top))
        text.append(f"\nkey freqs {' '.join(map(str, snap.key_freqs)) or 'none yet'}")
        if self.cursor_text:
            text.append("\n" + self.cursor_text, style="dim")
        else:
            text.append("\nn/N neuron c/C cluster v view z zoom", style="dim")
        self.query_one("#neurons-info", Static).update(text)

    def describe_cursor(self, snap: Snapshot, heatmap: Heatmap, x: int, y: int) -> str:
        if heatmap is self.neuron_map:
            return f"neuron {self.neuron} at x={y} y={x}"
        return f"neuron {self.neuron} at x {snap.basis_names[y]}, y {snap.basis_names[x]}"
