"""Whether the process behind a lock or a claim is still alive (this host only)."""

from __future__ import annotations

import os
import socket
from typing import Any


def lock_is_stale(owner: dict[str, Any]) -> bool:
    """A lock is stale when its pid is dead on this host; other hosts can't be checked."""
    if owner["host"] != socket.gethostname():
        return False
    return not pid_alive(owner["pid"])


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
