"""Op and Grokfast options as sweep axes: parsing, names, and a real sweep mixing them."""

from __future__ import annotations

import pytest

from grok_tui.cli import main
from grok_tui.engine.lab.sweep import Sweep

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")


def test_op_and_grokfast_are_axes(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--preset", "quick", "--op", "add,divide,x2+y2", "--grokfast", "off,ema"]
    assert main([*argv, "--dry-run", "--disk-budget", "500MB"]) == 0
    err = capsys.readouterr().err
    assert "6 members" in err and "opx2+y2_gfema" in err and "opdivide_gfoff" in err
    grid = tmp_path / "grid.toml"
    grid.write_text('preset = "quick"\nop = ["multiply", "random"]\ngrokfast = "ma"\n'
                    'grokfast_window = [10, 50]\ndisk_budget = "500MB"\n')  # fmt: skip
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "4 members" in err and "opmultiply_gfw10" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--op", "add,modexp"], "sweep member op=modexp: --op must be one of"),
        (["--grokfast", "ema,fast"], "--grokfast must be one of"),
        (["--grokfast-alpha", "0.9,x"], "--grokfast-alpha: 'x' is not a number"),
    ],
)
def test_bad_axis_values_are_one_line(argv, needle, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--headless", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_a_sweep_over_ops_and_grokfast_trains_each_member_as_configured(tmp_path) -> None:
    path = tmp_path / "sw"
    argv = ["sweep", "--preset", "quick", "--p", "11", "--frac-train", "0.5", "--epochs", "30",
            "--checkpoint-every", "10", "--op", "add,divide", "--grokfast", "off,ema",
            "--headless", "--disk-budget", "200MB", "--sweep-dir", str(path)]  # fmt: skip
    assert main(argv) == 0
    runs = Sweep.open(path).runs()
    assert sorted(runs) == ["opadd_gfema", "opadd_gfoff", "opdivide_gfema", "opdivide_gfoff"]
    for name, run in runs.items():
        cfg = run.meta().config
        assert (cfg.op, cfg.grokfast) == tuple(v[2:] for v in name.split("_"))
        assert run.meta().status == "done" and run.checkpoint_epochs()[-1] == 30
    # Grokfast changed the trajectory; the op changed the data (divide: 55 train inputs).
    loss = {n: r.read_metrics()[-1]["train_loss"] for n, r in runs.items()}
    assert loss["opadd_gfema"] != loss["opadd_gfoff"]
    assert runs["opdivide_gfoff"].meta().config.n_train == int(0.5 * 11 * 10)
