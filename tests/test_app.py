"""The app, driven by Pilot: trains a tiny run live, pauses, resumes, quits after saving."""

from __future__ import annotations

import asyncio

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run
from grok_tui.ui.app import make_run_app
from grok_tui.ui.panes.curves import CurvesPane
from grok_tui.ui.widgets.status_bar import StatusBar

TINY = RunConfig(p=11, frac_train=0.5, epochs=100_000, checkpoint_every=50, preset="t")


async def wait_until(pilot, condition, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await pilot.pause(0.05)


async def test_train_pause_resume_quit(tmp_path) -> None:
    run = Run.create(tmp_path / "run", TINY, "cpu")
    app = make_run_app(run, train=True, device="cpu")
    session = app.sessions[0]
    async with app.run_test(size=(100, 30)) as pilot:
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: (status.info.epoch or 0) > 20)
        assert status.info.state == "training"
        first = status.info.epoch
        await wait_until(pilot, lambda: status.info.epoch > first)  # numbers advance
        assert status.info.train_loss is not None and status.info.test_loss is not None
        plot_text = str(app.query_one(CurvesPane).query_one("#curves-summary").render())
        assert "train acc >= 99% at" in plot_text

        await pilot.press("space")
        assert status.info.state == "paused"
        await wait_until(pilot, lambda: run.meta().status == "paused")
        paused_at = status.info.epoch
        await pilot.pause(0.5)
        session.poll()
        assert status.info.epoch <= paused_at + 1  # nothing moves while paused

        await pilot.press("space")
        assert status.info.state == "training"
        await wait_until(pilot, lambda: status.info.epoch > paused_at + 5)

        await pilot.press("q")
        # the trainer saves, then the app's next poll exits: leaving the block before that
        # (a loaded machine) would end the app from outside, with no return code
        await wait_until(pilot, lambda: app.return_code is not None, timeout=120)
        assert session.trainer_done.is_set()
    assert app.return_code == 0
    meta = run.meta()
    assert meta.status == "paused" and "stopped" in meta.message
    saved = run.checkpoint_epochs()[-1]
    assert saved > paused_at and run.load_resume()["epoch"] == saved
    assert not run.lock_path.exists()


async def test_view_a_finished_run_and_toggle_log(tmp_path) -> None:
    from grok_tui.engine.training.train import Trainer

    run = Run.create(tmp_path / "run", TINY.replace(epochs=30, checkpoint_every=10), "cpu")
    Trainer(run, "cpu").train()
    app = make_run_app(run, train=False)
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: status.info.epoch == 30)  # read by the follow thread
        assert status.info.state == "done"
        pane = app.query_one(CurvesPane)
        assert pane.log_y
        await pilot.press("l")
        assert not pane.log_y
        await pilot.press("r")  # finished: nothing to resume, the app says so
        await pilot.press("space")
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("q")
    assert app.return_code == 0


async def test_tiny_and_huge_terminals(tmp_path) -> None:
    run = Run.create(tmp_path / "run", TINY.replace(epochs=5, checkpoint_every=5), "cpu")
    app = make_run_app(run, train=True, device="cpu")
    async with app.run_test(size=(20, 8)) as pilot:
        await wait_until(pilot, lambda: app.sessions[0].trainer_done.is_set())
        for size in [(10, 4), (200, 60), (80, 24), (240, 70)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
        await pilot.press("q")
    assert run.meta().status == "done"


async def test_any_exit_stops_the_trainer_with_a_checkpoint(tmp_path) -> None:
    """Not only `q`: a crash or a plain exit must not leave a trainer running unsaved."""
    run = Run.create(tmp_path / "run", TINY, "cpu")
    app = make_run_app(run, train=True, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.query_one(StatusBar)
        await wait_until(pilot, lambda: (status.info.epoch or 0) > 5)
        app.exit(3)  # as Textual does after an unhandled exception in a widget
    assert app.sessions[0].trainer_done.is_set()
    assert run.meta().status == "paused"
    assert run.load_resume()["epoch"] == run.checkpoint_epochs()[-1] > 5


async def test_go_to_epoch_dialogs_do_not_stack(tmp_path) -> None:
    """`g` or the palette's "Go to epoch…" while the dialog is open opens no second one (a
    key storm stacked dozens, and escape then seemed not to work)."""
    from grok_tui.engine.training.train import Trainer
    from grok_tui.ui.screens.goto import GotoEpochScreen

    run = Run.create(tmp_path / "run", TINY.replace(epochs=30, checkpoint_every=10), "cpu")
    Trainer(run, "cpu").train()
    app = make_run_app(run, train=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("g")
        await pilot.pause()
        screen.action_goto_epoch()
        screen.action_goto_epoch()
        await pilot.pause()
        assert sum(isinstance(s, GotoEpochScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, GotoEpochScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_dialog_dismissed_from_under_another_stays_escapable(tmp_path) -> None:
    """A palette's selection (or the epoch dialog's Enter) handled after another dialog was
    pushed over it must not pop that dialog and leave itself stuck: a CI key storm left a
    palette marked dismissed under the stack top, deaf to escape, with `q` typed into it,
    and the app could not be quit (stack: run, goto, palette, goto, palette, ...)."""
    from grok_tui.engine.training.train import Trainer
    from grok_tui.ui.palette import SafeCommandPalette
    from grok_tui.ui.screens.goto import GotoEpochScreen

    run = Run.create(tmp_path / "run", TINY.replace(epochs=30, checkpoint_every=10), "cpu")
    Trainer(run, "cpu").train()
    app = make_run_app(run, train=False)
    async with app.run_test(size=(80, 24)) as pilot:
        base = app.screen
        palette = SafeCommandPalette()
        await app.push_screen(palette)
        goto = GotoEpochScreen(0, 30)
        await app.push_screen(goto)  # the command an earlier palette scheduled
        await pilot.pause()
        palette.dismiss()  # its stale selection, handled now
        palette._select_or_command()  # and the path that would run the command again
        await pilot.pause()
        assert app.screen_stack == [base, palette, goto]  # nothing popped from below
        SafeCommandPalette.open(app)  # ctrl+p: a palette is open (under the dialog)
        base.action_goto_epoch()  # g: so is the dialog
        await pilot.pause()
        assert app.screen_stack == [base, palette, goto]  # one of each at most
        over = SafeCommandPalette()
        await app.push_screen(over)  # a queued ctrl+p over the epoch dialog
        await pilot.pause()
        goto.dismiss(10)  # the dialog's Enter, handled under the palette
        await pilot.pause()
        assert app.screen_stack == [base, palette, goto, over]
        for _ in range(3):  # each escape takes the top one, as a user expects
            await pilot.press("escape")
            await pilot.pause()
        assert app.screen is base
        await pilot.press("q")
    assert app.return_code == 0


async def test_the_status_bar_and_the_curves_pane_name_the_same_phase(tmp_path) -> None:
    """Both read the live outlook of one update at once: the phase line did not wait for the
    pane's next repaint, so a screenshot showed 'cleaning up since 550' in the status bar
    and 'circuit forming since 100' (the update before) under the curves."""
    from grok_tui.engine.measures.outlook import Outlook
    from grok_tui.engine.measures.services import ProgressUpdate
    from grok_tui.engine.training.train import Trainer
    from grok_tui.ui.messages import MeasuresReady
    from grok_tui.ui.state import RunState

    run = Run.create(tmp_path / "run", TINY.replace(epochs=60), "cpu")
    Trainer(run, "cpu").train()
    app = make_run_app(run, train=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        screen, status = app.screen, app.query_one(StatusBar)
        screen.state = RunState.FOLLOWING  # the status bar names the phase of a growing run
        summary = app.query_one(CurvesPane).query_one("#curves-summary")
        for phase, since in (("circuit forming", 100), ("cleaning up", 550)):
            outlook = Outlook(phase=phase, since=since)
            screen.on_measures_ready(MeasuresReady(ProgressUpdate(None, outlook)))
            assert status.info.phase == f"{phase} since {since:,}"
            assert f"now: {phase} since {since:,}" in str(summary.render())
        await pilot.press("q")
