"""The training loop: it groks, it stops cleanly, it resumes exactly, it refuses NaN."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.train import (
    CheckpointSaved,
    Paused,
    Progress,
    Resumed,
    TrainControl,
    Trainer,
)
from tests.devices import TEST_DEVICE

TINY = RunConfig(p=11, frac_train=0.5, epochs=60, checkpoint_every=10, preset="t")


def epochs_of(run: Run) -> list[int]:
    return [int(r["epoch"]) for r in run.read_metrics()]


@pytest.mark.slow
def test_quick_preset_groks(tmp_path) -> None:
    """The quick preset groks near epoch 1,000 (RESULTS); 1,600 of its 3,000 epochs leave
    60% headroom for other CPUs' rounding and halve the test's time."""
    cfg = preset("quick").replace(epochs=1600)
    run = Run.create(tmp_path / "quick", cfg, TEST_DEVICE)
    result = Trainer(run, TEST_DEVICE).train()
    assert result.status == "done" and result.epoch == cfg.epochs
    rows = run.read_metrics()
    last = rows[-1]
    assert last["train_acc"] >= 0.99 and last["test_acc"] >= 0.99
    # It memorised first and generalised later: the grokking gap is real.
    memorised = next(r["epoch"] for r in rows if r["train_acc"] >= 0.99)
    generalised = next(r["epoch"] for r in rows if r["test_acc"] >= 0.99)
    assert generalised > 5 * memorised
    assert run.meta().status == "done"


def test_stop_then_resume_continues_exactly(tmp_path) -> None:
    straight = Run.create(tmp_path / "straight", TINY, TEST_DEVICE)
    Trainer(straight, TEST_DEVICE).train()

    run = Run.create(tmp_path / "stopped", TINY, TEST_DEVICE)
    control = TrainControl()

    def stop_at_25(event) -> None:
        if isinstance(event, Progress) and event.rows[-1]["epoch"] >= 25:
            control.request_stop()

    # Flush every epoch so the stop lands at a known epoch.
    import grok_tui.engine.training.train as train_mod

    old = train_mod.FLUSH_SECONDS
    train_mod.FLUSH_SECONDS = 0.0
    try:
        result = Trainer(run, TEST_DEVICE, stop_at_25).train(control)
    finally:
        train_mod.FLUSH_SECONDS = old
    assert result.status == "paused"
    stopped_at = result.epoch
    assert stopped_at in run.checkpoint_epochs()
    assert run.meta().status == "paused"

    resumed = Trainer(run, TEST_DEVICE)
    assert resumed.epoch == stopped_at
    assert resumed.train().status == "done"
    assert epochs_of(run) == list(range(TINY.epochs + 1))
    a = run.load_checkpoint(TINY.epochs)
    b = straight.load_checkpoint(TINY.epochs)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    ra, rb = run.read_metrics(), straight.read_metrics()
    assert [r["train_loss"] for r in ra] == pytest.approx([r["train_loss"] for r in rb])


def test_pause_and_resume_in_process(tmp_path) -> None:
    run = Run.create(tmp_path / "r", TINY.replace(epochs=2000), TEST_DEVICE)
    control = TrainControl()
    events: list[object] = []
    paused, moved_on = threading.Event(), threading.Event()

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, Paused):
            paused.set()
        if paused.is_set() and isinstance(event, Progress):
            moved_on.set()

    trainer = Trainer(run, TEST_DEVICE, on_event)
    thread = threading.Thread(target=lambda: events.append(trainer.train(control)))
    thread.start()
    control.request_pause()
    assert paused.wait(30)
    epoch_at_pause = trainer.epoch
    assert run.meta().status == "paused"
    assert epoch_at_pause in run.checkpoint_epochs()
    control.request_resume()
    assert moved_on.wait(30)
    control.request_stop()
    thread.join(30)
    assert not thread.is_alive()
    assert any(isinstance(e, Resumed) for e in events)
    assert any(isinstance(e, CheckpointSaved) for e in events)
    assert epochs_of(run) == list(range(len(epochs_of(run))))


def test_non_finite_loss_stops_with_a_message_and_keeps_good_checkpoints(tmp_path) -> None:
    # lr 1e12: the first real step throws the weights to ~1e12 and the logits overflow.
    cfg = TINY.replace(lr=1e12, warmup_steps=0, checkpoint_every=1)
    run = Run.create(tmp_path / "r", cfg, TEST_DEVICE)
    result = Trainer(run, TEST_DEVICE).train()
    assert result.status == "failed"
    assert "non-finite" in result.message and "last good checkpoint" in result.message
    meta = run.meta()
    assert meta.status == "failed" and "non-finite" in meta.message
    rows = run.read_metrics()
    assert not math.isfinite(rows[-1]["train_loss"]) or not math.isfinite(rows[-1]["test_loss"])
    assert result.epoch not in run.checkpoint_epochs()
    for epoch in run.checkpoint_epochs():
        weights = run.load_checkpoint(epoch)
        assert all(torch.isfinite(w).all() for w in weights.values())


def test_a_run_with_checkpoints_but_no_optimiser_state_is_not_restarted(tmp_path) -> None:
    run = Run.create(tmp_path / "r", TINY, TEST_DEVICE)
    Trainer(run, TEST_DEVICE).train(_stop_at_once())
    run.resume_path.unlink()
    before = run.metrics_path.read_bytes()
    with pytest.raises(RunError, match=r"no resume\.pt"):
        Trainer(run, TEST_DEVICE)
    assert run.metrics_path.read_bytes() == before  # history kept


def test_a_garbage_resume_state_is_one_line(tmp_path) -> None:
    run = Run.create(tmp_path / "r", TINY, TEST_DEVICE)
    trainer = Trainer(run, TEST_DEVICE)
    trainer.save()
    state = run.load_resume()
    state["rng"] = torch.zeros(3)  # not a generator state
    run.save_resume(state)
    with pytest.raises(RunError, match="does not fit this run") as info:
        Trainer(run, TEST_DEVICE)
    assert "\n" not in str(info.value)


def _stop_at_once() -> TrainControl:
    control = TrainControl()
    control.request_stop()
    return control
