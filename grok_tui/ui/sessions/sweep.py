"""SweepSession: the training thread of a sweep, for the whole visit of its screens.

The sweep screen, the members it opens and the comparisons come and go above it; what
they show is read from the sweep directory, so a sweep another process (or machine)
trains looks the same.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from grok_tui.engine.core.threads import TRAINER_NICENESS, lower_this_thread, torch_thread
from grok_tui.engine.lab.backends import train_sweep
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.runs import RunError
from grok_tui.engine.training.train import TrainControl


class SweepSession:
    """Trains the sweep's unfinished members in a thread, when asked (at start, or `r`)."""

    FAILURE_EXIT: ClassVar[int] = 2

    def __init__(self, sweep: Sweep, device: str, train: bool = False) -> None:
        self.sweep = sweep
        self.device = device
        self.want_train = train  # start training when the sweep screen opens
        # (severity, text) for the screen to toast, in order: what the trainer said (a
        # claim waited for) and why a training stopped; appended by the trainer thread
        self.notes: list[tuple[str, str]] = []
        self.control = TrainControl()
        self.done = threading.Event()
        self.done.set()
        self.failure = ""
        self._thread: threading.Thread | None = None

    @property
    def training(self) -> bool:
        return not self.done.is_set()

    @property
    def stopping(self) -> bool:
        """Asked to stop, and still saving."""
        return self.training and self.control.stop.is_set()

    def start(self) -> None:
        if self.training:
            return
        self.control = TrainControl()
        self.failure = ""
        self.done.clear()
        self._thread = torch_thread(self._train, "grok-sweep")
        self._thread.start()

    def _train(self) -> None:
        lower_this_thread(TRAINER_NICENESS)
        try:
            train_sweep(self.sweep, self.device, None, self.control, say=self._say)
        except RunError as exc:
            self.failure = str(exc)
        except Exception as exc:  # a bug must not leave the app waiting forever
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            if self.failure:
                self.notes.append(("error", self.failure))
            self.done.set()

    def _say(self, text: str) -> None:
        self.notes.append(("information", text))

    def stop(self) -> None:
        """Ask the trainer to save and stop (returns at once)."""
        self.control.request_stop()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
