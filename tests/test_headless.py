"""Headless training ends when training ends: it waits for the progress measures only while
they still have work to do, says in one line when they cannot be written, and its summary's
speed is the training loop's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grok_tui.cli import main
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.services import ProgressService
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer

PATIENCE_S = 300.0  # far past any honest drain here: when it is what ends a drain, we fail


@pytest.fixture
def drains(monkeypatch) -> list[bool]:
    """Every drain the front end makes, each given PATIENCE_S whatever it asked for: the
    list holds True only where the service became idle (not where the wait ran out)."""
    results: list[bool] = []
    original = ProgressService.drain

    def patient(self: ProgressService, timeout: float | None = None) -> bool:
        idle = original(self, timeout=PATIENCE_S)
        results.append(idle)
        return idle

    monkeypatch.setattr(ProgressService, "drain", patient)
    return results


def grok(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def last_wall_s(run_dir: Path) -> float:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["wall_s"]


def test_a_multiply_run_ends_without_waiting_for_measures(tmp_path, capsys, drains) -> None:
    """A multiply run measures its checkpoints in the log basis; the drain at the end returns
    because the service is idle once they are done (it used to wait out its 120 s)."""
    run_dir = tmp_path / "mul"
    rc, err = grok(capsys, "train", "--headless", "--op", "multiply", "--p", "7",
                   "--frac-train", "0.5", "--epochs", "30", "--checkpoint-every", "10",
                   "--run-dir", str(run_dir))  # fmt: skip
    assert rc == 0, err
    assert drains == [True]
    assert "done: epoch 30/30" in err
    rows = [json.loads(line) for line in (run_dir / "measures.jsonl").read_text().splitlines()]
    recorded = {r["epoch"] for r in rows if r["kind"] == "record" and r["op"] == "multiply"}
    assert recorded == {0, 10, 20, 30}
    # The speed is epochs over the training loop's own seconds (the metrics' wall_s).
    speed = re.search(r"s training \(([0-9.]+) epochs/s\)", err)
    assert speed, err
    assert speed.group(1) == f"{30 / last_wall_s(run_dir):.1f}"


@pytest.fixture
def resumable(tmp_path) -> Run:
    """A measured add run, paused at epoch 20 of 40."""
    cfg = RunConfig(p=7, frac_train=0.5, epochs=20, checkpoint_every=10, preset="t")
    run = Run.create(tmp_path / "r", cfg, "cpu")
    Trainer(run, "cpu").train()
    run.update_meta(config=cfg.replace(epochs=40), status="paused")
    return run


@pytest.mark.parametrize("how", ["directory", "symlink loop"])
def test_a_resume_whose_measures_cannot_be_written_says_so_once(
    resumable, capsys, drains, how
) -> None:
    """Issue 23, fault 2: measures.jsonl replaced by a directory or a symlink loop. The run
    trains to the end and exits 0 (its checkpoints and metrics are whole; the measures are
    a cache, recomputed on demand), says once why the measures are missing, and does not
    wait for a service that has given up."""
    path = resumable.measures_path
    if how == "directory":
        path.mkdir()
    else:
        path.symlink_to(path.name)
    rc, err = grok(capsys, "open", str(resumable.path), "--resume", "--headless")
    assert rc == 0, err
    assert drains == [True]
    assert "done: epoch 40/40" in err
    lines = [line for line in err.splitlines() if "progress measures not recorded" in line]
    assert len(lines) == 1, err
    assert "measures.jsonl" in lines[0]
    assert "Traceback" not in err
