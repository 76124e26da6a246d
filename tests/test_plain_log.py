"""Headless output into a file (`> log 2>&1`): whole plain lines at a steady interval.

Before, a headless run sent to a file wrote nothing until its end and then one bar line cut
at 80 columns with "…". The interval is tested on a fake clock (no test here depends on
speed); the end-to-end ones set it to 0, so every progress event writes a line.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from grok_tui.console.plain_log import ENV_INTERVAL, PlainProgress, PlainSweepProgress, log_interval
from grok_tui.console.sweep import RecentRate

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def row(epoch: int) -> dict[str, float]:
    return {"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "test_loss": 4.5,
            "train_acc": 1.0, "test_acc": 0.125}  # fmt: skip


def test_a_line_at_once_then_one_per_interval_then_the_last() -> None:
    clock, lines = Clock(), []
    log = PlainProgress(lines.append, interval=10.0, clock=clock, name="run-1")
    for t, epoch in [(0, 0), (3, 1), (9.9, 2), (10, 3), (15, 4), (19.9, 5), (20, 6), (22, 7)]:
        clock.now = t
        log.row(row(epoch), total=1_000, speed=123.4)
    assert [line.split(":")[1].split()[1] for line in lines] == ["0/1,000", "3/1,000", "6/1,000"]
    log.outlook("phase circuit forming since 5; groks ~900 (800-1,000)")
    log.finish()
    assert lines[-1] == (
        "run-1: epoch 7/1,000 (1%)  train loss 1.250e-01  test loss 4.500e+00  train acc "
        "100.0%  test acc 12.5%  123 epochs/s  phase circuit forming since 5; groks ~900 "
        "(800-1,000)"
    )
    log.finish()  # nothing new: no repeat
    assert len(lines) == 4


def test_an_unknown_interval_falls_back_to_the_default(monkeypatch) -> None:
    for text, want in [("2.5", 2.5), ("0", 0.0), ("-1", 10.0), ("nan", 10.0), ("x", 10.0)]:
        monkeypatch.setenv(ENV_INTERVAL, text)
        assert log_interval(10.0) == want


def member(name: str, status: str, epoch: int = 5) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, status=status, shown_status=status, diverged=False,
        finished=status in ("done", "failed"),
        epoch=epoch, config=SimpleNamespace(epochs=10), train_loss=0.5, test_loss=math.nan,
        train_acc=1.0, test_acc=0.5, outcome=SimpleNamespace(label="memorisation?"),
        outcome_label="memorisation?", message="",
    )  # fmt: skip


def test_a_sweep_logs_a_summary_per_interval_and_each_member_once_when_it_ends() -> None:
    clock, lines = Clock(), []
    log = PlainSweepProgress(lines.append, interval=10.0, clock=clock)
    members = {"a": member("a", "running"), "b": member("b", "running")}
    log.update("s: 2 members, 2 running", members)
    clock.now = 5
    members["a"] = member("a", "done", epoch=10)
    log.update("s: 2 members, 1 done, 1 running", members)
    clock.now = 6
    log.update("s: 2 members, 1 done, 1 running", members)
    clock.now = 7
    log.update("s: final", members, force=True)
    assert lines == [
        "s: 2 members, 2 running",
        "a: done at epoch 10/10  train loss 5.000e-01  test loss -  train acc 100.0%  "
        "test acc 50.0%  outcome memorisation?",
        "s: final",
    ]


def run_logged(tmp_path: Path, *argv: str) -> tuple[int, list[str]]:
    """grok-tui with stdout and stderr sent to a file, as `> log 2>&1` does."""
    log = tmp_path / "log"
    env = {**os.environ, ENV_INTERVAL: "0", "COLUMNS": "80"}
    with open(log, "wb") as out:
        argv = (sys.executable, "-m", "grok_tui", *argv)
        proc = subprocess.run(argv, stdout=out, stderr=out, cwd=tmp_path, env=env, timeout=600)
    return proc.returncode, log.read_text().splitlines()


def test_headless_training_into_a_file_logs_plain_progress(tmp_path) -> None:
    rc, lines = run_logged(tmp_path, "train", "--headless", "--p", "11", "--frac-train", "0.5",
                           "--epochs", "60", "--checkpoint-every", "20",
                           "--run-dir", str(tmp_path / "run-1"))  # fmt: skip
    assert rc == 0, lines
    assert not any("…" in line or "\x1b" in line for line in lines), lines
    progress = [line for line in lines if line.startswith("run-1: epoch ")]
    epochs = [int(line.split()[2].split("/")[0]) for line in progress]
    assert len(progress) >= 2 and epochs == sorted(epochs) and epochs[-1] == 60, lines
    for line in progress:
        assert all(word in line for word in ("train loss", "test loss", "train acc", "test acc"))
    # the summary, then (p = 11 has not grokked by 60) what to run to train on
    assert lines[-2].startswith("done: epoch 60/60")
    assert lines[-1].startswith("not grokked within its 60 epochs")
    assert lines[-1].endswith(f"grok-tui open {tmp_path / 'run-1'} --resume --extend 60")


def test_a_headless_sweep_into_a_file_logs_plain_progress(tmp_path) -> None:
    rc, lines = run_logged(tmp_path, "sweep", "--headless", "--p", "11", "--frac-train", "0.5",
                           "--epochs", "40", "--checkpoint-every", "20", "--weight-decay", "1,2",
                           "--sweep-dir", str(tmp_path / "sw"))  # fmt: skip
    assert rc == 0, lines
    assert not any("…" in line or "\x1b" in line for line in lines), lines
    ended = [line for line in lines if ": done at epoch 40/40" in line]
    assert len(ended) == 2, lines  # each member once, with its numbers and outcome
    assert all("test acc" in line and "outcome" in line for line in ended)
    assert any(" members, " in line and "member-epochs/s" in line for line in lines), lines


def test_the_sweep_speed_follows_a_change_of_load_within_a_window() -> None:
    """The headless sweep's live speed is over the last RATE_WINDOW_S, not since the start:
    after 10 minutes at 40 member-epochs/s, a window at 8 reads 8 (the average since the
    start would still read ~32)."""
    rate = RecentRate(window=30.0)
    total, now = 0.0, 0.0
    assert math.isnan(rate.add(now, total))  # one sample: no rate yet
    assert math.isnan(rate.add(now + 1.0, total + 40.0))  # nor over a second
    now, total = now + 1.0, total + 40.0
    for _ in range(600):  # 10 minutes at 40/s, a sample a second
        now, total = now + 1.0, total + 40.0
        assert rate.add(now, total) == pytest.approx(40.0)
    for _ in range(31):  # then a busy neighbour: 8/s
        now, total = now + 1.0, total + 8.0
        got = rate.add(now, total)
    assert got == pytest.approx(8.0)
    assert rate.add(now + 1.0, total - 1000.0) == 0.0  # rows cut back on a resume: never < 0
    assert len(rate.samples) <= 33  # what it keeps is bounded by the window
