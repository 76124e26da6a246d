"""One writer at a time on a run's measures cache, across threads and processes.

measures.jsonl is appended to by several writers (the progress records, the excluded
losses, the outlook rows, the LLC thread) and now and then compacted: read whole, then
replaced by a new file. An append that lands between the compaction's read and its replace
goes into the old file and is lost; so every append and every compaction holds this lock.

Within a process: one re-entrant lock per run directory, shared by every `Run` of it (a
compaction rewrites under the lock it already holds). Across processes (a headless trainer
and a viewer on one run): an advisory `flock` on the run directory itself (no file is
added to the run), taken by the outermost holder in the process. Where flock is missing
or refused (a filesystem without it), the lock is the in-process one only.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: in-process only
    fcntl = None  # type: ignore[assignment]


class _DirLock:
    """The in-process lock of one run directory, and its flock while held."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0  # changed only by the thread holding `lock`
        self.fd: int | None = None


_registry: dict[str, _DirLock] = {}
_registry_lock = threading.Lock()


def _dir_lock(path: Path) -> _DirLock:
    key = os.path.realpath(path)
    with _registry_lock:
        return _registry.setdefault(key, _DirLock())


def _flock(path: Path) -> int | None:
    """The run directory opened and flocked (blocking), or None where that is impossible."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def measures_lock(run_dir: Path) -> Iterator[None]:
    """Hold the measures-cache lock of `run_dir` (re-entrant in one thread)."""
    held = _dir_lock(run_dir)
    with held.lock:
        if held.depth == 0:
            held.fd = _flock(run_dir)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                fd, held.fd = held.fd, None
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)  # also if a forked child shares the fd
                os.close(fd)
