"""The phase diagram of a sweep: one coloured cell per pair of axis values.

A cell's colour is the median epoch at which its members grokked (test accuracy >= 99%),
on a log scale from the earliest to the latest grok epoch in the diagram (viridis: dark is
early); grey when none of its members grokked. Its text is the cell's outcome (the most
common final one, per Liu et al. 2022), the median grok epoch and, over seeds, the spread
of grok epochs. The arrow keys move a cursor over the cells.
"""

from __future__ import annotations

import math

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from grok_tui.engine.lab.phase_grid import Cell, PhaseGrid
from grok_tui.ui.colormap import SEQUENTIAL, apply_lut

GLYPH = {
    "comprehension": "C",
    "grokking": "G",
    "memorisation": "M",
    "confusion": "X",
    "undecided": "U",  # stopped by its budget while still improving
}
NO_GROK_RGB = (70, 70, 70)
EMPTY_RGB = (25, 25, 25)
MAX_CELL_W = 40  # a cell's width: the diagram takes the width it is given, up to this
AXIS_NAMES = {"weight_decay": "weight decay", "frac_train": "train fraction", "lr": "lr"}


def fmt_epoch(e: float) -> str:
    """1234 -> 1.2k, 56 -> 56, 12000 -> 12k."""
    if e >= 10_000:
        return f"{e / 1000:.0f}k"
    if e >= 1000:
        return f"{e / 1000:.1f}k"
    return f"{e:.0f}"


def fmt_value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def cell_rgb(cell: Cell, lo: float, hi: float) -> tuple[int, int, int]:
    median = cell.median_grok
    if median is None:
        return NO_GROK_RGB if cell.members else EMPTY_RGB
    value = np.array([math.log10(max(median, 1.0))])
    rgb = apply_lut(value, SEQUENTIAL, math.log10(max(lo, 1.0)), math.log10(max(hi, 1.0)) + 1e-9)
    return tuple(int(c) for c in rgb[0])  # type: ignore[return-value]


def text_on(rgb: tuple[int, int, int]) -> str:
    """Black on light cells, white on dark ones."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "black" if luminance > 140 else "white"


def cell_lines(cell: Cell) -> tuple[str, str]:
    """Two lines: outcome and median grok epoch; spread over seeds (or what is pending)."""
    if not cell.members:
        return "", ""
    if cell.pending:  # a member may still change it: lower case, the most common so far
        so_far = dict(cell.outcomes)
        for o, n in cell.provisional.items():
            so_far[o] = so_far.get(o, 0) + n
        common = max(so_far, key=lambda o: so_far[o], default="")
        glyph = GLYPH[common].lower() + "?" if common else "·"
    elif cell.mixed:
        glyph = "".join(GLYPH[o] for o in GLYPH if cell.outcomes.get(o))
    else:
        glyph = GLYPH[cell.outcome] if cell.outcome else "·"
    median = cell.median_grok
    first = f"{glyph} {fmt_epoch(median)}" if median is not None else glyph
    spread = cell.spread
    if spread is not None and spread[0] != spread[1]:
        second = f"{fmt_epoch(spread[0])}–{fmt_epoch(spread[1])}"
    else:
        second = f"n={len(cell.members)}"
    if cell.pending:
        second += f" …{cell.pending}"
    return first, second


class PhaseDiagram(Widget, can_focus=True):
    """Draws a PhaseGrid; posts CellSelected when the cursor moves."""

    DEFAULT_CSS = """
    PhaseDiagram { height: auto; min-height: 4; }
    PhaseDiagram:focus { background: $boost; }
    """

    BINDINGS = [
        Binding("left", "move(-1, 0)", "Cell", show=False),
        Binding("right", "move(1, 0)", "Cell", show=False),
        # Rows are drawn with the largest y value on top: up goes to a larger one.
        Binding("up", "move(0, 1)", "Cell", show=False),
        Binding("down", "move(0, -1)", "Cell", show=False),
    ]

    cursor: reactive[tuple[int, int]] = reactive((0, 0))

    class CellSelected(Message):
        def __init__(self, cell: Cell | None) -> None:
            super().__init__()
            self.cell = cell

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grid: PhaseGrid | None = None
        self.note = ""

    def show(self, grid: PhaseGrid | None, note: str = "") -> None:
        self.grid = grid
        self.note = note
        if grid is not None:
            col, row = self.cursor
            self.cursor = (min(col, len(grid.xs) - 1), min(row, len(grid.ys) - 1))
        self.refresh(layout=True)

    def selected(self) -> Cell | None:
        if self.grid is None:
            return None
        return self.grid.cells.get(self.cursor)

    def action_move(self, dx: int, dy: int) -> None:
        if self.grid is None:
            return
        col, row = self.cursor
        col = min(max(col + dx, 0), len(self.grid.xs) - 1)
        row = min(max(row + dy, 0), len(self.grid.ys) - 1)
        self.cursor = (col, row)
        self.post_message(self.CellSelected(self.selected()))

    def watch_cursor(self) -> None:
        self.refresh()

    @property
    def cell_lines(self) -> int:
        """Two text lines per cell, or one on a short terminal (under 32 rows)."""
        return 2 if self.app.size.height >= 32 else 1

    def get_content_height(self, container, viewport, width: int) -> int:
        if self.grid is None:
            return 2
        return self.cell_lines * len(self.grid.ys) + 5

    def render(self) -> Text:
        grid = self.grid
        if grid is None:
            return Text(self.note or "no members yet", style="dim")
        width = max(self.size.width, 30)
        y_labels = [fmt_value(y) if grid.y_axis else "" for y in grid.ys]
        label_w = max(len(s) for s in y_labels) + 1
        cell_w = max(7, min(MAX_CELL_W, (width - label_w) // max(len(grid.xs), 1)))
        lo, hi = grid.grok_range or (1, 1)
        out = Text()
        if grid.y_axis:
            out.append(f"↑ {AXIS_NAMES.get(grid.y_axis, grid.y_axis)}\n", style="bold")
        focused = self.has_focus
        for row in reversed(range(len(grid.ys))):  # the largest y value on top
            for line in range(self.cell_lines):
                label = y_labels[row] if line == 0 else ""
                out.append(f"{label:>{label_w - 1}} ")
                for col in range(len(grid.xs)):
                    cell = grid.cell(col, row)
                    rgb = cell_rgb(cell, lo, hi)
                    text = cell_lines(cell)[line]
                    style = Style(bgcolor=f"rgb{rgb}", color=text_on(rgb))
                    if (col, row) == self.cursor and focused:
                        style += Style(reverse=True, bold=True)
                    out.append(f" {text:<{cell_w - 2}.{cell_w - 2}} ", style=style)
                out.append("\n")
        out.append(" " * label_w)
        for x in grid.xs:
            out.append(f"{fmt_value(x):^{cell_w}.{cell_w}}")
        x_name = f"{AXIS_NAMES.get(grid.x_axis, grid.x_axis)} →"
        out.append(f"\n{x_name:^{label_w + cell_w * len(grid.xs)}}\n", style="bold")
        out.append_text(self.legend(lo, hi))
        return out

    def legend(self, lo: float, hi: float) -> Text:
        text = Text(style="dim")
        text.append(
            "G grokking  C comprehension  M memorisation  X confusion  U undecided (still "
            "improving)  (m? so far)"
        )
        if self.grid is not None and self.grid.grok_range is not None:
            text.append("   grok epoch ")
            for i, e in enumerate(np.geomspace(max(lo, 1), max(hi, 1), 5)):
                rgb = cell_rgb(Cell(None, None, ["m"], [int(e)]), lo, hi)
                text.append(
                    " " + fmt_epoch(e) + " ", style=Style(bgcolor=f"rgb{rgb}", color=text_on(rgb))
                )
                if i < 4:
                    text.append(" ")
        return text
