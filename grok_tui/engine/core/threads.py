"""Thread priorities: keep the UI responsive and training fast while analysis runs.

In the app, one process holds the UI thread, the trainer and the analysis threads. Each
torch thread drives its own OpenMP team, and on two cores those teams starve each other
(bench/contention.py). Linux schedules threads separately and a thread's nice value is
inherited by the OpenMP workers it creates, so lowering the priority of a thread before
its first torch operation ranks it and its team: the UI first, then training, then
analysis. Elsewhere this is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

import torch

TRAINER_NICENESS = 5  # below the UI thread: a key press preempts a training step
ANALYSIS_NICENESS = 10  # below the trainer: scrubbing never slows training much


def lower_this_thread(niceness: int) -> bool:
    """Raise this thread's nice value by `niceness` (Linux); True if it took effect."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return False
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + niceness, 19))
        return True
    return False


def torch_thread(
    target: Callable[..., object], name: str, args: tuple = (), count: int | None = None
) -> threading.Thread:
    """A daemon thread (not started) that runs `target` on `count` torch threads (None: the
    count of the thread that makes it).

    torch gives a thread the process-wide default count at its first torch call, and that
    default is 1 while another thread is inside `torch_threads(1)` (a small model's training
    step): a thread starting then would take the step's count by chance, and with it its
    speed and the rounding of its sums. Setting the count also sets that default: a maker
    that gives its threads another count than its own restores it once they have set
    theirs (`ChunkPool`)."""
    threads = torch.get_num_threads() if count is None else count

    def run() -> None:
        torch.get_num_threads()  # this thread's first torch call: initialised now, then set
        torch.set_num_threads(threads)
        target(*args)

    return threading.Thread(target=run, name=name, daemon=True)


class WakeableThread:
    """A background service's shape: a daemon thread running `_loop`, a stop flag it checks
    between units of work, and a wake event (a poke) that ends its wait early. Subclasses
    set their fields, then call `_start`; `ServiceGroup` stops and joins them."""

    def _start(self, name: str) -> None:
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = torch_thread(self._loop, name)
        self._thread.start()

    def _loop(self) -> None:
        raise NotImplementedError

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block on `n` torch threads (None: as they are), then give the caller back its
    own count. Cheap (~0.2 us for a set and a restore on an Intel Xeon). The count is the
    calling thread's OpenMP team size, but torch also keeps it as the default that a thread
    making its first torch call meanwhile starts with."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
