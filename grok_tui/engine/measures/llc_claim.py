"""Which LLC service may estimate a run's checkpoints: one at a time, across processes.

A viewer app and a headless trainer (or two viewers) on one run each run an LLC service;
without a claim both would estimate the same checkpoints, doubling a cost that is bounded
per process. The service that estimates holds RUN/llc.claim:

    {"pid", "host", "token", "since",    written whole under a temporary name, then
     "started"}                          os.link'ed: of two racing, one wins, and no one
                                         reads a claim half-written

and removes it when it has nothing left to do or stops. Another service waits, reading the
holder's rows from the cache as they come, and takes over when the claim is gone or stale:
its pid is dead or now another process's (this host: the start time tells), or, from another
host, its file was not refreshed for `LEASE_S` (a holder refreshes it every `REFRESH_S`
while estimating). The token tells apart two services of one process. A holder checks
between bursts that the claim is still its own (two waiters taking over one dead claim at
once may both think they won; the loser drops its estimate in flight at its next check). A
read-only run (a served viewer) writes nothing: it takes no claim and keeps its estimates in
memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from typing import Any

from grok_tui.engine.store.atomic import create_new_bytes
from grok_tui.engine.store.liveness import process_start, recorded_start, same_process_alive
from grok_tui.engine.store.run_meta import now_iso
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.store.untrusted import FileProblem, read_json_file

CLAIM_NAME = "llc.claim"
LEASE_S = 600.0  # another host's claim not refreshed this long is stale
REFRESH_S = 60.0  # a holder on another host refreshes its claim this often
CHECK_S = 1.0  # a holder looks at most this often whether the claim is still its own


def _holder(data: Any) -> dict[str, Any] | None:
    """A claim file's content if it is one (untrusted: type-checked)."""
    if (
        isinstance(data, dict)
        and isinstance(data.get("pid"), int)
        and not isinstance(data.get("pid"), bool)
        and isinstance(data.get("host"), str)
        and isinstance(data.get("token"), str)
    ):
        return data
    return None


class LLCClaim:
    """One service's claim on estimating a run's checkpoints."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.path = run.path / CLAIM_NAME
        pid = os.getpid()
        self.me = {"pid": pid, "host": socket.gethostname(), "token": uuid.uuid4().hex,
                   "started": process_start(pid)}  # fmt: skip
        self.held = False
        self._refreshed = 0.0
        self._checked = 0.0

    def holder(self) -> dict[str, Any] | None:
        """Who holds the claim now (None: no one, or an unreadable file)."""
        try:
            return _holder(read_json_file(self.path))
        except (OSError, FileProblem):
            return None

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        if holder is None:
            return True  # unreadable: a claim torn by a kill, or not a claim at all
        if holder["host"] == socket.gethostname():
            return not same_process_alive(holder["pid"], recorded_start(holder))
        try:
            age = time.time() - self.path.stat().st_mtime
        except OSError:
            return True
        return age > LEASE_S

    def take(self) -> bool:
        """Hold the claim (True), or leave it to its live holder (False)."""
        if self.held and self._mine():
            return True
        self.held = False
        for _ in range(3):
            if self._create():
                self.held = True
                self._refreshed = time.monotonic()
                return True
            holder = self.holder()
            if holder is not None and holder["token"] == self.me["token"]:
                self.held = True
                return True
            if not self._stale(holder):
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # a dead holder's: take it over
        return False

    def _create(self) -> bool:
        """Create the claim file holding this service's claim; False if there is one."""
        tmp = self.path.with_name(f".{CLAIM_NAME}.{self.me['token']}")
        claim = {**self.me, "since": now_iso()}
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if not create_new_bytes(tmp, json.dumps(claim).encode()):
            return False
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise RunError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def still_mine(self) -> bool:
        """Whether this service still holds the claim (called between bursts; the file is
        read at most every CHECK_S)."""
        now = time.monotonic()
        if self.held and now - self._checked >= CHECK_S:
            self._checked = now
            self.held = self._mine()
        return self.held

    def _mine(self) -> bool:
        holder = self.holder()
        return holder is not None and holder["token"] == self.me["token"]

    def refresh(self) -> None:
        """Keep a held claim fresh for observers on other hosts (every REFRESH_S)."""
        if self.held and time.monotonic() - self._refreshed >= REFRESH_S:
            self._refreshed = time.monotonic()
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Give the claim up (only if it is still this service's)."""
        if self.held and self._mine():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.held = False

    def describe(self) -> str:
        """Who estimates instead of this service, as one line for the viewer."""
        holder = self.holder()
        if holder is None:
            return "learning coefficient: waiting for another estimator"
        where = "" if holder["host"] == socket.gethostname() else f" on {holder['host']}"
        return f"learning coefficient: estimated by pid {holder['pid']}{where}"
