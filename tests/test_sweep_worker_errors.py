"""A device worker's error is said by the parent, after its live table, on its own line."""

from __future__ import annotations

import json

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
