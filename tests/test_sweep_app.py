"""The sweep screen, the member and compare screens it opens and their way back, driven by
Pilot on real sweeps."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable

from grok_tui.engine.lab.sweep import Sweep, SweepSpec
from grok_tui.engine.lab.sweep_status import SweepWatcher
from grok_tui.ui.app import GrokApp, make_run_app, make_sweep_app
from grok_tui.ui.screens.compare import CompareScreen
from grok_tui.ui.screens.run import RunScreen
from grok_tui.ui.screens.sweep import SweepScreen, SweepView
from grok_tui.ui.widgets.phase_diagram import PhaseDiagram
from tests.sweep_harness import TINY_BASE, make_tiny_sweep

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")
SIZE = (120, 40)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    return make_tiny_sweep(tmp_path_factory.mktemp("sweep") / "tiny")


def member_names(app: GrokApp) -> list[str]:
    table = app.query_one(DataTable)
    return [str(k.value) for k in table.rows]


async def test_the_sweep_screen_shows_the_diagram_and_the_members(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    watcher = SweepWatcher(sweep)
    watcher.poll()
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SweepScreen)
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
        # Sort by the test loss column (o cycles through the columns; s is a screenshot,
        # as on every screen).
        for _ in range(12):
            if screen.view.sort == "test loss":
                break
            await pilot.press("o")
        assert screen.view.sort == "test loss"
        losses = [watcher.members[n].test_loss for n in member_names(app)]
        assert losses == sorted(losses)
        await pilot.press("O")
        assert [watcher.members[n].test_loss for n in member_names(app)] == sorted(losses)[::-1]
        # y with one axis to show: a notice, nothing breaks.
        await pilot.press("y")
        # The diagram's cursor filters the table to a cell's members; escape shows all.
        await pilot.press("d", "right")
        assert len(member_names(app)) == 2
        await pilot.press("escape")
        assert len(member_names(app)) == 4
        # Enter on a row opens that member (the cursor stayed on the cell's member) on a run
        # screen over this one; escape comes back to the table as it was.
        first = screen.current_member()
        assert first in member_names(app)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert app.screen.session.run.path == sweep.member_run(first).path
        assert app.screen.session.viewer  # the sweep's session trains it, never this screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and screen.current_member() == first
        assert len(member_names(app)) == 4


def copied_sweep_app(tiny_sweep, tmp_path):
    """A copy of the shared tiny sweep (a test may damage or write into it) and its app."""
    import shutil

    path = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, path)
    sweep = Sweep.open(path)
    return path, sweep, make_sweep_app(sweep, "cpu", view=SweepView(sort="member"))


async def test_enter_on_a_member_whose_run_json_is_broken_marks_it_and_stays(
    tiny_sweep, tmp_path
) -> None:
    """Before, the member's app failed to open and the whole sweep screen ended with it."""
    _, sweep, app = copied_sweep_app(tiny_sweep, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        broken, sound = member_names(app)[:2]
        sweep.member_run(broken).meta_path.write_text("{not json")
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, SweepScreen)
        notes = [str(n.message) for n in app._notifications]
        assert any(f"{broken} cannot be opened" in n and "run.json" in n for n in notes), notes
        row = app.query_one(DataTable).get_row(broken)
        assert "damaged" in [str(cell) for cell in row]
        await pilot.press("down", "enter")  # a sound member still opens
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert app.screen.session.run.path == sweep.member_run(sound).path


async def test_screenshots_are_saved_from_the_sweep_and_compare_screens(tiny_sweep, tmp_path):
    """Before, `s` sorted the sweep table and the palette's Screenshot saved nothing there
    nor on the compare screen."""
    path, _, app = copied_sweep_app(tiny_sweep, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        sort = app.screen.view.sort
        await pilot.press("s")
        await pilot.pause()
        assert app.screen.view.sort == sort  # not a sort
        assert len(list(path.glob("screenshot-sweep-*.svg"))) == 1
        # The palette's Screenshot does the same (Textual's own saved into a downloads folder).
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Screenshot"].callback()

        def saved() -> int:
            notes = [str(n.message) for n in app._notifications]
            return sum(f"saved {path}/screenshot-sweep-" in n for n in notes)

        for _ in range(600):  # it runs on a timer: wait for it, however slow the machine
            if saved() == 2:
                break
            await pilot.pause(0.1)
        assert saved() == 2
        await pilot.press("space", "down", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("s")
        await pilot.pause()
        assert len(list((path / "members").glob("screenshot-compare-*.svg"))) == 1


async def test_marking_members_asks_to_compare_them(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    app = make_sweep_app(sweep, "cpu", view=SweepView(sort="member"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("c")  # nothing marked: a notice
        assert isinstance(app.screen, SweepScreen)
        await pilot.press("space", "down", "space")
        await pilot.pause()
        names = member_names(app)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        compared = [run.path for run in app.screen.session.runs]
        assert compared == [sweep.member_run(n).path for n in sorted(names[:2])]


async def test_a_sweep_trained_in_the_app_fills_in_live(tmp_path) -> None:
    base = TINY_BASE.replace(epochs=60, checkpoint_every=20)
    spec = SweepSpec(base, {"weight_decay": [1.0, 2.0]})
    sweep = Sweep.create(tmp_path / "live", spec, "cpu")
    app = make_sweep_app(sweep, "cpu", train=True)
    session = app.sessions[0]
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        for _ in range(600):
            await pilot.pause(0.1)
            if session.done.is_set() and screen.state() == "done":
                screen.poll()
                break
        await pilot.pause(1.2)  # one more poll
        watcher = screen.watcher
        assert all(s.epoch == 60 and s.status == "done" for s in watcher.members.values())
        table = app.query_one(DataTable)
        assert table.row_count == 2
        assert "60/60" in str(table.get_row_at(0))
    assert not session.training and not session.failure


async def test_compare_overlays_runs_with_their_config_diff(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    runs = [sweep.member_run("wd1_s0"), sweep.member_run("wd3_s1")]
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=SIZE) as pilot:
        sweep_screen = app.screen
        sweep_screen.post_message(SweepScreen.CompareMembers(runs))  # what `c` asks
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        for _ in range(300):
            await pilot.pause(0.1)
            if not screen.session.measuring and len(screen.session.tables) == 2:
                break
        assert [c.label for c in screen.compared] == ["wd=1 seed=0", "wd=3 seed=1"]
        series, skipped = screen.series(None)
        assert len(series) == 4 and not skipped  # train and test of each run
        measures, _ = screen.series("restricted")
        assert len(measures) == 2  # from the measures the background thread computed
        await pilot.press("a")
        assert screen.align == "grok"
        _, skipped = screen.series(None)
        ungrokked = [c.name for c in screen.compared if c.grok_epoch is None]
        assert skipped == ungrokked
        await pilot.press("m")
        assert screen.view != "restricted"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is sweep_screen


async def test_escape_in_a_member_view_goes_back(tiny_sweep) -> None:
    sweep = Sweep.open(tiny_sweep)
    run = sweep.member_run("wd1_s0")
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=SIZE) as pilot:
        sweep_screen = app.screen
        sweep_screen.post_message(SweepScreen.OpenMember(run))  # what Enter asks
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is sweep_screen
    plain = make_run_app(run, device="cpu", viewer=True)
    async with plain.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("escape")  # not from a sweep: escape does not quit
        await pilot.pause()
        assert plain.is_running
        await pilot.press("q")


async def test_quitting_while_the_sweep_trains_saves_every_member_first(tmp_path) -> None:
    """`q` on a sweep this app trains: the app waits while the trainer saves, then exits."""
    spec = SweepSpec(TINY_BASE.replace(epochs=100_000), {"weight_decay": [1.0, 2.0]})
    sweep = Sweep.create(tmp_path / "long", spec, "cpu")
    app = make_sweep_app(sweep, "cpu", train=True)
    session = app.sessions[0]
    training_at_exit: list[bool] = []
    real_exit = app.exit

    def exit_spy(*args, **kwargs) -> None:
        training_at_exit.append(session.training)
        real_exit(*args, **kwargs)

    app.exit = exit_spy  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        for _ in range(600):
            await pilot.pause(0.1)
            if all(m.epoch > 20 for m in screen.watcher.members.values()):
                break
        await pilot.press("q")
        assert app.quitting
        for _ in range(600):  # the app exits by itself
            if training_at_exit:
                break
            await asyncio.sleep(0.1)
    assert training_at_exit[0] is False  # not before the trainer had saved
    assert app.return_code == 0 and not session.failure
    for run in sweep.runs().values():
        assert run.meta().status == "paused"
        assert run.load_resume()["epoch"] == run.checkpoint_epochs()[-1] > 20
        assert not run.lock_path.exists()


async def test_a_wide_screen_draws_the_selected_cell_s_curves_beside_the_diagram(tiny_sweep):
    """Before, the diagram took ~30 of 200 columns and nothing else used the rest."""
    from grok_tui.ui.widgets.plot import Plot

    sweep = Sweep.open(tiny_sweep)
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        curves = app.query_one("#cell-curves", Plot)
        diagram = app.query_one(PhaseDiagram)
        assert curves.display and diagram.size.width > 80
        await pilot.press("d", "right")
        await pilot.pause()
        cell = diagram.selected()
        assert cell is not None
        assert sorted(s[0] for s in curves.figure.series) == sorted(cell.members)
        assert "test accuracy" in curves.figure.title
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert not app.query_one("#cell-curves", Plot).display  # no room: the diagram only


async def test_a_sweep_that_cannot_train_says_why_in_a_toast(tmp_path) -> None:
    """The reason was appended to the status line only, cut off at 80 columns: `r` seemed
    to do nothing (found by probing, with a member directory removed)."""
    import shutil

    spec = SweepSpec(TINY_BASE.replace(epochs=20, checkpoint_every=10), {"seed": [0, 1]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    gone = sweep.meta().members[0].name
    shutil.rmtree(sweep.member_run(gone).path)
    app = make_sweep_app(sweep, "cpu")
    session = app.sessions[0]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("r")
        for _ in range(600):
            await pilot.pause(0.1)
            if session.done.is_set() and session.failure:
                break
        await pilot.pause(1.2)  # a poll
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "is not a run directory" in str(errors[0].message)
        assert gone in str(errors[0].message)


async def test_a_member_whose_metrics_were_emptied_is_damaged_not_confusion(tmp_path) -> None:
    """Probing emptied a finished member's metrics.jsonl: the diagram marked it X,
    "confusion" (never fits the train set), and nothing said the file was damaged."""
    spec = SweepSpec(TINY_BASE.replace(epochs=20, checkpoint_every=10), {"seed": [0, 1]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    from grok_tui.engine.lab.backends import train_sweep

    train_sweep(sweep, "cpu", processes=1)
    name = sweep.meta().members[0].name
    sweep.member_run(name).metrics_path.write_bytes(b"")
    watcher = SweepWatcher(sweep)
    watcher.poll()
    summary = watcher.members[name]
    assert summary.shown_status == "damaged" and "has no row for 21 epochs" in summary.damaged
    assert not summary.outcome.final  # pending, not a confusion
    assert watcher.counts()["damaged"] == 1
    # Resumed, the file is rewritten (reset) and its gap kept: still damaged (review: the
    # reset cleared the flag and the reader did not say the gap again: a final confusion).
    run = sweep.member_run(name)
    run.update_meta(status="paused", config=run.meta().config.replace(epochs=30))
    train_sweep(sweep, "cpu", processes=1)
    watcher.poll()
    assert summary.shown_status == "damaged" and not summary.outcome.final
    app = make_sweep_app(sweep, "cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        row = [str(c) for c in app.query_one(DataTable).get_row(name)]
        assert "damaged" in row and "? (damaged metrics)" in row
        assert not any("confusion" in cell for cell in row)


async def test_the_sweep_footer_keeps_quit_at_80_columns(tiny_sweep) -> None:
    """At 80 x 24 the footer cut 'q Quit' to 'q' (probing)."""
    from textual.widgets._footer import FooterKey

    app = make_sweep_app(Sweep.open(tiny_sweep), "cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        keys = {k.key: k for k in app.screen.query(FooterKey)}
        quit_key = keys["q"]
        assert quit_key.region.width > 0 and quit_key.region.right <= 80 - len("ctrl+p palette")


def test_the_app_hears_what_the_sweep_s_workers_wait_for(tmp_path) -> None:
    """Review: the parent's notes of claims (an unreadable claim file holding a group for
    its whole lease) reached the headless table only; the app waited in silence."""
    import time

    from grok_tui.ui.sessions.sweep import SweepSession

    spec = SweepSpec(TINY_BASE.replace(epochs=20, checkpoint_every=10), {"seed": [0, 1, 2]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    (sweep.path / "claims").mkdir()
    (sweep.path / "claims" / "group-0000.0001.json").write_bytes(b"\xff not json")
    session = SweepSession(sweep, "cpu")
    session.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any("unreadable" in t for _, t in session.notes):
            time.sleep(0.2)
    finally:
        session.stop()
        session.join()
    (note,) = [t for _, t in session.notes if "unreadable" in t]
    assert note.startswith("group 0: its claim ") and "delete that file" in note
