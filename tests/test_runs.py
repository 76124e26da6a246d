"""The run directory: atomic files, torn lines, checkpoints, locks, following."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.store.follow import MetricsHistory, RunFollower
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.runs import Run, RunError

SMALL = RunConfig(p=7, frac_train=0.5, epochs=10, checkpoint_every=5, preset="t")


def row(epoch: int, loss: float = 1.0) -> dict[str, float]:
    return {"epoch": epoch, "train_loss": loss, "test_loss": 2 * loss, "train_acc": 0.5,
            "test_acc": 0.25, "lr": 1e-3, "wall_s": epoch * 0.1}  # fmt: skip


def test_create_refuses_a_non_empty_directory(tmp_path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("mine")
    with pytest.raises(RunError, match="already exists and is not empty"):
        Run.create(tmp_path / "x", SMALL, "cpu")
    assert (tmp_path / "x" / "file").read_text() == "mine"
    run = Run.create(tmp_path / "new", SMALL, "cpu")
    assert run.meta().config == SMALL and run.meta().status == "created"


def test_metrics_round_trip_and_torn_last_line(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    run.append_metrics([row(0), row(1, math.nan), row(2)])
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a writer killed mid-line
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert math.isnan(rows[1]["train_loss"]) and rows[2]["test_loss"] == 2.0
    assert "NaN" not in run.metrics_path.read_text()  # strict JSON: null


def test_metrics_reader_is_incremental_and_notices_rewrites(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    reader = MetricsReader(run)
    run.append_metrics([row(0), row(1)])
    assert [r["epoch"] for r in reader.read_new()] == [0, 1]
    assert reader.read_new() == []
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps(row(2))[:10])  # half a line: not yet
    assert reader.read_new() == []
    with open(run.metrics_path, "a") as f:
        f.write(json.dumps(row(2))[10:] + "\n")
    assert [r["epoch"] for r in reader.read_new()] == [2]
    run.truncate_metrics(before_epoch=1)
    rows, reset = reader.poll()
    assert reset and [r["epoch"] for r in rows] == [0]


def test_checkpoint_round_trip(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    weights = paper_init(SMALL)
    run.save_checkpoint(5, weights)
    run.save_checkpoint(0, weights)
    assert run.checkpoint_epochs() == [0, 5]
    back = run.load_checkpoint(5)
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert not list(run.checkpoint_dir.glob(".*"))  # no temp files left behind


def test_meta_is_rewritten_atomically(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    before = run.meta_path.stat().st_ino
    run.update_meta(status="running")
    assert run.meta().status == "running"
    assert run.meta_path.stat().st_ino != before  # replaced, never written in place


def test_run_json_says_what_moves_a_runs_rounding(tmp_path, monkeypatch) -> None:
    """Besides the packages: the training step's arithmetic revision, the instruction set of
    torch's kernels and MKL's limit, if set: what a corpus needs to tell which runs are
    comparable bit for bit (bench/RESULTS.md, "Reproducing the held-out judgement")."""
    from grok_tui.engine.core.closed_form import ARITHMETIC

    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    versions = run.meta().versions
    assert versions["training_arithmetic"] == ARITHMETIC
    assert versions["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert versions["mkl_instructions"] == "AVX2"
    assert versions["torch"] == torch.__version__
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS")
    assert Run.create(tmp_path / "s", SMALL, "cpu").meta().versions["mkl_instructions"] == (
        "default"
    )


def test_lock_blocks_a_second_writer_and_stale_locks_are_taken_over(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.lock_path.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))
        assert run.writer_alive()
        with pytest.raises(RunError, match=f"being trained by pid {child.pid}"):
            run.acquire_lock()
    finally:
        child.kill()
        child.wait()
    assert not run.writer_alive()
    notice = run.acquire_lock()
    assert f"pid {child.pid}" in notice and "stale" in notice
    assert run.lock_owner()["pid"] == os.getpid()
    run.release_lock()
    assert not run.lock_path.exists()


def test_a_lock_whose_pid_went_to_another_process_is_stale(tmp_path) -> None:
    """The lock records its process' start time: a live pid that started at another time is
    a reused pid, not the trainer, and its lock is taken over; a lock without it (written by
    an older version) is judged by the pid alone."""
    from grok_tui.engine.store.liveness import process_start

    run = Run.create(tmp_path / "r", SMALL, "cpu")
    host = socket.gethostname()
    run.acquire_lock()
    assert run.lock_owner()["started"] == process_start(os.getpid())
    run.release_lock()
    reused = {"pid": 1, "host": host, "started": (process_start(1) or 0) + 1}
    run.lock_path.write_text(json.dumps(reused))
    assert not run.writer_alive()
    assert "pid 1" in run.acquire_lock()
    run.release_lock()
    run.lock_path.write_text(json.dumps({"pid": 1, "host": host}))
    assert run.writer_alive()


@pytest.mark.slow
def test_an_append_from_another_process_waits_for_a_compaction(tmp_path) -> None:
    """While this process holds the measures lock (a compaction between its read and its
    rewrite), another process's append waits; it lands in the rewritten file, once. Without
    the lock it would go into the file about to be replaced and be lost."""
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    run.append_measures([{"epoch": 0, "kind": "llc"}])
    script = (
        "import sys; from grok_tui.engine.store.runs import Run; "
        "print('appending', flush=True); "
        "Run(sys.argv[1]).append_measures([{'epoch': 5, 'kind': 'llc'}])"
    )
    with run.measures_lock():
        rows = run.read_measures()
        child = subprocess.Popen([sys.executable, "-c", script, str(run.path)],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline() == "appending\n"
            with pytest.raises(subprocess.TimeoutExpired):
                child.wait(timeout=2.0)  # blocked on the lock (an unlocked append is done)
            run.rewrite_measures(rows)
        except BaseException:
            child.kill()
            raise
    assert child.wait(timeout=60) == 0
    assert sorted(r["epoch"] for r in run.read_measures()) == [0, 5]


def test_follower_reports_what_changed(tmp_path) -> None:
    run = Run.create(tmp_path / "r", SMALL, "cpu")
    follower = RunFollower(run)
    first = follower.poll()
    assert first.meta is not None and first.checkpoints == [] and first.writer_alive is False
    assert follower.poll().empty
    run.append_metrics([row(0)])
    run.save_checkpoint(0, paper_init(SMALL))
    update = follower.poll()
    assert [r["epoch"] for r in update.rows] == [0] and update.checkpoints == [0]
    assert update.meta is None


def test_history_rate_and_eta() -> None:
    history = MetricsHistory()
    history.extend([row(e) for e in range(0, 101)])  # 10 epochs per wall second
    assert history.epochs_per_s() == pytest.approx(10.0)
    assert history.eta_s(200) == pytest.approx(10.0)
    history.extend([row(50)])  # an old row again (after a resume): ignored
    assert len(history) == 101
