"""`grok-tui sweep --resume DIR --extend N`: undecided members train N more epochs."""

from __future__ import annotations

import pytest

from grok_tui.cli import main
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.lab.sweep_status import SweepWatcher

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")

# p=17 memorises by epoch 40 and its test accuracy climbs past 0.4 by 100: stopped there,
# every member is still improving (undecided), not memorisation.
SHORT = ["sweep", "--preset", "quick", "--p", "17", "--frac-train", "0.5", "--epochs", "100",
         "--checkpoint-every", "20", "--weight-decay", "1,3", "--headless",
         "--disk-budget", "100MB"]  # fmt: skip


def test_extend_continues_the_undecided_members_of_a_real_sweep(tmp_path, capsys) -> None:
    path = tmp_path / "sweep"
    assert main([*SHORT, "--sweep-dir", str(path)]) == 0
    sweep = Sweep.open(path)
    watcher = SweepWatcher(sweep)
    watcher.poll()
    labels = {n: s.outcome.label for n, s in watcher.members.items()}
    assert set(labels.values()) == {"undecided at 100 (still improving)"}, labels
    before = {n: sweep.member_run(n).read_metrics() for n in watcher.members}

    capsys.readouterr()
    assert main(["sweep", "--resume", str(path), "--extend", "60", "--headless"]) == 0
    assert "extending 2 undecided member(s) by 60 epochs" in capsys.readouterr().err
    for name, rows0 in before.items():
        run = sweep.member_run(name)
        meta = run.meta()
        assert (meta.status, meta.config.epochs) == ("done", 160)
        rows = run.read_metrics()
        assert [int(r["epoch"]) for r in rows] == list(range(161))  # resumed: no gap, no repeat
        assert rows[:100] == rows0[:100]  # the first 100 epochs kept as they were
        assert 160 in run.checkpoint_epochs()


def test_extend_needs_resume_and_a_positive_count(tmp_path, capsys) -> None:
    assert main([*SHORT, "--extend", "10"]) == 2
    assert "give it with --resume DIR" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path), "--extend", "0"]) == 2
    assert "--extend must be a number of epochs > 0, got 0" in capsys.readouterr().err
