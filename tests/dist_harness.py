"""A small sweep of two groups, and how to tell that two sweep directories hold the same runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grok_tui.engine.lab.sweep import Sweep

EPOCHS = 100
# 4 members in 2 groups of 2 (p = 13, a calm learning rate, so rounding noise stays small).
GRID = [
    "sweep", "--preset", "quick", "--p", "13", "--frac-train", "0.5", "--lr", "1e-3",
    "--epochs", str(EPOCHS), "--checkpoint-every", "25", "--weight-decay", "1,3", "--seeds", "2",
    "--group-size", "2", "--disk-budget", "100MB",
]  # fmt: skip


_REFERENCE: dict[str, Path] = {}


def local_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the grid trained by one process, the local backend (once a session)."""
    from grok_tui.cli import main

    if "path" not in _REFERENCE:
        path = tmp_path_factory.mktemp("local") / "sweep"
        assert main([*GRID, "--headless", "--sweep-dir", str(path)]) == 0
        _REFERENCE["path"] = path
    return _REFERENCE["path"]


def start(*argv: str, cwd: Path) -> subprocess.Popen:
    """A grok-tui process with one torch thread: several share this machine's two cores (as
    an array job's tasks get OMP_NUM_THREADS from their CPU allocation)."""
    return subprocess.Popen(
        [sys.executable, "-m", "grok_tui", *argv],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def member_rows(sweep: Sweep, name: str) -> list[dict[str, float]]:
    return sweep.member_run(name).read_metrics()


def assert_same_sweep(ours: Path, reference: Path, rel: float = 1e-5) -> None:
    """Same members and groups, every member done with one row per epoch 0..N (none lost,
    none twice), the same checkpoints and losses within float tolerance; no lock left."""
    a, b = Sweep.open(ours), Sweep.open(reference)
    ma, mb = a.meta(), b.meta()
    assert [m.name for m in ma.members] == [m.name for m in mb.members]
    assert ma.groups == mb.groups and len(ma.groups) == 2
    for member in mb.members:
        run, ref = a.member_run(member.name), b.member_run(member.name)
        assert run.meta().status == "done", member.name
        assert run.meta().config == ref.meta().config
        rows, ref_rows = run.read_metrics(), ref.read_metrics()
        assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS + 1)), member.name
        assert run.checkpoint_epochs() == ref.checkpoint_epochs(), member.name
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            assert [r[key] for r in rows] == pytest.approx([r[key] for r in ref_rows], rel=rel), (
                f"{member.name}: {key}"
            )
        assert not run.lock_path.exists()
