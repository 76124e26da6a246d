"""The training loop never waits on the device between read-backs (issue 21).

Every call that makes the host wait for a tensor's value (`.item()`, `.tolist()`,
`bool(t)`, `float(t)`, `int(t)`, `.cpu()`, `.numpy()`) is counted while a loop trains;
those inside a metrics read-back (`GroupTrainer._flush`), a checkpoint (`GroupTrainer.save`)
or a member leaving the batch (`GroupTrainer._drop`) are allowed; any other is a sync per
epoch and fails the test. Setting a trainer up is not watched. On a
CUDA test device torch's own sync detector (`torch.cuda.set_sync_debug_mode`) also watches
the epochs, which catches syncs inside torch's ops that no Python hook sees.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import torch

import grok_tui.engine.training.train as train_mod
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.checkpoints import CheckpointPolicy
from grok_tui.engine.training.train import GroupTrainer, Trainer
from tests.devices import TEST_DEVICE

SYNCING = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
READBACK = 40
TINY = RunConfig(p=11, frac_train=0.5, epochs=200, checkpoint_every=100, preset="t")


@dataclass
class SyncLog:
    """Syncs seen outside read-backs and checkpoints, and how many read-backs there were."""

    allowed_depth: int = 0
    stray: list[str] = field(default_factory=list)
    readbacks: int = 0
    epochs: int = 0


@contextmanager
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncLog]:
    log = SyncLog()

    def counting(name: str, original):
        def wrapper(self, *args, **kwargs):
            if log.allowed_depth == 0:
                stack = "".join(traceback.format_stack(limit=6)[:-1])
                log.stray.append(f"Tensor.{name} at epoch {log.epochs}:\n{stack}")
            return original(self, *args, **kwargs)

        return wrapper

    def allowed(original, count: bool):
        def wrapper(self, *args, **kwargs):
            log.allowed_depth += 1
            log.readbacks += count
            mode = _cuda_sync_mode(0)
            try:
                return original(self, *args, **kwargs)
            finally:
                _cuda_sync_mode(mode)
                log.allowed_depth -= 1

        return wrapper

    for name in SYNCING:
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(GroupTrainer, "_flush", allowed(GroupTrainer._flush, True))
    monkeypatch.setattr(GroupTrainer, "save", allowed(GroupTrainer.save, False))
    # A member leaving the batch rebuilds its data (after the read-back that found it).
    monkeypatch.setattr(GroupTrainer, "_drop", allowed(GroupTrainer._drop, False))
    step = train_mod.Stepper.step

    def counted_step(self, *args, **kwargs):
        log.epochs += 1
        return step(self, *args, **kwargs)

    monkeypatch.setattr(train_mod.Stepper, "step", counted_step)
    # Read back by epoch count only, so the test does not depend on the machine's speed.
    monkeypatch.setattr(train_mod, "FLUSH_SECONDS", float("inf"))
    monkeypatch.setattr(train_mod, "READBACK_EPOCHS", READBACK)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mode = _cuda_sync_mode(1)  # warn on every synchronising CUDA call
        try:
            yield log
        finally:
            _cuda_sync_mode(mode)
    log.stray += [str(w.message) for w in caught if "synchroniz" in str(w.message)]


def _cuda_sync_mode(mode: int) -> int:
    """Set torch's CUDA sync detector (on a CUDA test device); return the previous mode."""
    if not TEST_DEVICE.startswith("cuda"):
        return 0
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    return previous


def _check(log: SyncLog, epochs: int, checkpoints: int) -> None:
    assert log.epochs == epochs
    assert not log.stray, f"{len(log.stray)} host syncs between read-backs; first:\n{log.stray[0]}"
    # Batched: one read-back per READBACK epochs, plus one at each checkpoint.
    assert log.readbacks <= epochs // READBACK + checkpoints + 1


def test_a_run_makes_no_host_sync_between_read_backs(tmp_path, monkeypatch) -> None:
    trainer = Trainer(Run.create(tmp_path / "r", TINY, TEST_DEVICE), TEST_DEVICE)
    with watched(monkeypatch) as log:
        result = trainer.train()
    assert result.status == "done"
    _check(log, TINY.epochs, checkpoints=3)
    assert [int(r["epoch"]) for r in trainer.run.read_metrics()] == list(range(TINY.epochs + 1))


@pytest.mark.parametrize("mode", ["ema", "ma"])
def test_grokfast_members_make_no_host_sync_between_read_backs(tmp_path, monkeypatch, mode) -> None:
    cfgs = [TINY.replace(grokfast=mode, seed=s) for s in (1, 2)]
    runs = [Run.create(tmp_path / f"r{i}", c, TEST_DEVICE) for i, c in enumerate(cfgs)]
    group = GroupTrainer(runs, TEST_DEVICE)
    with watched(monkeypatch) as log:
        results = group.train()
    assert [r.status for r in results] == ["done", "done"]
    _check(log, TINY.epochs, checkpoints=3)


def test_dense_checkpoint_candidates_read_back_only_at_their_epochs(tmp_path, monkeypatch) -> None:
    runs = [Run.create(tmp_path / f"r{s}", TINY.replace(seed=s), TEST_DEVICE) for s in (1, 2)]
    policies = [CheckpointPolicy(100, dense_every=50, dense_left=2) for _ in runs]
    group = GroupTrainer(runs, TEST_DEVICE, policies=policies)
    with watched(monkeypatch) as log:
        results = group.train()
    assert [r.status for r in results] == ["done", "done"]
    _check(log, TINY.epochs, checkpoints=5)


def test_divergence_is_found_in_a_batched_read_back(tmp_path, monkeypatch) -> None:
    """A NaN found late still ends the run at its first non-finite row, and no checkpoint
    of non-finite weights is written (a checkpoint is always preceded by a read-back)."""
    cfg = TINY.replace(lr=1e12, warmup_steps=0, checkpoint_every=30, epochs=100)
    run = Run.create(tmp_path / "r", cfg, TEST_DEVICE)
    trainer = Trainer(run, TEST_DEVICE)  # setting up may copy to the device; epochs may not
    with watched(monkeypatch) as log:
        result = trainer.train()
    assert not log.stray, log.stray[0]
    assert result.status == "failed" and "non-finite" in result.message
    rows = run.read_metrics()
    finite = [math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]) for r in rows]
    assert not finite[-1] and all(finite[:-1])  # the rows end at the first non-finite one
    assert rows[-1]["epoch"] == result.epoch < 30  # found before the next checkpoint
    assert run.checkpoint_epochs() == [0]
