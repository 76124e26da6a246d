"""The analysis threads: only the newest request is computed; errors come back as lines."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.services import SnapshotResult, SnapshotService
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer

CFG = RunConfig(p=11, frac_train=0.5, epochs=40, checkpoint_every=10, preset="t")


def test_requests_that_are_overtaken_are_never_computed(tmp_path, monkeypatch) -> None:
    run = Run.create(tmp_path / "r", CFG, "cpu")
    Trainer(run, "cpu").train()
    results: list[SnapshotResult] = []
    done = threading.Event()
    release = threading.Event()

    def on_result(result: SnapshotResult) -> None:
        results.append(result)
        if result.epoch == 40:
            done.set()

    service = SnapshotService(run, "cpu", on_result)
    real = service._compute

    def slow(epoch: int):
        release.wait(10)  # the first analysis is still running while keys arrive
        return real(epoch)

    monkeypatch.setattr(service, "_compute", slow)
    service.request(0)
    time.sleep(0.2)
    for epoch in (10, 20, 30, 40):
        service.request(epoch)
    release.set()
    assert done.wait(30)
    service.stop()
    service.join(10)
    assert service.computed == [0, 40]
    assert [r.snapshot.epoch for r in results] == [0, 40]


def test_a_damaged_checkpoint_is_an_error_line_and_the_service_goes_on(tmp_path) -> None:
    run = Run.create(tmp_path / "r", CFG, "cpu")
    Trainer(run, "cpu").train()
    run.checkpoint_path(20).write_bytes(b"not a safetensors file")
    results: list[SnapshotResult] = []
    got = threading.Semaphore(0)

    def on_result(result: SnapshotResult) -> None:
        results.append(result)
        got.release()

    run.checkpoint_path(10).unlink()
    service = SnapshotService(run, "cpu", on_result)
    for epoch in (20, 10, 30):
        service.request(epoch)
        assert got.acquire(timeout=30)
    service.stop()
    damaged, missing, good = results
    assert damaged.snapshot is None and "damaged" in damaged.error and "\n" not in damaged.error
    assert missing.snapshot is None and "missing" in missing.error
    assert good.snapshot is not None and good.snapshot.epoch == 30


def test_a_stopped_group_finishes_the_work_in_flight_then_nothing_more(
    tmp_path, monkeypatch
) -> None:
    """stop_and_join waits for the snapshot being computed, reports nothing after the stop,
    and a request after it starts no work: the app joins this before the process ends."""
    from grok_tui.engine.measures.services import ProgressService, ServiceGroup

    run = Run.create(tmp_path / "r", CFG, "cpu")
    Trainer(run, "cpu").train()
    results: list[SnapshotResult] = []
    started, release = threading.Event(), threading.Event()
    group = ServiceGroup()
    service = group.add(SnapshotService(run, "cpu", results.append))
    progress = group.add(ProgressService(run, "cpu", lambda table, error: None))
    real = service._compute

    def slow(epoch: int):
        started.set()
        release.wait(10)
        return real(epoch)

    monkeypatch.setattr(service, "_compute", slow)
    service.request(10)
    assert started.wait(10)
    group.stop()
    service.request(20)  # arrives while stopping: never computed
    threading.Timer(0.3, release.set).start()
    assert group.stop_and_join(timeout=30) == []
    assert not service.is_alive() and not progress.is_alive()
    assert service.computed == [10]  # the one in flight finished...
    assert results == []  # ...and was not reported to a viewer that is going away
    late = group.add(SnapshotService(run, "cpu", results.append))
    late.join(5)
    assert not late.is_alive()  # added to a stopped group: stopped at once


@pytest.mark.parametrize("op", ["multiply", "random"])
def test_progress_measures_of_other_ops_are_their_own(tmp_path, op: str) -> None:
    """Every op gets its progress measures (multiply in the log basis; random those that need
    no circuit), with no "n/a" note; random's outlook says its phases and forecast are n/a.
    The service is idle at every drain and stops and joins as any other."""
    from grok_tui.engine.core.model import paper_init
    from grok_tui.engine.measures.services import ProgressService, ProgressUpdate

    cfg = RunConfig(p=7, frac_train=0.5, epochs=10, checkpoint_every=5, preset="t", op=op)
    run = Run.create(tmp_path / op, cfg, "cpu")
    run.save_checkpoint(0, paper_init(cfg))
    updates: list[ProgressUpdate] = []
    service = ProgressService(run, "cpu", updates.append)
    service.poke()
    for _ in range(3):  # idle at every drain, not only the first (it used to wait for good)
        assert service.drain(timeout=60)
        service.poke()
    assert not service.note and not service.error
    service.stop()
    service.join(timeout=10)
    assert not service.is_alive()
    last = updates[-1]
    assert not last.note and not last.error and len(last.table) == 1
    assert np.isfinite(last.table["train_loss"]).all()
    assert np.isfinite(last.table["restricted_loss"]).all() == (op == "multiply")
    assert (last.outlook.phase == "phases n/a") == (op == "random")
    assert ("n/a" in last.outlook.forecast.reason) == (op == "random")
    assert run.measures_path.exists()


def unwritable_measures(run: Run, how: str) -> None:
    """measures.jsonl replaced by a directory, or by a symlink that points at itself."""
    if how == "directory":
        run.measures_path.mkdir()
    else:
        run.measures_path.symlink_to(run.measures_path.name)


@pytest.mark.parametrize("how", ["directory", "symlink loop"])
def test_a_service_that_cannot_write_says_why_and_is_idle(tmp_path, how) -> None:
    """The error comes back as an update and in `error`, and every drain returns at once
    (True: nothing left it can do) rather than when its timeout passes."""
    from grok_tui.engine.core.model import paper_init
    from grok_tui.engine.measures.services import ProgressService, ProgressUpdate

    run = Run.create(tmp_path / "r", CFG, "cpu")
    run.save_checkpoint(0, paper_init(CFG))
    unwritable_measures(run, how)
    updates: list[ProgressUpdate] = []
    service = ProgressService(run, "cpu", updates.append)
    try:
        for _ in range(2):  # and again at the next poke, which tries once more
            assert service.drain(timeout=60)
            assert "measures.jsonl" in service.error
    finally:
        service.stop()
        service.join(timeout=30)
    assert not service.is_alive()
    errors = [u.error for u in updates if u.error]
    assert errors and all("measures.jsonl" in e for e in errors)
