"""Watching a run directory: what changed since the last look.

The app shows a run the same way whether it trains it in a thread or another process
(`grok-tui train --headless` under tmux) writes it: it polls the directory. Polling reads
only the bytes appended to metrics.jsonl, one directory listing and one small JSON file,
so a few polls a second cost nothing next to training. `FollowService` polls in its own
thread, so a UI never waits on the disk or parses JSON.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from grok_tui.engine.core.threads import WakeableThread
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.run_meta import RunMeta
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.store.untrusted import what_is_wrong


@dataclass
class RunUpdate:
    rows: list[dict[str, float]] = field(default_factory=list)  # new metrics rows
    reset: bool = False  # metrics.jsonl was rewritten (a resume): forget earlier rows
    checkpoints: list[int] | None = None  # the whole sorted list, when it changed
    meta: RunMeta | None = None  # run.json, when it changed
    writer_alive: bool | None = None  # another live process holds the lock; when that changed
    error: str = ""  # run.json became unreadable (one line)
    warnings: list[str] = field(default_factory=list)  # lines of metrics.jsonl skipped

    @property
    def empty(self) -> bool:
        return (
            not (self.rows or self.reset or self.checkpoints is not None or self.meta or self.error)
            and self.writer_alive is None
            and not self.warnings
        )


class RunFollower:
    def __init__(self, run: Run) -> None:
        self.run = run
        self._reader = MetricsReader(run)
        self._checkpoints: list[int] | None = None
        self._meta_stamp: tuple[int, int] | None = None
        self._writer_alive: bool | None = None
        self._error = ""  # the last error said

    def poll(self) -> RunUpdate:
        update = RunUpdate()
        update.rows, update.reset = self._reader.poll()
        update.warnings, self._reader.problems = self._reader.problems, []
        error, missing = "", None
        try:
            st = os.stat(self.run.meta_path)  # once per poll: stamp, and whether it is there
        except OSError as exc:
            st, missing = None, exc
        gone = missing is not None
        checkpoints = self.run.checkpoint_epochs()
        if checkpoints != self._checkpoints and not gone:  # a moved run keeps what it showed
            self._checkpoints = checkpoints
            update.checkpoints = checkpoints
        try:
            if st is None:
                raise missing  # said below, in one line
            stamp = (st.st_ino, st.st_mtime_ns)
            if stamp != self._meta_stamp:
                self._meta_stamp = stamp
                update.meta = self.run.meta()
        except RunError as exc:
            error = str(exc)
        except OSError as exc:  # the directory moved or was deleted while it was shown
            path = self.run.meta_path
            error = f"{path} {what_is_wrong(path) or exc.strerror}: showing what was read"
        if error != self._error:  # each change once: a moved run toasted at every poll
            update.error = error
            self._error = error
        alive = self._other_writer_alive()
        if alive != self._writer_alive and not gone:  # not "the writer is gone": the run is
            self._writer_alive = alive
            update.writer_alive = alive
        return update

    def _other_writer_alive(self) -> bool:
        """A live process other than this one holds the trainer lock (a trainer thread in
        this process writes the run too, but nobody needs to be told about it)."""
        owner = self.run.lock_owner()
        if owner is None or not self.run.writer_alive():
            return False
        return (owner["pid"], owner["host"]) != (os.getpid(), socket.gethostname())


class FollowService(WakeableThread):
    """Polls a run directory in its own thread: every `interval` seconds, or at once when
    poked (the in-process trainer wrote), and hands each non-empty update to `on_update`."""

    def __init__(
        self, run: Run, on_update: Callable[[RunUpdate], None], interval: float = 0.5
    ) -> None:
        self.follower = RunFollower(run)
        self.on_update = on_update
        self.interval = interval
        self._start("grok-follow")

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                update = self.follower.poll()
            except Exception as exc:  # a bug or a vanished directory: say it, keep polling
                update = RunUpdate(error=f"reading the run failed: {type(exc).__name__}: {exc}")
            if not update.empty and not self._stopped.is_set():
                self.on_update(update)
            self._wake.wait(self.interval)
            self._wake.clear()


class MetricsHistory:
    """Metrics as growable numpy columns for plotting, plus what a status bar shows."""

    RATE_WINDOW_S = 10.0  # the speed is measured over this much recent training time
    RATE_MIN_EPOCHS = 20  # ... and shown only once it spans this many epochs
    RATE_MIN_S = 1.0  # ... and this much time
    COLUMNS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc", "wall_s")

    def __init__(self) -> None:
        self._n = 0
        self._data = np.full((len(self.COLUMNS), 1024), np.nan)

    def __len__(self) -> int:
        return self._n

    def column(self, name: str) -> np.ndarray:
        """A read-only view of one column (epoch as float)."""
        view = self._data[self.COLUMNS.index(name), : self._n]
        view.flags.writeable = False
        return view

    @property
    def epoch(self) -> np.ndarray:
        return self.column("epoch")

    @property
    def train_loss(self) -> np.ndarray:
        return self.column("train_loss")

    @property
    def test_loss(self) -> np.ndarray:
        return self.column("test_loss")

    @property
    def train_acc(self) -> np.ndarray:
        return self.column("train_acc")

    @property
    def test_acc(self) -> np.ndarray:
        return self.column("test_acc")

    def clear(self) -> None:
        self._n = 0

    def extend(self, rows: list[dict[str, float]]) -> None:
        last = self._data[0, self._n - 1] if self._n else -1
        rows = [r for r in rows if r["epoch"] > last]  # rows we have (a resume rewrote them)
        if not rows:
            return
        need = self._n + len(rows)
        if need > self._data.shape[1]:
            grown = np.full((len(self.COLUMNS), max(need, 2 * self._data.shape[1])), np.nan)
            grown[:, : self._n] = self._data[:, : self._n]
            self._data = grown
        block = np.array([[r[c] for c in self.COLUMNS] for r in rows], dtype=np.float64)
        self._data[:, self._n : need] = block.T
        self._n = need

    def last(self) -> dict[str, float]:
        if not self._n:
            return {}
        out = {c: float(self._data[i, self._n - 1]) for i, c in enumerate(self.COLUMNS)}
        out["epoch"] = int(out["epoch"])
        return out

    def first_epoch_at_least(self, name: str, level: float) -> int | None:
        hits = np.flatnonzero(self.column(name) >= level)  # NaN compares False
        return int(self.epoch[hits[0]]) if hits.size else None

    def epochs_per_s(self) -> float:
        """Training speed over the last RATE_WINDOW_S of training time; 0 until meaningful.

        The median of the per-epoch durations in the window: the first epochs of a session
        (start-up, allocations) and the odd checkpoint write take far longer than the rest,
        and a mean over a few seconds would turn them into an ETA of hours.
        """
        n = self._n
        if n < 2:
            return 0.0
        wall, epoch = self.column("wall_s"), self.epoch
        start = max(int(np.searchsorted(wall, wall[-1] - self.RATE_WINDOW_S, side="left")), 0)
        start = min(start, n - 2)
        dw, de = np.diff(wall[start:]), np.diff(epoch[start:])
        ok = np.isfinite(dw) & (dw > 0) & (de > 0)
        if de[ok].sum() < self.RATE_MIN_EPOCHS or dw[ok].sum() < self.RATE_MIN_S:
            return 0.0
        return float(1.0 / np.median(dw[ok] / de[ok]))

    def eta_s(self, total_epochs: int) -> float | None:
        """Seconds to `total_epochs` at the current speed; None until the speed is known."""
        rate = self.epochs_per_s()
        if not self._n or rate <= 0:
            return None
        return max(total_epochs - float(self.epoch[-1]), 0.0) / rate
