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
