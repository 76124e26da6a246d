"""The shipped forecast constants are what bench/forecast_refit.py makes of the corpus runs they
name (when this machine has the corpus; the refit reads only its features.jsonl, never
held-out runs; runs added since for a fit that was not shipped are left out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import forecast_refit

CORPUS = Path("/work/corpus-forecast")


@pytest.mark.skipif(
    not (CORPUS / "corpus" / "features.jsonl").is_file(), reason="no forecast corpus here"
)
def test_the_shipped_constants_are_the_refit_of_the_corpus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["forecast_refit.py", "--root", str(CORPUS), "--check", "--named-runs"]
    monkeypatch.setattr("sys.argv", argv)
    assert forecast_refit.main() == 0
    out = capsys.readouterr().out
    assert "unchanged" in out and "held" not in out
