"""`--extend N`: a budget raised by N epochs, then training goes on from the last checkpoint.

`grok-tui sweep --resume DIR --extend N` gives undecided members N more epochs;
`grok-tui open RUN --resume --extend N` a single run, which then equals a run made with the
larger budget, bit for bit."""

from __future__ import annotations

import pytest

from grok_tui.cli import main
from grok_tui.console.training import extend_hint
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.lab.sweep_status import SweepWatcher
from grok_tui.engine.measures.forecast import Forecast
from grok_tui.engine.store.runs import Run, RunError

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


RUN = ["train", "--headless", "--p", "11", "--frac-train", "0.5", "--checkpoint-every", "20",
       "--device", "cpu"]  # fmt: skip


def test_an_extended_run_equals_one_made_with_the_larger_budget(tmp_path, capsys) -> None:
    """Nothing in a step reads the budget, so 40 epochs then 30 more are a 70-epoch run: every
    metric (but the wall clock) and the last checkpoint's weights, bit for bit."""
    import torch

    short, long = tmp_path / "short", tmp_path / "long"
    assert main([*RUN, "--epochs", "40", "--run-dir", str(short)]) == 0
    said = capsys.readouterr().err  # p = 11 has not grokked by 40: the summary says what to run
    assert "not grokked within its 40 epochs" in said
    assert f"train on with: grok-tui open {short} --resume --extend 40" in said
    assert main([*RUN, "--epochs", "70", "--run-dir", str(long)]) == 0
    capsys.readouterr()
    assert main(["open", str(short), "--resume", "--headless", "--extend", "30"]) == 0
    assert f"{short}: extended to 70 epochs" in capsys.readouterr().err
    runs = Run.open(short), Run.open(long)
    assert [(r.meta().status, r.meta().config.epochs) for r in runs] == [("done", 70)] * 2
    rows = [[{k: v for k, v in row.items() if k != "wall_s"} for row in r.read_metrics()]
            for r in runs]  # fmt: skip
    assert len(rows[0]) == 71 and rows[0] == rows[1]
    weights = [r.load_checkpoint(70) for r in runs]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_open_extend_needs_resume_a_positive_count_and_a_run(tmp_path, capsys) -> None:
    run = tmp_path / "r"
    assert main([*RUN, "--epochs", "5", "--run-dir", str(run)]) == 0
    before = (run / "run.json").read_bytes()
    capsys.readouterr()
    assert main(["open", str(run), "--extend", "10"]) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main(["open", str(run), "--resume", "--extend", "0"]) == 2
    assert "--extend must be a number of epochs > 0, got 0" in capsys.readouterr().err
    assert (run / "run.json").read_bytes() == before  # refused: nothing written
    sweep = tmp_path / "sweep"
    assert main([*SHORT, "--epochs", "2", "--weight-decay", "1", "--sweep-dir", str(sweep)]) == 0
    capsys.readouterr()
    assert main(["open", str(sweep), "--resume", "--extend", "10"]) == 2
    assert "grok-tui sweep --resume DIR --extend N" in capsys.readouterr().err


def test_the_hint_covers_the_forecasts_interval_or_doubles_the_budget() -> None:
    seen = Forecast(870, 800, 1_007, level=0.8)
    assert extend_hint("runs/a", 800, 0.937, seen) == (
        "not grokked within its 800 epochs (test accuracy 93.7%); the forecast says ~870 "
        "(80%: 800-1,007); train on with: grok-tui open runs/a --resume --extend 300"
    )
    assert extend_hint("runs/a", 800, 0.5, None).endswith("--extend 800")  # no forecast
    assert extend_hint("runs/a", 0, 0.01, None).endswith("--extend 100")  # not --extend 0
    assert extend_hint("runs/a", 800, 0.5, Forecast(None, reason="x")).endswith("--extend 800")
    assert extend_hint("runs/a", 800, 0.5, Forecast(700, 650, 790)).endswith("--extend 800")
    assert extend_hint("runs/a", 800, 0.995, seen) == ""  # grokked: nothing to say
    assert extend_hint("runs/a", 800, float("nan"), seen) == ""  # no row: nothing to say


def test_extend_refuses_what_it_cannot_train_and_writes_nothing(tmp_path, capsys) -> None:
    """One line and run.json untouched for: a budget past the largest, a run that diverged
    (it would diverge again), a run another live process trains, a --key-epoch with no
    checkpoint (checked before anything is written); a read-only Run refuses in the store."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from grok_tui.engine.store.liveness import process_start

    run = tmp_path / "r"
    assert main([*RUN, "--epochs", "5", "--run-dir", str(run)]) == 0
    before = (run / "run.json").read_bytes()
    capsys.readouterr()
    assert main(["open", str(run), "--resume", "--headless", "--extend", "20000000"]) == 2
    assert "cannot be extended by 20,000,000: --epochs must be in" in capsys.readouterr().err
    # without --headless and without a terminal (pytest's stdin): the budget is what is
    # wrong with the command, so it is said first, not "needs a terminal"
    assert main(["open", str(run), "--resume", "--extend", "20000000"]) == 2
    assert "cannot be extended by 20,000,000" in capsys.readouterr().err
    assert main(["open", str(run), "--resume", "--extend", "10", "--key-epoch", "999"]) == 2
    assert "--key-epoch 999: no checkpoint" in capsys.readouterr().err
    assert (run / "run.json").read_bytes() == before
    with pytest.raises(RunError, match="read-only"):
        Run.open(run, read_only=True).extend(10)

    # another live process holds the trainer lock: a child that sleeps
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"pid": child.pid, "host": socket.gethostname(), "since": "now",
                 "started": process_start(child.pid)}  # fmt: skip
        Run.open(run).lock_path.write_text(json.dumps(owner))
        assert main(["open", str(run), "--resume", "--headless", "--extend", "10"]) == 2
        assert f"being trained by pid {child.pid}" in capsys.readouterr().err
    finally:
        child.kill()
        child.wait()
    assert (run / "run.json").read_bytes() == before
    os.unlink(Run.open(run).lock_path)

    diverged = tmp_path / "nan"  # lr 1e12: the logits overflow at the first real step
    assert main([*RUN, "--epochs", "5", "--lr", "1e12", "--warmup-steps", "0",
                 "--run-dir", str(diverged)]) == 1  # fmt: skip
    before = (diverged / "run.json").read_bytes()
    capsys.readouterr()
    assert main(["open", str(diverged), "--resume", "--headless", "--extend", "10"]) == 2
    assert "diverged" in capsys.readouterr().err
    assert (diverged / "run.json").read_bytes() == before


def test_headless_says_the_grok_epoch_the_metrics_saw_as_the_app_does() -> None:
    """The headless line said 'grokked at 950' (the first checkpoint past 99%) where the
    app and analyze said 909 (the first row: rows have every epoch), found by probing."""
    from grok_tui.console.training import forecast_words
    from grok_tui.engine.measures.forecast import first_grokked

    rows = [{"epoch": e, "test_acc": a} for e, a in ((907, 0.98), (908, 0.991), (909, 0.995))]
    assert first_grokked(rows) == 908 and first_grokked(rows[:1]) is None
    assert first_grokked(rows, upto=907) is None  # analyze --epoch 907: not yet
    observed = Forecast(950, 950, 950, observed=True)
    assert forecast_words(observed, 908) == "grokked at 908"
    assert forecast_words(observed, None) == "grokked at 950"  # no row seen: the checkpoint's
    ahead = Forecast(1200, 1100, 1300)
    assert forecast_words(ahead, None) == ahead.describe() == "groks ~1,200 (1,100-1,300)"


def test_a_sweep_where_a_run_is_expected_says_where_its_runs_are(tmp_path, capsys) -> None:
    """`analyze SWEEP` said only "not a run directory (no run.json)" (probing)."""
    from grok_tui.engine.lab.sweep import SweepSpec
    from tests.sweep_harness import TINY_BASE

    sweep = Sweep.create(tmp_path / "s", SweepSpec(TINY_BASE, {"seed": [0, 1]}), "cpu")
    capsys.readouterr()
    export = ["export", str(sweep.path), "--format", "csv", str(tmp_path / "x.csv")]
    for argv in (["analyze", str(sweep.path)], export):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == (
            f"grok-tui: error: {sweep.path} is a sweep, not a run: its runs are in "
            f"{sweep.path / 'members'} (grok-tui open {sweep.path} shows the sweep)\n"
        )
