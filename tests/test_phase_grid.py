"""The phase diagram's numbers and the comparison's legends, from planted members."""

from __future__ import annotations

import pytest

from grok_tui.engine.core.config import preset
from grok_tui.engine.lab.phase_grid import display_axes, phase_grid, pin_choices
from grok_tui.engine.lab.sweep_status import MemberSummary
from grok_tui.engine.measures.compare import config_diff, legend

AXES = {"weight_decay": [0.5, 1.0], "frac_train": [0.3, 0.6], "lr": [1e-3, 3e-3], "seed": [0, 1]}


def member(wd, frac, lr, seed, mem, grok, status="done") -> MemberSummary:
    values = {"weight_decay": wd, "frac_train": frac, "lr": lr, "seed": seed}
    s = MemberSummary(f"m{wd}_{frac}_{lr}_{seed}", values, preset("quick"), status=status)
    s.memorised_at, s.grokked_at = mem, grok
    return s


def test_cells_pool_seeds_and_unpinned_axes() -> None:
    members = [
        member(0.5, 0.3, 1e-3, 0, 50, 1000),  # grokking
        member(0.5, 0.3, 1e-3, 1, 50, 1400),  # grokking
        member(0.5, 0.3, 3e-3, 0, 40, None),  # memorisation (done)
        member(1.0, 0.6, 1e-3, 0, 60, 80),  # comprehension
        member(1.0, 0.6, 3e-3, 0, None, None, status="running"),  # confusion so far
    ]
    grid = phase_grid(AXES, members, "weight_decay", "frac_train")
    assert grid.xs == [0.5, 1.0] and grid.ys == [0.3, 0.6]
    cell = grid.cell(0, 0)
    assert sorted(cell.grok_epochs) == [1000, 1400] and cell.median_grok == 1200
    assert cell.spread == (1000, 1400)
    assert cell.outcomes == {"grokking": 2, "memorisation": 1} and cell.outcome == "grokking"
    assert cell.mixed
    other = grid.cell(1, 1)
    assert other.outcomes == {"comprehension": 1} and other.pending == 1
    assert other.provisional == {"confusion": 1}
    assert grid.cell(1, 0).members == [] and grid.grok_range == (80, 1400)
    # Pinning lr = 3e-3 keeps only those members.
    pinned = phase_grid(AXES, members, "weight_decay", "frac_train", {"lr": 3e-3})
    assert pinned.cell(0, 0).members == ["m0.5_0.3_0.003_0"]
    assert pinned.cell(0, 0).outcome == "memorisation" and pinned.cell(0, 0).median_grok is None


def test_axes_to_show_and_slices() -> None:
    assert display_axes(AXES) == ["weight_decay", "frac_train", "lr"]
    assert display_axes({"seed": [0, 1]}) == ["seed"]
    pins = pin_choices(AXES, ["weight_decay", "frac_train"])
    assert pins == [{}, {"lr": 1e-3}, {"lr": 3e-3}]
    assert pin_choices(AXES, ["weight_decay", "lr", "frac_train"]) == [{}]


def test_a_single_axis_is_one_row() -> None:
    grid = phase_grid(AXES, [member(0.5, 0.3, 1e-3, 0, 10, 500)], "weight_decay", None)
    assert grid.ys == [None] and grid.cell(0, 0).grok_epochs == [500]


@pytest.mark.parametrize(
    ("changes", "want", "label"),
    [
        ([{}, {"weight_decay": 1.0}], ["weight_decay"], "wd=2"),
        ([{"seed": 1, "lr": 0.01}, {"seed": 2}], ["lr", "seed"], "lr=0.01 seed=1"),
        ([{"checkpoint_every": 5}, {}], [], ""),  # never a difference in what is computed
    ],
)
def test_config_diff(changes, want, label) -> None:
    cfgs = [preset("quick").replace(**c) for c in changes]
    assert config_diff(cfgs) == want
    assert legend(cfgs[0], want) == label


def test_a_cell_with_a_pending_member_is_shown_in_lower_case() -> None:
    """Before, a cell whose final members grokked showed "G ... …1" (upper case: final)
    while one member was still pending."""
    from grok_tui.engine.lab.phase_grid import Cell
    from grok_tui.ui.widgets.phase_diagram import cell_lines

    cell = Cell(1, None, ["a", "b", "c"], [900, 1100], {"grokking": 2}, 1, {"memorisation": 1})
    first, second = cell_lines(cell)
    assert first.startswith("g? ") and second.endswith("…1")
    done = Cell(1, None, ["a", "b"], [900, 1100], {"grokking": 2})
    assert cell_lines(done)[0].startswith("G ")
    undecided = Cell(1, None, ["a"], [], {"undecided": 1})
    assert cell_lines(undecided)[0] == "U"


async def test_up_on_the_diagram_goes_to_the_row_drawn_above() -> None:
    """Rows are drawn largest y on top; before, up moved to the smaller y (the row below)."""
    from textual.app import App

    from grok_tui.engine.lab.phase_grid import Cell, PhaseGrid
    from grok_tui.ui.widgets.phase_diagram import PhaseDiagram

    cells = {(i, j): Cell(x, y, [f"m{i}{j}"]) for i, x in enumerate([1, 2])
             for j, y in enumerate([0.3, 0.6, 0.9])}  # fmt: skip
    grid = PhaseGrid("weight_decay", "frac_train", [1, 2], [0.3, 0.6, 0.9], cells)

    class One(App[None]):
        def compose(self):
            yield PhaseDiagram()

    app = One()
    async with app.run_test(size=(200, 60)) as pilot:
        diagram = app.query_one(PhaseDiagram)
        diagram.show(grid)
        diagram.focus()
        await pilot.press("up")
        assert grid.ys[diagram.cursor[1]] == 0.6
        lines = diagram.render().plain.splitlines()
        row_of = {y: next(i for i, s in enumerate(lines) if s.strip().startswith(str(y)))
                  for y in (0.3, 0.6)}  # fmt: skip
        assert row_of[0.6] < row_of[0.3]  # drawn above: up went up
        await pilot.press("down", "down")
        assert grid.ys[diagram.cursor[1]] == 0.3
        # At 200 columns the diagram uses the width, not ~30 columns of it.
        assert max(len(s) for s in lines) > 80
