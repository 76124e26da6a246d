"""A device worker's error is said by the parent, after its live table, on its own line."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

from grok_tui.cli import main
from grok_tui.engine.lab.backends import train_on_devices
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.runs import RunError

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")


def test_a_worker_error_goes_to_the_parent_not_onto_its_table(tmp_path, capfd) -> None:
    """Before, the worker process printed its error on the terminal itself, at the end of
    the line where the parent's live table left the cursor."""
    path = tmp_path / "sweep"
    argv = ["sweep", "--preset", "quick", "--p", "17", "--frac-train", "0.5", "--epochs", "40",
            "--checkpoint-every", "20", "--weight-decay", "1", "--headless",
            "--disk-budget", "100MB", "--sweep-dir", str(path)]  # fmt: skip
    assert main(argv) == 0
    sweep = Sweep.open(path)
    run = sweep.member_run(sweep.meta().members[0].name)
    meta = json.loads(run.meta_path.read_text())
    meta["status"], meta["config"]["epochs"] = "paused", 80
    run.meta_path.write_text(json.dumps(meta))
    run.resume_path.write_bytes(b"not a torch file")
    capfd.readouterr()
    with pytest.raises(RunError) as exc:
        train_on_devices(sweep, ["cpu"], tick_s=0.2)
    name = sweep.meta().members[0].name
    assert str(exc.value).startswith(f"{name}: ") and "resume.pt" in str(exc.value)
    assert "grok-tui: error" not in capfd.readouterr().err  # the child printed nothing


def _paused_at(run, epochs: int) -> None:
    """A finished member made a paused one with `epochs` to train (as --extend leaves it)."""
    meta = json.loads(run.meta_path.read_text())
    meta["status"], meta["config"]["epochs"] = "paused", epochs
    run.meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("processes", [1, 2])
def test_a_damaged_member_is_named_once_after_the_others_trained(tmp_path, processes) -> None:
    """Before, the first group that failed ended its worker: with two worker processes
    both tried the damaged member in turn (its error said twice, "worker on cpu: ..."),
    and every group after it was left untrained."""
    from grok_tui.engine.lab.backends import train_sweep
    from grok_tui.engine.lab.sweep import SweepSpec
    from tests.sweep_harness import TINY_BASE

    spec = SweepSpec(TINY_BASE.replace(epochs=20, checkpoint_every=10), {"seed": [0, 1, 2]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    assert [r.status for r in train_sweep(sweep, "cpu", processes=1)] == ["done"] * 3
    names = [m.name for m in sweep.meta().members]
    for name in names:
        _paused_at(sweep.member_run(name), 30)
    sweep.member_run(names[0]).resume_path.write_bytes(b"not a torch file")
    with pytest.raises(RunError) as exc:
        train_sweep(sweep, "cpu", processes=processes)
    message = str(exc.value)
    assert message.startswith(f"{names[0]}: resume.pt") and message.count("resume.pt") == 1
    for name in names[1:]:  # the others trained on
        run = sweep.member_run(name)
        assert run.meta().status == "done" and run.read_metrics()[-1]["epoch"] == 30
    assert sweep.member_run(names[0]).meta().status == "paused"  # left as it was


def test_a_fifo_in_place_of_the_workers_log_is_refused_not_a_hang(tmp_path) -> None:
    """The worker opened SWEEP/workers.log for writing, which blocks on a FIFO until
    someone reads it: the sweep hung with no word."""
    from grok_tui.engine.lab.backends import WORKER_LOG
    from grok_tui.engine.lab.sweep import SweepSpec
    from tests.sweep_harness import TINY_BASE

    sweep = Sweep.create(tmp_path / "s", SweepSpec(TINY_BASE.replace(epochs=3), {}), "cpu")
    os.mkfifo(sweep.path / WORKER_LOG)
    with pytest.raises(RunError, match=r"workers\.log is a FIFO, not a file"):
        train_on_devices(sweep, ["cpu"], tick_s=0.2)


def test_workers_start_under_a_screen_that_captured_stderr(tmp_path, monkeypatch) -> None:
    """Under the Textual app sys.stderr is a capture whose fileno() is -1. multiprocessing's
    resource tracker, started with the first worker, was handed that descriptor, and the
    app's sweep screen could not train ("bad value(s) in fds_to_keep", found in tmux).
    Workers write what they print into the sweep's workers.log, never on the screen."""
    from multiprocessing import resource_tracker

    from grok_tui.engine.lab.backends import WORKER_LOG, train_sweep
    from grok_tui.engine.lab.sweep import SweepSpec
    from tests.sweep_harness import TINY_BASE

    fresh = resource_tracker.ResourceTracker()  # not started yet, as in a fresh app
    monkeypatch.setattr(resource_tracker, "_resource_tracker", fresh)
    for name in ("ensure_running", "register", "unregister", "getfd"):
        monkeypatch.setattr(resource_tracker, name, getattr(fresh, name))

    class Captured(io.StringIO):
        def fileno(self) -> int:
            return -1

    monkeypatch.setattr(sys, "stderr", Captured())
    spec = SweepSpec(TINY_BASE.replace(epochs=3), {"seed": [0, 1]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    try:
        results = train_sweep(sweep, "cpu", processes=2)
    finally:
        if hasattr(fresh, "_stop"):
            fresh._stop()
    assert [r.status for r in results] == ["done", "done"]
    assert (sweep.path / WORKER_LOG).is_file()
    assert sys.stderr.getvalue() == ""


def test_many_damaged_members_end_in_one_capped_line_not_a_hang(tmp_path) -> None:
    """Review: each worker put one queue line per failed group, and the parent read the
    queue only after the workers ended; a few hundred failures filled its 64 KiB pipe and
    the sweep hung for ever (SIGTERM could not stop a worker blocked in the write). Each
    worker now says at most SAID_FAILURES and a count, and the parent drains as it waits."""
    from grok_tui.engine.lab.backends import SAID_FAILURES, GroupsFailed, train_sweep
    from grok_tui.engine.lab.sweep import SweepSpec
    from tests.sweep_harness import TINY_BASE

    spec = SweepSpec(TINY_BASE.replace(epochs=20), {"seed": list(range(24))})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    for member in sweep.meta().members:
        run = sweep.member_run(member.name)
        run.update_meta(status="paused")
        run.resume_path.write_bytes(b"not a torch file")
    with pytest.raises(GroupsFailed) as exc:
        train_sweep(sweep, "cpu", processes=2)
    message = str(exc.value)
    assert "\n" not in message and message.count("resume.pt") == SAID_FAILURES
    assert message.endswith(" more") and len(message) < 2000
