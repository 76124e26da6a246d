"""A full disk: one clear line, nothing torn, no temp files, no empty lock, and a resume later.

Two ways: ENOSPC injected at the one place run-directory writes go through
(`atomic._write_fd`, writing what fits and then failing, as a real file system does), and,
where this machine lets a test mount one, a real 8 MB tmpfs that fills up during training.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grok_tui.cli import main
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store import atomic
from grok_tui.engine.store.errors import DiskFull
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import CheckpointSaved, Trainer

TINY = RunConfig(p=11, frac_train=0.5, epochs=60, checkpoint_every=10, preset="t")


class Disk:
    """A disk with `free` bytes left (None: plenty). A write takes what fits, then fails."""

    def __init__(self) -> None:
        self.free: int | None = None
        self.refused: list[str] = []

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.free is not None and self.free <= 0:
                self.refused.append(os.readlink(f"/proc/self/fd/{fd}"))
                raise OSError(errno.ENOSPC, "No space left on device")
            n = os.write(fd, view if self.free is None else view[: self.free])
            if self.free is not None:
                self.free -= n
            view = view[n:]


@pytest.fixture
def disk(monkeypatch) -> Disk:
    disk = Disk()
    monkeypatch.setattr(atomic, "_write_fd", disk.write)
    return disk


def leftovers(root: Path) -> list[str]:
    """Temp files, empty files: what a failed write must never leave."""
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or p.stat().st_size == 0)
        and p.name != "metrics.jsonl"
    ]  # fmt: skip


def assert_whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path.name} ends in half a line"
    return [json.loads(line) for line in data.decode().splitlines()]


# -- injected ENOSPC -----------------------------------------------------------------------
def test_training_stops_with_one_line_when_a_metrics_append_half_fits(tmp_path, disk) -> None:
    run = Run.create(tmp_path / "run", TINY, "cpu")

    def on_event(event) -> None:
        if isinstance(event, CheckpointSaved) and event.epoch == 20:
            disk.free = 37  # the next metrics append writes 37 bytes of its line, then fails

    result = Trainer(run, "cpu", on_event).train()
    assert result.status == "failed"
    assert result.message == (
        "disk full while writing metrics.jsonl; the run is intact up to epoch 20 and resumes "
        "from there once space is freed"
    )
    assert any(p.endswith("metrics.jsonl") for p in disk.refused)
    rows = assert_whole_lines(run.metrics_path)  # the 37 bytes were cut back
    assert [r["epoch"] for r in rows] == list(range(len(rows)))
    assert leftovers(run.path) == []  # no .tmp, and no empty error.log
    assert run.meta().status in ("running", "failed")  # whole, whichever write got through

    disk.free = None  # space freed: the run resumes from its last good checkpoint
    result = Trainer(run, "cpu").train()
    assert result.status == "done"
    assert [r["epoch"] for r in run.read_metrics()] == list(range(TINY.epochs + 1))


def test_a_disk_full_before_any_resume_point_says_it_starts_over(tmp_path, disk) -> None:
    """Before: "nothing resumable was saved yet once space is freed"."""
    run = Run.create(tmp_path / "run", TINY, "cpu")
    disk.free = run.meta_path.stat().st_size + 50  # run.json fits, the first row does not
    result = Trainer(run, "cpu").train()
    assert result.status == "failed"
    assert result.message == (
        "disk full while writing metrics.jsonl; no resume point was saved yet, so once space "
        "is freed it starts from epoch 0"
    )
    disk.free = None
    assert Trainer(run, "cpu").train().status == "done"  # and it does


@pytest.mark.parametrize("fits", [0, 1_000])
def test_a_checkpoint_that_does_not_fit_leaves_no_temp_file(tmp_path, disk, fits) -> None:
    run = Run.create(tmp_path / "run", TINY, "cpu")

    def on_event(event) -> None:
        if isinstance(event, CheckpointSaved) and event.epoch == 30:
            disk.free = fits

    result = Trainer(run, "cpu", on_event).train()
    assert result.status == "failed" and "intact up to epoch 30" in result.message
    assert result.message.startswith("disk full while writing ")
    assert "\n" not in result.message
    assert run.checkpoint_epochs()[-1] in (30, 40)  # 40 only if its weights got written whole
    assert run.load_resume()["epoch"] == 30
    assert leftovers(run.path) == []


def test_the_lock_is_never_left_empty(tmp_path, disk) -> None:
    run = Run.create(tmp_path / "run", TINY, "cpu")
    disk.free = 3
    with pytest.raises(DiskFull, match=r"disk full while writing .*lock"):
        run.acquire_lock()
    assert not run.lock_path.exists()
    disk.free = None
    assert run.acquire_lock() == ""  # nothing stale to take over


def test_an_atomic_write_that_fails_keeps_the_old_file(tmp_path, disk) -> None:
    run = Run.create(tmp_path / "run", TINY, "cpu")
    before = run.meta_path.read_bytes()
    disk.free = 10
    with pytest.raises(DiskFull):
        run.update_meta(status="running")
    assert run.meta_path.read_bytes() == before
    assert leftovers(run.path) == []


def test_resume_and_analyze_on_a_full_disk_are_one_line(tmp_path, disk, capsys) -> None:
    run = Run.create(tmp_path / "run", TINY.replace(epochs=20), "cpu")
    Trainer(run, "cpu").train()
    measures_before = run.measures_path.read_bytes() if run.measures_path.exists() else b""
    disk.free = 0
    assert main(["open", str(run.path), "--resume", "--headless"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full while writing" in err and "lock" in err, err
    assert not run.lock_path.exists()

    disk.free = 25  # the first measures row half fits
    assert main(["analyze", str(run.path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full while writing" in err, err
    after = run.measures_path.read_bytes() if run.measures_path.exists() else b""
    assert after == measures_before  # no torn measures line
    assert leftovers(run.path) == []


# -- a real full file system ---------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path) -> Path:
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(where)], capture_output=True
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (the injected-ENOSPC tests cover it)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def grok(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "grok_tui", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def fill(disk: Path) -> Path:
    """Take every byte left on `disk`; removing the returned file frees them."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
def test_a_real_full_disk_then_resume_once_space_is_freed(tmpfs, tmp_path) -> None:
    run_dir = tmpfs / "run"
    # About 0.8 MB a checkpoint and 2.4 MB of resume state: 8 MB fills within a few.
    args = ["--p", "13", "--frac-train", "0.5", "--epochs", "300", "--checkpoint-every", "20"]
    first = grok("train", "--headless", "--run-dir", str(run_dir), *args, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr
    lines = [ln for ln in first.stderr.splitlines() if ln.startswith("disk full while writing")]
    assert len(lines) == 1, first.stderr
    kept = int(re.search(r"intact up to epoch ([\d,]+)", lines[0]).group(1).replace(",", ""))
    run = Run.open(run_dir)
    meta = run.meta()
    assert meta.status == "failed" and meta.message == lines[0]  # recorded: space was freed
    assert run.load_resume()["epoch"] == kept and kept in run.checkpoint_epochs()
    assert leftovers(run_dir) == [] and not run.lock_path.exists()
    assert not (run_dir / "error.log").exists()
    rows = assert_whole_lines(run.metrics_path)
    assert [r["epoch"] for r in rows] == list(range(len(rows))) and rows[-1]["epoch"] >= kept

    filler = fill(tmpfs)  # now truly full: resuming cannot even take the lock
    again = grok("open", str(run_dir), "--resume", "--headless", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert "disk full while writing" in again.stderr and not run.lock_path.exists()
    analyzed = grok("analyze", str(run_dir), cwd=tmp_path)
    assert analyzed.returncode == 2 and "disk full while writing" in analyzed.stderr
    if run.measures_path.exists():
        assert_whole_lines(run.measures_path)
    assert leftovers(run_dir) == []

    filler.unlink()
    subprocess.run(["mount", "-o", "remount,size=64M", str(tmpfs)], check=True)
    done = grok("open", str(run_dir), "--resume", "--headless", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run = Run.open(run_dir)
    assert run.meta().status == "done"
    assert [r["epoch"] for r in run.read_metrics()] == list(range(301))


@pytest.mark.slow
def test_the_app_on_a_full_disk_says_so_and_exits_non_zero(tmpfs, tmp_path) -> None:
    from tests.pty_app import PtyApp

    run_dir = tmpfs / "run"
    keep = tmpfs / "keep"  # 1.5 MB free once the filler is in: less than one resume state
    keep.write_bytes(b"\0" * 1_500_000)
    fill(tmpfs)
    keep.unlink()
    app = PtyApp("train", "--run-dir", str(run_dir), "--p", "13", "--frac-train", "0.5",
                 "--checkpoint-every", "20", cwd=tmp_path)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "run.json").exists() or Run(run_dir).meta().status != "failed":
            assert app.proc.poll() is None, app.text()[-2000:]
            assert time.monotonic() < deadline, "training never failed"
            time.sleep(0.1)
        time.sleep(0.5)
        app.press("q")
        rc = app.wait(timeout=60)
    finally:
        app.close()
    assert rc == 1, app.text()[-2000:]
    assert "grok-tui: error: disk full while writing" in app.text()
    assert "Traceback" not in app.text()
    assert leftovers(run_dir) == [] and not Run(run_dir).lock_path.exists()
