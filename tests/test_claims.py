"""Claims: one worker per group, whatever the number of processes racing for it."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grok_tui.engine.lab.claims import Claim, Claims
from grok_tui.engine.store.liveness import process_start, recorded_start, same_process_alive


def write_claim(sweep_dir: Path, group: int, generation: int, **data) -> Path:
    path = sweep_dir / "claims" / f"group-{group:04d}.{generation:04d}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"state": "held", **data}))
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_claim_per_group_then_release(tmp_path) -> None:
    a, b = Claims(tmp_path), Claims(tmp_path)
    held = a.try_claim(3)
    assert held is not None and held.generation == 1 and held.took_over is None
    assert b.try_claim(3) is None  # a live process on this host holds it
    assert b.try_claim(4) is not None  # other groups are free
    held.release()
    again = b.try_claim(3)
    assert again is not None and again.generation == 2 and again.took_over is None
    # Only the newest generation is kept.
    assert sorted(p.name for p in (tmp_path / "claims").glob("group-0003.*")) == [
        "group-0003.0002.json"
    ]
    assert not list((tmp_path / "claims").glob(".*"))  # no temporary file left behind


def test_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path) -> None:
    pid = dead_pid()
    write_claim(tmp_path, 0, 1, pid=pid, host=socket.gethostname(), started=None)
    claim = Claims(tmp_path).try_claim(0)
    assert claim is not None and claim.generation == 2
    assert claim.took_over == {"pid": pid, "host": socket.gethostname()}


def test_a_reused_pid_is_not_its_old_holder(tmp_path) -> None:
    # Our parent is alive, but not the process that claimed: its start time differs.
    ppid = os.getppid()
    started = process_start(ppid)
    if started is None:
        pytest.skip("no /proc here")
    write_claim(tmp_path, 0, 1, pid=ppid, host=socket.gethostname(), started=started + 1)
    assert Claims(tmp_path).try_claim(0) is not None
    write_claim(tmp_path, 1, 1, pid=ppid, host=socket.gethostname(), started=started)
    assert Claims(tmp_path).try_claim(1) is None


def test_another_host_is_gone_only_after_its_heartbeat_stops_for_a_lease(tmp_path) -> None:
    path = write_claim(tmp_path, 0, 1, pid=1, host="elsewhere.example", started=5)
    clock = FakeClock()
    claims = Claims(tmp_path, lease_s=60, clock=clock)
    assert claims.try_claim(0) is None  # first sight: the lease starts now
    clock.now = 59
    assert claims.try_claim(0) is None
    # A heartbeat (the holder touches the file) restarts the lease.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    clock.now = 100
    assert claims.try_claim(0) is None
    clock.now = 159
    assert claims.try_claim(0) is None
    clock.now = 160.5
    claim = claims.try_claim(0)
    assert claim is not None and claim.took_over == {"pid": 1, "host": "elsewhere.example"}


def test_a_retried_task_takes_its_own_claim_back(tmp_path) -> None:
    write_claim(tmp_path, 0, 1, pid=1, host="elsewhere.example", token="task-7")
    assert Claims(tmp_path, token="task-8").try_claim(0) is None
    assert Claims(tmp_path, token="task-7").try_claim(0) is not None


def test_an_unreadable_claim_counts_as_held_until_its_lease_runs_out(tmp_path) -> None:
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "group-0000.0001.json").write_bytes(b"\xff{not json")
    clock = FakeClock()
    claims = Claims(tmp_path, lease_s=10, clock=clock)
    assert claims.try_claim(0) is None
    clock.now = 10
    claim = claims.try_claim(0)
    assert claim is not None and claim.took_over is None


def test_a_holder_that_was_taken_over_knows_at_its_next_heartbeat(tmp_path) -> None:
    lost: list[Claim] = []
    mine = Claims(tmp_path).try_claim(0)
    assert mine is not None
    mine.on_lost = lost.append
    assert mine.beat() and not lost
    # Another host decides we are gone (we were frozen past the lease).
    clock = FakeClock()
    other = Claims(tmp_path, lease_s=1, clock=clock)
    data = json.loads(mine.path.read_text())
    mine.path.write_text(json.dumps({**data, "host": "frozen.example"}))
    assert other.try_claim(0) is None
    clock.now = 2
    theirs = other.try_claim(0)
    assert theirs is not None and theirs.generation == 2
    assert not mine.beat() and lost == [mine] and mine.lost.is_set()
    mine.release()  # must not touch the new holder's claim
    assert json.loads(theirs.path.read_text())["state"] == "held"


def test_the_heartbeat_thread_touches_the_claim_and_is_joined(tmp_path) -> None:
    claim = Claims(tmp_path, lease_s=0.5).try_claim(0)
    assert claim is not None
    before = claim.path.stat().st_mtime_ns
    with claim:
        deadline = time.time() + 10
        while claim.path.stat().st_mtime_ns == before and time.time() < deadline:
            time.sleep(0.01)
        assert claim.path.stat().st_mtime_ns != before
    assert claim._thread is None
    assert json.loads(claim.path.read_text())["state"] == "released"


def _race(sweep_dir: str, groups: int, ready, done, out) -> None:
    ready.wait(timeout=600)  # every racer has imported: they claim at the same time
    won = []
    claims = Claims(sweep_dir)
    for g in range(groups):
        if claims.try_claim(g) is not None:  # held until this process exits
            won.append(g)
    out.put((os.getpid(), won))
    done.wait(timeout=600)  # alive, so its claims stay held, until every racer has reported


def test_processes_racing_for_the_same_groups_each_win_distinct_ones(tmp_path) -> None:
    """Four processes claim the same 40 groups at once: each group is won exactly once.

    They start together at a barrier and stay alive until all have reported: a racer that
    finished and exited before a slow one (still importing torch, minutes on a loaded CI
    machine) had even started left claims of a dead process, which are rightly taken over
    (crash recovery), and every group was won twice (seen once under load 8)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    ready, done = ctx.Barrier(4), ctx.Event()
    procs = [
        ctx.Process(target=_race, args=(str(tmp_path), 40, ready, done, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        # A deadline for a hang, not for speed: spawned children import torch, minutes under load.
        results = [out.get(timeout=600) for _ in procs]
    finally:
        done.set()
        for p in procs:
            p.join(timeout=600)
    won = [g for _, groups in results for g in groups]
    assert sorted(won) == list(range(40)), "a group claimed twice, or by nobody"


def test_a_claim_that_is_a_fifo_is_unreadable_not_a_hang(tmp_path) -> None:
    """Reading a FIFO blocks until a writer comes: in a child, so a hang fails."""
    (tmp_path / "claims").mkdir()
    os.mkfifo(tmp_path / "claims" / "group-0000.0001.json")
    code = (
        "import sys\n"
        "from grok_tui.engine.lab.claims import Claims\n"
        "holder = Claims(sys.argv[1]).holder(0)\n"
        "print('generation', holder.generation, 'data', holder.data)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "generation 1 data {}"


def test_a_reused_pid_is_not_its_old_process() -> None:
    """Alive and started when recorded: the holder. Alive but started at another time: the
    pid went to a new process. No start recorded: the pid alone. Untrusted starts ignored."""
    me, started = os.getpid(), process_start(os.getpid())
    assert started is not None
    assert same_process_alive(me, started) and same_process_alive(me, None)
    assert not same_process_alive(me, started + 1)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert not same_process_alive(int(child.stdout), None)
    assert recorded_start({"started": 5}) == 5
    assert recorded_start({"started": True}) is None and recorded_start({"started": "5"}) is None


def test_what_the_parent_of_workers_says_they_wait_for(tmp_path) -> None:
    """Worker processes print only into workers.log, so a sweep whose group was held by
    a claim file nobody wrote waited its whole lease (600 s) without a word."""
    from grok_tui.engine.lab.backends import LOOK_S, ClaimWatch
    from grok_tui.engine.lab.sweep import Sweep, SweepSpec
    from tests.sweep_harness import TINY_BASE

    sweep = Sweep.create(tmp_path / "s", SweepSpec(TINY_BASE, {"seed": [0, 1, 2, 3, 4]}), "cpu")
    here, me = socket.gethostname(), os.getpid()
    (sweep.path / "claims").mkdir()
    (sweep.path / "claims" / "group-0000.0001.json").write_bytes(b"\xff{not json")
    write_claim(sweep.path, 1, 1, pid=me, host=here, started=process_start(me))  # a worker
    write_claim(sweep.path, 2, 1, pid=dead_pid(), host=here, started=None)  # taken over
    write_claim(sweep.path, 3, 2, pid=7, host="elsewhere.example")  # another machine's
    write_claim(sweep.path, 4, 1, pid=7, host="elsewhere.example", state="released")
    clock = FakeClock()
    watch = ClaimWatch(sweep, range(5), {me}, lease_s=600, clock=clock)
    notes = watch.look()
    assert len(notes) == 2
    assert notes[0].startswith("group 0: its claim ") and "unreadable" in notes[0]
    assert "600 s" in notes[0] and "group-0000.0001.json" in notes[0]
    assert notes[1] == "group 3 is being trained by pid 7 on elsewhere.example; waiting for it"
    assert watch.look() == []  # not before LOOK_S
    clock.now = LOOK_S
    assert watch.look() == []  # each said once
    # A process of this host that is not one of the workers (another `sweep --resume`).
    other = ClaimWatch(sweep, [1], set(), lease_s=600, clock=clock)
    assert other.look() == [f"group 1 is being trained by pid {me} on {here}; waiting for it"]
