"""CSV export: metrics per epoch, progress measures flattened onto their checkpoint epochs."""

from __future__ import annotations

import csv
import math

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.measures.export import csv_rows, export_csv, flatten
from grok_tui.engine.store.rows import METRIC_KEYS
from grok_tui.engine.store.runs import Run

CFG = RunConfig(p=7, frac_train=0.5, epochs=3, checkpoint_every=2, preset="t")


def metric(epoch: int, test: float = 0.5) -> dict[str, float]:
    return {"epoch": epoch, "train_loss": 1.0 / (epoch + 1), "test_loss": test, "train_acc": 0.25,
            "test_acc": 0.125, "lr": 1e-3, "wall_s": 0.1 * epoch}  # fmt: skip


def read(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_flatten() -> None:
    nested = {"a": 1, "b": {"c": 2.5, "d": {"e": "x"}}, "f": [3, {"g": 4}]}
    assert flatten(nested) == {"a": 1, "b.c": 2.5, "b.d.e": "x", "f.0": 3, "f.1.g": 4}


def test_metrics_only(tmp_path) -> None:
    run = Run.create(tmp_path / "r", CFG, "cpu")
    run.append_metrics([metric(0), metric(1, math.nan), metric(2, math.inf)])
    out = export_csv(run, tmp_path / "out.csv")
    rows = read(out)
    assert list(rows[0]) == list(METRIC_KEYS)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[1]["train_loss"]) == 0.5 and rows[1]["test_loss"] == ""
    assert rows[2]["test_loss"] == ""  # inf is not a loss anyone measured
    assert float(rows[2]["train_loss"]) == 1.0 / 3  # full precision round-trips


def test_measures_are_flattened_onto_their_epochs(tmp_path) -> None:
    from grok_tui.engine.measures.progress import ProgressTracker
    from tests.planted import PLANTED, planted_weights

    run = Run.create(tmp_path / "r", PLANTED, "cpu")
    run.append_metrics([metric(e) for e in range(0, 31, 10)])
    for i, epoch in enumerate((0, 10, 20, 40)):  # 40: measured, no metrics row there
        run.save_checkpoint(epoch, planted_weights(PLANTED, (3, 7), 6, 2, seed=i)[0])
    tracker = ProgressTracker(run)
    tracker.update()
    tracker.fill_excluded()
    table = tracker.table()
    columns, _ = csv_rows(run)
    assert columns[: len(METRIC_KEYS)] == list(METRIC_KEYS)
    for name in (
        "restricted_loss",
        "excluded_loss",
        "gini_W_E",
        "xy_share_logits",
        "excluded_loss_per_freq.3",
        "excluded_loss_per_freq.7",
        "key_freqs.1",
    ):
        assert name in columns, name  # fmt: skip
    assert "train_loss" not in columns[len(METRIC_KEYS) :]  # the metrics win
    rows = {r["epoch"]: r for r in read(export_csv(run, tmp_path / "m.csv"))}
    assert list(rows) == ["0", "10", "20", "30", "40"]
    assert float(rows["20"]["restricted_loss"]) == table["restricted_loss"][2]
    assert rows["30"]["restricted_loss"] == ""  # no checkpoint there
    assert rows["40"]["train_loss"] == "" and rows["40"]["key_freqs.0"] == "3"


def test_the_file_is_replaced_whole(tmp_path) -> None:
    run = Run.create(tmp_path / "r", CFG, "cpu")
    out = tmp_path / "out.csv"
    out.write_text("old contents that are longer than the new file will be\n" * 50)
    run.append_metrics([metric(0)])
    export_csv(run, out)
    assert out.read_text().splitlines()[0] == ",".join(METRIC_KEYS)
    assert len(out.read_text().splitlines()) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_exports_agree_on_a_stopped_run(tmp_path) -> None:
    """After a stop at epoch E, checkpoint E holds the weights training resumes from and its
    metrics row comes when it does (rows end at E - 1). Both exports still cover E: the
    CSV with a row of empty cells, the ARENA file with a NaN loss at index E, so a notebook
    indexing train_losses by a checkpoint epoch never runs off the end."""
    import torch

    from grok_tui.engine.store.arena import export_arena
    from grok_tui.engine.training.train import TrainControl, Trainer

    run = Run.create(tmp_path / "r", CFG.replace(epochs=100, checkpoint_every=10), "cpu")
    Trainer(run, "cpu").train(TrainControl(stop_at=23))
    epochs = run.checkpoint_epochs()
    assert epochs[-1] == 23 and run.read_metrics()[-1]["epoch"] == 22
    assert [r["epoch"] for r in read(export_csv(run, tmp_path / "m.csv"))][-1] == "23"
    data = torch.load(export_arena(run, tmp_path / "a.pth"), weights_only=True)
    assert data["epochs"][-1] == 23 and len(data["train_losses"]) == 24
    assert math.isnan(data["train_losses"][23]) and not math.isnan(data["train_losses"][22])


def test_an_export_never_writes_into_its_run(tmp_path) -> None:
    """Both formats refuse a path inside the run directory (it would replace run.json, a
    checkpoint or resume.pt), whatever way the path reaches there; every file is kept."""
    import pytest

    from grok_tui.engine.core.model import paper_init
    from grok_tui.engine.store.arena import export_arena
    from grok_tui.engine.store.errors import RunError

    run = Run.create(tmp_path / "r", CFG, "cpu")
    run.append_metrics([metric(0)])
    run.save_checkpoint(2, paper_init(CFG))
    files = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    targets = [run.path / "run.json", run.path / "checkpoints" / "x.safetensors",
               tmp_path / "r" / ".." / "r" / "metrics.jsonl", run.path]  # fmt: skip
    for export in (export_csv, export_arena):
        for target in targets:
            with pytest.raises(RunError, match="inside the run") as exc:
                export(run, target)
            assert "\n" not in str(exc.value)
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == files


def test_a_name_at_the_length_limit_is_exported(tmp_path) -> None:
    """A legal 254-byte file name: its temp name would pass 255 bytes, so it takes a short
    one of its own (store/atomic.temp_beside); nothing is left beside the export."""
    from grok_tui.engine.store.atomic import temp_beside

    long = tmp_path / ("b" * 250 + ".csv")
    assert len(temp_beside(long).name.encode()) <= 255
    assert temp_beside(tmp_path / "out.csv").name.startswith(".out.csv.")  # the usual name
    run = Run.create(tmp_path / "r", CFG, "cpu")
    run.append_metrics([metric(0)])
    assert read(export_csv(run, long))[0]["epoch"] == "0"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([long.name, "r"])
