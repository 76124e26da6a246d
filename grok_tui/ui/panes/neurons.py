"""Neurons: a grid of MLP neurons as (x, y) maps, one enlarged beside it with its 2D spectrum.

Blog views 3 (activations of the first neurons as (x, y) heatmaps) and 12 (those maps in
the 2D Fourier basis), plus the clustering of Nanda et al. 2023: a neuron's frequency is the
k whose 3x3 block {Const, cos k, sin k}^2 holds most of its centred spectrum, and the share
it holds is the fraction explained; neurons under 0.85 are unclustered.

Layout: the grid on the left (as many tiles as fit: 3 x 3 at 80x24, 6 x 4 at 200x60 for
p = 113), each tile a `Heatmap` with its title line only (the axis and colour-bar lines are
clipped off: in a grid of thumbnails they would take a third of every tile). Beside it, the
selected neuron: a text block, its activation map and its 2D spectrum side by side, as
large as the width allows while the grid keeps a few columns (`grid_columns`).

Keys (forwarded by the app as pane actions):
  neuron  +1/-1  next/previous neuron in the grid's list (the grid pages to follow it);
  cluster +1/-1  the grid's list: all neurons -> each key-frequency cluster -> unclustered;
  view           the grid shows activation maps -> centred spectra -> spectra with the
                 constant term (the enlarged spectrum follows the centring);
  enlarge        maximise the selected neuron's map (or spectrum, in a spectrum view),
                 focused, so the arrow keys move its cursor; again (or escape) restores.

Spectra are drawn as magnitudes |coefficient|: pooled to fit a small widget, signed
coefficients of neurons' various phases would cancel, and "which components" is the lesson.
Small maps are pooled (block means); their colour range is taken from the pooled values, so
a single bright coefficient stays visible in a thumbnail.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Grid, Horizontal, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.widgets.heatmap import Heatmap, Scale, block_pool, fit_scale

VIEWS = ("maps", "spectra", "raw spectra")
VIEW_NAMES = {
    "maps": "activation maps",
    "spectra": "2D spectra, centred",
    "raw spectra": "2D spectra with the constant",
}
UNCLUSTERED = -1
TILE_CLIP = 2  # heatmap lines hidden below each tile: the axis line and the colour bar
INFO_LINES = 5  # the selected neuron's text block
MIN_TILE_W = 9  # room for a tile title such as "117 k14"


# ---- pure helpers (also used by the Fourier pane) ----------------------------------------------


def heatmap_scale(
    shape: tuple[int, int], width: int, height: int, keep_aspect: bool = True
) -> Scale | None:
    """The scale a `Heatmap` of width x height cells will use for data of `shape`.

    Mirrors the widget's layout (title, axis and colour-bar lines, a y-tick gutter), so a
    caller can choose colour ranges from the values that will actually be drawn.
    """
    h, w = shape
    extras = 3 if height >= 5 else max(0, height - 2)
    gutter = len(str(max(h - 1, 0))) + 1
    if width - gutter < 4:
        gutter = 0
    return fit_scale((h, w), width - gutter, 2 * max(height - extras, 0), keep_aspect=keep_aspect)


def pooled_top(data: np.ndarray, scale: Scale | None) -> float:
    """The largest pooled value (block means as the heatmap draws them); 1.0 if none is > 0.

    Pooling averages a pattern's contrast away; a range from the pooled values keeps a
    thumbnail (or one bright coefficient in a pooled spectrum) visible.
    """
    a = np.asarray(data, dtype=np.float64)
    if a.size == 0:
        return 1.0
    pooled = block_pool(a, scale.fy, scale.fx) if scale is not None else a
    finite = pooled[np.isfinite(pooled)]
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def map_width(p: int, height: int, label: str = "y") -> int:
    """Cells a square p x p heatmap needs at this height (gutter, pixels, x label)."""
    scale = heatmap_scale((p, p), 10_000, height)
    dw = scale.display_shape((p, p))[1] if scale is not None else p
    return len(str(p - 1)) + 1 + dw + 1 + len(label)


def even_pooling(p: int, factor: int) -> Scale:
    """The smallest pooling factor >= `factor` whose last block is at least half full.

    A last block of one row is drawn from raw values while the others are means, so it
    stands out as a bright or dark edge line; p = 113 leaves one row for 2, 4, 7, 8, 14, 16.
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
    scale = heatmap_scale((p, p), max((side - 2) // 2, 0), height)
    return scale.display_shape((p, p))[1] if scale is not None else 0


def grid_columns(width: int, map_height: int, p: int, most: int, tile_w: int) -> int:
    """How many tile columns to give the grid; the side panel (two maps) gets the rest.

    As many as fit while the enlarged maps keep 3/4 of the size they could have and stay
    1.5 times as wide as a tile (integer pooling makes sizes jump: a p = 23 map is 12 or 23
    pixels wide, nothing between); at least two while they are as wide as a tile.
    """
    natural = 2 * map_width(p, max(map_height, 1)) + 2
    tile_px = tile_w - (len(str(p - 1)) + 1)

    def side_for(cols: int) -> int:
        return min(natural, width - cols * (tile_w + 1))

    best = big_map_pixels(side_for(1), map_height, p)
    for cols in range(max(most, 1), 1, -1):
        big = big_map_pixels(side_for(cols), map_height, p)
        if (4 * big >= 3 * best and 2 * big >= 3 * tile_px) or (cols == 2 and big >= tile_px):
            return cols
    return 1


def sorted_by_fraction(snap: Any, neurons: np.ndarray) -> np.ndarray:
    """Neurons by fraction explained, highest first (ties by index)."""
    idx = np.asarray(neurons, dtype=np.int64)
    frac = np.asarray(snap.neuron_frac)[idx]
    return idx[np.lexsort((idx, -frac))]


def neuron_words(snap: Any, neuron: int) -> str:
    """One neuron in words, e.g. 'neuron 17: freq 9, 93% explained, cluster 9 (33 neurons)'."""
    freq = int(snap.neuron_freq[neuron])
    frac = float(snap.neuron_frac[neuron])
    cluster = int(snap.neuron_cluster[neuron])
    if cluster == UNCLUSTERED:
        size = len(snap.clusters.get(UNCLUSTERED, ()))
        where = f"unclustered (< 85%; {size} such)"
    else:
        where = f"cluster {cluster} ({len(snap.clusters.get(cluster, ()))} neurons)"
    return f"neuron {neuron}: freq {freq}, {frac:.0%} explained, {where}"


def tile_title(snap: Any, neuron: int, room: int) -> str:
    """A tile's title, e.g. '17 k9 93%' (index, frequency, fraction explained), shortened
    to fit `room` cells."""
    freq, frac = int(snap.neuron_freq[neuron]), float(snap.neuron_frac[neuron])
    for title in (f"{neuron} k{freq} {frac:.0%}", f"{neuron} k{freq}"):
        if len(title) <= room:
            return title
    return str(neuron)


def magnitude(values: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(values, dtype=np.float64))


class NeuronTile(Container):
    """One grid cell: a heatmap taller than the cell, so its axis and colour bar are clipped."""

    def __init__(self) -> None:
        super().__init__(classes="neuron-tile")
        self.heatmap = Heatmap(x_label="y", y_label="x", show_cursor=False)
        self.heatmap.can_focus = False  # left/right stay with the app's checkpoint timeline

    def compose(self) -> ComposeResult:
        yield self.heatmap


# ---- the pane -----------------------------------------------------------------------------------


class NeuronsPane(AnalysisPane):
    """A grid of neuron maps (all neurons or one cluster), one neuron enlarged with its spectrum."""

    ACTIONS: ClassVar[tuple[str, ...]] = ("neuron", "cluster", "view", "enlarge")

    DEFAULT_CSS = """
    NeuronsPane { height: 1fr; }
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
    NeuronsPane #neurons-note { display: none; }
    NeuronsPane.-empty #neurons-note { display: block; }
    NeuronsPane.-empty #neurons-body { display: none; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.neuron = 0  # the selected neuron index, kept across snapshots
        self.cluster: int | None = None  # the grid's list: None = all, a frequency, or -1
        self.view = VIEWS[0]
        self.cursor_text = ""  # the enlarged map's cursor in words
        self.shape: tuple[int, int, int, int] = (3, 3, 12, 5)  # rows, cols, tile w, tile h
        self.page: np.ndarray = np.zeros(0, dtype=np.int64)  # the neurons in the grid now
        self._tiles_key: tuple[object, ...] | None = None
        self._big_key: tuple[object, ...] | None = None
        self._focus_before: Widget | None = None
        self._refit_for = -1  # the generation a deferred fit was scheduled for

    # -- composition -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield PaneNote(self.note, id="neurons-note")
        with Horizontal(id="neurons-body"):
            with Vertical(id="neurons-left"):
                yield Static("", id="neurons-grid-title")
                yield Grid(id="neurons-grid")
                yield Static("", id="neurons-empty")
            with Vertical(id="neurons-side"):
                yield Static("", id="neurons-info")
                with Horizontal(id="neurons-big"):
                    yield self._big_map("neuron-map")
                    yield self._big_map("neuron-spectrum")

    @staticmethod
    def _big_map(map_id: str) -> Heatmap:
        heatmap = Heatmap(id=map_id, x_label="y", y_label="x", show_cursor=False)
        heatmap.can_focus = False  # left/right stay with the app's checkpoint timeline
        return heatmap

    def on_mount(self) -> None:
        self.watch(self.screen, "maximized", self._maximized_changed, init=False)
        self.refresh_view()

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

    @property
    def enlarged(self) -> bool:
        return self.is_mounted and self.screen.maximized in (self.neuron_map, self.spectrum_map)

    def cluster_choices(self, snap: Any | None = None) -> list[int | None]:
        """What "cluster" cycles through: all, the key frequencies ascending, unclustered."""
        snap = snap if snap is not None else self.snapshot
        keys = [int(k) for k in snap.key_freqs] if snap is not None else []
        return [None, *keys, UNCLUSTERED]

    def neuron_list(self, snap: Any | None = None) -> np.ndarray:
        """The grid's list: all neurons by index, or one cluster by fraction explained."""
        snap = snap if snap is not None else self.snapshot
        if snap is None:
            return np.zeros(0, dtype=np.int64)
        if self.cluster is None:
            return np.arange(snap.d_mlp, dtype=np.int64)
        members = snap.clusters.get(self.cluster, np.zeros(0, dtype=np.int64))
        return sorted_by_fraction(snap, members)

    def list_name(self) -> str:
        if self.cluster is None:
            return "all neurons"
        if self.cluster == UNCLUSTERED:
            return "unclustered neurons"
        return f"cluster {self.cluster}"

    def forget_drawn(self) -> None:
        self._tiles_key = self._big_key = None

    # -- drawing -----------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Fit the grid to the space, then redraw what changed (cheap when nothing did)."""
        if not self.is_mounted:
            return
        if self.draw_empty():
            return
        snap = self.snapshot
        self.neuron = min(max(self.neuron, 0), snap.d_mlp - 1)
        self._fit(snap)
        listed = self.neuron_list(snap)
        per_page = self.shape[0] * self.shape[1]
        where = np.flatnonzero(listed == self.neuron)
        start = (int(where[0]) // per_page) * per_page if where.size else 0
        self.page = listed[start : start + per_page]
        self.set_class(len(listed) == 0, "-no-list")
        self._draw_tiles(snap)
        self._draw_big(snap)
        self._update_texts(snap, listed, start)

    def _fit(self, snap: Any) -> None:
        """Size the grid (rows, columns, tiles) and the side panel for the body's size."""
        body = self.query_one("#neurons-body", Horizontal)
        width, height = body.size
        if width <= 0 or height <= 0:
            # Hidden until now (no snapshot, or a hidden tab): fit once it is laid out. The
            # pane's own size may not change, so no Resize would come to do it.
            if self._refit_for != self.generation:
                self._refit_for = self.generation
                self.call_after_refresh(self.refresh_view)
            return
        p = snap.p
        rows, cols, tile_w, tile_h = grid_shape(width, height - 1, p)
        cols = grid_columns(width, height - INFO_LINES, p, cols, tile_w)
        shape = (rows, cols, tile_w, tile_h)
        left = self.query_one("#neurons-left", Vertical)
        grid_w = max(cols * (tile_w + 1) - 1, 1)
        if width - grid_w < 20:  # too narrow for a side panel: the grid takes it all
            grid_w = width
        if left.styles.width is None or left.styles.width.value != grid_w:
            left.styles.width = grid_w
        if shape == self.shape and len(self.tiles) == rows * cols:
            return
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
        self._tiles_key = None

    def tile_data(self, snap: Any, neuron: int) -> np.ndarray:
        """What a tile shows for one neuron in the current view."""
        if self.view == "maps":
            return np.asarray(snap.neuron_acts[:, :, neuron])
        return magnitude(snap.neuron_spectrum(int(neuron), centred=self.centred))

    def _draw_tiles(self, snap: Any) -> None:
        tiles = self.tiles
        page = [int(n) for n in self.page]
        key = (self.generation, self.view, tuple(page), self.shape, len(tiles))
        if key != self._tiles_key:
            self._tiles_key = key
            _, _, tile_w, tile_h = self.shape
            scale = heatmap_scale((snap.p, snap.p), tile_w, tile_h + TILE_CLIP)
            room = tile_w - (len(str(snap.p - 1)) + 1)
            for heatmap, neuron in zip(tiles, page, strict=False):
                data = self.tile_data(snap, neuron)
                heatmap.set_data(
                    data,
                    diverging=False,
                    vmin=0.0,
                    vmax=pooled_top(data, scale),
                    title=tile_title(snap, neuron, room),
                    x_label="y",
                    y_label="",
                )
        for i, heatmap in enumerate(tiles):
            shown = i < len(page)
            # Classes on the heatmap itself: its title style is cached until its own classes change.
            heatmap.set_class(shown and page[i] == self.neuron, "-selected")
            heatmap.set_class(
                shown and int(snap.neuron_cluster[page[i]]) == UNCLUSTERED, "-unclustered"
            )
            tile = heatmap.parent
            if isinstance(tile, Widget):
                tile.display = shown

    def _draw_big(self, snap: Any) -> None:
        spectrum = self.spectrum_map
        width, height = spectrum.size
        key = (self.generation, self.neuron, self.centred, width, height)
        if key == self._big_key:
            return
        self._big_key = key
        n = self.neuron
        self.neuron_map.set_data(
            snap.neuron_acts[:, :, n],
            diverging=False,
            vmin=0.0,
            title=f"{n}: act(x, y)",
            x_label="y",
            y_label="x",
        )
        data = magnitude(snap.neuron_spectrum(n, centred=self.centred))
        top = pooled_top(data, heatmap_scale(data.shape, width, height))
        title = "|spectrum|" if self.centred else "|spectrum| raw"
        spectrum.set_data(
            data, diverging=False, vmin=0.0, vmax=top, title=title, x_label="y", y_label="x"
        )

    def _update_texts(self, snap: Any, listed: np.ndarray, start: int) -> None:
        n = self.neuron
        shown = len(self.page)
        span = f"{start + 1}-{start + shown}/{len(listed)}" if len(listed) else "none now"
        order = "" if self.cluster is None else ", best first"
        room = self.query_one("#neurons-left", Vertical).size.width
        short = {None: "all", UNCLUSTERED: "uncl."}.get(self.cluster, f"k={self.cluster}")
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
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        cluster = int(snap.neuron_cluster[n])
        text = Text()
        text.append(f"neuron {n} · freq {freq} · {frac:.0%} explained", style="bold")
        if cluster == UNCLUSTERED:
            size = len(snap.clusters.get(UNCLUSTERED, ()))
            text.append(f"\nunclustered (< 85%): {size} such")
        else:
            text.append(f"\ncluster {cluster}: {len(snap.clusters.get(cluster, ()))} neurons")
        if n not in set(int(i) for i in listed):
            text.append(f" · not in {self.list_name()}", style="italic")
        shares = np.asarray(snap.neuron_shares)[:, n]
        best = np.argsort(-shares, kind="stable")[:3]
        text.append("\nby freq: " + "  ".join(f"{k + 1}:{shares[k]:.0%}" for k in best))
        text.append(f"\nkey freqs {' '.join(map(str, snap.key_freqs)) or 'none yet'}")
        if self.cursor_text:
            text.append("\n" + self.cursor_text, style="dim")
        else:
            text.append("\nn/N neuron c/C cluster v view z zoom", style="dim")
        self.query_one("#neurons-info", Static).update(text)

    # -- keys --------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        if name == "neuron":
            return self.step_neuron(step)
        if name == "cluster":
            return self.step_cluster(step)
        if name == "view":
            return self.step_view(step)
        if name == "enlarge":
            return self.toggle_enlarge()
        return None

    def select_neuron(self, neuron: int) -> str | None:
        """Select a neuron by index (the grid pages to it if it is in the list)."""
        snap = self.snapshot
        if snap is None:
            return None
        self.neuron = int(neuron) % snap.d_mlp
        self.cursor_text = ""
        self.refresh_view()
        return neuron_words(snap, self.neuron)

    def step_neuron(self, step: int) -> str | None:
        """Move the selection through the grid's list, wrapping."""
        listed = self.neuron_list()
        if self.snapshot is None or len(listed) == 0:
            return None
        where = np.flatnonzero(listed == self.neuron)
        pos = int(where[0]) + step if where.size else (0 if step > 0 else len(listed) - 1)
        return self.select_neuron(int(listed[pos % len(listed)]))

    def step_cluster(self, step: int) -> str | None:
        """Cycle the grid's list; select its first (best) neuron."""
        snap = self.snapshot
        if snap is None:
            return None
        choices = self.cluster_choices(snap)
        pos = choices.index(self.cluster) if self.cluster in choices else 0
        self.cluster = choices[(pos + step) % len(choices)]
        listed = self.neuron_list(snap)
        if len(listed):
            self.neuron = int(listed[0])
        self.cursor_text = ""
        self.refresh_view()
        return f"{self.list_name()}: {len(listed)} neurons"

    def step_view(self, step: int) -> str | None:
        """Grid pictures: activation maps -> centred spectra -> spectra with the constant."""
        if self.snapshot is None:
            return None
        self.view = VIEWS[(VIEWS.index(self.view) + step) % len(VIEWS)]
        self.refresh_view()
        return f"neuron grid: {VIEW_NAMES[self.view]}"

    def toggle_enlarge(self) -> str | None:
        """Maximise the selected neuron's map (or spectrum), focused; again to restore."""
        if not self.is_mounted:
            return None
        if self.enlarged:
            self.screen.minimize()
            return "neurons restored"
        if self.snapshot is None:
            return None
        target = self.neuron_map if self.view == "maps" else self.spectrum_map
        self._focus_before = self.screen.focused
        target.can_focus = True
        target.show_cursor = True
        self.screen.maximize(target, container=False)
        target.focus()
        self._big_key = None  # the spectrum's colour range follows its new size
        self.call_after_refresh(self.refresh_view)
        return f"neuron {self.neuron} enlarged: arrows move the cursor, z or escape restores"

    def _maximized_changed(self, maximized: Widget | None) -> None:
        big = (self.neuron_map, self.spectrum_map)
        if maximized is not None and maximized in big:
            return
        focused = self.screen.focused
        for heatmap in big:
            heatmap.show_cursor = False
            heatmap.can_focus = False
        if focused in big:
            before = self._focus_before
            usable = before is not None and before.is_attached and before.focusable
            self.screen.set_focus(before if usable else None)
        self._focus_before = None
        self.cursor_text = ""
        self._big_key = None
        if self.snapshot is not None:
            self.call_after_refresh(self.refresh_view)

    # -- events ------------------------------------------------------------------------------
    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        snap = self.snapshot
        if snap is None or not self.enlarged or message.heatmap is not self.screen.maximized:
            return
        col, row = message.x, message.y
        if message.heatmap is self.neuron_map:
            where = f"x={row} y={col}"
        else:
            names = snap.basis_names or tuple(str(i) for i in range(snap.p))
            where = f"x {names[row]}, y {names[col]}"
        value = message.value
        shown = "nan" if math.isnan(value) else f"{value:.4g}"
        self.cursor_text = f"neuron {self.neuron} at {where}: {shown}"
        self._update_texts(snap, self.neuron_list(snap), self._page_start())

    def _page_start(self) -> int:
        listed = self.neuron_list()
        if len(self.page) == 0 or len(listed) == 0:
            return 0
        return int(np.flatnonzero(listed == self.page[0])[0])

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.refresh_view)
