"""Following a run another process writes: new epochs and checkpoints show up, and the
follower notices (and survives) the writer's death."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from grok_tui.engine.store.follow import RunFollower
from grok_tui.engine.store.runs import Run

pytestmark = pytest.mark.slow


def start_writer(run_dir, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "grok_tui", "train", "--headless", "--run-dir", str(run_dir),
         "--p", "13", "--frac-train", "0.5", "--epochs", "100000", "--checkpoint-every", "20"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def poll_until(follower: RunFollower, condition, timeout: float, seen: dict) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        update = follower.poll()
        seen["rows"] += len(update.rows)
        if update.checkpoints is not None:
            seen["checkpoints"] = update.checkpoints
        if update.writer_alive is not None:
            seen["alive"] = update.writer_alive
        if condition(seen):
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not reached in {timeout} s: {seen}")


def test_follower_sees_a_writer_live_and_survives_its_death(tmp_path) -> None:
    run_dir = tmp_path / "run"
    writer = start_writer(run_dir, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "run.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        follower = RunFollower(Run.open(run_dir))
        seen: dict = {"rows": 0, "checkpoints": [], "alive": None}
        poll_until(follower, lambda s: s["alive"] and len(s["checkpoints"]) >= 2, 60, seen)
        # A new checkpoint appears within 2 s of being written (here: polled every 0.1 s).
        have = len(seen["checkpoints"])
        waited = poll_until(follower, lambda s: len(s["checkpoints"]) > have, 30, seen)
        assert waited < 30 and seen["rows"] > 0
        rows_before = seen["rows"]
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    poll_until(follower, lambda s: s["alive"] is False, 10, seen)
    after = follower.poll()  # polling a dead writer's run goes on working
    assert after.error == "" and after.writer_alive is None
    run = Run.open(run_dir)
    assert run.meta().status == "running"  # it never got to say otherwise: the lock tells
    assert not run.writer_alive()
    assert seen["rows"] >= rows_before


def test_a_run_moved_away_while_shown_is_said_once_in_one_line(tmp_path) -> None:
    """Probing moved a run directory while the app showed it: a raw "[Errno 2] No such
    file or directory: 'gone1/run.json'" toast came at every poll."""
    from grok_tui.engine.core.config import RunConfig

    run = Run.create(tmp_path / "r", RunConfig(p=7, epochs=3, preset="t"), "cpu")
    run.checkpoint_dir.mkdir(exist_ok=True)
    (run.checkpoint_dir / "epoch_0000000.safetensors").write_bytes(b"")  # listed, not read
    follower = RunFollower(run)
    first_look = follower.poll()
    assert first_look.error == "" and first_look.checkpoints == [0]
    (tmp_path / "r").rename(tmp_path / "elsewhere")
    moved = follower.poll()
    first = moved.error
    assert first == f"{run.meta_path} is missing: showing what was read"
    assert moved.checkpoints is None and moved.writer_alive is None  # the timeline stays
    assert [follower.poll().error for _ in range(3)] == ["", "", ""]  # said once
    (tmp_path / "elsewhere").rename(tmp_path / "r")
    assert follower.poll().error == ""
    (tmp_path / "r").rename(tmp_path / "elsewhere")
    assert follower.poll().error == first  # gone again: said again
