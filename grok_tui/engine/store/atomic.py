"""Writes a kill -9 cannot tear: whole files, whole appended lines, new files, or nothing.

Every run-directory write goes through `_write_fd` (tests inject a full disk there). A
write that fails (a full disk, a quota) leaves no trace: the temp file is removed, an append
is cut back to the last whole line, and the error is one line (`DiskFull` for a full disk).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path

from grok_tui.engine.store.errors import DiskFull, RunError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def write_error(exc: OSError, path: Path) -> RunError:
    """A failed write as one line: DiskFull for a full disk or quota, else RunError."""
    if exc.errno in _FULL_ERRNOS:
        return DiskFull(path)
    return RunError(f"cannot write {path}: {exc.strerror or exc}")


def temp_beside(path: Path) -> Path:
    """A temp name in `path`'s folder (a rename to `path` is then atomic): `.NAME.PID.tmp`,
    or, where that would pass the file system's 255-byte limit on a name (a legal NAME of
    250 bytes), a short one of its own."""
    name = f".{path.name}.{os.getpid()}.tmp"
    if len(os.fsencode(name)) > 255:
        name = f".grok-tui.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    return path.with_name(name)


def _write_fd(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (os.write may write less than asked). Every run-directory
    write goes through here (tests inject a full disk at this one place)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write a whole file or nothing: a reader (or a kill -9) never sees half of it.

    A failure removes the temp file and raises DiskFull / RunError. fsync is for power
    loss only; a killed process cannot tear a replaced file.
    """
    tmp = temp_beside(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_fd(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from None
        raise


def append_bytes(path: Path, data: bytes) -> None:
    """Append whole lines or nothing: a failed append is cut back to where it began (a file
    it created is removed), so no half line is left to read as garbage once others follow.
    After a torn last line (a kill mid-write) the new lines start on a line of their own."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
    try:
        try:
            fd, created = os.open(path, flags | os.O_EXCL, 0o666), True
        except FileExistsError:
            fd, created = os.open(path, flags, 0o666), False
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        start = os.fstat(fd).st_size  # one writer per file (the lock): no one appends between
        if start and os.pread(fd, 1, start - 1) != b"\n":
            data = b"\n" + data  # a torn last line stays a line of its own, not glued to ours
        try:
            _write_fd(fd, data)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                if created:
                    os.unlink(path)
                else:
                    os.ftruncate(fd, start)  # shrinking needs no space
            if isinstance(exc, OSError):
                raise write_error(exc, path) from None
            raise
    finally:
        os.close(fd)


def create_new_bytes(path: Path, data: bytes) -> bool:
    """Create `path` holding `data`; False if it exists. Never leaves an empty or partial
    file: a failed write removes it and raises DiskFull / RunError."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        _write_fd(fd, data)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise write_error(exc, path) from None
    os.close(fd)
    return True
