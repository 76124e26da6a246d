"""What the engine's threads tell the UI, through a session to its screen. Data stays on
disk or in shared buffers; messages are small signals, and the ones that supersede each
other coalesce."""

from __future__ import annotations

from textual.message import Message

from grok_tui.engine.measures.ablate_service import AblationUpdate
from grok_tui.engine.measures.services import ProgressUpdate, SnapshotResult
from grok_tui.engine.store.follow import RunUpdate
from grok_tui.engine.training.train import Finished


class RunPolled(Message):
    """What changed in the run directory, read by the follow thread. Never coalesced: each
    update carries new metrics rows."""

    def __init__(self, update: RunUpdate) -> None:
        super().__init__()
        self.update = update


class TrainerFinished(Message):
    """The trainer thread has returned (done, stopped, failed) and saved what it had."""

    def __init__(self, result: Finished) -> None:
        super().__init__()
        self.result = result


class SnapshotReady(Message):
    """The analysis thread finished a checkpoint (or says why it could not)."""

    def __init__(self, result: SnapshotResult) -> None:
        super().__init__()
        self.result = result

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)


class MeasuresReady(Message):
    """New progress measures and their outlook (a services.ProgressUpdate), or an error."""

    def __init__(self, update: ProgressUpdate) -> None:
        super().__init__()
        self.update = update

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MeasuresReady) and not message.update.error


class ComparisonChanged(Message):
    """The comparison's measures thread moved on (a run started or measured), or failed on
    a run (`error`, never coalesced)."""

    def __init__(self, error: str = "") -> None:
        super().__init__()
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ComparisonChanged) and not message.error


class AblationReady(Message):
    """The ablation thread's scores at a checkpoint and its replay so far (or an error)."""

    def __init__(self, update: AblationUpdate) -> None:
        super().__init__()
        self.update = update

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AblationReady)
