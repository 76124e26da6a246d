"""Live ablations: the ablation thread (engine/measures/ablate_service.py) answers as
`ablate_run` and `replay` do, cancels a replay when the set changes, and the Ablate pane,
driven by its keys, shows those numbers and clears back to the intact model."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import torch

from grok_tui.api import open_run
from grok_tui.engine.measures.ablate import replay
from grok_tui.engine.measures.ablate_service import Ablation, AblationService, AblationUpdate
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer
from grok_tui.ui.app import make_run_app
from grok_tui.ui.panes.ablations import KINDS, AblationsPane
from grok_tui.ui.screens.run import RunCommands, RunScreen
from grok_tui.ui.widgets.timeline import CheckpointTimeline
from tests.pane_harness import TINY
from tests.test_app import wait_until


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A tiny run, trained once: 7 checkpoints, key frequencies by the last."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: OpenMP teams crawl when the box is busy
    try:
        run = Run.create(tmp_path_factory.mktemp("ablate-live") / "run", TINY, "cpu")
        assert Trainer(run, "cpu").train().status == "done"
        yield run
    finally:
        torch.set_num_threads(threads)


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


class Collector:
    """The service's updates, and an event once one holds a finished replay."""

    def __init__(self) -> None:
        self.updates: list[AblationUpdate] = []
        self.finished = threading.Event()

    def __call__(self, update: AblationUpdate) -> None:
        self.updates.append(update)
        if update.error or (update.total and (update.replay_done or update.replay_error)):
            self.finished.set()
        if not update.total and update.point is not None:
            self.finished.set()  # nothing ablated: the point is all there is


def newest_cluster(run: Run) -> int:
    """A key frequency's cluster of the newest checkpoint (the replay's clusters)."""
    snap = open_run(run.path).snapshot()
    assert snap.key_freqs, "the tiny run has no clusters to ablate"
    return int(snap.key_freqs[0])


def test_the_thread_answers_as_ablate_run_and_replay(trained: Run) -> None:
    cluster = newest_cluster(trained)
    spec = Ablation.of(heads=[1], clusters=[cluster], freqs=[cluster + 1], mode="mean")
    got = Collector()
    service = AblationService(trained, "cpu", got)
    try:
        epoch = trained.checkpoint_epochs()[-1]
        service.request(epoch, spec)
        assert got.finished.wait(120)
    finally:
        service.stop()
        service.join(60)
    assert not service.is_alive()
    last = got.updates[-1]
    assert not last.error and not last.replay_error and last.replay_done
    want = open_run(trained.path).ablate(
        epoch, heads=[1], clusters=[cluster], freqs=[cluster + 1], mode="mean"
    )
    assert last.point is not None and last.point.epoch == epoch
    assert_same(last.point.ablated, want.ablated)
    assert_same(last.point.base, want.base)
    engine = replay(trained, spec)
    assert [r.epoch for r in last.replay] == [r.epoch for r in engine]
    for mine, theirs in zip(last.replay, engine, strict=True):
        assert_same(mine.ablated, theirs.ablated)
        assert_same(mine.base, theirs.base)
    # Every update in between was a prefix of the replay, of the set asked for.
    assert all(u.ablation == spec for u in got.updates)
    assert [len(u.replay) for u in got.updates] == sorted(len(u.replay) for u in got.updates)


def test_a_new_set_cancels_the_replay_in_flight(trained: Run) -> None:
    first, second = Ablation.of(heads=[0]), Ablation.of(neurons=[3])
    epochs = trained.checkpoint_epochs()
    got = Collector()
    service: AblationService

    def on_update(update: AblationUpdate) -> None:
        got(update)
        if update.ablation == first and update.replay:  # mid-replay: the set changes
            service.request(epochs[-1], second)

    service = AblationService(trained, "cpu", on_update)
    try:
        service.request(epochs[-1], first)
        assert got.finished.wait(120)
    finally:
        service.stop()
        service.join(60)
    replayed_first = [e for kind, spec, e in service.log if kind == "replay" and spec == first]
    replayed_second = [e for kind, spec, e in service.log if kind == "replay" and spec == second]
    assert len(replayed_first) < len(epochs)  # abandoned
    assert replayed_second == epochs  # the new set, all of it
    assert got.updates[-1].ablation == second and got.updates[-1].replay_done
    # Nothing of the first set was posted once the second was asked for.
    firsts = [i for i, u in enumerate(got.updates) if u.ablation == first]
    assert max(firsts) < min(i for i, u in enumerate(got.updates) if u.ablation == second)


def test_stopping_mid_replay_ends_the_thread_and_posts_nothing_more(trained: Run) -> None:
    epochs = trained.checkpoint_epochs()
    posted: list[AblationUpdate] = []
    service: AblationService

    def on_update(update: AblationUpdate) -> None:
        posted.append(update)
        if update.replay:
            service.stop()  # as the app quits while a replay runs

    service = AblationService(trained, "cpu", on_update)
    service.request(epochs[-1], Ablation.of(heads=[0]))
    service.join(60)
    assert not service.is_alive()
    assert len([entry for entry in service.log if entry[0] == "replay"]) < len(epochs)
    assert posted and not posted[-1].replay_done and len(posted[-1].replay) == 1


def test_an_unknown_cluster_is_an_error_line(trained: Run) -> None:
    got = Collector()
    service = AblationService(trained, "cpu", got)
    try:
        service.request(trained.checkpoint_epochs()[-1], Ablation.of(clusters=[999]))
        assert got.finished.wait(60)
    finally:
        service.stop()
        service.join(60)
    last = got.updates[-1]
    assert "no cluster 999" in last.error and "\n" not in last.error


# -- the pane, driven by its keys -------------------------------------------------------------
async def open_ablate_pane(pilot, app) -> tuple[RunScreen, AblationsPane, int]:
    screen = app.screen_stack[0]
    assert isinstance(screen, RunScreen)
    timeline = screen.query_one(CheckpointTimeline)
    await wait_until(pilot, lambda: timeline.selected is not None, 60)
    await pilot.press("6")
    pane = screen.query_one(AblationsPane)
    epoch = timeline.selected
    await wait_until(pilot, lambda: pane.snapshot is not None and pane.snapshot.epoch == epoch, 60)
    return screen, pane, epoch


async def settled(pilot, pane: AblationsPane, spec: Ablation) -> AblationUpdate:
    """The pane's numbers for `spec`, its replay finished (or nothing to replay)."""

    def done() -> bool:
        u = pane.update
        return (
            u is not None
            and u.ablation == spec
            and u.point is not None
            and (u.total == 0 or u.replay_done)
        )

    await wait_until(pilot, done, 120)
    assert pane.update is not None
    return pane.update


@pytest.mark.parametrize("size", [(200, 60), (80, 24)])
async def test_ablate_by_keys_matches_the_engine_and_clears(trained: Run, size) -> None:
    api = open_run(trained.path)
    app = make_run_app(trained)
    async with app.run_test(size=size) as pilot:
        screen, pane, epoch = await open_ablate_pane(pilot, app)
        intact = await settled(pilot, pane, Ablation())
        assert intact.total == 0 and intact.point.ablated == intact.point.base

        await pilot.press("h")  # select head 1 (from 0), then ablate it
        assert screen.head == 1 and pane.kind == "head"
        await pilot.press("a")
        spec = Ablation.of(heads=[1])
        got = await settled(pilot, pane, spec)
        want = api.ablate(epoch, heads=[1])
        assert_same(got.point.ablated, want.ablated)
        assert_same(got.point.base, want.base)
        scores = str(pane.query_one("#ablate-scores").render())
        assert f"{want.ablated['test_acc']:.1%}" in scores

        # The replay curve is the engine's replay, drawn ablated over intact.
        engine = api.ablate("all", heads=[1])
        figure = pane.replay_figure()
        curves = {name: (xs, ys) for name, xs, ys, _ in figure.series}
        assert curves["ablated test"][0] == [float(r.epoch) for r in engine]
        assert curves["ablated test"][1] == pytest.approx([r.ablated["test_loss"] for r in engine])
        assert curves["ablated train"][1] == pytest.approx(
            [r.ablated["train_loss"] for r in engine]
        )
        assert curves["intact test"][1] == pytest.approx([r.base["test_loss"] for r in engine])

        # Combined: the key set removed too, in mean mode.
        for _ in range(KINDS.index("key set")):
            await pilot.press("t")
        assert pane.kind == "key set"
        await pilot.press("a", "o")
        keys = [int(k) for k in pane.snapshot.key_freqs]
        spec = Ablation.of(heads=[1], freqs=keys, mode="mean")
        got = await settled(pilot, pane, spec)
        want = api.ablate(epoch, heads=[1], freqs=keys, mode="mean")
        assert_same(got.point.ablated, want.ablated)
        assert "head 1" in str(pane.query_one("#ablate-list").render())

        # The keys are offered (footer, `?`) where the Ablate pane shows, and in the palette.
        offered = screen.active_bindings
        assert all(offered[k].enabled for k in "taox")
        words = [name for name, _, _ in RunCommands(screen, None)._commands()]
        assert "Clear all ablations (X)" in words and "Show Ablate" in words

        await pilot.press("X")  # clear: back to the intact model, no replay
        got = await settled(pilot, pane, Ablation(mode="mean"))
        assert got.point.ablated == got.point.base and got.total == 0
        assert not any(ys for _, _, ys, _ in pane.replay_figure().series)
        assert "nothing" in str(pane.query_one("#ablate-list").render())
        await pilot.press("q")
    assert app.return_code == 0
    assert not app.sessions[0].ablations.is_alive()  # stopped and joined with the app
