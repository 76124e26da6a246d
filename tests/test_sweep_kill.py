"""Real processes: a sweep killed with SIGKILL resumes with `--resume`, losing nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.liveness import lock_is_stale
from grok_tui.engine.store.runs import Run
from tests.test_kill_resume import start

pytestmark = pytest.mark.slow

EPOCHS = 1200
ARGS = ["sweep", "--headless", "--p", "13", "--frac-train", "0.5", "--epochs", str(EPOCHS),
        "--checkpoint-every", "25", "--weight-decay", "1,2", "--seeds", "2",
        "--disk-budget", "100MB"]  # fmt: skip


def checkpoint_count(sweep_dir: Path) -> int:
    return len(list(sweep_dir.glob("members/*/checkpoints/*.safetensors")))


def wait_for(sweep_dir: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        if checkpoint_count(sweep_dir) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"sweep exited early: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail("no checkpoints appeared")


def wait_for_workers(sweep_dir: Path) -> None:
    """The killed CLI's worker processes get SIGTERM from the kernel when it dies: they save
    and stop, then release their members' locks. Wait for that, so that the files are
    compared at rest, not while a worker still writes them."""
    deadline = time.time() + 300
    while time.time() < deadline:
        owners = [Run.open(p).lock_owner() for p in sweep_dir.glob("members/*")]
        if not any(o is not None and not lock_is_stale(o) for o in owners):
            return
        time.sleep(0.05)
    pytest.fail("the killed sweep's workers did not stop")


def snapshot(sweep: Sweep) -> dict[str, tuple[list[int], bytes, int]]:
    """Per member: checkpoint epochs, metrics bytes, epoch of the resume state."""
    out = {}
    for name, run in sweep.runs().items():
        state = run.load_resume()
        epoch = state["epoch"] if state else 0
        out[name] = (run.checkpoint_epochs(), run.metrics_path.read_bytes(), epoch)
    return out


def test_sigkill_mid_sweep_then_resume(tmp_path) -> None:
    sweep_dir = tmp_path / "sweep"
    rng = random.Random(7)
    proc = start(*ARGS, "--sweep-dir", str(sweep_dir), cwd=tmp_path)
    for kill in range(3):
        wait_for(sweep_dir, checkpoint_count(sweep_dir) + 4 if kill else 8, proc)
        time.sleep(rng.uniform(0.0, 0.3))  # mid-step, mid-write, mid-checkpoint
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for_workers(sweep_dir)
        sweep = Sweep.open(sweep_dir)
        before = snapshot(sweep)
        for name, (ckpts, _, resume_epoch) in before.items():
            run = sweep.member_run(name)
            rows = [int(r["epoch"]) for r in Run.open(run.path).read_metrics()]
            assert rows == list(range(len(rows))), f"{name}: a hole or a repeat"
            assert resume_epoch in ckpts or resume_epoch == 0
            if ckpts:  # members wait for a worker process: some may not have started
                run.load_checkpoint(ckpts[-1])  # never a torn checkpoint
        proc = start("sweep", "--resume", str(sweep_dir), "--headless", cwd=tmp_path)
        # Wait until the resumed process has written past every member's resume point.
        time.sleep(0.5)
        after = snapshot(Sweep.open(sweep_dir))
        for name, (ckpts, metrics, resume_epoch) in before.items():
            # Nothing before the last checkpoint is lost: every checkpoint up to the resume
            # point is still there, and the metrics rows before it are kept byte for byte.
            assert [e for e in ckpts if e <= resume_epoch] == [
                e for e in after[name][0] if e <= resume_epoch
            ]
            keep = b"".join(
                line + b"\n"
                for line in metrics.split(b"\n")
                if line and int(line.split(b",")[0].split(b":")[1]) < resume_epoch
            )
            assert after[name][1].startswith(keep)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    sweep = Sweep.open(sweep_dir)
    for name, run in sweep.runs().items():
        assert run.meta().status == "done", name
        rows = [int(r["epoch"]) for r in run.read_metrics()]
        assert rows == list(range(EPOCHS + 1)), name
        assert run.checkpoint_epochs()[-1] == EPOCHS
        assert not run.lock_path.exists()
