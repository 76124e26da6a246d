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

from grok_tui.engine.runs import Run, RunError
from grok_tui.engine.threads import ANALYSIS_NICENESS, lower_this_thread


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
        self._thread = threading.Thread(target=self._loop, name="grok-snapshots", daemon=True)
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
            if self._stopped:
                return  # nobody is listening any more
            self.on_result(result)

    def _compute(self, epoch: int) -> Any:
        from grok_tui.engine.analysis import Analyzer

        cfg = self.run.meta().config
        if self._analyzer is None or self._analyzer.cfg != cfg:
            self._analyzer = Analyzer(cfg, self.device)
        weights = self.run.load_checkpoint(epoch, cfg)
        return self._analyzer.snapshot(weights, epoch)


class ProgressService:
    """Keeps the progress measures of every checkpoint up to date, in the background.

    While the run trains, new checkpoints arrive every few seconds and the key frequencies
    (hence every cached row) may change with each; the service then refreshes at most every
    `live_interval` seconds, so analysis never crowds out training.
    """

    def __init__(
        self,
        run: Run,
        device: str,
        on_update: Callable[[Any, str], None],
        live_interval: float = 20.0,
    ) -> None:
        self.run = run
        self.device = device
        self.on_update = on_update  # (ProgressTable | None, error)
        self.live_interval = live_interval
        self.live = False
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._tracker: Any = None
        self._thread = threading.Thread(target=self._loop, name="grok-progress", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Checkpoints changed (or the viewer wants fresh measures)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        from grok_tui.engine.progress import ProgressTracker

        lower_this_thread(ANALYSIS_NICENESS)
        last = 0.0
        while not self._stopped.is_set():
            self._wake.wait()
            if self._stopped.is_set():
                return
            if self.live:
                wait = self.live_interval - (time.monotonic() - last)
                if wait > 0 and self._stopped.wait(wait):
                    return
            self._wake.clear()
            last = time.monotonic()
            try:
                if self._tracker is None:
                    self._tracker = ProgressTracker(self.run, self.device)
                    if self._stopped.is_set():
                        return
                    self.on_update(self._tracker.table(), "")  # the cache, at once
                while not self._stopped.is_set():
                    rows = self._tracker.update(self._stopped.is_set, limit=25)
                    if not rows or self._stopped.is_set():
                        break
                    self.on_update(self._tracker.table(), "")
                if self._stopped.is_set():
                    return  # table() may analyse the newest checkpoint: no new work now
                self.on_update(self._tracker.table(), "")
            except RunError as exc:
                self.on_update(None, str(exc))
            except Exception as exc:
                self.on_update(None, f"progress measures failed: {type(exc).__name__}: {exc}")


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
