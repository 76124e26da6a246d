"""bench/forecast_judge.py's phase check: flips back and boundary moves counted on a run's
phases as shown at each checkpoint, against a count by hand."""

from __future__ import annotations

import numpy as np

from bench.forecast_cuts import RunFeatures
from bench.forecast_judge import phase_moves


def _run(phase_index: list[int] | None, announced: list[dict[str, int]] | None) -> RunFeatures:
    n = len(phase_index or [0])
    return RunFeatures(name="r", config={"p": 7, "op": "add"}, budget=100, grok=None,
                       epochs=np.arange(n, dtype=np.float64) * 10, xy_share=np.zeros(n),
                       test_acc=np.zeros(n), memorisation_end=[None] * n,
                       phase_index=phase_index, announced=announced)  # fmt: skip


def test_a_run_whose_phase_only_moves_forward_has_no_flips_and_its_moves_are_measured() -> None:
    announced = [{}, {"memorisation_end": 100}, {"memorisation_end": 105},
                 {"memorisation_end": 95, "circuit_formation_end": 400}]  # fmt: skip
    got = phase_moves(_run([0, 1, 1, 2], announced))
    assert got is not None
    assert got["flips_back"] == 0 and got["withdrawn"] == 0 and got["checkpoints"] == 4
    mem = got["boundaries"]["memorisation_end"]
    assert (mem["first"], mem["at"], mem["last"]) == (100, 10, 95)
    assert mem["move"] == 0.05  # |95 - 100| / 100 and |105 - 100| / 100
    assert got["boundaries"]["circuit_formation_end"]["move"] == 0.0


def test_a_phase_that_moves_back_or_a_boundary_withdrawn_is_counted() -> None:
    announced = [{"memorisation_end": 50}, {}, {"memorisation_end": 80}]
    got = phase_moves(_run([1, 0, 1], announced))
    assert got is not None
    assert got["flips_back"] == 1 and got["withdrawn"] == 1
    assert got["boundaries"]["memorisation_end"]["move"] == 0.6


def test_features_without_phases_give_none() -> None:
    assert phase_moves(_run(None, None)) is None
