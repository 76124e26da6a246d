"""The command line: every bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grok_tui.cli import main


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--headless", "--p", "4"], "--p must be a prime >= 3 and <= 997, got 4"),
        (["train", "--headless", "--p", "2"], "--p must be a prime >= 3 and <= 997, got 2"),
        (["train", "--headless", "--p", "abc"], "invalid int value: 'abc'"),
        (["train", "--headless", "--frac-train", "1.5"], "--frac-train must be in (0, 1)"),
        (["train", "--headless", "--frac-train", "0"], "--frac-train must be in (0, 1)"),
        (["train", "--headless", "--epochs", "-5"], "--epochs must be in 0..10,000,000, got -5"),
        (["train", "--headless", "--epochs", "10000000000"], "--epochs must be in 0..10,000,000"),
        (["train", "--headless", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["train", "--headless", "--checkpoint-every", "0"], "--checkpoint-every"),
        (["train", "--headless", "--device", "tpu"], "--device 'tpu' is not one of"),
        (["train", "--headless", "--preset", "fast"], "invalid choice: 'fast'"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["open", "/nonexistent/run"], "no run at /nonexistent/run"),
        (["open"], "the following arguments are required: run"),
        (["ablate", "some-run", "--heads", ","], "--heads: ',' names nothing to ablate"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("grok-tui: error: ") and needle in err
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_cuda_that_is_not_there(capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--headless", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_existing_run_directory_is_refused_and_untouched(tmp_path, capsys) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert main(["train", "--headless", "--run-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists and is not empty" in err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_open_headless_needs_resume(tmp_path, capsys) -> None:
    assert main(["train", "--headless", "--p", "5", "--frac-train", "0.5", "--epochs", "3",
                 "--run-dir", str(tmp_path / "r")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["open", str(tmp_path / "r"), "--headless"]) == 2
    assert "needs --resume" in capsys.readouterr().err


def test_headless_train_prints_a_summary(tmp_path, capsys) -> None:
    run_dir = tmp_path / "r"
    code = main(["train", "--headless", "--p", "7", "--frac-train", "0.5", "--epochs", "20",
                 "--checkpoint-every", "10", "--run-dir", str(run_dir)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "done: epoch 20/20" in err and str(run_dir) in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch_0000000.safetensors", "epoch_0000010.safetensors", "epoch_0000020.safetensors"
    ]  # fmt: skip


def test_real_entry_point_prints_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "grok_tui", "train", "--headless", "--p", "9"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == "grok-tui: error: --p must be a prime >= 3 and <= 997, got 9\n"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "r"
    assert main(["train", "--headless", "--p", "11", "--frac-train", "0.5", "--epochs", "40",
                 "--checkpoint-every", "20", "--run-dir", str(run_dir)]) == 0  # fmt: skip
    return run_dir


def test_analyze_json_has_the_documented_keys(small_run, capsys) -> None:
    import json

    capsys.readouterr()
    assert main(["analyze", str(small_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("epoch", "train_loss", "test_loss", "key_freqs", "cluster_sizes",
                "restricted_loss", "excluded_loss", "excluded_loss_per_freq", "gini_W_E",
                "gini_W_L", "sum_sq_weights", "phases"):  # fmt: skip
        assert key in report, key
    assert report["epoch"] == 40 and isinstance(report["key_freqs"], list)
    assert sum(report["cluster_sizes"].values()) == 512
    assert main(["analyze", str(small_run), "--epoch", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 20
    assert main(["analyze", str(small_run), "--epoch", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epoch 7" in err


def test_export_import_and_open_a_pth_once(small_run, tmp_path, capsys, monkeypatch) -> None:
    pth = tmp_path / "full_run_data.pth"
    assert main(["export", str(small_run), "--format", "arena", str(pth)]) == 0
    assert main(["export", str(small_run), "--format", "csv", str(tmp_path / "m.csv")]) == 0
    assert (tmp_path / "m.csv").read_text().startswith("epoch,train_loss,test_loss")
    assert main(["import", str(pth), str(tmp_path / "imported")]) == 0
    capsys.readouterr()
    assert main(["open", str(tmp_path / "imported"), "--resume", "--headless"]) == 2
    assert "no optimiser state" in capsys.readouterr().err

    from grok_tui.cli.train import open_or_import

    monkeypatch.chdir(tmp_path)
    first = open_or_import(str(pth), "cpu")
    assert first.path.resolve() == (tmp_path / "runs" / "full_run_data").resolve()
    again = open_or_import(str(pth), "cpu")  # imported once, then reopened
    assert again.path == first.path
    assert "imported earlier" in capsys.readouterr().err


def test_serve_and_export_name_bad_runs(capsys) -> None:
    assert main(["serve", "/nonexistent"]) == 2
    assert main(["export", "/nonexistent", "--format", "csv", "x.csv"]) == 2
    assert main(["export", "/nonexistent", "--format", "xls", "x"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("grok-tui: error: ") for line in lines)


@pytest.mark.parametrize("name", ["..pth", "...pth", " .pth"])
def test_an_imported_file_never_names_the_runs_directory_itself(
    small_run, tmp_path, monkeypatch, name
) -> None:
    from grok_tui.cli.train import open_or_import

    pth = tmp_path / name
    assert main(["export", str(small_run), "--format", "arena", str(pth)]) == 0
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    run = open_or_import(str(pth), "cpu")
    assert run.path.parent == Path("runs") and run.path.name not in ("", ".", "..")
    assert not (work / "runs" / "run.json").exists()
    assert (run.path / "run.json").is_file()


def test_a_key_epoch_without_a_checkpoint_is_one_line(tmp_path, capsys) -> None:
    from grok_tui.engine.core.config import RunConfig
    from grok_tui.engine.core.model import paper_init
    from grok_tui.engine.store.runs import Run

    cfg = RunConfig(p=7, frac_train=0.5, epochs=10, checkpoint_every=5, preset="t")
    run = Run.create(tmp_path / "r", cfg, "cpu")
    run.save_checkpoint(0, paper_init(cfg))
    for argv in (["open", str(run.path), "--key-epoch", "5"],
                 ["analyze", str(run.path), "--key-epoch", "5"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--key-epoch 5" in err, err


def test_version_is_the_package_version_and_loads_no_torch() -> None:
    from importlib.metadata import version

    code = (
        "import sys, contextlib\n"
        "from grok_tui.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['--version'])\n"
        "print('torch' in sys.modules, 'textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [f"grok-tui {version('grok-tui')}", "False False"]


# A value other than the paper preset's for every config field the command line sets.
OTHER_VALUES = {
    "p": 7, "frac_train": 0.5, "data_seed": 3, "op": "multiply", "lr": 0.002,
    "weight_decay": 0.5, "beta1": 0.8, "beta2": 0.99, "warmup_steps": 5, "epochs": 20,
    "checkpoint_every": 10, "seed": 4, "grokfast": "ema", "grokfast_alpha": 0.9,
    "grokfast_lamb": 3.0, "grokfast_window": 50, "loss": "stablemax", "orthogonal_grad": True,
}  # fmt: skip


def test_every_config_field_is_an_option_of_train_and_an_axis_of_sweep() -> None:
    """One list of config options (cli/options.py): train sets each field, sweep sweeps each
    (checkpoint_every aside: the densest spacing a sweep's disk plan may choose)."""
    from grok_tui.cli.grid import spec_from_args
    from grok_tui.cli.options import CONFIG_FIELDS, config_from_args, flag
    from grok_tui.cli.parser import build_parser
    from grok_tui.engine.core.config import preset

    assert set(OTHER_VALUES) == set(CONFIG_FIELDS)
    parser = build_parser()
    argv = [a for f, v in OTHER_VALUES.items() for a in (flag(f), str(v)) if v is not True]
    argv += [flag(f) for f, v in OTHER_VALUES.items() if v is True]  # on/off flags
    cfg = config_from_args(parser.parse_args(["train", *argv]))
    assert cfg == preset("paper").replace(**OTHER_VALUES)
    for field, value in OTHER_VALUES.items():
        if field == "checkpoint_every":
            continue
        both = f"{getattr(preset('quick'), field)},{value}"
        spec = spec_from_args(parser.parse_args(["sweep", "--preset", "quick", flag(field), both]))
        assert list(spec.axes) == [field] and spec.axes[field][1] == value


def test_member_names_keep_their_order_of_axes() -> None:
    """Member names join the axes in the engine's order, seeds last (as sweeps made before)."""
    from grok_tui.cli.grid import spec_from_args
    from grok_tui.cli.parser import build_parser

    argv = ["sweep", "--preset", "quick", "--op", "add,divide", "--data-seed", "0,1",
            "--weight-decay", "1,2", "--seeds", "2"]  # fmt: skip
    members = spec_from_args(build_parser().parse_args(argv)).members()
    assert members[0].name == "wd1_ds0_opadd_s0" and len(members) == 16


def test_a_failed_import_prints_one_line_and_nothing_before_it(tmp_path) -> None:
    """Before, the import's progress bar left a blank line on stdout ahead of the error."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    out = subprocess.run(
        [sys.executable, "-m", "grok_tui", "import", str(passwd), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("grok-tui: error: "), out.stderr


def test_the_systems_refusals_are_one_line(tmp_path, capsys) -> None:
    """An OSError no command expected (here a path component past the 255-byte limit) is
    one line and exit code 1, not a traceback; nothing is created."""
    too_long = tmp_path / ("a" * 300)
    train = ["train", "--headless", "--p", "7", "--run-dir", str(too_long / "r")]
    for argv in (["analyze", str(too_long)], train):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("grok-tui: error: "), err
        assert "File name too long" in err and "..." in err  # the name cut in its middle
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_file_that_is_not_text(tmp_path, capsys) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_bytes(b"\xff\xfe")
    assert main(["sweep", "--dry-run", str(grid)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not UTF-8 text" in err, err


def test_the_app_without_a_terminal_is_one_line_and_makes_nothing(
    tmp_path, capsys, monkeypatch
) -> None:
    """Under pytest stdin is not a terminal: the app would wait for keys on a pipe. Train,
    open and compare say so before any directory is made or changed."""
    monkeypatch.delenv("TEXTUAL_DRIVER", raising=False)  # (set: a served session)
    run = tmp_path / "r"
    assert main(["train", "--p", "7", "--frac-train", "0.5", "--run-dir", str(run)]) == 2
    assert not run.exists()
    assert main(["train", "--headless", "--p", "7", "--frac-train", "0.5", "--epochs", "4",
                 "--run-dir", str(run)]) == 0  # fmt: skip
    before = (run / "run.json").read_bytes()
    capsys.readouterr()
    for argv in (["open", str(run)], ["open", str(run), "--resume", "--extend", "5"],
                 ["compare", str(run), str(run)]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "needs a terminal" in err, err
    assert (run / "run.json").read_bytes() == before  # not extended


def test_ctrl_c_during_the_imports_waits_for_them_then_exits_130(monkeypatch) -> None:
    """The signal arrives in the middle of the command's imports (torch's `import numpy`
    swallowed it and left numpy half made): the imports finish, then exit code 130."""
    import os
    import signal

    from grok_tui.cli import entry

    finished: list[str] = []

    def importing(name: str):
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(name)  # reached: the signal did not cut the import short
        return lambda args: 0

    before = signal.getsignal(signal.SIGINT)
    if before is not signal.default_int_handler:
        pytest.skip("ctrl+c is not Python's KeyboardInterrupt in this process")
    monkeypatch.setattr(entry, "command", importing)
    assert entry.main(["train", "--headless"]) == 130
    assert finished == ["train"]
    assert signal.getsignal(signal.SIGINT) is before  # given back


def test_analyze_a_run_this_process_may_not_write(small_run, tmp_path, capsys, monkeypatch) -> None:
    """Another user's run (or one on a read-only mount) has no measures cache this process
    may write: analyze failed on making its folder; now it computes them in memory and
    writes nothing into the run. (Tests may run as root, whom no mode bit stops, so the
    permission is taken away where the run asks for it: os.access.)"""
    import json
    import os
    import shutil

    import grok_tui.engine.store.runs as runs

    theirs = tmp_path / "theirs"
    shutil.copytree(small_run, theirs)
    shutil.rmtree(theirs / "measures", ignore_errors=True)
    (theirs / "measures.jsonl").unlink(missing_ok=True)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in theirs.rglob("*"))
    real_access = os.access
    monkeypatch.setattr(
        runs.os, "access", lambda path, mode: not mode & os.W_OK and real_access(path, mode)
    )
    capsys.readouterr()
    assert main(["analyze", str(theirs), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["epoch"] == 40
    assert (
        err == f"grok-tui: {theirs} cannot be written here: its measures are computed, not cached\n"
    )
    assert sorted((p.name, p.stat().st_mtime_ns) for p in theirs.rglob("*")) == before
