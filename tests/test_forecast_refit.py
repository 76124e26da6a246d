"""The shipped forecast constants are what bench/forecast_refit.py makes of the corpus' features
kept in the repository (bench/forecast_data, packed by bench/forecast_corpus.py): the refit
reads only the corpus set, never the held-out runs, and writes the same bytes anywhere."""

from __future__ import annotations

import gzip
import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import forecast_corpus, forecast_refit
from grok_tui.engine.measures.conformal import conformal_quantile
from grok_tui.engine.measures.forecast import Features
from grok_tui.engine.measures.forecast_model import ForecastModel, shipped_model


def test_the_shipped_constants_are_the_refit_of_the_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    forecast_corpus.unpack(tmp_path, "corpus")
    argv = ["forecast_refit.py", "--root", str(tmp_path), "--check"]
    monkeypatch.setattr("sys.argv", argv)
    assert forecast_refit.main() == 0
    out = capsys.readouterr().out
    assert "unchanged" in out and "held" not in out


def test_unpack_leaves_a_features_file_alone_and_pack_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unpack never overwrites (a later extract appends to what is there); pack writes the
    same bytes for the same file (no timestamp in the gzip header), which unpack restores."""
    shipped = gzip.decompress((forecast_corpus.DATA / "corpus.jsonl.gz").read_bytes())
    assert all(json.loads(line)["run"].startswith("c") for line in shipped.splitlines())
    mine = tmp_path / "a" / "corpus" / "features.jsonl"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"run": "mine"}\n')
    forecast_corpus.unpack(tmp_path / "a", "corpus")
    assert mine.read_text() == '{"run": "mine"}\n'
    monkeypatch.setattr(forecast_corpus, "DATA", tmp_path / "data")
    forecast_corpus.pack(tmp_path / "a", "corpus")
    first = (tmp_path / "data" / "corpus.jsonl.gz").read_bytes()
    forecast_corpus.pack(tmp_path / "a", "corpus")
    assert (tmp_path / "data" / "corpus.jsonl.gz").read_bytes() == first
    forecast_corpus.unpack(tmp_path / "b", "corpus")
    assert (tmp_path / "b" / "corpus" / "features.jsonl").read_text() == '{"run": "mine"}\n'


def test_forecasts_from_the_memorised_start_get_their_own_half_width() -> None:
    """calibrate keeps the `memo` cases out of the bins of evidence and gives them the
    split-conformal half-width of their own residuals (each run weighing 1); with too few
    runs, the widest bin's."""
    model = ForecastModel(level=0.8, target_share=0.9, window=0.5, min_points=4,
                          features=("memo",), coef=(0.0, 0.0), edges=(0.0, 1.0),
                          half_width=(1.0,))  # fmt: skip
    rng = np.random.default_rng(0)

    def row(name: str, memo: bool, residual: float) -> tuple[str, float, Features]:
        values = {"evidence": float(rng.uniform(0, 1)), "memo": float(memo)}
        return name, residual, Features(100, 100.0, 90.0, 110.0, values)

    plain = [row(f"p{i % 6}", False, float(r)) for i, r in enumerate(rng.normal(0, 0.1, 60))]
    memo = [row(f"m{i % 5}", True, float(r)) for i, r in enumerate(rng.normal(0, 1.0, 25))]
    widths, memo_width = forecast_refit.calibrate(model, plain + memo, say=lambda *_: None)
    names = [n for n, _, _ in memo]
    weights = 1.0 / np.array([names.count(n) for n in names])
    assert memo_width == conformal_quantile([abs(r) for _, r, _ in memo], 0.8, weights)
    plain_names = [n for n, _, _ in plain]
    plain_w = 1.0 / np.array([plain_names.count(n) for n in plain_names])
    assert len(widths) == len(forecast_refit.EDGES) - 1
    assert all(math.isfinite(w) for w in widths) and memo_width > max(widths)
    assert max(widths) <= conformal_quantile([abs(r) for _, r, _ in plain], 0.99, plain_w)
    assert forecast_refit.calibrate(model, plain, say=lambda *_: None)[1] is None
    few = [r for r in memo if r[0] in ("m0", "m1")]
    _, fallback = forecast_refit.calibrate(model, plain + few, say=lambda *_: None)
    assert fallback == max(widths)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["forecast_guards", "forecast_starts"])
def test_the_rules_on_the_shipped_corpus_keep_the_shipped_choices(
    script: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """bench/forecast_guards.py and bench/forecast_starts.py, run on the shipped corpus by
    their stated rules, keep what the shipped constants (and the refit) carry."""
    forecast_corpus.unpack(tmp_path, "corpus")
    out = tmp_path / "results.json"
    monkeypatch.setattr("sys.argv", [f"{script}.py", "--root", str(tmp_path), "--json", str(out)])
    assert importlib.import_module(f"bench.{script}").main() == 0
    kept = capsys.readouterr().out.split("kept: ")[1].splitlines()[0]
    model = shipped_model()
    if script == "forecast_guards":
        assert kept == f"min_evidence = {model.min_evidence}, min_growth = {model.min_growth}"
    else:
        assert kept == (
            f"share_rise = {model.share_rise}, memo_min_acc = {model.memo_min_acc}, "
            f"generalising_acc = {model.generalising_acc}"
        )
        assert model.share_rise == forecast_refit.SHARE_RISE
        assert model.memo_min_acc == forecast_refit.MEMO_MIN_ACC
        assert model.generalising_acc == forecast_refit.GENERALISING_ACC
    assert json.loads(out.read_text())
