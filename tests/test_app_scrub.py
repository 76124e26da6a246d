"""Scrubbing checkpoints in the app: every pane shows the selected one, holding a key never
queues stale analyses, damaged or missing checkpoints are said, not raised."""

from __future__ import annotations

import asyncio
import random
import string
import time

import numpy as np
import pytest

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import TrainControl, Trainer
from grok_tui.ui.app import GrokApp, make_run_app
from grok_tui.ui.panes.base import AnalysisPane
from grok_tui.ui.panes.curves import CurvesPane
from grok_tui.ui.screens.run import ANALYSIS_PANES, RunScreen
from grok_tui.ui.widgets.status_bar import StatusBar
from grok_tui.ui.widgets.timeline import CheckpointTimeline

CFG = RunConfig(p=23, frac_train=0.6, lr=3e-3, epochs=300, checkpoint_every=20, preset="t")


def run_screen(app: GrokApp) -> RunScreen:
    """The run screen (the app's first), whatever is on top of it."""
    screen = app.screen_stack[0]
    assert isinstance(screen, RunScreen)
    return screen


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Run:
    run = Run.create(tmp_path_factory.mktemp("scrub") / "run", CFG, "cpu")
    Trainer(run, "cpu").train()
    return run


async def settle(pilot, app: GrokApp, timeout: float = 30.0) -> None:
    """Wait until the shown snapshot is the selected checkpoint's (or its error is shown)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    screen = run_screen(app)
    timeline = screen.query_one(CheckpointTimeline)
    while True:
        await pilot.pause(0.05)
        snap = screen.snapshot
        if (snap is not None and snap.epoch == timeline.selected) or (
            snap is None and screen.snapshot_note and "analysing" not in screen.snapshot_note
        ):
            return
        assert loop.time() < deadline, f"no snapshot for {timeline.selected}"


async def loaded(pilot, app: GrokApp, timeout: float = 30.0) -> None:
    """Wait for the follow thread's first look at the run (its checkpoints)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not app.query_one(CheckpointTimeline).epochs:
        assert loop.time() < deadline, "no checkpoints read"
        await pilot.pause(0.05)


async def test_keys_move_the_selection_and_every_pane_follows(trained: Run) -> None:
    app = make_run_app(trained)
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(pilot, app)
        timeline = app.query_one(CheckpointTimeline)
        assert timeline.epochs == list(range(0, 301, 20)) and timeline.selected == 300
        await pilot.press("2")
        await settle(pilot, app)
        assert run_screen(app).snapshot.epoch == 300
        await pilot.press("left")
        await settle(pilot, app)
        assert timeline.selected == 280 and run_screen(app).snapshot.epoch == 280
        await pilot.press("shift+left")
        await settle(pilot, app)
        assert timeline.selected == 80 and not timeline.follow
        await pilot.press("home")
        await settle(pilot, app)
        assert run_screen(app).snapshot.epoch == 0
        for key, (pane_id, _, _) in zip("23456", ANALYSIS_PANES, strict=True):
            await pilot.press(key)
            await pilot.pause(0.1)
            pane = app.query_one(f"#{pane_id}-pane", AnalysisPane)
            assert pane.snapshot is run_screen(app).snapshot and pane.snapshot.epoch == 0, pane_id
        await pilot.press("end")
        await settle(pilot, app)
        assert run_screen(app).snapshot.epoch == 300


async def test_holding_a_key_analyses_only_the_newest_request(trained: Run) -> None:
    app = make_run_app(trained)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await settle(pilot, app)
        before = len(app.sessions[0].snapshots.computed)
        timeline = app.query_one(CheckpointTimeline)
        for _ in range(14):  # key repeat outrunning the app: 14 steps before it looks
            timeline.step(-1)
        await settle(pilot, app)
        assert timeline.selected == 20 and run_screen(app).snapshot.epoch == 20
        analysed = app.sessions[0].snapshots.computed[before:]
        assert analysed[-1] == 20
        assert len(analysed) < 14  # requests that were overtaken were never computed


async def test_damaged_and_vanished_checkpoints_are_handled(trained: Run, tmp_path) -> None:
    import shutil

    run = Run(shutil.copytree(trained.path, tmp_path / "copy"))
    damaged = run.checkpoint_path(140)
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated
    app = make_run_app(run)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("3")
        timeline = app.query_one(CheckpointTimeline)
        timeline.jump_to(140)
        await settle(pilot, app)
        assert run_screen(app).snapshot is None and "damaged" in run_screen(app).snapshot_note
        pane = app.query_one("#neurons-pane", AnalysisPane)
        assert pane.snapshot is None and "damaged" in pane.note and "damaged" in timeline.note
        run.checkpoint_path(120).unlink()  # gone from under the viewer: the timeline follows
        await pilot.pause(1.0)
        assert 120 not in timeline.epochs
        await pilot.press("home")  # and the app goes on
        await settle(pilot, app)
        assert run_screen(app).snapshot is not None and run_screen(app).snapshot.epoch == 0


async def test_a_run_without_checkpoints(tmp_path) -> None:
    run = Run.create(tmp_path / "empty", CFG, "cpu")
    app = make_run_app(run)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in "12345":
            await pilot.press(key)
            await pilot.pause(0.05)
        pane = app.query_one("#circuits-pane", AnalysisPane)
        assert pane.snapshot is None and "no checkpoints" in pane.note
        await pilot.press("left", "right", "home", "end", "g", "s", "f", "z", "h", "n", "c")
        await pilot.pause(0.2)


async def test_go_to_epoch_and_screenshot(trained: Run, tmp_path) -> None:
    import shutil

    run = Run(shutil.copytree(trained.path, tmp_path / "copy"))
    app = make_run_app(run)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app)
        await pilot.press("g")
        await pilot.pause(0.1)
        await pilot.press("1", "5", "5", "enter")
        await pilot.pause(0.1)
        assert app.query_one(CheckpointTimeline).selected == 160  # nearest to 155
        await pilot.press("s")
        await pilot.pause(0.2)
    shots = list(run.path.glob("screenshot-curves-epoch160-*.svg"))
    assert len(shots) == 1 and shots[0].read_text().startswith("<svg")


async def test_follow_the_newest_checkpoint_while_training(tmp_path) -> None:
    cfg = CFG.replace(epochs=100_000)
    run = Run.create(tmp_path / "live", cfg, "cpu")
    app = make_run_app(run, train=True)
    async with app.run_test(size=(100, 30)) as pilot:
        timeline = app.query_one(CheckpointTimeline)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(timeline.epochs) < 3:
            assert loop.time() < deadline
            await pilot.pause(0.1)
        assert timeline.follow and timeline.selected == timeline.epochs[-1]
        await pilot.press("f")  # stop following: the selection stays put
        held = timeline.selected
        while len(timeline.epochs) < 5:
            assert loop.time() < deadline
            await pilot.pause(0.1)
        assert timeline.selected == held
        await pilot.press("f")
        assert timeline.follow and timeline.selected == timeline.epochs[-1]
        await pilot.press("q")


@pytest.fixture
def pilot_ignores_cpu_load(monkeypatch) -> None:
    """Pilot waits for the *process* to go idle after each key (up to 1 s, twice), and a
    training thread never lets it: 2 s a press. Messages are still awaited; only that CPU
    heuristic is replaced by a short sleep, so a storm of keys during training takes seconds."""
    import textual.app
    import textual.pilot

    async def short_idle(*_args, **_kwargs) -> None:
        await asyncio.sleep(0.005)

    monkeypatch.setattr(textual.app, "wait_for_idle", short_idle)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", short_idle)


@pytest.mark.slow
@pytest.mark.usefixtures("pilot_ignores_cpu_load")
async def test_random_key_storm_with_resizes_while_training(tmp_path) -> None:
    """Random bound and unbound keys, and resizes from 20x8 to 250x70: nothing raises."""
    run = Run.create(tmp_path / "storm", CFG.replace(epochs=100_000), "cpu")
    app = make_run_app(run, train=True)
    rng = random.Random(7)
    arrows = ["left", "right", "shift+left", "shift+right", "home", "end", "up", "down"]
    bound = [*"123456hHnNcCbBvVzflmMrg?sx", *arrows, "space", "escape", "tab", "enter"]
    unbound = [*"aAeEijkopquwyZ0789!@#", "f5", "ctrl+x", "pageup", "delete"]
    unbound.remove("q")
    async with app.run_test(size=(100, 30)) as pilot:
        for i in range(250):
            key = rng.choice(bound if rng.random() < 0.7 else unbound)
            if key == "s" and rng.random() < 0.9:
                key = "w"  # a few screenshots are enough
            await pilot.press(key)
            if i % 40 == 0:
                await pilot.resize_terminal(rng.randint(20, 250), rng.randint(8, 70))
            if rng.random() < 0.1:
                await pilot.pause(0.05)
            if app.screen.is_modal:
                await pilot.press(*rng.choice([["escape"], [*string.digits[:3], "enter"]]))
        assert app.is_running
        await pilot.press("escape")
        await pilot.press("q")
    assert app.sessions[0].trainer_done.is_set()
    assert run.meta().status in ("paused", "done")


async def test_progress_measures_stream_live_from_the_first_checkpoint(tmp_path) -> None:
    """No gate on test accuracy: a live run that has not generalised gets its measures as
    its checkpoints are written, and the same run opened as a viewer finds them cached."""
    run = Run.create(tmp_path / "young", CFG.replace(epochs=5_000), "cpu")
    stopped = Trainer(run, "cpu").train(TrainControl(stop_at=60))
    assert (stopped.status, stopped.epoch, run.checkpoint_epochs()[-1]) == ("paused", 60, 60)
    assert max(r["test_acc"] for r in run.read_metrics()) < 0.99
    app = make_run_app(run, train=True)
    async with app.run_test(size=(100, 30)) as pilot:
        curves = app.query_one(CurvesPane)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if curves.measures is not None and len(curves.measures) >= 6:
                break
            await pilot.pause(0.1)
        assert len(curves.measures) >= 6  # 0..60 and the new ones, while it trains
        assert run_screen(app).state == "training"
        assert (curves.measures["test_acc"] < 0.99).all()  # measured before it generalised
        assert curves.outlook is not None and curves.outlook.phase
        assert np.isfinite(curves.measures["gini_W_E"]).all()
        assert curves.measures.spectrogram_W_E.shape[0] == len(curves.measures)
        await pilot.press("q")
    viewer = make_run_app(run, train=False)
    async with viewer.run_test(size=(100, 30)) as pilot:
        curves = viewer.query_one(CurvesPane)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if curves.measures is not None and len(curves.measures) == len(run.checkpoint_epochs()):
                break
            await pilot.pause(0.1)
        assert len(curves.measures) == len(run.checkpoint_epochs())


async def test_a_live_run_names_its_phase_and_draws_the_spectrogram(tmp_path) -> None:
    """The app trains a run past the point it groks: the status bar names the phase from
    the measures, the Curves pane says which key set its curves use, and the spectrogram
    view draws frequency x checkpoint."""
    groks = CFG.replace(frac_train=0.8, weight_decay=2.0, epochs=3_000, checkpoint_every=50)
    run = Run.create(tmp_path / "groks", groks, "cpu")
    Trainer(run, "cpu").train(TrainControl(stop_at=200))
    app = make_run_app(run, train=True)
    async with app.run_test(size=(120, 40)) as pilot:
        curves = app.query_one(CurvesPane)
        status = app.query_one(StatusBar)
        deadline = time.monotonic() + 300  # generous: a loaded machine trains slowly
        while time.monotonic() < deadline:
            grokked = app.sessions[0].history.first_epoch_at_least("test_acc", 0.99) is not None
            if grokked and status.info.phase.startswith(("cleaning up", "cleaned up")):
                break
            await pilot.pause(0.1)
        assert " since " in status.info.phase, status.info.phase
        assert app.sessions[0].history.first_epoch_at_least("test_acc", 0.99) is not None
        assert curves.measures.key_freqs
        summary = str(curves.query_one("#curves-summary").render())
        assert "key freqs" in summary and "since" in summary
        while curves.view != "spectrogram W_L":
            await pilot.press("m")
        await pilot.pause(0.2)
        deadline = time.monotonic() + 60
        while not curves.has_measures_drawn() and time.monotonic() < deadline:
            await pilot.pause(0.1)  # training goes on: new measures keep coming
        spectrogram = curves.query_one("#spectrogram")
        assert spectrogram.display and spectrogram.data.shape[0] == groks.p // 2 + 1
        assert spectrogram.data.shape[1] == len(curves.measures)
        await pilot.press("q")
