"""Claims: which worker trains which group of a sweep, across processes and machines.

    SWEEP/claims/group-0007.0003.json   {"state": "held"|"released", "pid", "host",
                                         "started", "token", "since"}

Any number of workers (a local sweep, `--shard` array tasks, `--devices` processes, Ray
tasks) share one sweep directory on a shared filesystem. Before training a group a worker
claims it: it writes a claim file in full under a temporary name and `os.link`s it to the
next generation's name. A link is atomic and fails when the name exists (also on NFS), so
of all workers racing for one generation exactly one wins, and a claim file is never seen
half-written. The newest generation is the claim; older ones are deleted.

A worker may take generation n + 1 only when generation n is free:
- released: its holder finished (or stopped) and said so;
- its holder is gone: it ran on this host and its pid is dead, or reused by another process
  (its start time differs);
- it carries the claimant's own retry token (Ray retries a task only after its worker died,
  and the retry has the same task id, on whichever machine);
- its heartbeat stopped: a holder touches its claim every `lease / 10` seconds; a claim this
  observer has seen unchanged (inode, mtime) for `lease` seconds of its own clock is stale.
  No clock is compared across machines, so clock skew cannot make a live claim look stale.

A holder checks at each heartbeat that its generation is still the newest. One that finds
itself superseded (frozen past the lease, e.g. a suspended job) has lost the group to
another worker: it must stop writing at once (`on_lost`; the default ends the process).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.engine.store.liveness import process_start, recorded_start, same_process_alive
from grok_tui.engine.store.run_meta import now_iso
from grok_tui.engine.store.untrusted import FileProblem, read_regular_file

DEFAULT_LEASE_S = 600.0  # a claim whose heartbeat stopped this long is stale
_CLAIM_RE = re.compile(r"^group-(\d{4,})\.(\d{4,})\.json$")
LOST_EXIT_CODE = 75


def this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "started": process_start(pid)}


@dataclass(frozen=True)
class Holder:
    """One claim file as read: who holds (or held) the group, and the file's signature."""

    group: int
    generation: int
    path: Path
    data: dict[str, Any]
    signature: tuple[int, int]  # (inode, mtime_ns): a heartbeat changes it

    @property
    def released(self) -> bool:
        return self.data.get("state") == "released"

    @property
    def owner(self) -> dict[str, Any] | None:
        """The holder's pid and host, when the file names them."""
        pid, host = self.data.get("pid"), self.data.get("host")
        if isinstance(pid, int) and isinstance(host, str):
            return {"pid": pid, "host": host}
        return None

    def describe(self) -> str:
        owner = self.owner
        return f"pid {owner['pid']} on {owner['host']}" if owner else "an unreadable claim"

    def waiting_note(self, lease_s: float) -> str:
        """What a sweep that waits for this claim tells the user, in one line. A claim file
        grok-tui did not write (it writes them whole, by link) names nobody: the wait then
        lasts a whole lease, so the user is told how long and how to end it sooner."""
        if self.owner is not None:
            return f"group {self.group} is being trained by {self.describe()}; waiting for it"
        return (
            f"group {self.group}: its claim {self.path} is unreadable, so it counts as held "
            f"until it has not changed for {lease_s:.0f} s (the claim lease); if no other "
            "worker trains this sweep, delete that file to go on now"
        )

    def alive_here(self) -> bool | None:
        """Whether its holder is a live process on this host; None: another host's (or
        nobody's), which only the heartbeat can tell."""
        owner = self.owner
        if owner is None or owner["host"] != socket.gethostname():
            return None
        return same_process_alive(owner["pid"], recorded_start(self.data))


class Claims:
    """The claims of one sweep directory, as seen by one worker (it remembers heartbeats)."""

    def __init__(
        self,
        sweep_dir: Path | str,
        lease_s: float = DEFAULT_LEASE_S,
        token: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lease_s > 0:
            raise ValueError(f"the claim lease must be positive, got {lease_s}")
        self.dir = Path(sweep_dir) / "claims"
        self.lease_s = lease_s
        self.token = token  # shared by the attempts of one retried task, else ""
        self.clock = clock
        self._seen: dict[Path, tuple[tuple[int, int], float]] = {}

    # -- reading ----------------------------------------------------------------------------
    def _listing(self) -> dict[int, list[tuple[int, Path]]]:
        """Every claimed group's generations (ascending) and files, from one listing."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return {}
        out: dict[int, list[tuple[int, Path]]] = {}
        for name in names:
            m = _CLAIM_RE.match(name)
            if m and name.startswith(f"group-{int(m.group(1)):04d}."):  # as `_generations`
                out.setdefault(int(m.group(1)), []).append((int(m.group(2)), self.dir / name))
        return {group: sorted(gens) for group, gens in out.items()}

    def _generations(self, group: int) -> list[tuple[int, Path]]:
        """One group's generations (ascending): a worker's hot path (each claim, each
        heartbeat), so no Path is made for another group's files."""
        prefix = f"group-{group:04d}."
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.startswith(prefix) and (m := _CLAIM_RE.match(name)):
                out.append((int(m.group(2)), self.dir / name))
        return sorted(out)

    def holder(self, group: int) -> Holder | None:
        """The newest claim of a group (None if it was never claimed)."""
        for _ in range(5):  # a claim may be replaced between the listing and the read
            gens = self._generations(group)
            if not gens:
                return None
            found = self._read(group, *gens[-1])
            if found is not None:
                return found
        return None

    def holders(self, groups: Iterable[int]) -> dict[int, Holder]:
        """The newest claim of each of these groups that has one: one listing for all (a
        sweep of a thousand groups is looked at every few seconds), a group whose claim
        was replaced meanwhile read again alone."""
        listing = self._listing()
        out = {}
        for group in groups:
            if group in listing:
                found = self._read(group, *listing[group][-1]) or self.holder(group)
                if found is not None:
                    out[group] = found
        return out

    def _read(self, group: int, generation: int, path: Path) -> Holder | None:
        """The claim file `path` as read; None if it is gone (replaced by a newer one)."""
        try:
            st = os.stat(path)
            raw = read_regular_file(path, 1 << 16)  # a FIFO must not hang a worker
        except FileNotFoundError:
            return None
        except FileProblem:
            raw = b""  # not a file: an unreadable claim
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        return Holder(group, generation, path, data, (st.st_ino, st.st_mtime_ns))

    def is_free(self, holder: Holder) -> bool:
        """Released, or its holder is gone (see the module docstring)."""
        if holder.released:
            return True
        data = holder.data
        if self.token and data.get("token") == self.token:
            return True  # an earlier attempt of this very task: Ray retried it, so it died
        me = this_process()
        if (
            data.get("host") == me["host"]
            and isinstance(data.get("pid"), int)
            and not same_process_alive(data["pid"], recorded_start(data))
        ):
            return True  # dead, or the pid now belongs to another process
        return self._heartbeat_stopped(holder)

    def _heartbeat_stopped(self, holder: Holder) -> bool:
        now = self.clock()
        seen = self._seen.get(holder.path)
        if seen is None or seen[0] != holder.signature:
            self._seen[holder.path] = (holder.signature, now)
            return False
        return now - seen[1] >= self.lease_s

    # -- claiming ---------------------------------------------------------------------------
    def try_claim(self, group: int) -> Claim | None:
        """Claim the group if it is free; None if a live worker holds it (or won the race)."""
        current = self.holder(group)
        if current is not None and not self.is_free(current):
            return None
        generation = current.generation + 1 if current else 1
        data = {**this_process(), "state": "held", "token": self.token, "since": now_iso()}
        path = self.dir / f"group-{group:04d}.{generation:04d}.json"
        if not self._link_new(path, data):
            return None
        took_over = None if current is None or current.released else current.owner
        if current is not None:
            for older, old in self._generations(group):
                if older < generation:
                    with contextlib.suppress(OSError):
                        os.unlink(old)
        return Claim(self, group, generation, path, data, took_over)

    def _link_new(self, path: Path, data: dict[str, Any]) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{path.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(data).encode())
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            # Not the link's answer but the link count: over NFS a retried LINK whose first
            # reply was lost answers "exists" although it made the link (as liblockfile does).
            return os.stat(tmp).st_nlink == 2
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def newest_generation(self, group: int) -> int | None:
        gens = self._generations(group)
        return gens[-1][0] if gens else None


def exit_on_lost(claim: Claim) -> None:
    """Another worker took this group over: stop writing now, whatever the loop is doing."""
    print(
        f"grok-tui: error: lost the claim on group {claim.group} to another worker "
        "(this process was frozen past the claim lease); stopping without writing more",
        file=sys.stderr,
        flush=True,
    )
    os._exit(LOST_EXIT_CODE)


@dataclass
class Claim:
    """A held claim. `start()` runs the heartbeat thread; `release()` stops it and frees
    the group (use as a context manager)."""

    claims: Claims
    group: int
    generation: int
    path: Path
    data: dict[str, Any]
    took_over: dict[str, Any] | None  # pid and host of the stale holder replaced, if any
    on_lost: Callable[[Claim], None] = exit_on_lost
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def heartbeat_s(self) -> float:
        return self.claims.lease_s / 10

    def __enter__(self) -> Claim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name=f"grok-claim-{self.group}", daemon=True
        )
        self._thread.start()

    def still_ours(self) -> bool:
        return self.claims.newest_generation(self.group) == self.generation

    def beat(self) -> bool:
        """Touch the claim; False (and `on_lost`) if another worker took the group over."""
        if not self.still_ours():
            self.lost.set()
            self.on_lost(self)
            return False
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.beat():
                return

    def release(self) -> None:
        """Stop the heartbeat and mark the claim released (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.lost.is_set() or not self.still_ours():
            return
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        data = {**self.data, "state": "released", "released": now_iso()}
        try:
            tmp.write_bytes(json.dumps(data).encode())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            # Not marked released: the claim goes stale once this process is gone.
