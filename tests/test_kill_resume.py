"""Real processes, real signals: a killed trainer's run reopens and resumes with no hole."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grok_tui.engine.store.runs import Run

pytestmark = pytest.mark.slow

ARGS = ["--p", "13", "--frac-train", "0.5", "--checkpoint-every", "25"]


def start(*argv: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "grok_tui", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_checkpoints(run_dir: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpt = run_dir / "checkpoints"
        if ckpt.is_dir() and len(list(ckpt.glob("epoch_*.safetensors"))) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"trainer exited early: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("no checkpoints appeared")


def assert_no_hole(run: Run) -> list[int]:
    epochs = [int(r["epoch"]) for r in run.read_metrics()]
    assert epochs == list(range(len(epochs))), "metrics have a hole or a repeat"
    return epochs


def test_sigkill_at_random_moments_then_resume(tmp_path) -> None:
    run_dir = tmp_path / "run"
    rng = random.Random(1234)
    epochs = 1500
    proc = start("train", "--headless", "--run-dir", str(run_dir), "--epochs", str(epochs),
                 *ARGS, cwd=tmp_path)  # fmt: skip
    resumed_from = []
    for kill in range(4):
        have = len(list((run_dir / "checkpoints").glob("*.safetensors"))) if kill else 0
        wait_for_checkpoints(run_dir, have + 1, proc)
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere: mid-step, mid-write, mid-checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run = Run.open(run_dir)  # opens: run.json and metrics are whole
        before = assert_no_hole(run)
        last_ckpt = run.checkpoint_epochs()[-1]
        assert before and before[-1] >= last_ckpt - 1
        run.load_checkpoint(last_ckpt)  # loads: never a torn checkpoint
        resumed_from.append(last_ckpt)
        proc = start("open", str(run_dir), "--resume", "--headless", cwd=tmp_path)
    assert proc.wait(timeout=300) == 0
    # Each killed trainer left its lock behind; the next one took it over and said so.
    assert "took over a stale lock" in proc.stderr.read()
    run = Run.open(run_dir)
    assert run.meta().status == "done"
    assert assert_no_hole(run) == list(range(epochs + 1))
    assert run.checkpoint_epochs()[-1] == epochs
    assert resumed_from == sorted(resumed_from)
    assert not run.lock_path.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_save_a_checkpoint_first(tmp_path, sig) -> None:
    run_dir = tmp_path / "run"
    proc = start("train", "--headless", "--run-dir", str(run_dir), "--epochs", "100000",
                 *ARGS, cwd=tmp_path)  # fmt: skip
    wait_for_checkpoints(run_dir, 2, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 130
    run = Run.open(run_dir)
    assert run.meta().status == "paused"
    state = run.load_resume()
    assert state is not None and state["epoch"] == run.checkpoint_epochs()[-1]
    assert state["epoch"] % 25 != 0 or state["epoch"] > 25  # saved at the stop, not only at 25s
    epochs = assert_no_hole(run)
    assert epochs[-1] == state["epoch"] - 1  # every epoch before the saved weights is there
    assert not run.lock_path.exists()
    assert "grok-tui open" in proc.stderr.read()


def test_a_second_trainer_is_refused(tmp_path) -> None:
    run_dir = tmp_path / "run"
    first = start("train", "--headless", "--run-dir", str(run_dir), "--epochs", "100000",
                  *ARGS, cwd=tmp_path)  # fmt: skip
    try:
        wait_for_checkpoints(run_dir, 1, first)
        second = subprocess.run(
            [sys.executable, "-m", "grok_tui", "open", str(run_dir), "--resume", "--headless"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2
        assert f"being trained by pid {first.pid}" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
