"""Whether the process behind a lock or a claim is still alive (this host only)."""

from __future__ import annotations

import os
import socket
from typing import Any


def lock_is_stale(owner: dict[str, Any]) -> bool:
    """A lock is stale when its pid is dead on this host, or now another process's (the
    start time it recorded tells; older locks have none); other hosts can't be checked."""
    if owner["host"] != socket.gethostname():
        return False
    return not same_process_alive(owner["pid"], recorded_start(owner))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def same_process_alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is alive and is the process that started at `started` (clock ticks
    since boot; None: not recorded, the pid alone decides): a pid the kernel gave to a new
    process since is not the holder."""
    if not pid_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def recorded_start(data: dict[str, Any]) -> int | None:
    """The "started" a claim or lock file recorded, if it is a start time (untrusted)."""
    started = data.get("started")
    return started if isinstance(started, int) and not isinstance(started, bool) else None
