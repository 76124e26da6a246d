"""The shipped forecast constants are what bench/forecast_refit.py makes of the corpus' features
kept in the repository (bench/forecast_data, packed by bench/forecast_corpus.py): the refit
reads only the corpus set, never the held-out runs, and writes the same bytes anywhere."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bench import forecast_corpus, forecast_refit


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
