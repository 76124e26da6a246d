"""A run screen's state: one explicit machine instead of flags checked from many places.

    starting   opened to train; the trainer has not started yet
    training   the trainer thread in this process trains the run
    paused     ... and is paused (space)
    following  another process trains the run; the app shows it live
    stopped    an unfinished run nobody trains (r resumes it here)
    done       the run reached its last epoch
    failed     training stopped on an error (a non-finite loss...)
    quitting   the app saves a checkpoint and exits: no new work starts

`viewer` (a browser viewer, `grok-tui serve`, or a sweep's member) is a mode, not a state:
such a screen shows the run's state but never trains. The status bar shows the state the
moment it changes.
"""

from __future__ import annotations

from enum import Enum


class RunState(str, Enum):
    STARTING = "starting"
    TRAINING = "training"
    PAUSED = "paused"
    FOLLOWING = "following"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"
    QUITTING = "quitting"

    def __str__(self) -> str:
        return self.value


S = RunState
_SETTLED = {S.FOLLOWING, S.STOPPED, S.DONE, S.FAILED}
TRANSITIONS: dict[RunState, set[RunState]] = {
    S.STARTING: {S.TRAINING, *_SETTLED, S.QUITTING},
    S.TRAINING: {S.PAUSED, S.STOPPED, S.DONE, S.FAILED, S.QUITTING},
    S.PAUSED: {S.TRAINING, S.STOPPED, S.DONE, S.FAILED, S.QUITTING},
    S.FOLLOWING: {*_SETTLED, S.QUITTING},
    S.STOPPED: {S.TRAINING, *_SETTLED, S.QUITTING},
    S.DONE: {*_SETTLED, S.QUITTING},
    S.FAILED: {S.TRAINING, *_SETTLED, S.QUITTING},
    S.QUITTING: set(),
}
TRAINING_HERE = {S.TRAINING, S.PAUSED}
LIVE = {S.STARTING, S.TRAINING, S.PAUSED, S.FOLLOWING}  # the run grows while we look


class IllegalTransition(RuntimeError):
    """A bug: the screen asked for a state change the machine does not allow."""


def check_transition(old: RunState, new: RunState) -> None:
    if new != old and new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new}")


def state_on_disk(status: str, writer_alive: bool) -> RunState:
    """The state of a run this app does not train: from run.json and the trainer lock."""
    if writer_alive:
        return S.FOLLOWING
    if status == "done":
        return S.DONE
    if status == "failed":
        return S.FAILED
    return S.STOPPED
