"""`grok-tui analyze`: measures, phases, the key-set history and the forecast of a trained
run, also of a copy cut at an earlier checkpoint (a run still training looks like that)."""

from __future__ import annotations

import io
import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console
from rich.table import Table

from grok_tui.cli import main
from grok_tui.console.report import render_report
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.asof import OutlookHistory
from grok_tui.engine.measures.phases import PHASES
from grok_tui.engine.measures.progress import ProgressTracker, progress_table
from grok_tui.engine.measures.report import analysis_report
from grok_tui.engine.store.rows import format_metric_row
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.train import Trainer
from tests.planted import PLANTED

TINY = RunConfig(
    p=31,
    frac_train=0.5,
    lr=3e-3,
    weight_decay=2.0,
    epochs=2000,
    checkpoint_every=50,
    d_model=64,
    n_heads=4,
    d_head=16,
    d_mlp=256,
    preset="test",
)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: as fast as two for these small models (training ~8 s), while
    with two, another busy process on the two cores makes them spin-wait: minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Run:
    run = Run.create(tmp_path_factory.mktemp("grok") / "tiny", TINY, device="cpu")
    result = Trainer(run, device="cpu").train()
    assert result.status == "done"
    return run


def cut_copy(run: Run, dest: Path, last: int) -> Run:
    """A copy of a run as it was at checkpoint `last`: later rows and checkpoints removed
    (its measures cache too: a run still training has none beyond its newest checkpoint)."""
    shutil.copytree(run.path, dest)
    cut = Run(dest)
    for epoch in cut.checkpoint_epochs():
        if epoch > last:
            cut.checkpoint_path(epoch).unlink()
            (dest / "measures" / f"epoch_{epoch:07d}.safetensors").unlink(missing_ok=True)
    rows = [r for r in cut.read_metrics() if r["epoch"] <= last]
    cut.metrics_path.write_text("".join(format_metric_row(r) for r in rows))
    cut.measures_path.unlink(missing_ok=True)
    return cut


@pytest.mark.slow
def test_a_trained_run_groks_through_detected_phases(trained_run: Run) -> None:
    table = progress_table(trained_run)
    assert len(table) == len(trained_run.checkpoint_epochs()) == 41
    assert len(table.key_freqs) >= 1
    phases = table.phases()
    mem, circ, clean = (phases[k] for k in PHASES)
    assert mem is not None and circ is not None and clean is not None, phases
    # Cleanup ends no earlier than it starts; on this tiny run its sharp fall can lie within
    # one checkpoint interval, and whether the two tangent ends round to the same checkpoint
    # depends on the CPU's float rounding (both 1,450 on an Intel Xeon).
    assert 0 < mem < circ <= clean <= TINY.epochs
    at = {int(e): i for i, e in enumerate(table.epochs)}
    # The paper's signatures: the excluded loss rises after memorisation, the restricted loss
    # ends far below the memorised model's test loss, Gini of W_E grows, weights shrink.
    assert table["excluded_loss"][at[clean]] > 2 * table["excluded_loss"][at[mem]]
    assert table["restricted_loss"][-1] < 0.01 * table["test_loss"][at[mem]]
    assert table["gini_W_E"][-1] > table["gini_W_E"][0]
    assert table["sum_sq_weights"][-1] < table["sum_sq_weights"][at[mem]]
    assert table["trig_frac_logits"][-1] > 0.5
    assert table["xy_share_logits"][-1] > 0.8 > table["xy_share_logits"][at[mem]]
    # The paper's Table 1 and neuron measure: high at the end, lower before the circuit.
    assert table["mlp_out_frac"][-1] > 0.8 and table["neuron_frac_explained"][-1] > 0.8
    assert table["neuron_frac_explained"][0] < table["neuron_frac_explained"][-1]


@pytest.mark.slow
def test_analysis_report_of_a_trained_run(trained_run: Run) -> None:
    report = analysis_report(trained_run)
    assert report["epoch"] == TINY.epochs
    json.dumps(report, allow_nan=False)
    assert report["test_acc"] > 0.99 and report["train_loss"] < 1e-3
    assert report["key_freqs"] == sorted(report["key_freqs"]) and report["key_freqs"]
    sizes = report["cluster_sizes"]
    assert set(sizes) == {str(k) for k in report["key_freqs"]} | {"-1"}
    assert sum(sizes.values()) == TINY.d_mlp
    # The set in use at the end is the one the newest checkpoints' clusters agree on.
    assert report["measure_key_freqs"] == report["key_freqs"]
    assert report["key_history"][-1]["key_freqs"] == report["key_freqs"]
    assert set(report["excluded_loss_per_freq"]) == {str(k) for k in report["key_freqs"]}
    assert report["excluded_loss"] > report["restricted_loss"]
    assert 0 < report["gini_W_E"] < 1 and 0 < report["gini_W_L"] < 1
    # The phases as announced live (forward-only), in order, none after the run.
    phases = [report["phases"][k] for k in PHASES]
    assert all(v is not None for v in phases) and phases == sorted(phases), phases
    assert report["phase"].startswith("cleaned up since")
    grokked = next(r["epoch"] for r in trained_run.read_metrics() if r["test_acc"] >= 0.99)
    assert report["grokked_at"] == grokked and report["forecast"] is None
    assert report["forecast_reason"].startswith(f"grokked at {grokked:,}")
    # Every forecast as it was made, one per checkpoint: a range before the run grokked.
    history = report["forecast_history"]
    assert [h[0] for h in history] == trained_run.checkpoint_epochs()
    issued = [h for h in history if h[1] is not None]
    assert issued and all(h[0] < grokked and h[2] <= h[1] <= h[3] for h in issued), history
    # As of epoch 50: the key set in use then (provisional: no neuron has clustered yet),
    # not the run's final one; nothing about grokking.
    early = analysis_report(trained_run, epoch=50)
    assert early["epoch"] == 50 and early["checkpoints"] == 2
    assert early["measure_key_provisional"] is True and early["measure_key_freqs"]
    assert early["key_history"] == [{"since": 0, "key_freqs": early["measure_key_freqs"],
                                     "provisional": True}]  # fmt: skip
    assert early["grokked_at"] is None and early["phase"] == "memorising"
    assert early["excluded_loss"] is not None  # the provisional set has one from the start
    assert report["measure_key_provisional"] is False
    with pytest.raises(RunError, match="--epoch 51"):
        analysis_report(trained_run, epoch=51)
    with pytest.raises(RunError, match="--key-epoch 75"):
        analysis_report(trained_run, key_epoch=75)
    fixed = analysis_report(trained_run, key_epoch=1500)
    assert fixed["key_history"] == [{"since": 0, "key_freqs": fixed["measure_key_freqs"]}]
    assert fixed["key_reference_epoch"] == 1500
    table = render_report(report)
    assert isinstance(table, Table) and table.row_count > 10
    out = io.StringIO()
    Console(file=out, width=120).print(table)
    text = out.getvalue()
    assert "key frequencies" in text and "cleanup end" in text and "grok forecast" in text
    assert f"grokked at {grokked:,}" in text and "Gini per frequency" in text


@pytest.mark.slow
@pytest.mark.parametrize("last", [150, 600, 1000])
def test_analyze_json_of_a_run_cut_at_a_checkpoint(
    trained_run: Run, tmp_path: Path, last: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy with later rows and checkpoints removed: the report is as of its last
    checkpoint, with the phases, the key-set history and the forecast known then."""
    cut = cut_copy(trained_run, tmp_path / f"cut{last}", last)
    assert main(["analyze", str(cut.path), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epoch"] == last and report["checkpoints"] == last // 50 + 1
    assert set(report["phases"]) == set(PHASES)
    assert all(v is None or v <= last for v in report["phases"].values())
    assert all(h["since"] <= last for h in report["key_history"])
    full = analysis_report(trained_run)
    # The live rule never looks ahead: the cut run's history is the full one's, up to then.
    assert report["key_history"] == [h for h in full["key_history"] if h["since"] <= last]
    fc = report["forecast"]
    if fc is None:
        assert report["forecast_reason"]
    else:
        assert set(fc) == {"grok_epoch", "low", "high", "level", "provisional"}
        assert fc["level"] == 0.8 and isinstance(fc["provisional"], bool)
        assert fc["low"] <= fc["grok_epoch"] <= fc["high"]
        assert fc["grok_epoch"] >= last
        assert report["forecast_history"][-1] == [last, fc["grok_epoch"], fc["low"], fc["high"]]
    # The forecasts as they were made up to the cut: the whole run's, nothing after it.
    assert report["forecast_history"] == [h for h in full["forecast_history"] if h[0] <= last]
    # The same as `analyze --epoch` on the whole run: nothing after the cut is read.
    assert main(["analyze", str(trained_run.path), "--epoch", str(last), "--json",
                 "--device", "cpu"]) == 0  # fmt: skip
    as_of = json.loads(capsys.readouterr().out)
    assert {**as_of, "run": ""} == {**report, "run": ""}


@pytest.mark.slow
def test_every_checkpoint_as_of_itself_never_flips_back(trained_run: Run) -> None:
    """The outlook stored at each checkpoint as it was made: the phase only moves forward,
    an announced boundary moves by at most 10%, and a new tracker reads the same history
    back (stored rows are reused, bad ones ignored)."""
    tracker = ProgressTracker(trained_run)
    tracker.update()
    history = OutlookHistory(tracker)
    last = history.at()
    steps = [history.steps[e] for e in sorted(history.steps)]
    assert [s.epoch for s in steps] == trained_run.checkpoint_epochs()
    assert all(b.state.index >= a.state.index for a, b in itertools.pairwise(steps))
    for key in PHASES:
        shown = [s.state.announced[key] for s in steps if key in s.state.announced]
        assert all(abs(v - shown[0]) <= 0.10 * shown[0] for v in shown), (key, shown)
    assert last.phases == steps[-1].state.phases()
    with open(trained_run.measures_path, "a") as f:
        f.write('{"epoch": 100, "version": 1, "kind": "outlook", "state": {"announced": 3}}\n')
    again = OutlookHistory(ProgressTracker(trained_run))
    again.tracker.update()
    assert again.at() == last and again.at(600) == history.at(600)
    assert again.forecasts() == history.forecasts()


def test_report_of_a_run_without_checkpoints(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "empty", PLANTED, device="cpu")
    with pytest.raises(RunError, match="no checkpoints"):
        analysis_report(run)
