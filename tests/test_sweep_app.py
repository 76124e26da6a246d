"""The sweep screen, the member view's way back, and compare, driven by Pilot on real sweeps."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from grok_tui.engine.lab.sweep import Sweep, SweepSpec
from grok_tui.engine.lab.sweep_status import SweepWatcher
from grok_tui.ui.compare_app import BACK, CompareApp
from grok_tui.ui.sweep_app import SweepApp, SweepSession, SweepView
from grok_tui.ui.widgets.phase_diagram import PhaseDiagram
from tests.sweep_harness import TINY_BASE, make_tiny_sweep

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    return make_tiny_sweep(tmp_path_factory.mktemp("sweep") / "tiny")


def member_names(app: SweepApp) -> list[str]:
    table = app.query_one(DataTable)
    return [str(k.value) for k in table.rows]


async def test_the_sweep_screen_shows_the_diagram_and_the_members(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    watcher = SweepWatcher(sweep)
    watcher.poll()
    app = SweepApp(SweepSession(sweep, "cpu"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert sorted(member_names(app)) == sorted(watcher.members)
        grid = app.query_one(PhaseDiagram).grid
        assert grid is not None and grid.x_axis == "weight_decay" and grid.ys == [None]
        for col, wd in enumerate(grid.xs):
            cell = grid.cell(col, 0)
            want = [s for s in watcher.members.values() if s.values["weight_decay"] == wd]
            assert sorted(cell.members) == sorted(s.name for s in want)  # seeds pooled
            assert sorted(cell.grok_epochs) == sorted(
                s.grokked_at for s in want if s.grokked_at is not None
            )
        assert "done" in str(app.query_one("#sweep-status").render())
        # Sort by the test loss column (s cycles through the columns).
        for _ in range(12):
            if app.view.sort == "test loss":
                break
            await pilot.press("s")
        assert app.view.sort == "test loss"
        losses = [watcher.members[n].test_loss for n in member_names(app)]
        assert losses == sorted(losses)
        await pilot.press("S")
        assert [watcher.members[n].test_loss for n in member_names(app)] == sorted(losses)[::-1]
        # y with one axis to show: a notice, nothing breaks.
        await pilot.press("y")
        # The diagram's cursor filters the table to a cell's members; escape shows all.
        await pilot.press("d", "right")
        assert len(member_names(app)) == 2
        await pilot.press("escape")
        assert len(member_names(app)) == 4
        # Enter on a row asks to open that member (the cursor stayed on the cell's member).
        first = app.current_member()
        assert first in member_names(app)
        await pilot.press("enter")
        await pilot.pause()
    assert app.return_value == ("open", first)


async def test_enter_on_a_member_whose_run_json_is_broken_marks_it_and_stays(
    tiny_sweep, tmp_path
) -> None:
    """Before, the member's app failed to open and the whole sweep screen ended with it."""
    import shutil

    path = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, path)
    sweep = Sweep.open(path)
    app = SweepApp(SweepSession(sweep, "cpu"), SweepView(sort="member"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        broken, sound = member_names(app)[:2]
        sweep.member_run(broken).meta_path.write_text("{not json")
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and app.return_value is None
        notes = [str(n.message) for n in app._notifications]
        assert any(f"{broken} cannot be opened" in n and "run.json" in n for n in notes), notes
        row = app.query_one(DataTable).get_row(broken)
        assert "damaged" in [str(cell) for cell in row]
        await pilot.press("down", "enter")  # a sound member still opens
        await pilot.pause()
    assert app.return_value == ("open", sound)


async def test_marking_members_asks_to_compare_them(tiny_sweep) -> None:
    app = SweepApp(SweepSession(Sweep.open(tiny_sweep), "cpu"), SweepView(sort="member"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("c")  # nothing marked: a notice
        await pilot.press("space", "down", "space")
        await pilot.pause()
        names = member_names(app)
        await pilot.press("c")
        await pilot.pause()
    assert app.return_value == ("compare", sorted(names[:2]))


async def test_a_sweep_trained_in_the_app_fills_in_live(tmp_path) -> None:
    base = TINY_BASE.replace(epochs=60, checkpoint_every=20)
    spec = SweepSpec(base, {"weight_decay": [1.0, 2.0]})
    sweep = Sweep.create(tmp_path / "live", spec, "cpu")
    session = SweepSession(sweep, "cpu")
    session.start()
    app = SweepApp(session)
    try:
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(600):
                await pilot.pause(0.1)
                if session.done.is_set() and app.state() == "done":
                    app.poll()
                    break
            await pilot.pause(1.2)  # one more poll
            watcher = app.watcher
            assert all(s.epoch == 60 and s.status == "done" for s in watcher.members.values())
            table = app.query_one(DataTable)
            assert table.row_count == 2
            assert "60/60" in str(table.get_row_at(0))
    finally:
        session.stop()
    assert not session.error


async def test_compare_overlays_runs_with_their_config_diff(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    runs = [sweep.member_run("wd1_s0"), sweep.member_run("wd3_s1")]
    app = CompareApp(runs, "cpu", back=True)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(300):
            await pilot.pause(0.1)
            if not app.measuring and len(app.tables) == 2:
                break
        assert [c.label for c in app.compared] == ["wd=1 seed=0", "wd=3 seed=1"]
        series, skipped = app.series(None)
        assert len(series) == 4 and not skipped  # train and test of each run
        measures, _ = app.series("restricted")
        assert len(measures) == 2  # from the measures the background thread computed
        await pilot.press("a")
        assert app.align == "grok"
        _, skipped = app.series(None)
        ungrokked = [c.name for c in app.compared if c.grok_epoch is None]
        assert skipped == ungrokked
        await pilot.press("m")
        assert app.view != "restricted"
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_value == BACK


async def test_escape_in_a_member_view_goes_back(tiny_sweep) -> None:
    from grok_tui.ui.app import GrokApp

    run = Sweep.open(tiny_sweep).member_run("wd1_s0")
    app = GrokApp(run, device="cpu", viewer=True, back=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_value == BACK
    plain = GrokApp(run, device="cpu", viewer=True)
    async with plain.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")  # not from a sweep: escape does not quit
        await pilot.pause()
        assert plain.is_running
        await pilot.press("q")
