"""How a sweep's groups get trained: by claim, in this process, in shards, on several devices.

Every way of running a sweep is the same worker loop (`run_groups`) in one or more
processes: for each of its groups it claims the group (`claims.py`), trains the group's
unfinished members from their last checkpoints, and releases the claim. Claims make the
workers agree without talking to each other, so they may be anything that can reach the
sweep directory:
- the local backend: one process, every group (or `--shard I/N`: groups g with g % N == I,
  for array jobs of a batch scheduler); on a CPU, where the groups are single members of
  a small model (`sweep.auto_group_size`), one worker process per usable core, as below;
- `--devices cuda:0,cuda:1`: one worker process per device, each taking the next unclaimed
  group, so the groups spread over the devices as they finish;
- Ray (`ray_backend.py`): one task per group.
A worker that finds a group claimed by a live worker goes on with its other groups, then
waits for the claimed ones: once released, their members are done (nothing to train) or
stopped (it continues them); a claim whose holder died is taken over.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grok_tui.engine.core.config import ConfigError
from grok_tui.engine.lab.claims import DEFAULT_LEASE_S, Claim, Claims, exit_on_lost
from grok_tui.engine.lab.sweep import Sweep, free_memory, member_needs_training
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.store.untrusted import what_is_wrong
from grok_tui.engine.training.train import Event, Finished, GroupTrainer, TrainControl

POLL_S = 1.0  # how often a waiting worker looks at the claims of the groups it waits for
WORKER_LOG = "workers.log"  # in the sweep: what worker processes print (`_output_to`)
# A worker process's memory, rounded up: one training a quick-preset member measured 290 MB
# resident (torch imported, the member's buffers), p = 80 adds ~20 MB of buffers.
WORKER_BYTES = 512 << 20


@dataclass
class Waiting:
    """An event: the worker waits for groups other workers hold (`holders`: who)."""

    groups: list[int]
    holders: list[str]


SweepEvent = Event | Waiting  # what a sweep's `on_event` is called with
LOOK_S = 5.0  # how often a parent of worker processes looks for claims none of them holds


SAID_FAILURES = 5  # failures named in a message; the rest are counted


class GroupsFailed(RunError):
    """Groups a worker could not train (a member's damaged resume state, a member another
    process has locked, ...), each failure a line, raised once the worker has trained every
    other group it could: one member's files do not stop a sweep of hundreds. `results`:
    the Finished of what did train."""

    def __init__(self, failures: list[str], results: list[Finished] | None = None) -> None:
        self.failures = list(dict.fromkeys(failures))  # each once, in order
        self.results = results or []
        super().__init__(said_in_short(self.failures))


def said_in_short(failures: Sequence[str], most: int = SAID_FAILURES) -> str:
    """The first `most` failures and how many more: one line, whatever their number."""
    more = len(failures) - most
    return "; ".join(failures[:most]) + (f"; and {more:,} more" if more > 0 else "")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8): shard 2 of 8, counting from 0 (SLURM_ARRAY_TASK_ID with --array=0-7)."""
    parts = text.split("/")
    try:
        index, count = (int(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count is None:
        raise ConfigError(f"--shard {text!r} is not I/N (e.g. 0/4)")
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: I must be in 0..N-1 and N >= 1")
    return index, count


def shard_groups(n_groups: int, shard: tuple[int, int] | None) -> list[int]:
    """The groups of one shard: every N-th, starting at I (groups are ordered by shape and
    train-set size, so round robin gives each shard a similar mix)."""
    if shard is None:
        return list(range(n_groups))
    index, count = shard
    return list(range(index, n_groups, count))


def group_needs_training(sweep: Sweep, names: Sequence[str]) -> bool:
    return any(member_needs_training(sweep.member_run(n)) for n in names)


def train_group(
    sweep: Sweep,
    names: Sequence[str],
    device: str,
    on_event: Callable[[Event], None] | None = None,
    control: TrainControl | None = None,
    stale_owner: dict[str, Any] | None = None,
) -> list[Finished]:
    """Train one group's unfinished members as one batched model; returns their Finished.

    Takes each member's run lock first (a stale one is taken over) and releases them after.
    `stale_owner` (pid and host): a worker whose claim on this group was found stale; its
    member locks are broken, even from another host (the claim proved it gone).
    """
    meta = sweep.meta()
    runs = [sweep.member_run(n) for n in names]
    runs = [r for r in runs if member_needs_training(r)]
    if not runs:
        return []
    locked: list[Run] = []
    try:
        for run in runs:
            if stale_owner is not None:
                break_lock_of(run, stale_owner)
            run.acquire_lock()
            locked.append(run)
        policies = [sweep.policy(run, meta.plan) for run in runs]
        trainer = GroupTrainer(runs, device, on_event, policies, chunk_size=meta.chunk_size)
        return trainer.train(control)
    finally:
        for run in locked:
            run.release_lock()


def break_lock_of(run: Run, owner: dict[str, Any]) -> None:
    """Remove the member's run lock if `owner` (a worker known to be gone) holds it."""
    held = run.lock_owner()
    if held is not None and (held["pid"], held["host"]) == (owner["pid"], owner["host"]):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run.lock_path)


def usable_cores() -> int:
    """The cores this process may run on (a batch scheduler's binding, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def single_groups_left(sweep: Sweep, groups: Sequence[int] | None = None) -> list[int]:
    """The given groups (default: all) still to train that are one member each."""
    meta = sweep.meta()
    todo = range(len(meta.groups)) if groups is None else groups
    return [
        g for g in todo if len(meta.groups[g]) == 1 and group_needs_training(sweep, meta.groups[g])
    ]


def local_processes(sweep: Sweep, device: str, groups: Sequence[int] | None = None) -> int:
    """Worker processes for the groups of one member (a small model's on a CPU,
    `sweep.auto_group_size`) among these: one per usable core, at most one per such group
    and as many as half the free memory holds at WORKER_BYTES each, where at least two are
    left; else 1 (this process). Members alone train the same in any process, so this never
    changes a number, only how many train at once."""
    if device != "cpu":
        return 1
    return workers_for(len(single_groups_left(sweep, groups)))


def workers_for(singles: int) -> int:
    """Worker processes for this many groups of one member (`local_processes`)."""
    if singles < 2:
        return 1
    return min(usable_cores(), singles, max(1, free_memory("cpu") // 2 // WORKER_BYTES))


def train_sweep(
    sweep: Sweep,
    device: str,
    on_event: Callable[[SweepEvent], None] | None = None,
    control: TrainControl | None = None,
    groups: Iterable[int] | None = None,
    processes: int = 0,
    **options: Any,
) -> list[Finished]:
    """Train the given groups (default: all) here, each under its claim (other processes
    may train the others); stop early on a stop request.

    `processes`: 0 (the default) trains the groups of one member in `local_processes`
    worker processes, then any batched group (a larger model's, in a sweep over p) in this
    process; 1 trains every group in this process, where `on_event` sees every epoch; more
    trains every group in that many workers. Workers report through the directory:
    `on_event` sees `Waiting` ticks. `options`: `run_groups`' keyword options (lease, token,
    say, ...)."""
    chosen = list(range(len(sweep.meta().groups)) if groups is None else groups)
    lease = {k: v for k, v in options.items() if k in ("lease_s", "say")}  # the workers'
    if processes > 1:
        return train_on_devices(sweep, [device] * processes, chosen, on_event, control, **lease)
    singles = single_groups_left(sweep, chosen) if device == "cpu" and not processes else []
    workers = workers_for(len(singles))
    if workers <= 1:
        return run_groups(sweep, device, chosen, on_event, control, **options)
    failures: list[str] = []
    try:
        results = train_on_devices(sweep, [device] * workers, singles, on_event, control, **lease)
    except GroupsFailed as exc:  # members the workers could not train: the rest still do
        failures, results = exc.failures, exc.results
    done = set(singles)
    rest = [g for g in chosen if g not in done]
    if rest and not (control is not None and control.stop.is_set()):
        try:
            results += run_groups(sweep, device, rest, on_event, control, **options)
        except GroupsFailed as exc:
            failures, results = failures + exc.failures, results + exc.results
    if failures:
        raise GroupsFailed(failures, results)
    return results


def run_groups(
    sweep: Sweep,
    device: str,
    groups: Sequence[int] | None = None,
    on_event: Callable[[SweepEvent], None] | None = None,
    control: TrainControl | None = None,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    token: str = "",
    poll_s: float = POLL_S,
    on_lost: Callable[[Claim], None] = exit_on_lost,
    say: Callable[[str], None] | None = None,
) -> list[Finished]:
    """Train the given groups (default: all), each under its claim; returns the members'
    Finished. Returns early on a stop request (`control.stop`). A group that fails with a
    RunError (its files) is tried once; `GroupsFailed` names them after the others."""
    meta = sweep.meta()
    todo = list(range(len(meta.groups)) if groups is None else groups)
    claims = Claims(sweep.path, lease_s, token)
    emit = on_event or (lambda event: None)
    results: list[Finished] = []
    failures: list[str] = []
    waiting_for: dict[int, str] = {}

    def stopped() -> bool:
        return control is not None and control.stop.is_set()

    while todo and not stopped():
        for g in list(todo):
            if stopped():
                break
            names = meta.groups[g]
            label = names[0] if len(names) == 1 else f"group {g}"
            try:
                needed = group_needs_training(sweep, names)
            except RunError as exc:  # a member's run.json: the group cannot be read
                failures.append(f"{label}: {exc}")
                needed = False
            if not needed:
                todo.remove(g)
                waiting_for.pop(g, None)
                continue
            claim = claims.try_claim(g)
            if claim is None:
                holder = claims.holder(g)
                who = holder.describe() if holder else "another worker"
                if say is not None and waiting_for.get(g) != who:
                    say(holder.waiting_note(lease_s) if holder else
                        f"group {g} is being trained by {who}; waiting for it")  # fmt: skip
                waiting_for[g] = who
                continue
            waiting_for.pop(g, None)
            claim.on_lost = on_lost
            with claim:
                if claim.took_over is not None and say is not None:
                    say(f"group {g}: took over the claim of {claim.took_over['pid']} on "
                        f"{claim.took_over['host']} (gone)")  # fmt: skip
                try:
                    results += train_group(
                        sweep, names, device, on_event, control, stale_owner=claim.took_over
                    )
                except RunError as exc:  # released like any other: it is tried once
                    failures.append(f"{label}: {exc}")
            if not stopped():
                todo.remove(g)  # trained once: a member that crashed is not retried here
        if todo and not stopped():
            emit(Waiting(sorted(waiting_for), sorted(set(waiting_for.values()))))
            if control is not None:
                control.stop.wait(poll_s)
            else:
                time.sleep(poll_s)
    if failures:
        raise GroupsFailed(failures, results)
    return results


def results_from_dir(sweep: Sweep, groups: Sequence[int]) -> list[Finished]:
    """One Finished per member of these groups, read back from their run directories (for
    workers in other processes, which report through the directory only)."""
    meta = sweep.meta()
    out = []
    for g in groups:
        for name in meta.groups[g]:
            run = sweep.member_run(name)
            try:
                run_meta = run.meta()
                rows = run.read_metrics()
            except RunError:  # a damaged member: its worker named it
                continue
            epoch = int(rows[-1]["epoch"]) if rows else 0
            out.append(Finished(run_meta.status, epoch, run_meta.message, name))
    return out


# -- several devices, one process each --------------------------------------------------------
def _device_worker(sweep_path: str, device: str, groups: list[int], lease_s: float,
                   threads: int, errors: Any = None) -> None:  # fmt: skip
    """A child process: train groups on one device until none is left (or a signal). Its
    error goes to the parent (`errors`, a queue), which says it on a line of its own: a
    child printing on the terminal would write at the end of the parent's live table."""
    import torch

    _die_with_parent()
    _output_to(Path(sweep_path) / WORKER_LOG)
    if device == "cpu":
        torch.set_num_threads(threads)
    control = TrainControl()

    def stop(signum: int, frame: object) -> None:
        control.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)

    def report(line: str, kind: str = "worker") -> None:
        """`kind`: "member" (one member could not train; the others did) or "worker"."""
        if errors is not None:
            errors.put((kind, line))
        else:
            print(f"grok-tui: error: {line}", file=sys.stderr, flush=True)

    try:
        run_groups(Sweep(sweep_path), device, groups, None, control, lease_s=lease_s)
    except GroupsFailed as exc:  # a member each (capped: the queue is a pipe of 64 KiB,
        for failure in exc.failures[:SAID_FAILURES]:  # which the parent drains as it waits)
            report(failure, "member")
        if len(exc.failures) > SAID_FAILURES:
            more = len(exc.failures) - SAID_FAILURES
            report(f"{more:,} more member(s) of one worker failed", "member")
        sys.exit(2)
    except (RunError, ConfigError) as exc:  # one line, as the CLI says it
        report(f"worker on {device}: {exc}")
        sys.exit(2)


def _output_to(path: Path) -> None:
    """Send this worker's stdout and stderr (a warning, a crash's traceback) to the sweep's
    WORKER_LOG: the terminal belongs to the parent (a live table, or the app's screen,
    which any byte written there would tear)."""
    try:  # non-blocking: a FIFO planted under the name must not hang the worker
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
    except OSError:  # a read-only or full disk, a FIFO: nowhere, rather than the screen
        fd = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (once per process) with the real stderr.

    Starting a worker starts the tracker first, which hands it `sys.stderr.fileno()`; under
    the Textual app sys.stderr is a capture whose fileno() is -1, and the start failed with
    "bad value(s) in fds_to_keep" (found in tmux: the app's sweep screen could not train).
    """
    from multiprocessing import resource_tracker

    saved = sys.stderr
    try:
        if sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = saved


def _die_with_parent() -> None:
    """Have the kernel send this process SIGTERM (save and stop) when its parent dies, even
    by SIGKILL, so that no worker trains on as an orphan holding its claims (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)  # (not "ppid == 1": a container's CLI is pid 1)


def train_on_devices(
    sweep: Sweep,
    devices: Sequence[str],
    groups: Sequence[int] | None = None,
    on_event: Callable[[SweepEvent], None] | None = None,
    control: TrainControl | None = None,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    tick_s: float = 0.5,
    say: Callable[[str], None] | None = None,
) -> list[Finished]:
    """One worker process per device over the same groups; claims hand each group to the
    first free worker. A stop request is passed on to the workers as SIGTERM (they save a
    checkpoint and stop). Returns the members' Finished, read from the directory.

    The workers print nowhere the user looks (`_output_to`), so this process says what
    they wait for: a group held by another sweep process, or by a claim file nobody
    wrote (`ClaimWatch`)."""
    todo = list(range(len(sweep.meta().groups)) if groups is None else groups)
    emit = on_event or (lambda event: None)
    log = sweep.path / WORKER_LOG
    if (wrong := what_is_wrong(log)) not in ("", "is missing"):
        raise RunError(f"{log} {wrong}: the workers write their output there; remove it")
    cpu_workers = sum(1 for d in devices if d == "cpu")
    threads = max(1, usable_cores() // max(cpu_workers, 1))
    ctx = multiprocessing.get_context("spawn")
    _start_resource_tracker()
    errors = ctx.SimpleQueue()
    procs = [
        ctx.Process(
            target=_device_worker,
            args=(str(sweep.path), device, todo, lease_s, threads, errors),
            name=f"grok-sweep-{device}",
        )
        for device in devices
    ]
    for p in procs:
        p.start()
    watch = ClaimWatch(sweep, todo, {p.pid for p in procs if p.pid is not None}, lease_s)
    signalled = False
    said: list[tuple[str, str]] = []  # (kind, line) from the workers, drained as they run
    try:
        while any(p.is_alive() for p in procs):
            while not errors.empty():  # a full pipe would block a worker's put for ever
                said.append(errors.get())
            if say is not None:
                for note in watch.look():
                    say(note)
            if control is not None and control.stop.is_set() and not signalled:
                for p in procs:
                    if p.is_alive():
                        p.terminate()  # SIGTERM: save and stop
                signalled = True
            emit(Waiting([], []))
            for p in procs:
                p.join(tick_s / len(procs))
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    failed = [f"{p.name} exited with status {p.exitcode} (its output: {log})"
              for p in procs if p.exitcode]  # fmt: skip
    while not errors.empty():
        said.append(errors.get())
    broken = [line for kind, line in said if kind == "worker"]
    members = [line for kind, line in said if kind == "member"]  # two workers that tried
    if failed and not signalled and (broken or not members):  # one damaged group: said once
        raise RunError(said_in_short(list(dict.fromkeys(broken)) or failed))  # on its own line
    if members and not signalled:
        raise GroupsFailed(members, results_from_dir(sweep, todo))
    return results_from_dir(sweep, todo)


class ClaimWatch:
    """What the workers of one process wait for: claims on its groups held by neither them
    nor a dead process of this host (which they take over at once), each said once per
    holder, looked at every `LOOK_S` seconds."""

    def __init__(
        self,
        sweep: Sweep,
        groups: Sequence[int],
        own_pids: set[int],
        lease_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sweep, self.groups, self.own = sweep, list(groups), own_pids
        self.claims = Claims(sweep.path, lease_s)
        self.clock = clock
        self.next_look = clock()
        self.said: dict[int, str] = {}

    def look(self) -> list[str]:
        """The notes not said yet (none between looks)."""
        now = self.clock()
        if now < self.next_look:
            return []
        self.next_look = now + LOOK_S
        notes = []
        for g, holder in self.claims.holders(self.groups).items():
            if holder.released:
                continue
            owner, alive = holder.owner, holder.alive_here()
            if alive is False or (alive and owner is not None and owner["pid"] in self.own):
                continue
            note = holder.waiting_note(self.claims.lease_s)
            if self.said.get(g) == note:
                continue
            try:
                if not group_needs_training(self.sweep, self.sweep.meta().groups[g]):
                    continue  # done: a claim left behind by a worker of another host
            except RunError:  # a damaged member: its worker says so, not this look
                continue
            self.said[g] = note
            notes.append(note)
        return notes
