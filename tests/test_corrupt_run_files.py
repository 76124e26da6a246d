"""Corrupt run files, each on a fresh copy of a good run: one line or a warning, never a
traceback, never a silent loss.

Every case came from probing the app as a careful, hostile user would (issue 15): random
bytes for measures.jsonl, rows of the wrong types, a line of 100,000 nested brackets, an
epoch of ten billion, a run.json asking for d_mlp = 10^11, a garbage line in the middle of
metrics.jsonl that a resume used to rewrite away without a word.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from grok_tui.cli import main
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.store.untrusted import RunWarning
from grok_tui.engine.training.train import Trainer

CFG = RunConfig(p=11, frac_train=0.5, epochs=60, checkpoint_every=10, preset="t")
NESTED = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    run = Run.create(tmp_path_factory.mktemp("good") / "run", CFG, "cpu")
    Trainer(run, "cpu").train()
    ProgressTracker(run, "cpu").update()
    return run.path


@pytest.fixture
def run(good_run, tmp_path) -> Run:
    """A fresh copy of the good run, whose config plans 20 more epochs (resumable)."""
    path = tmp_path / "run"
    shutil.copytree(good_run, path)
    copy = Run(path)
    copy.update_meta(config=CFG.replace(epochs=80), status="paused")
    return copy


def replace_line(path: Path, index: int, text: str) -> bytes:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = text + "\n"
    path.write_text("".join(lines))
    return path.read_bytes()


def grok(capsys, *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err.splitlines()


def warnings_in(err: list[str]) -> list[str]:
    assert not any("Traceback" in line for line in err), err
    return [line for line in err if line.startswith("grok-tui: warning: ")]


# -- measures.jsonl ----------------------------------------------------------------------------
def test_measures_of_random_bytes(run, capsys, tmp_path) -> None:
    rng = __import__("random").Random(7)
    run.measures_path.write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    rc, err = grok(capsys, "analyze", str(run.path), "--json")
    assert rc == 0
    found = warnings_in(err)
    assert found and "measures.jsonl line 1 " in found[0], err
    assert len(found) <= 5  # the first few lines, then one line for the rest
    rc, err = grok(capsys, "export", str(run.path), "--format", "csv", str(tmp_path / "m.csv"))
    assert rc == 0 and warnings_in(err)
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 1 + CFG.epochs + 1


@pytest.mark.parametrize(
    "change",
    [
        {"restricted_loss": "x"},
        {"avg_attn": [[0.1, 0.2, 0.7], [0.5]]},
        {"avg_attn": [["a", "b", "c"]]},
        {"key_freqs": ["a"]},
        {"epoch": "10"},
        {"excluded_loss_per_freq": {"3": [1, {"x": 1}]}},
    ],
    ids=["string", "ragged", "strings", "freqs", "epoch", "nested"],
)
def test_measures_row_of_wrong_types(run, capsys, change) -> None:
    rows = [json.loads(line) for line in run.measures_path.read_text().splitlines()]
    rows[2].update(change)
    run.measures_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, err = grok(capsys, "analyze", str(run.path), "--json")
    assert rc == 0
    assert any("measures.jsonl line 3 " in w for w in warnings_in(err)), err


# -- metrics.jsonl -----------------------------------------------------------------------------
def test_a_line_of_nested_brackets(run, capsys, tmp_path) -> None:
    with open(run.metrics_path, "a") as f:
        f.write(NESTED + "\n")  # after row 60, past the resume point: the rewrite drops it
    original = run.metrics_path.read_bytes()
    rc, err = grok(capsys, "export", str(run.path), "--format", "csv", str(tmp_path / "a.csv"))
    assert rc == 0 and any("line 62 is nested too deeply" in w for w in warnings_in(err)), err
    rc, err = grok(capsys, "export", str(run.path), "--format", "arena", str(tmp_path / "a.pth"))
    assert rc == 0 and warnings_in(err)
    rc, err = grok(capsys, "open", str(run.path), "--resume", "--headless")
    assert rc == 0, err
    (kept,) = run.path.glob("metrics.jsonl.damaged-*")
    assert kept.read_bytes() == original  # what the rewrite dropped is kept, byte for byte
    assert [r["epoch"] for r in Run(run.path).read_metrics()] == list(range(81))


def test_an_absurd_epoch_does_not_size_the_export(run, capsys, tmp_path) -> None:
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 10000000000, "train_loss": 1.0}\n')
        f.write('{"epoch": 9999999, "train_loss": 1.0}\n')  # within the cap, past the run
    out = tmp_path / "a.pth"
    rc, err = grok(capsys, "export", str(run.path), "--format", "arena", str(out))
    assert rc == 0
    text = "\n".join(warnings_in(err))
    assert "epoch 10,000,000,000, outside 0..10,000,000" in text
    assert "epoch 9,999,999, past this run's 80 epochs" in text
    import torch

    data = torch.load(out, weights_only=True)
    assert len(data["train_losses"]) == CFG.epochs + 1


def test_a_huge_integer_and_wrong_types_in_metrics(run) -> None:
    replace_line(run.metrics_path, 5, '{"epoch": ' + "1" * 5000 + "}")
    replace_line(run.metrics_path, 6, '{"epoch": 6, "train_loss": "low"}')
    replace_line(run.metrics_path, 7, "[1, 2, 3]")
    with pytest.warns(RunWarning) as record:
        rows = run.read_metrics()
    messages = [str(w.message) for w in record]
    assert messages[0].startswith("metrics.jsonl line 6 is not usable JSON (Exceeds the limit")
    assert messages[1:] == [
        "metrics.jsonl line 7 has train_loss 'low', not a number: skipped",
        "metrics.jsonl line 8 is a JSON list, not an object: skipped",
    ]
    assert [r["epoch"] for r in rows] == [e for e in range(61) if e not in (5, 6, 7)]


def test_a_garbage_line_mid_metrics_is_never_rewritten_away_silently(run, capsys) -> None:
    original = replace_line(run.metrics_path, 30, "garbage here")
    rc, err = grok(capsys, "open", str(run.path), "--resume", "--headless")
    assert rc == 0, err
    (warning,) = warnings_in(err)
    (kept,) = run.path.glob("metrics.jsonl.damaged-*")
    assert "line 31 is not valid JSON" in warning and kept.name in warning
    assert "epochs without a row: 30" in warning  # the gap, said
    assert kept.read_bytes() == original
    epochs = [r["epoch"] for r in Run(run.path).read_metrics()]
    assert epochs == [e for e in range(81) if e != 30]


def cut_metrics(run: Run, how: str) -> bytes:
    """metrics.jsonl (rows 0..60) cut in half, emptied, or with its last line torn."""
    data = run.metrics_path.read_bytes()
    cut = {"half": len(data) // 2, "emptied": 0, "torn": len(data) - 20}[how]
    run.metrics_path.write_bytes(data[:cut])
    return data[:cut]


@pytest.mark.parametrize("how", ["half", "emptied"])
def test_a_metrics_file_cut_short_is_named_and_kept_on_resume(run, capsys, how) -> None:
    """Every line parses (a torn last one is taken for one being written), so the missing
    rows must be counted: before, resume rewrote the file without a word or a copy."""
    original = cut_metrics(run, how)
    have = [r["epoch"] for r in Run(run.path).read_metrics()]
    rc, err = grok(capsys, "open", str(run.path), "--resume", "--headless")
    assert rc == 0, err
    (warning,) = warnings_in(err)
    (kept,) = run.path.glob("metrics.jsonl.damaged-*")
    assert kept.read_bytes() == original and kept.name in warning
    first = (max(have) + 1) if have else 0
    assert f"has no row for {60 - first} of the 60 epochs before the resume point" in warning
    assert (f"({first}-59)" if first < 59 else "(59)") in warning, warning
    epochs = [r["epoch"] for r in Run(run.path).read_metrics()]
    assert epochs == [*have, *range(60, 81)]  # the gap stays; the rest is trained


@pytest.mark.parametrize("how", ["half", "emptied", "torn"])
def test_an_export_of_a_metrics_file_cut_short_names_the_missing_epochs(
    run, capsys, tmp_path, how
) -> None:
    cut_metrics(run, how)
    if how == "torn":  # a finished run: its last checkpoint (60) must have its row
        run.update_meta(status="done")
    have = {r["epoch"] for r in Run(run.path).read_metrics()}
    due = 60 if how == "torn" else 59  # paused at 60: that row comes when it resumes
    missing = [e for e in range(due + 1) if e not in have]  # checkpoints go to 60
    assert missing
    out = tmp_path / "run.csv"
    rc, err = grok(capsys, "export", str(run.path), "--format", "csv", str(out))
    assert rc == 0, err
    (warning,) = [w for w in warnings_in(err) if "has no row" in w]
    span = f"{len(missing)} epochs ({missing[0]}-{missing[-1]})"
    if len(missing) == 1:
        span = f"epoch {missing[0]}"
    assert f"metrics.jsonl has no row for {span} though the run has a checkpoint at " \
        "epoch 60" in warning, warning  # fmt: skip
    reader = MetricsReader(Run(run.path))  # the viewer's follower says it too, once
    reader.poll()
    reader.poll()
    assert [p for p in reader.problems if "has no row" in p] == [warning.split(": ", 2)[2]]


def test_a_stopped_run_is_not_called_damaged(run, capsys, tmp_path) -> None:
    """A stop (q, a signal, a pause) saves checkpoint E before E's row, written when
    training resumes (README). The app's follower and the export called every stopped
    run damaged ("metrics.jsonl has no row for epoch E though the run has a checkpoint
    at epoch E"), found by probing; a finished run's last row must be there."""
    lines = run.metrics_path.read_text().splitlines(keepends=True)
    run.metrics_path.write_text("".join(lines[:-1]))  # rows 0..59; checkpoint 60: paused
    reader = MetricsReader(Run(run.path))
    rows, _ = reader.poll()
    assert rows[-1]["epoch"] == 59 and reader.problems == []
    out = tmp_path / "run.csv"
    rc, err = grok(capsys, "export", str(run.path), "--format", "csv", str(out))
    assert rc == 0 and warnings_in(err) == [], err
    assert out.read_text().splitlines()[-1].startswith("60,,")  # not measured yet
    run.update_meta(status="done")  # the same files in a finished run: damaged
    reader = MetricsReader(Run(run.path))
    reader.poll()
    assert reader.problems == [
        "metrics.jsonl has no row for epoch 60 though the run has a checkpoint at epoch 60: "
        "the file was cut short or damaged"
    ]


def test_epoch_gaps_match_a_brute_force_count() -> None:
    import itertools
    import random

    from grok_tui.engine.store.gaps import epoch_gaps

    rng = random.Random(3)
    for _ in range(300):
        through = rng.randrange(-1, 40)
        present = [rng.randrange(-3, 45) for _ in range(rng.randrange(0, 40))]
        gaps = epoch_gaps(present, through)
        expanded = [e for a, b in gaps for e in range(a, b + 1)]
        assert expanded == [e for e in range(through + 1) if e not in present]
        assert all(b + 1 < c for (_, b), (c, _) in itertools.pairwise(gaps))  # maximal ranges


def test_the_follower_reports_a_bad_line_once_and_reads_on(run) -> None:
    reader = MetricsReader(run)
    replace_line(run.metrics_path, 3, NESTED)
    rows, _ = reader.poll()
    assert [r["epoch"] for r in rows] == [e for e in range(61) if e != 3]
    assert reader.problems == [
        "metrics.jsonl line 4 is nested too deeply to be a run file: skipped"
    ]
    run.append_metrics([{"epoch": 61, "train_loss": 1.0}])
    assert [r["epoch"] for r in reader.read_new()] == [61]
    assert len(reader.problems) == 1  # not again


def test_a_torn_line_is_not_glued_to_the_next_append(run) -> None:
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 61, "train_lo')  # a kill mid-write
    run.append_metrics([{"epoch": 61, "train_loss": 1.0}])
    with pytest.warns(RunWarning, match="line 62 is not valid JSON"):
        rows = run.read_metrics()
    assert rows[-1]["epoch"] == 61 and rows[-1]["train_loss"] == 1.0


async def test_the_app_shows_a_damaged_metrics_file_and_stays_up(run) -> None:
    from grok_tui.ui.app import make_run_app

    replace_line(run.metrics_path, 20, NESTED)
    app = make_run_app(run, train=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.5)
        notes = [str(n.message) for n in app._notifications]
        assert any("line 21 is nested too deeply" in n for n in notes), notes
        assert len(app.sessions[0].history) == CFG.epochs  # every other row
        await pilot.press("q")
    assert app.return_code == 0


# -- run.json and the lock ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"d_mlp": 100_000_000_000}, "d_mlp must be in 1..16,384"),
        ({"epochs": 10**10}, "run.json config epochs must be in 0..10,000,000"),
        ({"lr": math.inf}, "run.json config lr must be a finite number"),
    ],
)
def test_run_json_with_absurd_values(run, capsys, change, needle) -> None:
    meta = json.loads(run.meta_path.read_text())
    meta["config"].update(change)
    run.meta_path.write_text(json.dumps(meta))  # json writes inf as Infinity, as Python reads
    for argv in (["analyze", str(run.path)], ["open", str(run.path), "--resume", "--headless"]):
        rc, err = grok(capsys, *argv)
        assert rc == 2 and len(err) == 1 and "run.json" in err[0] and needle in err[0], err


@pytest.mark.parametrize(
    "text",
    [NESTED, "\xff\xfe garbage", '{"pid": ' + "9" * 5000 + ', "host": "x"}', "[]"],
    ids=["nested", "binary", "huge-int", "list"],
)
def test_a_damaged_lock_is_unreadable_not_a_crash(run, text) -> None:
    run.lock_path.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert run.lock_owner() is None and not run.writer_alive()
    assert "unreadable lock" in run.acquire_lock()
    run.release_lock()


def test_run_json_too_large_or_a_directory(run) -> None:
    run.meta_path.write_bytes(b" " * (5 << 20))
    with pytest.raises(RunError, match="larger than 4 MB"):
        run.meta()
    run.meta_path.unlink()
    run.meta_path.mkdir()
    with pytest.raises(RunError, match="is a directory"):
        run.meta()


# -- not files at all --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.symlink_to(p.name), "is a symbolic link that loops"),
        (lambda p: p.symlink_to("nowhere.safetensors"), "is a symbolic link to nowhere"),
        (lambda p: os.mkfifo(p), "is a FIFO"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["loop", "dangling", "fifo", "directory"],
)
def test_a_checkpoint_that_is_not_a_file_says_what_it_is(run, make, needle) -> None:
    path = run.checkpoint_path(30)
    path.unlink()
    make(path)
    with pytest.raises(RunError) as exc:
        run.load_checkpoint(30)
    assert str(exc.value).startswith(f"checkpoint epoch_0000030.safetensors {needle}"), exc.value


def test_run_files_that_are_fifos_never_hang_a_reader(run) -> None:
    """A FIFO where run.json or metrics.jsonl should be: opening it for reading would
    block until a writer came. In a child process, so a hang fails instead of hanging."""
    import subprocess
    import sys

    for name in ("run.json", "metrics.jsonl", "lock"):
        path = run.path / name
        path.unlink(missing_ok=True)
        os.mkfifo(path)
    code = (
        "import sys, warnings\n"
        "from grok_tui.engine.store.metrics_reader import MetricsReader\n"
        "from grok_tui.engine.store.runs import Run, RunError\n"
        "r = Run(sys.argv[1])\n"
        "try: r.meta()\n"
        "except RunError as e: print('meta:', e)\n"
        "reader = MetricsReader(r); reader.poll(); print('poll:', reader.problems)\n"
        "print('lock:', r.lock_owner())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(run.path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "run.json is a FIFO, not a file" in proc.stdout
    assert "metrics.jsonl is a FIFO, not a file" in proc.stdout
    assert "lock: None" in proc.stdout


@pytest.mark.parametrize(
    ("make", "needle"),
    [(os.mkfifo, "is a FIFO, not a file"), (lambda p: p.symlink_to(p.name), "loops")],
    ids=["fifo", "loop"],
)
def test_a_resume_state_that_is_not_a_file_is_refused_not_hung_on(run, make, needle) -> None:
    """resume.pt replaced by a FIFO: the zip-size check opened it and blocked forever. In a
    child process, so a hang fails (timeout) instead of hanging the suite."""
    import subprocess
    import sys

    run.resume_path.unlink()
    make(run.resume_path)
    proc = subprocess.run(
        [sys.executable, "-m", "grok_tui", "open", str(run.path), "--resume", "--headless"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("grok-tui: error")]
    assert "resume.pt" in error and needle in error, error
