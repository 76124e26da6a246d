"""A device worker's error is said by the parent, after its live table, on its own line."""

from __future__ import annotations

import io
import json
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
    assert str(exc.value).startswith("worker on cpu: ") and "resume.pt" in str(exc.value)
    assert "grok-tui: error" not in capfd.readouterr().err  # the child printed nothing


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
