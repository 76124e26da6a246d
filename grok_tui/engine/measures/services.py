"""Background analysis for a viewer: snapshots of the selected checkpoint, progress measures.

Both run in their own threads and report through callbacks (the app turns them into
messages). Scrubbing never queues stale work: a request replaces any request not yet
started, so holding an arrow key analyses the checkpoint the key stops on, plus at most
the one already in flight.

Stopping: `stop()` lets the unit of work in flight (one snapshot, one checkpoint's
measures) finish and starts no other; `join()` waits for that. A process must join them
before it ends: the interpreter finalising while a thread is inside a torch op aborts
("terminate called without an active exception", exit status 134). `ServiceGroup` stops
and joins a viewer's threads together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.threads import (
    ANALYSIS_NICENESS,
    WakeableThread,
    lower_this_thread,
    torch_thread,
)
from grok_tui.engine.store.runs import Run, RunError


@dataclass
class SnapshotResult:
    epoch: int
    snapshot: Any | None  # analysis.Snapshot
    error: str = ""
    seconds: float = 0.0


class SnapshotService:
    """Computes the Snapshot of the newest requested checkpoint, one at a time."""

    def __init__(self, run: Run, device: str, on_result: Callable[[SnapshotResult], None]) -> None:
        self.run = run
        self.device = device
        self.on_result = on_result
        self._lock = threading.Condition()
        self._pending: int | None = None
        self._stopped = False
        self._analyzer: Any = None
        self.computed: list[int] = []  # epochs analysed, in order (what tests look at)
        self._thread = torch_thread(self._loop, "grok-snapshots")
        self._thread.start()

    def request(self, epoch: int) -> None:
        with self._lock:
            self._pending = epoch
            self._lock.notify()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _next(self) -> int | None:
        with self._lock:
            while self._pending is None and not self._stopped:
                self._lock.wait()
            if self._stopped:
                return None
            epoch, self._pending = self._pending, None
            return epoch

    def _loop(self) -> None:
        lower_this_thread(ANALYSIS_NICENESS)
        while (epoch := self._next()) is not None:
            start = time.perf_counter()
            try:
                snap = self._compute(epoch)
                result = SnapshotResult(epoch, snap, seconds=time.perf_counter() - start)
            except RunError as exc:
                result = SnapshotResult(epoch, None, str(exc))
            except Exception as exc:  # a bug must not kill the viewer: say it, keep going
                result = SnapshotResult(
                    epoch, None, f"analysis failed: {type(exc).__name__}: {exc}"
                )
            self.computed.append(epoch)
            release_free_memory()  # the snapshot's temporaries (engine/core/memory.py)
            if self._stopped:
                return  # nobody is listening any more
            self.on_result(result)

    def _compute(self, epoch: int) -> Any:
        from grok_tui.engine.measures.analysis import Analyzer

        cfg = self.run.meta().config
        if self._analyzer is None or self._analyzer.cfg != cfg:
            self._analyzer = Analyzer(cfg, self.device)
        weights = self.run.load_checkpoint(epoch, cfg)
        return self._analyzer.snapshot(weights, epoch)


@dataclass
class ProgressUpdate:
    """The progress measures as far as computed, what they say, and what is still to do."""

    table: Any | None  # progress.ProgressTable
    outlook: Any | None = None  # outlook.Outlook: phases, the phase now, the forecast
    error: str = ""
    pending: int = 0  # checkpoints still to record, plus excluded losses still to compute
    note: str = ""  # why there are no measures (they do not apply to this run's op)


def measures_not_applicable(run: Run) -> str:
    """Why the progress measures do not apply to this run ('' if they do)."""
    from grok_tui.engine.measures.progress import MEASURES_OPS

    op = run.meta().config.op
    if op in MEASURES_OPS:
        return ""
    return f"progress measures: n/a for op {op}"  # none since every op has them


class ProgressService(WakeableThread):
    """Keeps the progress measures of every checkpoint up to date, in the background.

    A poke (new checkpoints, a key set to reconsider) wakes it: it records the checkpoints
    without a record, oldest first, then computes the excluded loss of the current key set
    where it is missing, newest first, and posts an update about once a second while it
    works, and once when done. Records are cheap and never redone; a change of key set
    costs one train forward per checkpoint, in this low-priority thread.

    Idle (`drain` returns) means: nothing left that this service can do for the pokes so
    far, whether it measured everything, met an error (`error` says which; the next poke
    tries again), or has nothing to measure (`note`: an op the measures do not model).

    When another process trains the run and measures it itself (headless training does),
    `writer_measures` makes the service leave the newest checkpoints to that process for
    `grace_s` seconds rather than compute them twice: not idle while it waits for them.
    """

    POST_EVERY_S = 1.0
    BATCH = 8
    OUTLOOK_BUDGET_S = 2.0  # stepping the outlook (a run opened for the first time) per post

    def __init__(
        self,
        run: Run,
        device: str,
        on_update: Callable[[ProgressUpdate], None],
        key_epoch: int | None = None,
        grace_s: float = 10.0,
    ) -> None:
        self.run = run
        self.device = device
        self.on_update = on_update
        self.key_epoch = key_epoch
        self.grace_s = grace_s
        self.writer_measures = False
        self.error = ""  # why the last pass failed ('' once one succeeds)
        self.note = ""  # why there is nothing to measure ('' if the measures apply)
        self._idle = threading.Event()  # set while nothing is left to do for the pokes so far
        self._pokes = 0  # pokes so far; a pass ends idle only if none came while it ran
        self._pokes_lock = threading.Lock()
        self._tracker: Any = None
        self._outlooks: Any = None  # asof.OutlookHistory of the tracker
        self._behind = False  # the outlook is not yet as of the newest measured checkpoint
        self._llc_inbox: list[Any] = []  # LLC estimates handed over (llc_service.py)
        self._llc_posted = 0  # the tracker's llc_version the last post showed
        self._start("grok-progress")

    def poke(self) -> None:
        """Checkpoints changed (or the viewer wants fresh measures)."""
        with self._pokes_lock:
            self._pokes += 1
            self._idle.clear()
            super().poke()

    def add_llc(self, summary: Any) -> None:
        """An LLC estimate made by another thread (an llc_checkpoint.LLCSummary): shown with
        the next post (a read-only run's rows live in memory, so they are handed over)."""
        with self._pokes_lock:
            self._llc_inbox.append(summary)
        self.poke()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the service has nothing left to do (True), or the timeout passes.

        True whatever the outcome: every checkpoint measured, an error (see `error`), or
        nothing to measure (see `note`)."""
        self.poke()
        return self._idle.wait(timeout)

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def _skip(self, epoch: int) -> bool:
        """Leave a fresh checkpoint to the process that wrote it (and measures it)."""
        if not self.writer_measures:
            return False
        try:
            age = time.time() - self.run.checkpoint_path(epoch).stat().st_mtime
        except OSError:
            return False
        return age < self.grace_s

    def _post(self) -> None:
        from grok_tui.engine.measures.outlook import OutlookHistory

        if self._outlooks is None or self._outlooks.tracker is not self._tracker:
            self._outlooks = OutlookHistory(self._tracker)
        table = self._tracker.table()
        self._llc_posted = self._tracker.llc_version
        # Stepped (and stored) checkpoint by checkpoint: the outlook as of the newest one
        # is what `analyze --epoch` shows for it later. A run without stored steps is
        # stepped a little per post (each post shows the outlook as of where it got).
        view = self._outlooks.at(should_stop=self._stopped.is_set, budget_s=self.OUTLOOK_BUDGET_S)
        self._behind = len(table) > 0 and view.as_of != int(table.epochs[-1])
        pending = len(self._tracker.missing()) + table.excluded_pending
        release_free_memory()  # the table's and the outlook's temporaries
        self.on_update(ProgressUpdate(table, view, pending=pending))

    def _loop(self) -> None:
        lower_this_thread(ANALYSIS_NICENESS)
        wait: float | None = None
        try:
            while not self._stopped.is_set():
                self._wake.wait(wait)
                if self._stopped.is_set():
                    return
                with self._pokes_lock:
                    self._wake.clear()
                    pokes = self._pokes
                wait = self._pass()
                with self._pokes_lock:
                    if wait is None and pokes == self._pokes:
                        self._idle.set()
        finally:
            self._idle.set()  # stopped: nothing more will be done, so a drain must not wait

    def _pass(self) -> float | None:
        """One round of work; the seconds to wait for skipped work (None: all done)."""
        try:
            if self.note:
                return None  # said once; nothing will ever be computed
            if self._tracker is None:
                self.note = measures_not_applicable(self.run)
                if self.note:
                    self.on_update(ProgressUpdate(None, note=self.note))
                    return None
                from grok_tui.engine.measures.progress import ProgressTracker

                self._tracker = ProgressTracker(self.run, self.device, self.key_epoch)
                if self._stopped.is_set():
                    return None
                self._post()  # the cache, at once
            wait = self._work()
            self.error = ""
            return wait
        except RunError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bug must not kill the viewer: say it, keep going
            self.error = f"progress measures failed: {type(exc).__name__}: {exc}"
        self.on_update(ProgressUpdate(None, error=self.error))
        return None

    def _work(self) -> float | None:
        """Record and fill until nothing is left; the seconds to wait for skipped work."""
        tracker = self._tracker
        stop = self._stopped.is_set
        last_post = time.monotonic()
        with self._pokes_lock:
            inbox, self._llc_inbox = self._llc_inbox, []
        tracker.take_llc(inbox)
        changed = False
        skipped = False
        while not stop():
            done = tracker.update(stop, limit=self.BATCH, skip=self._skip)
            filled = 0
            if not done:
                before = tracker.excluded_computed
                tracker.fill_excluded(stop, limit=self.BATCH)
                filled = tracker.excluded_computed - before
            changed = changed or bool(done or filled)
            if not (done or filled):
                skipped = any(self._skip(e) for e in tracker.missing())
                break
            if time.monotonic() - last_post >= self.POST_EVERY_S:
                self._post()
                last_post, changed = time.monotonic(), False
        changed = changed or tracker.llc_version != self._llc_posted
        while (changed or self._behind) and not stop():
            changed = False
            self._post()
        return self.grace_s if skipped else None


class Service(Protocol):
    """A background thread with a stop flag it checks between units of work."""

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


S = TypeVar("S", bound=Service)


class ServiceGroup:
    """A viewer's background threads, stopped together and joined before the process ends.

    `stop()` is cheap and can come early (the moment the user quits: no new analysis
    starts while the trainer saves); `stop_and_join()` then waits for the work in flight.
    """

    def __init__(self) -> None:
        self._services: list[Service] = []
        self._lock = threading.Lock()
        self.stopping = False

    def add(self, service: S) -> S:
        """Keep `service`; one added after the group stopped is stopped at once."""
        with self._lock:
            self._services.append(service)
            stopping = self.stopping
        if stopping:
            service.stop()
        return service

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            services = list(self._services)
        for service in services:
            service.stop()

    def stop_and_join(self, timeout: float | None = 60.0) -> list[Service]:
        """Stop every service, wait up to `timeout` s in all; return those still running."""
        self.stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            services = list(self._services)
        for service in services:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            service.join(left)
        return [s for s in services if s.is_alive()]
