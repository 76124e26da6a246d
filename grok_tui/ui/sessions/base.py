"""What the app asks of every session: the threads behind one screen, and their end.

A session owns the threads of what a screen shows (a trainer, the analysis and follow
threads, a comparison's measures) and lives beside that screen; the app keeps every session
it opened and, before the process ends, stops them all and joins them: the interpreter
finalising while a thread is inside a torch op aborts the process.
"""

from __future__ import annotations

from typing import ClassVar, Protocol


class Session(Protocol):
    FAILURE_EXIT: ClassVar[int]  # the process's exit status when `failure` says something
    failure: str  # why training failed, said once more after the screen is gone ('' if not)

    @property
    def training(self) -> bool:
        """A trainer thread of this session is running (also while it saves to quit)."""
        ...

    def stop(self) -> None:
        """Ask every thread to end (a trainer saves a checkpoint first); returns at once."""
        ...

    def join(self) -> None:
        """Wait for every thread that `stop` asked to end."""
        ...
