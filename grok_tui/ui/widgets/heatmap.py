"""Heatmap: a Line-API widget that draws a 2-D array as half-block pixels.

Each character cell is the upper half block "▀" with foreground = the top pixel and
background = the bottom pixel. A terminal cell is about twice as tall as it is wide, so
this gives two square pixels per cell: a p x p map looks square.

Layout, top to bottom (when the widget is short the bar goes first, then the axis line,
then the title; the plot always stays):

    y   title                                x=12 y=40  0.734   <- y label, title, readout
      0>▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀               <- y ticks; ">" cursor line
        ▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀
     20 ▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀
        0     20     40     60    80     100   x            <- x ticks (cursor column
        -1 ▕colour bar gradient▏ 1  256 colours  3×3 mean      reversed), x label; range

Data convention: ``data[row, col]``; row 0 is drawn at the top and labelled by ``y_label``
on the left, columns go left to right and are labelled by ``x_label``. The cursor is
``(x, y) = (col, row)`` in data coordinates.

Pooling: the widget shrinks the array by an integer factor f (the same on both axes while
``keep_aspect`` is on, so pixels stay square). By default each pixel is the value of largest
magnitude in its f x f block, sign kept (``pooling="maxabs"``): a mean would average a
high-frequency pattern or a single bright Fourier coefficient away, and a pooled map would
then show less than it holds (``pooling="mean"`` is there for smooth data). But a map with
no negative values (a ReLU neuron's activations, an attention pattern) whose period is
shorter than a block has its maximum in every block: max-abs pooling paints it one solid
colour. The default, ``pooling="auto"``, decides on the pattern (`choose_pooling`): max-abs
for a signed map; for a non-negative one whichever of max-abs, mean and a subsample (each
block's top-left value) keeps the most variation (standard deviation), so a sparse bright
spectrum keeps its peaks and a periodic activation map its stripes. NaN is ignored;
edge blocks use what they hold. When the array fits with room to spare it is drawn at full
resolution, and (``zoom``) each value becomes a k x k block of pixels, the largest k that
fits, so small maps (p = 23, a 4 x 3 attention pattern) fill the widget.

Layout and colours are public rules, so panes size their boxes without copying them:
``heatmap_layout`` (which lines hold what, and the scale, at a size), ``natural_width`` (the
cells a map needs at a height), ``shared_range`` (one colour range for a grid of maps). The
colour range comes from the data (max-abs pooling keeps its extremes at any size); a
spectrum's dominant constant can be left out of it with ``saturate_origin``.

1-D arrays are drawn as a single row (shape (1, n)); 3-D and higher raise ``ValueError``.
Empty arrays show "no data".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from rich.color import Color, ColorType
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from grok_tui.ui import colormap
from grok_tui.ui.widgets.ticks import nice_step

__all__ = [
    "Heatmap",
    "HeatmapLayout",
    "Scale",
    "block_pool",
    "fit_scale",
    "heatmap_layout",
    "natural_width",
    "pixels_to_strips",
    "shared_range",
]

HALF_BLOCK = "▀"
ColourMode = Literal["auto", "truecolor", "256"]
Pooling = Literal["maxabs", "mean", "subsample", "auto"]
POOLING_NOTE = {"maxabs": "max|·|", "mean": "mean", "subsample": "every"}

_BLACK_KEY = {False: 0x000000, True: 16}  # cursor colours per reduced mode
_WHITE_KEY = {False: 0xFFFFFF, True: 231}
_STYLE_CACHE_LIMIT = 50_000


# ---- pure helpers (tested without a terminal) -----------------------------------------------


def block_pool(
    data: np.ndarray, fy: int, fx: int | None = None, how: Pooling = "mean"
) -> np.ndarray:
    """Pool fy x fx blocks (fx defaults to fy), ignoring NaN: their means, or (``maxabs``) the
    value of largest magnitude in each, with its sign.

    Edge blocks that the shape does not fill use only the values they hold, so nothing is
    dropped; a block with no non-NaN value is NaN. +-inf propagate (mean: inf - inf = NaN).
    """
    fx = fy if fx is None else fx
    if fy < 1 or fx < 1:
        raise ValueError(f"pooling factors must be >= 1, got {fy} x {fx}")
    a = np.asarray(data, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"block_pool needs a 2-D array, got shape {a.shape}")
    if fy == 1 and fx == 1:
        return a
    if how == "auto":
        how = choose_pooling(a, fy, fx)
    if how == "subsample":
        return a[::fy, ::fx].copy()
    h, w = a.shape
    ph, pw = -(-h // fy), -(-w // fx)
    padded = np.full((ph * fy, pw * fx), np.nan)
    padded[:h, :w] = a
    blocks = padded.reshape(ph, fy, pw, fx)
    valid = ~np.isnan(blocks)
    if how == "maxabs":
        flat = blocks.transpose(0, 2, 1, 3).reshape(ph, pw, fy * fx)
        size = np.where(np.isnan(flat), -1.0, np.abs(flat))
        pick = np.argmax(size, axis=2)[..., None]
        return np.take_along_axis(flat, pick, axis=2)[..., 0]
    sums = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    counts = valid.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def choose_pooling(data: np.ndarray, fy: int, fx: int) -> Pooling:
    """How to pool this map (see the module's docstring): max-abs for a signed map or one
    that needs no pooling; for a non-negative one, the pooling whose result varies most."""
    a = np.asarray(data, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if (fy == 1 and fx == 1) or not finite.size or finite.min() < 0:
        return "maxabs"
    spread: dict[Pooling, float] = {}
    for how in ("maxabs", "mean", "subsample"):
        pooled = block_pool(a, fy, fx, how)
        values = pooled[np.isfinite(pooled)]
        spread[how] = float(values.std()) if values.size else 0.0
    return max(spread, key=lambda h: spread[h])


def shared_range(
    arrays: np.ndarray | list[np.ndarray], saturate_origin: bool = False
) -> tuple[float, float]:
    """One (min, max) colour range over several maps, so a grid of them is comparable and
    uses the whole colour map (a grokked model's attention spans ~0.3..0.7, not 0..1).
    `saturate_origin`: leave every map's [0, 0] out (a spectrum's constant)."""
    a = np.array(arrays, dtype=np.float64)
    if saturate_origin and a.ndim >= 2:
        a[..., 0, 0] = np.nan
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (0.0, 1.0)


@dataclass(frozen=True)
class Scale:
    """How data maps to display pixels: pool by (fy, fx), then repeat each value (ky, kx)."""

    fy: int = 1
    fx: int = 1
    ky: int = 1
    kx: int = 1

    def display_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        h, w = shape
        return -(-h // self.fy) * self.ky, -(-w // self.fx) * self.kx


def fit_scale(
    shape: tuple[int, int],
    max_w: int,
    max_h: int,
    *,
    keep_aspect: bool = True,
    zoom: bool = True,
) -> Scale | None:
    """The scale that fits ``shape`` (rows, cols) into max_w x max_h pixels, or None.

    Pooling factors are the smallest integers that fit; with ``keep_aspect`` both axes use
    the larger one, so pixels stay square and a square map stays square. If nothing needs
    pooling and ``zoom`` is on, values are enlarged by the largest integer that fits.
    """
    h, w = shape
    if h <= 0 or w <= 0 or max_w <= 0 or max_h <= 0:
        return None
    fy, fx = -(-h // max_h), -(-w // max_w)
    if keep_aspect:
        fy = fx = max(fy, fx)
    ky = max_h // h if (zoom and fy == 1) else 1
    kx = max_w // w if (zoom and fx == 1) else 1
    if keep_aspect:
        ky = kx = max(1, min(ky, kx))
    return Scale(fy, fx, max(1, ky), max(1, kx))


def _key_to_color(key: int, reduced: bool) -> Color:
    if reduced:
        return Color.from_ansi(key)
    return Color.from_rgb(key >> 16, (key >> 8) & 0xFF, key & 0xFF)


def _rgb_to_keys(rgb: np.ndarray, reduced: bool) -> np.ndarray:
    """One int per pixel naming its colour: 0xRRGGBB, or an xterm index when reduced."""
    if reduced:
        return colormap.rgb_to_xterm256(rgb).astype(np.int64)
    c = rgb.astype(np.int64)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


class _StyleCache:
    """Styles for (top, bottom) colour keys; building Rich styles dominates otherwise.

    Keys come from a colour map of at most 257 entries (plus NaN grey and cursor colours), so
    the caches stay small; the pair cache is cleared if some caller floods it.
    """

    def __init__(self) -> None:
        self._colors: dict[tuple[int, bool], Color] = {}
        # pair key (top << 32 | bottom) -> Style, one dict per colour mode
        self.pairs: dict[bool, dict[int, Style]] = {False: {}, True: {}}
        self._over: dict[tuple[int, bool, Color | None], Style] = {}

    def color(self, key: int, reduced: bool) -> Color:
        color = self._colors.get((key, reduced))
        if color is None:
            color = self._colors[key, reduced] = _key_to_color(key, reduced)
        return color

    def make_pair(self, pair: int, reduced: bool) -> Style:
        cache = self.pairs[reduced]
        if len(cache) > _STYLE_CACHE_LIMIT:
            cache.clear()
        style = Style.from_color(
            self.color(pair >> 32, reduced), self.color(pair & 0xFFFFFFFF, reduced)
        )
        cache[pair] = style
        return style

    def over(self, top: int, reduced: bool, background: Color | None) -> Style:
        """A top pixel with nothing below it (odd row count): the widget background there."""
        style = self._over.get((top, reduced, background))
        if style is None:
            style = Style.from_color(self.color(top, reduced), background)
            self._over[top, reduced, background] = style
        return style


_SHARED_STYLES = _StyleCache()


def _pixel_segments(
    top: np.ndarray,
    bottom: np.ndarray | None,
    reduced: bool,
    background: Color | None,
    styles: _StyleCache = _SHARED_STYLES,
) -> list[Segment]:
    """Half-block segments for one text line, merging runs of identical (top, bottom) cells.

    This is the hot loop of a full repaint (one iteration per run of equal cells), so it
    looks styles up in a plain dict by one int key.
    """
    n = len(top)
    if n == 0:
        return []
    pair = top << 32 if bottom is None else (top << 32) | bottom
    change = (np.flatnonzero(pair[1:] != pair[:-1]) + 1).tolist()
    starts, ends = [0, *change], [*change, n]
    if bottom is None:
        tops = top[starts].tolist()
        return [
            Segment(HALF_BLOCK * (e - s), styles.over(t, reduced, background))
            for s, e, t in zip(starts, ends, tops, strict=True)
        ]
    cache, make = styles.pairs[reduced], styles.make_pair
    segments = []
    for s, e, p in zip(starts, ends, pair[starts].tolist(), strict=True):
        style = cache.get(p)
        if style is None:
            style = make(p, reduced)
        segments.append(Segment(HALF_BLOCK * (e - s), style))
    return segments


def pixels_to_strips(
    rgb: np.ndarray, *, reduced: bool = False, background: Color | None = None
) -> list[Strip]:
    """Turn an (h, w, 3) uint8 image into ceil(h / 2) strips of w half-block cells.

    Line i shows pixel rows 2i (foreground) and 2i + 1 (background); an odd last row gets
    ``background`` (None: the terminal's) below it. ``reduced`` emits xterm-256 colours.
    """
    keys = _rgb_to_keys(np.asarray(rgb, dtype=np.uint8), reduced)
    h = keys.shape[0]
    return [
        Strip(
            _pixel_segments(keys[r], keys[r + 1] if r + 1 < h else None, reduced, background),
            keys.shape[1],
        )
        for r in range(0, h, 2)
    ]


def _luminance(rgb: np.ndarray) -> float:
    r, g, b = (float(v) / 255.0 for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _choose_step(px_per_unit: float, min_gap: float) -> int:
    """A round tick step (in data units, so at least 1) whose ticks lie at least min_gap
    pixels apart (a map zoomed past min_gap pixels a unit gets a tick on every unit)."""
    return max(1, int(nice_step(min_gap / px_per_unit))) if px_per_unit > 0 else 1


def _to_256(style: Style) -> Style:
    """The same style with any truecolor swapped for its nearest xterm-256 colour."""

    def down(color: Color | None) -> Color | None:
        if color is None or color.type != ColorType.TRUECOLOR or color.triplet is None:
            return None
        idx = int(colormap.rgb_to_xterm256(np.array(tuple(color.triplet), dtype=np.uint8)))
        return Color.from_ansi(idx)

    return style + Style.from_color(down(style.color), down(style.bgcolor))


# ---- the widget --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatmapLayout:
    """Which text lines of a width x height heatmap hold what, and the scale of its pixels."""

    width: int
    height: int
    title_y: int | None
    plot_y: int
    plot_lines: int
    axis_y: int | None
    bar_y: int | None
    gutter: int
    scale: Scale | None
    dh: int  # display pixels
    dw: int


class Heatmap(Widget):
    """A 2-D array as a half-block heatmap with axes, a colour bar and a cursor.

    Feed it with ``set_data``; it pools to fit, and re-renders only when the data, its size,
    the cursor or its styles change (strips are cached per line).
    """

    can_focus = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(0, -1)", "Cursor up", show=False),
        Binding("down", "cursor(0, 1)", "Cursor down", show=False),
        Binding("left", "cursor(-1, 0)", "Cursor left", show=False),
        Binding("right", "cursor(1, 0)", "Cursor right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "heatmap--title",
        "heatmap--axis",
        "heatmap--readout",
        "heatmap--notice",
    }

    DEFAULT_CSS = """
    Heatmap {
        width: 1fr;
        height: 1fr;
    }
    Heatmap > .heatmap--title {
        text-style: bold;
    }
    Heatmap:focus > .heatmap--title {
        text-style: bold reverse;
    }
    Heatmap > .heatmap--axis {
        color: $text-muted;
    }
    Heatmap > .heatmap--readout {
        text-style: bold;
    }
    Heatmap > .heatmap--notice {
        color: $text-warning;
    }
    """

    class CursorMoved(Message):
        """The cursor moved, or the value under it changed with new data.

        ``x`` is the column, ``y`` the row, in data coordinates; ``value`` is the data value
        there (not the pooled mean), NaN if the data has NaN there.
        """

        def __init__(self, heatmap: Heatmap, x: int, y: int, value: float) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.x = x
            self.y = y
            self.value = value

        @property
        def control(self) -> Heatmap:
            return self.heatmap

        def can_replace(self, message: Message) -> bool:
            # Holding an arrow key, or fast data updates, should not queue a backlog.
            return isinstance(message, Heatmap.CursorMoved) and message.heatmap is self.heatmap

    def __init__(
        self,
        data: np.ndarray | None = None,
        *,
        title: str = "",
        x_label: str = "x",
        y_label: str = "y",
        diverging: bool | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
        keep_aspect: bool = True,
        zoom: bool = True,
        show_cursor: bool = True,
        colour_mode: ColourMode = "auto",
        pooling: Pooling = "auto",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._data: np.ndarray = np.zeros((0, 0))
        self._diverging = False
        self._range: tuple[float, float] = (0.0, 1.0)
        self._title = title
        self._x_label = x_label
        self._y_label = y_label
        self._keep_aspect = keep_aspect
        self._zoom = zoom
        self._show_cursor = show_cursor
        self._colour_mode: ColourMode = colour_mode
        self._pooling: Pooling = pooling
        self._x_names: list[str] | None = None  # tick labels per column (set_data)
        self._pooled_how: Pooling = pooling  # what "auto" chose at the last size
        self._cursor = (0, 0)
        self._version = 0
        # Render caches: the pixel image for (data version, size, mode), strips per line.
        self._image_key: tuple[object, ...] | None = None
        self._layout: HeatmapLayout | None = None
        self._keys: np.ndarray = np.zeros((0, 0), dtype=np.int64)
        self._pooled_rgb: np.ndarray = np.zeros((0, 0, 3), dtype=np.uint8)
        self._lines: dict[int, Strip] = {}
        self._text_styles: dict[str | None, Style] = {}
        self._y_tick_labels: dict[int, str] = {}
        self._styles = _SHARED_STYLES  # shared: a grid of maps uses the same colours
        self.render_count = 0  # lines actually rendered (not served from cache); for tests
        if data is not None:
            self.set_data(
                data,
                diverging=diverging,
                title=title,
                x_label=x_label,
                y_label=y_label,
                vmin=vmin,
                vmax=vmax,
            )

    # -- public API ----------------------------------------------------------------------------

    def set_data(
        self,
        array: np.ndarray,
        *,
        diverging: bool | None = None,
        title: str = "",
        x_label: str = "x",
        y_label: str = "y",
        vmin: float | None = None,
        vmax: float | None = None,
        saturate_origin: bool = False,
        x_names: list[str] | None = None,
    ) -> None:
        """Show a new array (copied). ``diverging=None``: diverging iff any value is < 0.

        ``x_names``: what the x axis's ticks say for each column (an epoch per checkpoint),
        instead of the column's index.

        ``vmin``/``vmax`` None: automatic (``colormap.resolve_range``, over the whole array,
        so colours mean the same at every size); a diverging map with one end given is made
        symmetric. ``saturate_origin``: the automatic range leaves entry [0, 0] out (the
        constant of a spectrum, which would dwarf the rest; it is drawn saturated). Raises
        ValueError for arrays of 3 or more dims. Call it on the UI thread (from a message
        handler, or via ``app.call_from_thread``). Posts CursorMoved if the value under the
        cursor changed.
        """
        self._x_names = list(x_names) if x_names is not None else None
        a = np.array(array, dtype=np.float64, copy=True)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        elif a.ndim == 0:
            a = a.reshape(1, 1)
        elif a.ndim != 2:
            raise ValueError(f"Heatmap needs a 1-D or 2-D array, got shape {a.shape}")
        if a.size == 0:
            a = np.zeros((0, 0))
        old_shape, old_value = self._data.shape, self.cursor_value
        if diverging is None:  # signed data (-inf counts, NaN does not) -> diverging
            known = a[~np.isnan(a)]
            diverging = bool(known.size and known.min() < 0)
        self._data = a
        self._diverging = diverging
        ranged = a
        if saturate_origin and a.size > 1:
            ranged = a.copy()
            ranged[0, 0] = np.nan
        self._range = colormap.resolve_range(ranged, diverging=diverging, vmin=vmin, vmax=vmax)
        self._title, self._x_label, self._y_label = title, x_label, y_label
        self._cursor = self._clamp(*self._cursor)
        self._version += 1
        self._invalidate()
        self.refresh(layout=a.shape != old_shape)
        value = self.cursor_value
        if self.is_mounted and a.size and not _same_value(value, old_value):
            self.post_message(self.CursorMoved(self, *self._cursor, value))

    @property
    def data(self) -> np.ndarray:
        """The array shown (2-D, float64). Treat as read-only."""
        return self._data

    @property
    def diverging(self) -> bool:
        return self._diverging

    @property
    def value_range(self) -> tuple[float, float]:
        """The (vmin, vmax) the colours span, as shown in the colour bar."""
        return self._range

    @property
    def cursor(self) -> tuple[int, int]:
        """(x, y) = (column, row) of the cursor, in data coordinates."""
        return self._cursor

    @property
    def cursor_value(self) -> float | None:
        """The data value under the cursor, or None without data."""
        if self._data.size == 0:
            return None
        x, y = self._cursor
        return float(self._data[y, x])

    def set_cursor(self, x: int, y: int) -> None:
        """Move the cursor (clamped to the data); posts CursorMoved if it moved."""
        new = self._clamp(x, y)
        if new == self._cursor:
            return
        old, self._cursor = self._cursor, new
        self._refresh_cursor(old, new)
        value = self.cursor_value
        if value is not None:
            self.post_message(self.CursorMoved(self, new[0], new[1], value))

    @property
    def scale(self) -> Scale | None:
        """The pooling/zoom in use at the current size (None before the first render)."""
        return self._layout.scale if self._layout else None

    @property
    def colour_mode(self) -> ColourMode:
        """'auto' (follow the terminal), or force 'truecolor' or '256'."""
        return self._colour_mode

    @colour_mode.setter
    def colour_mode(self, mode: ColourMode) -> None:
        if mode not in ("auto", "truecolor", "256"):
            raise ValueError(f"colour_mode must be auto, truecolor or 256, not {mode!r}")
        self._colour_mode = mode
        self._invalidate()
        self.refresh()

    @property
    def color_system(self) -> str | None:
        """The colour system the heatmap draws for: Rich's name ('truecolor', '256', ...)."""
        if self._colour_mode != "auto":
            return self._colour_mode
        try:
            return self.app.console.color_system
        except Exception:  # not running in an app (yet): nothing to reduce for
            return "truecolor"

    @property
    def reduced_colours(self) -> bool:
        """True when drawing in xterm-256 colours because the terminal lacks truecolor."""
        return self.color_system != "truecolor"

    @property
    def keep_aspect(self) -> bool:
        """Square pixels (True), or pool/zoom each axis on its own to fill the widget."""
        return self._keep_aspect

    @keep_aspect.setter
    def keep_aspect(self, value: bool) -> None:
        self._keep_aspect = value
        self._invalidate()
        self.refresh()

    @property
    def zoom(self) -> bool:
        """Enlarge small arrays by an integer factor to fill the widget."""
        return self._zoom

    @zoom.setter
    def zoom(self, value: bool) -> None:
        self._zoom = value
        self._invalidate()
        self.refresh()

    @property
    def show_cursor(self) -> bool:
        """Draw the cursor pixel, its axis marks and the readout (off for grids of maps)."""
        return self._show_cursor

    @show_cursor.setter
    def show_cursor(self, value: bool) -> None:
        self._show_cursor = value
        self._clear_lines()
        self.refresh()

    # -- actions and events -------------------------------------------------------------------

    def action_cursor(self, dx: int, dy: int) -> None:
        """Move one displayed pixel: a whole pooled block when the map is pooled."""
        scale = self.scale or Scale()
        x, y = self._cursor
        self.set_cursor(x + dx * scale.fx, y + dy * scale.fy)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        layout = self._layout
        if offset is None or layout is None or layout.scale is None:
            return
        col, line = offset.x - layout.gutter, offset.y - layout.plot_y
        if 0 <= col < layout.dw and 0 <= line < layout.plot_lines:
            s = layout.scale
            self.set_cursor(col // s.kx * s.fx, (2 * line) // s.ky * s.fy)

    def on_focus(self) -> None:
        self._clear_lines()

    def on_blur(self) -> None:
        self._clear_lines()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._clear_lines()

    def get_content_width(self, container: Size, viewport: Size) -> int:
        """Natural width (for ``width: auto``): the full-resolution map plus its gutter."""
        h, w = self._data.shape
        return (len(str(max(h - 1, 0))) + 1 + w) if w else 7

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Natural height (for ``height: auto``): title, map (pooled to width), axis, bar."""
        if self._data.size == 0:
            return 1
        layout = heatmap_layout(self._data.shape, width, 10_000, self._keep_aspect, zoom=False)
        return 3 + layout.plot_lines

    # -- rendering ----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        self._ensure_image()
        strip = self._lines.get(y)
        if strip is None:
            strip = self._render_line(y)
            self._lines[y] = strip
            self.render_count += 1
        return strip

    def _invalidate(self) -> None:
        self._image_key = None
        self._clear_lines()

    def _clear_lines(self) -> None:
        """Drop cached strips and the text styles they were drawn with (focus, theme...)."""
        self._lines.clear()
        self._text_styles.clear()

    def _clamp(self, x: int, y: int) -> tuple[int, int]:
        h, w = self._data.shape
        return (min(max(int(x), 0), max(w - 1, 0)), min(max(int(y), 0), max(h - 1, 0)))

    def _ensure_image(self) -> None:
        """Recompute layout and pixels if data, size, options or colour mode changed."""
        width, height = self.size
        reduced = self.reduced_colours
        key = (self._version, width, height, reduced, self._keep_aspect, self._zoom)
        if key == self._image_key:
            return
        self._image_key = key
        self._clear_lines()
        layout = heatmap_layout(self._data.shape, width, height, self._keep_aspect, self._zoom)
        self._layout = layout
        s = layout.scale
        self._y_tick_labels = self._y_ticks(layout) if s is not None else {}
        if s is None:
            self._keys = np.zeros((0, 0), dtype=np.int64)
            self._pooled_rgb = np.zeros((0, 0, 3), dtype=np.uint8)
            return
        how = self._pooling
        if how == "auto":
            how = choose_pooling(self._data, s.fy, s.fx)
        self._pooled_how = how
        pooled = block_pool(self._data, s.fy, s.fx, how)
        lut = colormap.DIVERGING if self._diverging else colormap.SEQUENTIAL
        rgb = colormap.apply_lut(pooled, lut, *self._range)
        self._pooled_rgb = rgb
        keys = _rgb_to_keys(rgb, reduced)
        if s.ky > 1:
            keys = np.repeat(keys, s.ky, axis=0)
        if s.kx > 1:
            keys = np.repeat(keys, s.kx, axis=1)
        self._keys = keys

    def _style(self, component: str | None = None) -> Style:
        style = self._text_styles.get(component)
        if style is None:
            style = (
                self.rich_style if component is None else self.get_component_rich_style(component)
            )
            if self.reduced_colours:
                style = _to_256(style)
            self._text_styles[component] = style
        return style

    def _refresh_cursor(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        """Repaint only the lines the cursor touches: its pixels, gutter mark, readout, axis."""
        layout = self._layout
        if layout is None or layout.scale is None or not self._show_cursor:
            self._clear_lines()
            self.refresh()
            return
        lines: set[int] = set()
        for x, y in (old, new):
            lo, hi = self._cursor_lines(layout, x, y)
            lines.update(range(layout.plot_y + lo, layout.plot_y + hi + 1))
        for extra in (layout.title_y, layout.axis_y):
            if extra is not None:
                lines.add(extra)
        width = self.size.width
        for line in sorted(lines):
            self._lines.pop(line, None)
            self.refresh(Region(0, line, width, 1))

    @staticmethod
    def _cursor_lines(layout: HeatmapLayout, x: int, y: int) -> tuple[int, int]:
        s = layout.scale or Scale()
        row0 = (y // s.fy) * s.ky
        return row0 // 2, (row0 + s.ky - 1) // 2

    def _render_line(self, y: int) -> Strip:
        layout = self._layout
        width = self.size.width
        base = self._style()
        if layout is None or width <= 0:
            return Strip.blank(max(width, 0), base)
        if self._data.size == 0 or layout.scale is None:
            if y == 0:
                message = "no data" if self._data.size == 0 else "too small"
                return self._text_strip([(message, self._style("heatmap--notice"))], width, base)
            return Strip.blank(width, base)
        if y == layout.title_y:
            return self._title_strip(layout, base)
        if layout.plot_y <= y < layout.plot_y + layout.plot_lines:
            return self._plot_strip(layout, y - layout.plot_y, base)
        if y == layout.axis_y:
            return self._axis_strip(layout, base)
        if y == layout.bar_y:
            return self._bar_strip(layout, base)
        return Strip.blank(width, base)

    @staticmethod
    def _text_strip(parts: list[tuple[str, Style]], width: int, base: Style) -> Strip:
        segments = [Segment(text, style) for text, style in parts if text]
        return Strip(segments).crop_extend(0, width, base)

    def _title_strip(self, layout: HeatmapLayout, base: Style) -> Strip:
        axis, title_style = self._style("heatmap--axis"), self._style("heatmap--title")
        lead = self._y_label.ljust(layout.gutter) if layout.gutter else ""
        if lead and not lead.endswith(" "):
            lead += " "
        title = self._title or " "
        parts = [(lead, axis), (title, title_style)]
        used = len(lead) + len(title)
        value = self.cursor_value
        if self._show_cursor and value is not None:
            x, y = self._cursor
            v = colormap.format_value(value)
            for readout in (f"{self._x_label}={x} {self._y_label}={y}  {v}", f"{x},{y} {v}", v):
                gap = layout.width - used - len(readout)
                if gap >= 2:
                    parts += [(" " * gap, base), (readout, self._style("heatmap--readout"))]
                    break
        return self._text_strip(parts, layout.width, base)

    def _plot_strip(self, layout: HeatmapLayout, line: int, base: Style) -> Strip:
        s = layout.scale
        assert s is not None
        reduced = self.reduced_colours
        keys = self._keys
        r = 2 * line
        top = keys[r]
        bottom = keys[r + 1] if r + 1 < layout.dh else None
        on_cursor = False
        if self._show_cursor:
            x, y = self._cursor
            lo, hi = self._cursor_lines(layout, x, y)
            if lo <= line <= hi:
                on_cursor = True
                top, bottom = self._with_cursor(layout, r, top, bottom, reduced)
        segments: list[Segment] = []
        if layout.gutter:
            axis = self._style("heatmap--axis")
            label = self._y_tick_labels.get(line, "")
            mark = ">" if on_cursor else " "
            segments.append(Segment(label.rjust(layout.gutter - 1), axis))
            segments.append(Segment(mark, self._style("heatmap--readout") if on_cursor else axis))
        segments += _pixel_segments(top, bottom, reduced, base.bgcolor, self._styles)
        used = layout.gutter + layout.dw
        if used > layout.width:  # cannot happen with a fitted layout; stay safe anyway
            return Strip(segments).crop_extend(0, layout.width, base)
        if used < layout.width:
            segments.append(Segment(" " * (layout.width - used), base))
        return Strip(segments, layout.width)

    def _with_cursor(
        self,
        layout: HeatmapLayout,
        r: int,
        top: np.ndarray,
        bottom: np.ndarray | None,
        reduced: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Paint the cursor's pixel block black or white, whichever contrasts with it."""
        s = layout.scale
        assert s is not None
        x, y = self._cursor
        py, px = y // s.fy, x // s.fx
        light = _luminance(self._pooled_rgb[py, px]) > 0.45
        colour = _BLACK_KEY[reduced] if light else _WHITE_KEY[reduced]
        rows, cols = range(py * s.ky, (py + 1) * s.ky), slice(px * s.kx, (px + 1) * s.kx)
        if r in rows:
            top = top.copy()
            top[cols] = colour
        if bottom is not None and r + 1 in rows:
            bottom = bottom.copy()
            bottom[cols] = colour
        return top, bottom

    def _y_ticks(self, layout: HeatmapLayout) -> dict[int, str]:
        """Plot line -> row label: a nice step, at least 3 lines apart, plus the last row."""
        s = layout.scale
        assert s is not None
        h = self._data.shape[0]
        step = _choose_step(s.ky / (2 * s.fy), 3)
        ticks: dict[int, str] = {}
        last_line = -10
        for t in [*range(0, h, step), h - 1]:
            line = ((t // s.fy) * s.ky) // 2
            if line - last_line >= (3 if t == h - 1 else 1) and line not in ticks:
                ticks[line] = str(t)
                last_line = line
        return ticks

    def _axis_strip(self, layout: HeatmapLayout, base: Style) -> Strip:
        s = layout.scale
        assert s is not None
        w = self._data.shape[1]
        chars = [" "] * layout.dw
        names = self._x_names if self._x_names is not None and len(self._x_names) == w else None
        label_w = max((len(n) for n in names), default=1) if names else len(str(w - 1))
        step = _choose_step(s.kx / s.fx, label_w + 2)
        end = -2
        for t in [*range(0, w, step), w - 1]:
            label = names[t] if names else str(t)
            col = (t // s.fx) * s.kx
            if col > end + 1 and col + len(label) <= layout.dw:
                chars[col : col + len(label)] = label
                end = col + len(label) - 1
        axis = self._style("heatmap--axis")
        parts: list[tuple[str, Style]] = [(" " * layout.gutter, axis)]
        if self._show_cursor and self._data.size:
            cx = (self._cursor[0] // s.fx) * s.kx + (s.kx - 1) // 2
            mark = chars[cx] if chars[cx] != " " else "^"
            parts += [
                ("".join(chars[:cx]), axis),
                (mark, self._style("heatmap--readout") + Style(reverse=chars[cx] != " ")),
                ("".join(chars[cx + 1 :]), axis),
            ]
        else:
            parts.append(("".join(chars), axis))
        if layout.gutter + layout.dw + 1 + len(self._x_label) <= layout.width:
            parts.append((" " + self._x_label, axis))
        return self._text_strip(parts, layout.width, base)

    def _bar_strip(self, layout: HeatmapLayout, base: Style) -> Strip:
        """``vmin [gradient] vmax  256 colours  2×2 mean``; the bar shrinks before notes go."""
        axis = self._style("heatmap--axis")
        reduced = self.reduced_colours
        lo, hi = (colormap.format_value(v) for v in self._range)
        notes: list[tuple[str, str]] = []  # most important first
        if reduced:
            notes.append(("256 colours", "heatmap--notice"))
        s = layout.scale
        if s is not None and (s.fx > 1 or s.fy > 1):
            how = self._pooled_how
            if how == "subsample":
                notes.append((f"1 in {s.fy}×{s.fx}", "heatmap--axis"))
            else:
                notes.append((f"{s.fy}×{s.fx} {POOLING_NOTE.get(how, how)}", "heatmap--axis"))
        elif s is not None and (s.kx > 1 or s.ky > 1):
            zoom = f"zoom ×{s.kx}" if s.kx == s.ky else f"zoom {s.ky}×{s.kx}"
            notes.append((zoom, "heatmap--axis"))
        avail = layout.width - layout.gutter
        labels = len(lo) + len(hi) + 2
        want = max(8, min(40, layout.dw - labels))
        while True:
            bar_w = min(want, avail - labels - sum(2 + len(text) for text, _ in notes))
            if bar_w >= 8 or not notes:
                break
            notes.pop()
        segments = [Segment(" " * layout.gutter, base)]
        if bar_w < 3:
            segments.append(Segment(f"{lo}..{hi}", axis))
        else:
            lut = colormap.DIVERGING if self._diverging else colormap.SEQUENTIAL
            rgb = lut[np.rint(np.linspace(0, len(lut) - 1, bar_w)).astype(np.intp)]
            segments.append(Segment(lo + " ", axis))
            segments += [
                Segment(" ", Style.from_color(bgcolor=_key_to_color(k, reduced)))
                for k in _rgb_to_keys(rgb, reduced).tolist()
            ]
            segments.append(Segment(" " + hi, axis))
        for text, component in notes:
            segments += [Segment("  ", base), Segment(text, self._style(component))]
        return Strip(segments).crop_extend(0, layout.width, base)


def _same_value(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def heatmap_layout(
    shape: tuple[int, ...], width: int, height: int, keep_aspect: bool = True, zoom: bool = True
) -> HeatmapLayout:
    """Which lines hold what at this size. Extras go first when short: bar, axis, title."""
    extras = 3 if height >= 5 else max(0, height - 2)
    title_y = 0 if extras >= 1 else None
    plot_y = 1 if extras >= 1 else 0
    h = shape[0] if len(shape) == 2 else 0
    gutter = len(str(max(h - 1, 0))) + 1
    if width - gutter < 4:
        gutter = 0
    plot_lines_max = max(0, height - extras)
    scale = None
    if len(shape) == 2 and shape[0] and shape[1]:
        scale = fit_scale(
            (shape[0], shape[1]),
            width - gutter,
            2 * plot_lines_max,
            keep_aspect=keep_aspect,
            zoom=zoom,
        )
    dh, dw = scale.display_shape((shape[0], shape[1])) if scale else (0, 0)
    plot_lines = -(-dh // 2)
    axis_y = plot_y + plot_lines if extras >= 2 else None
    bar_y = (axis_y + 1) if (axis_y is not None and extras >= 3) else None
    return HeatmapLayout(
        width=width,
        height=height,
        title_y=title_y,
        plot_y=plot_y,
        plot_lines=plot_lines,
        axis_y=axis_y,
        bar_y=bar_y,
        gutter=gutter,
        scale=scale,
        dh=dh,
        dw=dw,
    )


def natural_width(
    shape: tuple[int, int], height: int, x_label: str = "x", keep_aspect: bool = True
) -> int:
    """Cells a heatmap of `shape` fills at `height` lines, unconstrained in width: its y-tick
    gutter, its pixels (pooled or zoomed to the height) and the x label after the axis."""
    layout = heatmap_layout(shape, 10_000, height, keep_aspect, zoom=True)
    return layout.gutter + layout.dw + 1 + len(x_label)
