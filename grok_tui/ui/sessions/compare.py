"""CompareSession: the runs of a comparison, their metrics followed, their measures filled in.

The progress measures of every run come from the engine (each run's cache if it has them)
in a low-priority thread, which posts a coalescing `ComparisonChanged` as each run is
done; metrics of runs another process trains are read as they grow (`poll`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from textual.message import Message

from grok_tui.engine.core.threads import ANALYSIS_NICENESS, lower_this_thread, torch_thread
from grok_tui.engine.measures.compare import ComparedRun, load_runs, measure_runs
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.runs import Run
from grok_tui.ui.messages import ComparisonChanged


class CompareSession:
    """Several runs' histories and progress measures, and the thread that measures them."""

    FAILURE_EXIT: ClassVar[int] = 1

    def __init__(self, runs: list[Run], device: str = "cpu") -> None:
        self.runs = runs
        self.device = device
        self.failure = ""  # a comparison trains nothing
        self.compared: list[ComparedRun] = []
        self.tables: dict[int, Any] = {}  # run index -> ProgressTable
        self.measuring = ""  # what the measures thread does now
        self._readers: list[MetricsReader] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def training(self) -> bool:
        return False

    def start(self, post: Callable[[Message], Any]) -> None:
        """Read every run's metrics now; measure them in a thread that reports through `post`."""
        self.compared = load_runs(self.runs)
        self._readers = []
        for run in self.runs:
            reader = MetricsReader(run)
            reader.read_new()  # load_runs read what is there; follow from here
            self._readers.append(reader)
        self._thread = torch_thread(self._measure, "grok-compare", (post,))
        self._thread.start()

    def poll(self) -> bool:
        """Read new metrics rows of every run; True if any came."""
        changed = False
        for c, reader in zip(self.compared, self._readers, strict=True):
            rows, reset = reader.poll()
            if reset:
                c.history.clear()
                rows = c.run.read_metrics()
            if rows:
                c.history.extend(rows)
                changed = True
        return changed

    def _measure(self, post: Callable[[Message], Any]) -> None:
        lower_this_thread(ANALYSIS_NICENESS)

        def on_table(i: int, table: Any, error: str) -> None:
            if not error:
                self.tables[i] = table
            post(ComparisonChanged(error))

        def on_start(i: int) -> None:
            self.measuring = f"measuring {self.compared[i].name} ({i + 1}/{len(self.compared)})"
            post(ComparisonChanged())

        try:
            measure_runs(self.runs, self.device, self._stop.is_set, on_start, on_table)
        except Exception as exc:  # a bug must not end the app: say it, show the curves
            post(ComparisonChanged(f"progress measures failed: {type(exc).__name__}: {exc}"))
        self.measuring = ""
        if not self._stop.is_set():
            post(ComparisonChanged())

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
