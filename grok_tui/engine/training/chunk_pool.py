"""Threads that step a batched model's chunks side by side, each with its own intra-op threads.

A small model's epoch does not scale to two intra-op threads (its ops are too short for an
OpenMP team to pay), but two chunks stepped at once, one per core, do: torch releases the
GIL inside every op. Each worker owns a fixed share of the chunks (chunk i goes to worker
i mod n), runs them with `threads_each` intra-op threads and keeps its own caches warm.

Determinism: a chunk's numbers depend only on its members and its worker's intra-op thread
count, which every worker shares, never on which thread ran it or when: the same settings
give the same results run after run.

Lifetime: the threads start on the first `run` and stop in `close()`, which joins them; a
pool still open when the interpreter exits is closed by an atexit hook (a torch op running
in a thread while the interpreter finalises aborts the process), after which `run` starts
no thread: it runs the callables in the caller's.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from grok_tui.engine.core.threads import torch_thread

_OPEN: weakref.WeakSet[ChunkPool] = weakref.WeakSet()
_exiting = threading.Event()  # set at interpreter exit: no new workers start after it


class ChunkPool:
    """`workers` threads that run callables, each with `threads_each` torch threads."""

    def __init__(self, workers: int, threads_each: int = 1) -> None:
        if workers < 2 or threads_each < 1:
            raise ValueError("a chunk pool needs >= 2 workers of >= 1 thread each")
        self.workers = workers
        self.threads_each = threads_each
        self._jobs: list[queue.SimpleQueue[Any]] = []
        self._done: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _start(self) -> None:
        caller_threads = torch.get_num_threads()
        ready = threading.Barrier(self.workers + 1)
        for k in range(self.workers):
            jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
            t = torch_thread(self._loop, f"grok-chunk-{k}", (jobs, ready), self.threads_each)
            self._jobs.append(jobs)
            self._threads.append(t)
            t.start()
        ready.wait()
        # torch.set_num_threads in a worker also set the process-wide default that threads
        # started later inherit; give it back (the caller's own count never changed).
        torch.set_num_threads(caller_threads)
        _OPEN.add(self)

    def _loop(self, jobs: queue.SimpleQueue[Any], ready: threading.Barrier) -> None:
        # on `threads_each` torch threads already (`torch_thread`: set at once, so the
        # caller's restore in `_start` cannot become this thread's count at its first op, as
        # it did, workers running the caller's 2 threads each, until this was found)
        ready.wait()
        while True:
            job = jobs.get()
            if job is None:
                return
            index, fn = job
            try:
                self._done.put((index, fn(), None))
            except BaseException as exc:  # handed to the caller, which raises it
                self._done.put((index, None, exc))

    def run(self, fns: Sequence[Callable[[], Any]]) -> list[Any]:
        """Each callable's result, in order; callable i runs on worker i mod `workers`.
        Waits for every callable, even when one raises (then raises the first error)."""
        if _exiting.is_set():  # the interpreter is exiting: run them here, start no thread
            return [fn() for fn in fns]
        with self._lock:
            if not self._threads:
                self._start()
            for i, fn in enumerate(fns):
                self._jobs[i % self.workers].put((i, fn))
            results: list[Any] = [None] * len(fns)
            error: BaseException | None = None
            pending = len(fns)
            try:
                while pending:
                    index, value, exc = self._done.get()
                    pending -= 1
                    results[index] = value
                    error = error or exc
            finally:
                while pending:  # interrupted: the workers finish before anything else runs
                    self._done.get()
                    pending -= 1
            if error is not None:
                raise error
            return results

    def close(self) -> None:
        """Stop and join every worker (idempotent)."""
        with self._lock:
            for jobs in self._jobs:
                jobs.put(None)
            for t in self._threads:
                t.join()
            self._jobs, self._threads = [], []
            _OPEN.discard(self)


@atexit.register
def _close_open_pools() -> None:
    _exiting.set()
    for pool in list(_OPEN):
        pool.close()
