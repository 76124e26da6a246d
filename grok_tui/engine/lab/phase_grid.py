"""A sweep's phase diagram as numbers: two axes, one cell per pair of values.

Each cell pools the members with that pair of values (over seeds, and over every other
axis not pinned by `pins`). It holds their grok epochs (first epoch with test accuracy >=
99%; None for a member that has not grokked), the spread of those epochs over the cell's
members, and how many members reached each outcome of Liu et al. 2022. The UI only turns
this into pixels.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from grok_tui.engine.lab.outcomes import OUTCOMES
from grok_tui.engine.lab.sweep_status import MemberSummary


@dataclass
class Cell:
    x: Any
    y: Any
    members: list[str] = field(default_factory=list)
    grok_epochs: list[int] = field(default_factory=list)  # of members that grokked
    outcomes: dict[str, int] = field(default_factory=dict)  # final outcomes only
    pending: int = 0  # members whose outcome is not final yet
    provisional: dict[str, int] = field(default_factory=dict)  # their outcomes so far

    @property
    def median_grok(self) -> float | None:
        return statistics.median(self.grok_epochs) if self.grok_epochs else None

    @property
    def spread(self) -> tuple[int, int] | None:
        """(earliest, latest) grok epoch of the cell's members that grokked."""
        return (min(self.grok_epochs), max(self.grok_epochs)) if self.grok_epochs else None

    @property
    def outcome(self) -> str | None:
        """The most common final outcome (ties: the order of OUTCOMES); None if none final."""
        if not self.outcomes:
            return None
        return max(OUTCOMES, key=lambda o: (self.outcomes.get(o, 0), -OUTCOMES.index(o)))

    @property
    def mixed(self) -> bool:
        return len([o for o, n in self.outcomes.items() if n]) > 1


@dataclass
class PhaseGrid:
    x_axis: str
    y_axis: str
    xs: list[Any]
    ys: list[Any]
    cells: dict[tuple[int, int], Cell]  # (column, row) -> cell

    def cell(self, col: int, row: int) -> Cell:
        return self.cells[(col, row)]

    @property
    def grok_range(self) -> tuple[int, int] | None:
        epochs = [e for c in self.cells.values() for e in c.grok_epochs]
        return (min(epochs), max(epochs)) if epochs else None


def display_axes(axes: Mapping[str, Sequence[Any]]) -> list[str]:
    """Axes a diagram can show: every swept axis but the seeds, which make the spread."""
    named = [a for a in axes if a not in ("seed", "data_seed")]
    return named or list(axes)


def pin_choices(axes: Mapping[str, Sequence[Any]], shown: Iterable[str]) -> list[dict[str, Any]]:
    """Ways to slice the axes not shown (seeds are always pooled): {} pools everything,
    then each combination of values."""
    others = [a for a in axes if a not in set(shown) and a not in ("seed", "data_seed")]
    combos = [
        dict(zip(others, values, strict=True)) for values in product(*(axes[a] for a in others))
    ]
    return [{}] + (combos if others else [])


def phase_grid(
    axes: Mapping[str, Sequence[Any]],
    members: Iterable[MemberSummary],
    x_axis: str,
    y_axis: str | None,
    pins: Mapping[str, Any] | None = None,
) -> PhaseGrid:
    """Pool members into cells by their values of x_axis and y_axis (None: one row)."""
    pins = pins or {}
    xs = list(axes[x_axis])
    ys = list(axes[y_axis]) if y_axis else [None]
    cells = {(i, j): Cell(x, y) for i, x in enumerate(xs) for j, y in enumerate(ys)}
    for m in members:
        if any(m.values.get(k) != v for k, v in pins.items()):
            continue
        i = xs.index(m.values[x_axis])
        j = ys.index(m.values[y_axis]) if y_axis else 0
        cell = cells[(i, j)]
        cell.members.append(m.name)
        out = m.outcome
        if out.grokked_at is not None:
            cell.grok_epochs.append(out.grokked_at)
        if out.final:
            cell.outcomes[out.name] = cell.outcomes.get(out.name, 0) + 1
        else:
            cell.pending += 1
            cell.provisional[out.name] = cell.provisional.get(out.name, 0) + 1
    return PhaseGrid(x_axis, y_axis or "", xs, ys, cells)
