"""The outlook as of each checkpoint (engine/measures/asof.py): stored as it is made, read
back rather than made again, untrusted rows ignored, and nothing after the checkpoint read.
(tests/test_report.py checks the same on a trained run that groks, through `analyze`.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grok_tui.engine.measures.asof import OUTLOOK_VERSION, OutlookHistory, forecaster_id
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run
from tests.planted import PLANTED
from tests.test_progress import write_checkpoint


def planted(tmp_path: Path) -> Run:
    """Six checkpoints: frequencies 3, 7, then the circuit moves to 2, 5, 9."""
    run = Run.create(tmp_path / "run", PLANTED, device="cpu")
    for i, epoch in enumerate((0, 10, 20)):
        write_checkpoint(run, epoch, (3, 7), seed=i)
    for i, epoch in enumerate((30, 40, 50)):
        write_checkpoint(run, epoch, (2, 5, 9), seed=10 + i)
    return run


def outlook_rows(run: Run) -> list[dict]:
    rows = [json.loads(line) for line in run.measures_path.read_text().splitlines()]
    return [r for r in rows if r["kind"] == "outlook"]


def test_each_step_is_stored_once_and_read_back(tmp_path: Path) -> None:
    run = planted(tmp_path)
    tracker = ProgressTracker(run)
    tracker.update()
    history = OutlookHistory(tracker)
    view = history.at()
    assert view.as_of == 50 and view.key_freqs == (2, 5, 9) and not view.provisional
    rows = outlook_rows(run)
    assert [r["epoch"] for r in rows] == [0, 10, 20, 30, 40, 50]
    # The key set each step read the excluded loss with is the one in use then.
    assert [tuple(r["key_freqs"]) for r in rows] == [(3, 7)] * 5 + [(2, 5, 9)]
    assert [r["provisional"] for r in rows] == [True, True, False, False, False, False]
    assert [r["previous"] for r in rows] == [None, 0, 10, 20, 30, 40]

    again = OutlookHistory(ProgressTracker(run))
    again.tracker.update()
    assert again.at() == view and again.at(20) == history.at(20)
    assert len(outlook_rows(run)) == 6  # read back, not made again
    assert again.forecasts() == history.forecasts()


def test_bad_rows_are_ignored_and_a_damaged_step_made_again(tmp_path: Path) -> None:
    run = planted(tmp_path)
    tracker = ProgressTracker(run)
    tracker.update()
    view = OutlookHistory(tracker).at()
    rows = outlook_rows(run)
    bad = [
        {**rows[2], "state": {"announced": {"cleanup_end": 5}, "first": {"cleanup_end": 5}}},
        {**rows[3], "raw": {"memorisation_end": True}},
        {**rows[4], "forecast": {"grok_epoch": 1}},
        {**rows[5], "version": 99},
    ]
    with open(run.measures_path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in bad))
    fresh = OutlookHistory(ProgressTracker(run))
    fresh.tracker.update()
    assert fresh.at() == view
    # The bad rows did not win over the good ones written before them: nothing remade.
    assert len(outlook_rows(run)) == 6 + len(bad)
    # A damaged step: it and every step after it are made again (and stored again).
    lines = run.measures_path.read_text().splitlines()
    lines = [
        line.replace(f'"version":{OUTLOOK_VERSION}', '"version":"one"')
        if '"epoch":30' in line and '"outlook"' in line
        else line
        for line in lines
        if not ('"outlook"' in line and json.loads(line).get("version") == 99)
    ]
    assert sum('"version":"one"' in line for line in lines) == 1  # the damage took
    run.measures_path.write_text("\n".join(lines) + "\n")
    again = OutlookHistory(ProgressTracker(run))
    again.tracker.update()
    assert again.at() == view
    assert [r["epoch"] for r in outlook_rows(run)][-3:] == [30, 40, 50]


def test_as_of_an_epoch_equals_the_run_cut_there(tmp_path: Path) -> None:
    run = planted(tmp_path)
    tracker = ProgressTracker(run)
    tracker.update()
    full = OutlookHistory(tracker)
    full.at()
    shutil.copytree(run.path, tmp_path / "cut")
    cut = Run(tmp_path / "cut")
    for epoch in (40, 50):
        cut.checkpoint_path(epoch).unlink()
    cut.measures_path.unlink()
    shutil.rmtree(cut.path / "measures")
    cut_tracker = ProgressTracker(cut)
    cut_tracker.update()
    assert OutlookHistory(cut_tracker).at() == full.at(30)
    assert full.at(30).key_freqs == (3, 7)  # the move to 2, 5, 9 was not known yet


def test_a_budget_steps_a_little_per_call_and_gets_there(tmp_path: Path) -> None:
    """What the viewer's service does on a run opened for the first time: each call makes
    at least one step, and shows the outlook as of the last checkpoint stepped."""
    run = planted(tmp_path)
    tracker = ProgressTracker(run)
    tracker.update()
    history = OutlookHistory(tracker)
    seen = [history.at(budget_s=0.0).as_of for _ in range(7)]
    assert seen == [0, 10, 20, 30, 40, 50, 50]
    assert history.at() == OutlookHistory(tracker).at()


def test_steps_made_by_other_forecast_constants_are_made_again(tmp_path: Path) -> None:
    """After a refit (bench/forecast_refit.py) a stored step names other constants: it is
    made again, so the outlook as of N stays what the run cut at N gives."""
    run = planted(tmp_path)
    tracker = ProgressTracker(run)
    tracker.update()
    view = OutlookHistory(tracker).at()
    rows = outlook_rows(run)
    assert rows and all(r["forecaster"] == forecaster_id() for r in rows)
    lines = run.measures_path.read_text().splitlines()
    ours, other = f'"forecaster":{forecaster_id()}', f'"forecaster":{forecaster_id() + 1}'
    assert sum(ours in line for line in lines) == len(rows)
    run.measures_path.write_text("".join(line.replace(ours, other) + "\n" for line in lines))
    again = OutlookHistory(ProgressTracker(run))
    again.tracker.update()
    assert again.at() == view
    remade = outlook_rows(run)
    assert len(remade) == 2 * len(rows)
    assert all(r["forecaster"] == forecaster_id() for r in remade[len(rows) :])
