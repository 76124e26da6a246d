"""Line, stem and bar plots (plotext) that lay themselves out at their own size.

A pane hands a `Plot` a `Figure` (what to show: series, title, axis kind); the plot draws it
in `render`, at the size it has then, so its ticks always fit its width and a pane never
redraws because a plot was resized. plotext raises on some inputs (a log axis with nothing
positive...): the plot then shows a one-line note instead of ending the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from grok_tui.ui.widgets.ticks import log_ticks, round_ticks, ticks_that_fit

RGB = tuple[int, int, int]
Series = tuple[str, list[float], list[float], RGB]  # label, xs, ys, colour

PALETTE: list[RGB] = [
    (80, 160, 255),
    (255, 120, 60),
    (120, 220, 120),
    (230, 200, 60),
    (200, 120, 230),
    (90, 220, 220),
    (240, 110, 160),
    (170, 170, 170),
]
KEY_COLOUR: RGB = (255, 120, 60)  # highlighted bars (key frequencies)
OTHER_COLOUR: RGB = (140, 140, 140)  # other bars, zero lines
MARK_COLOUR: RGB = (150, 150, 150)  # vertical marks (phase boundaries)
SELECTED_COLOUR: RGB = (255, 255, 255)  # the selected epoch's vertical line
FAINT = 0.3  # how much of its own colour a series that is not selected keeps
STEM_SPREAD = 0.15  # heads' stems at one frequency, this share of a step apart


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def faint(rgb: RGB, keep: float = FAINT) -> RGB:
    """A colour pulled towards grey, so the selected series stands out."""
    grey = 100
    r, g, b = (round(grey + keep * (c - grey)) for c in rgb)
    return (r, g, b)


def head_series(
    values: np.ndarray,
    xs: list[float],
    selected: int | None,
    label: str = "head",
    side_by_side: float = 0.0,
) -> list[Series]:
    """One series per row of `values` (a head each); the selected one in full colour and
    drawn last (on top), the others faint. `side_by_side`: shift head h's x by that share of
    a step per head around its value, so stems at one frequency stand side by side like
    grouped bars instead of hiding each other."""
    series: list[Series] = []
    n = values.shape[0]
    for h in range(n):
        colour = PALETTE[h % len(PALETTE)]
        if selected is not None and h != selected:
            colour = faint(colour)
        name = f"{label} {h}" + (" ◀" if h == selected else "")
        shift = side_by_side * (h - (n - 1) / 2)
        hx = [x + shift for x in xs] if shift else xs
        series.append((name, hx, [float(v) for v in values[h]], colour))
    if selected is not None and 0 <= selected < len(series):
        series.append(series.pop(selected))
    return series


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


def sampled_series(name: str, xs: np.ndarray, ys: np.ndarray, colour: RGB, width: int) -> Series:
    """The finite points of a column, thinned to the plot's width.

    Thinning after dropping NaN keeps sparse columns (an imported run has a test loss
    every 10th epoch only) drawn as lines rather than as the few samples that hit.
    """
    ys = np.asarray(ys, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(ys))
    pick = finite[sample_indices(len(finite), width)]
    return (name, np.asarray(xs)[pick].tolist(), ys[pick].tolist(), colour)


@dataclass
class Figure:
    """What a plot shows. `style`: lines (braille), stems (a spike from 0 per point: a
    spectrum's components are discrete) or bars (`highlight`: bar indices drawn in the key
    colour). `x_ticks`: "round" integers over the x range, or explicit (x, label) pairs."""

    title: str = ""
    series: list[Series] = field(default_factory=list)
    x_label: str = ""
    style: Literal["lines", "stems", "bars"] = "lines"
    log_y: bool = False
    x_ticks: Literal["round"] | list[tuple[float, str]] = "round"
    marks: list[float] = field(default_factory=list)  # vertical lines (phase boundaries)
    selected: float | None = None  # a brighter vertical line (the selected epoch)
    highlight: set[int] = field(default_factory=set)
    zero_line: bool = False
    legend: bool = True
    log_x: bool = False  # epochs on a log axis (grokking spans decades); x <= 0 dropped

    @property
    def empty(self) -> bool:
        return not any(ys for _, _, ys, _ in self.series)


def _stems(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A spike per point: (x, 0) -> (x, y) -> (x, 0), joined along the axis."""
    return [x for x in xs for _ in range(3)], [v for y in ys for v in (0.0, y, 0.0)]


def _bar_width(xs: list[float], fraction: float = 0.8) -> float:
    """plotext widths are relative to a series' mean spacing: make every bar `fraction` wide."""
    if len(xs) < 2:
        return fraction
    spread = max(xs) - min(xs)
    return min(1.0, fraction * (len(xs) - 1) / spread) if spread > 0 else fraction


LEGEND_MARK = "━━"
SHORT_PLOT = 12  # rows: below this a plot drops its x axis name to keep rows for the data


def legend_line(fig: Figure, width: int) -> Text | None:
    """The legend as one coloured line under the plot (None: fewer than two named series).
    plotext draws its legend inside the frame, over the first epochs of the data."""
    named = [(name, colour) for name, _, ys, colour in fig.series if name and ys]
    if not fig.legend or len(named) < 2 or fig.style == "bars":
        return None
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (name, colour) in enumerate(reversed(named)):  # drawn last (on top) first
        if i:
            text.append("  ")
        text.append(LEGEND_MARK + " ", style=hex_color(colour))
        text.append(name)
    text.truncate(width, overflow="ellipsis")
    return text


class Plot(PlotextPlot):
    """Draws its `figure` at its current size, its legend on a line of its own under the
    frame; `show` replaces the figure."""

    ALLOW_MAXIMIZE: ClassVar[bool | None] = True  # a pane's "enlarge" may maximise it

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.figure = Figure()

    def show(self, figure: Figure) -> None:
        self.figure = figure
        self.refresh()

    def render(self) -> RenderResult:
        try:
            width = max(self.size.width, 20)
            self._draw(self.figure, width)
            legend = legend_line(self.figure, width)
            height = self.size.height - (1 if legend is not None else 0)
            self._plot.plotsize(self.size.width, height)
            self._plot._set_size(self.size.width, height)  # as PlotextPlot.render does
            self._plot.theme(self._get_plotext_theme_name(self.app.theme))
            text = Text.from_ansi(self._plot.build().rstrip("\n"))
            if legend is not None:
                text.append("\n")
                text.append_text(legend)
            return text
        except Exception as exc:  # a plotting library's corner case must not end the app
            return Text(f"(plot unavailable: {type(exc).__name__})", style="dim")

    def _draw(self, fig: Figure, width: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.size.height >= SHORT_PLOT or fig.style == "bars":
            plt.xlabel(fig.x_label)
        if fig.style == "bars":
            self._bars(fig)
            return
        plotted: list[float] = []
        x_lo, x_hi = math.inf, -math.inf
        for _name, xs, ys, colour in fig.series:
            keep = [(x, y) for x, y in zip(xs, ys, strict=True)
                    if math.isfinite(y) and (y > 0 or not fig.log_y)
                    and (x > 0 or not fig.log_x)]  # fmt: skip
            if not keep:
                continue
            px, py = (list(v) for v in zip(*keep, strict=True))
            x_lo, x_hi = min(x_lo, px[0]), max(x_hi, px[-1])
            plotted.extend(py)
            if fig.style == "stems":
                px, py = _stems(px, py)
            plt.plot(px, py, color=colour, marker="braille")  # the legend: `legend_line`
        if not plotted:
            plt.title(f"{fig.title}: nothing yet" if fig.title else "nothing yet")
            return
        plt.title(fig.title)
        if fig.log_y:
            plt.yscale("log")
            ticks = log_ticks(plotted, most=ticks_that_fit(self.size.height))
            plt.yticks([t for t, _ in ticks], [label for _, label in ticks])
        if fig.zero_line:
            plt.hline(0.0, color=OTHER_COLOUR)
        if fig.log_x:
            plt.xscale("log")
        self._x_ticks(fig, int(x_lo), int(x_hi), width)
        for x in fig.marks:
            if x > 0 or not fig.log_x:
                plt.vline(x, color=MARK_COLOUR)
        if fig.selected is not None and (fig.selected > 0 or not fig.log_x):
            plt.vline(fig.selected, color=SELECTED_COLOUR)

    def _x_ticks(self, fig: Figure, lo: int, hi: int, width: int) -> None:
        if fig.log_x:
            ticks = log_ticks([float(max(lo, 1)), float(max(hi, 1))])
            self.plt.xticks([t for t, _ in ticks], [f"{t:,.0f}" for t, _ in ticks])
        elif fig.x_ticks == "round":
            ticks = round_ticks(hi, count=max(2, min(12, (width - 8) // 10)), first=min(lo, 0))
            self.plt.xticks(ticks, [f"{t:,}" for t in ticks])
        elif fig.x_ticks:
            self.plt.xticks([t for t, _ in fig.x_ticks], [label for _, label in fig.x_ticks])

    def _bars(self, fig: Figure) -> None:
        """One series of bars, those at `highlight` indices in the key colour (plotext takes
        one colour per series: two series)."""
        plt = self.plt
        _, xs, ys, _ = fig.series[0] if fig.series else ("", [], [], OTHER_COLOUR)
        for chosen, colour in ((False, OTHER_COLOUR), (True, KEY_COLOUR)):
            idx = [i for i in range(len(xs)) if (i in fig.highlight) == chosen]
            if idx:
                bx = [xs[i] for i in idx]
                plt.bar(bx, [ys[i] for i in idx], color=colour, width=_bar_width(bx))
        finite = [y for y in ys if math.isfinite(y)]
        if xs:
            plt.xlim(min(xs) - 0.5, max(xs) + 0.5)
        plt.ylim(0, max([*finite, 0.0]) * 1.05 or 1.0)
        if isinstance(fig.x_ticks, list) and fig.x_ticks:
            plt.xticks([t for t, _ in fig.x_ticks], [label for _, label in fig.x_ticks])
        plt.title(fig.title)
