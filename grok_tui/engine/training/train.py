"""The training loop: full-batch AdamW on the paper's task, writing into run directories.

One loop trains a group of member runs of one shape as one batched model (`Stepper`: pure
tensors) and hands each member's rows and checkpoints to its `RunWriter`; a single run is
a group of one (`Trainer`). One epoch is one optimiser step. Row `e` of metrics.jsonl and
checkpoint `e` describe the same weights W_e, the weights after e steps: the train loss
(whose gradient makes step e) and the test loss are both measured on W_e. A run of N
epochs has rows 0..N and N steps.

The loop never waits on a reader: it reports through a callback (the app turns it into
coalescing messages), keeps metrics in a device buffer and reads them back in batches
(every READBACK_EPOCHS epochs, FLUSH_SECONDS at the latest, and before a checkpoint, a
stop or the end), so the host never waits on the device between read-backs: no `.item()`,
`.tolist()`, `bool(tensor)` or `.cpu()` per epoch (tests/test_train_sync.py counts them).
Divergence is found in the same read-back: a member whose loss turns NaN or inf stops
alone at the first non-finite row, keeping its last good checkpoint (a checkpoint is only
written after a read-back); the others go on.
"""

from __future__ import annotations

import ctypes
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.checkpoints import CheckpointPolicy
from grok_tui.engine.training.stepper import Stepper, lr_at
from grok_tui.engine.training.writer import RunWriter

__all__ = [
    "CheckpointSaved",
    "Event",
    "Finished",
    "GroupTrainer",
    "Paused",
    "Progress",
    "Resumed",
    "TrainControl",
    "Trainer",
    "lr_at",
]

FLUSH_SECONDS = 0.2  # how stale the UI's numbers may get
READBACK_EPOCHS = 256  # epochs of metrics kept on the device at most between read-backs


@dataclass
class Progress:
    """New metrics rows of one member (the newest last) and the speed."""

    rows: list[dict[str, float]]
    total_epochs: int
    epochs_per_s: float
    member: str = ""


@dataclass
class CheckpointSaved:
    """A checkpoint and the resume state beside it are on disk (`path`: the checkpoint)."""

    epoch: int
    member: str = ""
    path: Path | None = None


@dataclass
class Paused:
    """The loop saved a checkpoint and waits for `TrainControl.request_resume`."""

    epoch: int


@dataclass
class Resumed:
    epoch: int


@dataclass
class Finished:
    """A member's training ended: status is done, paused (stopped on request) or failed."""

    status: str
    epoch: int
    message: str = ""
    member: str = ""


Event = Progress | CheckpointSaved | Paused | Resumed | Finished


@dataclass
class TrainControl:
    """Thread-safe requests from the UI or a signal handler to a running loop."""

    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=threading.Event)
    stop_at: int | None = None  # stop (saving a checkpoint) once this epoch is reached

    def request_stop(self) -> None:
        self.stop.set()
        self.resumed.set()  # wake a paused loop so it can stop

    def request_pause(self) -> None:
        self.resumed.clear()
        self.pause.set()

    def request_resume(self) -> None:
        self.pause.clear()
        self.resumed.set()


def keep_freed_memory() -> None:
    """Stop glibc returning big freed blocks to the OS after every step.

    Each epoch allocates tens of MB of activations. By default glibc maps and unmaps them
    each time, so every step pays page faults on fresh memory: measured here, a quarter
    of CPU epoch time. Raising the mmap and trim thresholds keeps the blocks for reuse.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


@dataclass
class _Pending:
    """One measured epoch of the active members, metrics still on the device."""

    epochs: list[int]
    lrs: list[float]
    wall: list[float]
    metrics: torch.Tensor  # (members, 4)


class GroupTrainer:
    """Trains member runs of one shape (one p, one architecture) together on one device.

    `members` holds writer indices in stepper order; a member leaves the batch when it is
    done, diverges or reaches `TrainControl.stop_at`. `train()` returns one `Finished` per
    run, in the order given.
    """

    def __init__(
        self,
        runs: Sequence[Run],
        device: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        policies: Sequence[CheckpointPolicy] | None = None,
        chunk_size: int = 0,
    ) -> None:
        """`chunk_size`: members per forward/backward pass (`Stepper`; 0: its default, 1:
        one member at a time, each bit for bit its single run)."""
        self.device = resolve_device(device or "auto")
        self.on_event = on_event or (lambda event: None)
        if self.device == "cpu":
            keep_freed_memory()
        self.writers = [RunWriter(run) for run in runs]
        self.names = [run.name for run in runs]
        self.cfgs: list[RunConfig] = [w.cfg for w in self.writers]
        states = [w.load_state() for w in self.writers]
        self.epochs = [s.epoch for s in states]
        self.wall = [s.wall_s for s in states]
        self.policies = list(policies or [CheckpointPolicy(c.checkpoint_every) for c in self.cfgs])
        self.members = list(range(len(runs)))
        self.stepper = Stepper(self.cfgs, self.device, states, chunk_size=chunk_size)
        self.results: dict[int, Finished] = {}
        self._rate = (time.perf_counter(), 0)
        self._steps = 0
        self.epochs_per_s = 0.0

    # -- saving ----------------------------------------------------------------------------------
    def save(self, members: Sequence[int] | None = None, dense: Sequence[int] = ()) -> None:
        """Checkpoint W_epoch and the resume state of these members (stepper positions)."""
        positions = list(range(len(self.members))) if members is None else list(members)
        for pos, state in zip(positions, self.stepper.export(positions), strict=True):
            i = self.members[pos]
            path = self.writers[i].save(state, self.wall[i])
            self.policies[i].saved(None, dense=pos in dense)
            self.on_event(CheckpointSaved(state.epoch, self.names[i], path))

    def finished(self, i: int) -> bool:
        return (
            self.epochs[i] >= self.cfgs[i].epochs
            and self.writers[i].run.checkpoint_path(self.epochs[i]).exists()
        )

    # -- ending members --------------------------------------------------------------------------
    def _finish(self, i: int, status: str, message: str) -> None:
        result = Finished(status, self.epochs[i], message, self.names[i])
        self.writers[i].status(status, message)
        self.results[i] = result
        self.on_event(result)

    def _drop(self, positions: set[int]) -> None:
        if positions:
            keep = [pos for pos in range(len(self.members)) if pos not in positions]
            self.members = [self.members[pos] for pos in keep]
            if keep:
                self.stepper.keep(keep)

    # -- metrics ---------------------------------------------------------------------------------
    def _flush(self, pending: list[_Pending], last_rows: dict[int, dict[str, float]]) -> set[int]:
        """Write pending rows; return positions whose loss became non-finite (now ended)."""
        if not pending:
            return set()
        values = torch.stack([p.metrics for p in pending]).tolist()  # one device sync
        failed: dict[int, int] = {}
        rows: list[list[dict[str, float]]] = [[] for _ in self.members]
        for p, per_member in zip(pending, values, strict=True):
            for pos, (tr, te, tra, tea) in enumerate(per_member):
                if pos in failed:
                    continue
                epoch = p.epochs[pos]
                rows[pos].append(
                    {"epoch": epoch, "train_loss": tr, "test_loss": te, "train_acc": tra,
                     "test_acc": tea, "lr": p.lrs[pos], "wall_s": p.wall[pos]}
                )  # fmt: skip
                if not (math.isfinite(tr) and math.isfinite(te)):
                    failed[pos] = epoch
        pending.clear()
        now = time.perf_counter()
        t0, steps0 = self._rate
        if now > t0 and self._steps > steps0:
            self.epochs_per_s = (self._steps - steps0) / (now - t0)
        self._rate = (now, self._steps)
        for pos, member_rows in enumerate(rows):
            i = self.members[pos]
            self.writers[i].append(member_rows)
            last_rows[pos] = member_rows[-1]
            if self.policies[i].last is None:
                self.policies[i].last = member_rows[0]
            self.on_event(
                Progress(member_rows, self.cfgs[i].epochs, self.epochs_per_s, self.names[i])
            )
        for pos, epoch in failed.items():
            i = self.members[pos]
            self.epochs[i] = epoch
            self._finish(i, "failed", self.writers[i].non_finite(epoch))
        return set(failed)

    # -- the loop --------------------------------------------------------------------------------
    def train(self, control: TrainControl | None = None) -> list[Finished]:
        control = control or TrainControl()
        for i in self.members:
            self.writers[i].started(self.device)
        pending: list[_Pending] = []
        last_flush = segment_start = time.perf_counter()
        self._rate = (last_flush, self._steps)
        try:
            while self.members:
                last_rows: dict[int, dict[str, float]] = {}
                # Requests first: stop, pause, or members that reached stop_at.
                stop_at = control.stop_at
                reached = (
                    {pos for pos, i in enumerate(self.members) if self.epochs[i] >= stop_at}
                    if stop_at is not None
                    else set()
                )
                if control.stop.is_set() or control.pause.is_set() or reached:
                    failed = self._flush(pending, last_rows)
                    alive = set(range(len(self.members))) - failed
                    pausing = bool(alive) and control.pause.is_set() and not control.stop.is_set()
                    stopping = alive if control.stop.is_set() else reached - failed
                    self.save(sorted(alive if pausing else stopping))
                    if pausing:
                        for pos in alive:
                            self.writers[self.members[pos]].status("paused")
                        self.on_event(Paused(min(self.epochs[self.members[p]] for p in alive)))
                        control.resumed.wait()
                        if control.stop.is_set():
                            stopping = alive  # all saved above
                    for pos in sorted(stopping):
                        self._finish(self.members[pos], "paused", "stopped; resumable")
                    self._drop(failed | stopping)
                    if not self.members:
                        break
                    if pausing:
                        for i in self.members:
                            self.writers[i].status("running")
                        self.on_event(Resumed(min(self.epochs[i] for i in self.members)))
                        segment_start = time.perf_counter()
                        self._rate = (segment_start, self._steps)

                metrics = self.stepper.measure()
                now = time.perf_counter()
                for i in self.members:
                    self.wall[i] += now - segment_start
                segment_start = now
                epochs = [self.epochs[i] for i in self.members]
                pending.append(
                    _Pending(
                        epochs, self.stepper.lrs(), [self.wall[i] for i in self.members], metrics
                    )
                )
                done = {
                    pos
                    for pos, i in enumerate(self.members)
                    if self.epochs[i] >= self.cfgs[i].epochs
                }
                due = {
                    pos
                    for pos, i in enumerate(self.members)
                    if self.policies[i].due(self.epochs[i])
                } | done
                maybe = {
                    pos
                    for pos, i in enumerate(self.members)
                    if pos not in due and self.policies[i].wants_row(self.epochs[i])
                }
                failed: set[int] = set()
                if (
                    due
                    or maybe
                    or len(pending) >= READBACK_EPOCHS
                    or now - last_flush >= FLUSH_SECONDS
                ):
                    failed = self._flush(pending, last_rows)
                    last_flush = now
                dense = {
                    pos
                    for pos in maybe - failed
                    if self.policies[self.members[pos]].dense_due(last_rows[pos])
                }
                saving = sorted((due | dense) - failed)
                if saving:
                    self.save(saving, dense=dense)
                    for pos in saving:
                        self.policies[self.members[pos]].last = last_rows.get(pos)
                for pos in sorted(done - failed):
                    self._finish(self.members[pos], "done", "finished")
                ended = failed | done
                if len(ended) == len(self.members):
                    self.members = []
                    break

                self.stepper.step()
                self._steps += 1
                for i in self.members:
                    self.epochs[i] += 1
                self._drop(ended)
        except Exception as exc:
            for i in self.members:
                self._finish(i, "failed", self.writers[i].crashed(exc))
            self.members = []
        finally:
            self.stepper.close()  # the chunk threads, if any, stopped and joined
        return [self.results[i] for i in range(len(self.writers))]


class Trainer:
    """One run: a group of one member, with the single-run API the app and CLI use."""

    def __init__(
        self,
        run: Run,
        device: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.run = run
        self.group = GroupTrainer([run], device, on_event)
        self.cfg: RunConfig = self.group.cfgs[0]
        self.device = self.group.device

    @property
    def epoch(self) -> int:
        return self.group.epochs[0]

    @property
    def wall_s(self) -> float:
        return self.group.wall[0]

    @property
    def stepper(self) -> Stepper:
        return self.group.stepper

    def save(self) -> None:
        """Checkpoint W_epoch and the resume state beside it."""
        self.group.save()

    @property
    def finished(self) -> bool:
        return self.group.finished(0)

    def train(self, control: TrainControl | None = None) -> Finished:
        return self.group.train(control)[0]
