"""Split-conformal half-widths (engine/measures/conformal.py) against a brute-force search
of the definition, and their coverage on synthetic data where the truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grok_tui.engine.measures.conformal import conformal_quantile, run_weights


def brute_force(scores: np.ndarray, level: float, weights: np.ndarray, test_weight: float) -> float:
    """The smallest candidate q (a score, or inf) whose covered weight, the test case's at
    infinity counted in the total, reaches `level` of the total: tried one by one."""
    total = weights.sum() + test_weight
    for q in [*sorted(scores.tolist()), math.inf]:
        covered = sum(w for s, w in zip(scores, weights, strict=True) if s <= q)
        if q == math.inf or covered >= level * total - 1e-9:
            return q if covered >= level * total - 1e-9 else math.inf
    raise AssertionError("unreachable")


@pytest.mark.parametrize("seed", range(20))
def test_the_quantile_is_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    scores = np.round(rng.exponential(size=n), 2)  # ties included
    level = float(rng.choice([0.5, 0.8, 0.9, 0.95]))
    ones = np.ones(n)
    assert conformal_quantile(scores, level) == brute_force(scores, level, ones, 1.0)
    groups = rng.integers(0, max(1, n // 3), size=n)
    w = run_weights(groups)
    assert w.sum() == pytest.approx(len(set(groups.tolist())))
    assert conformal_quantile(scores, level, w) == brute_force(scores, level, w, 1.0)


def test_unweighted_is_the_ceil_rank() -> None:
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 0.8) == 8.0  # ceil(0.8 * 10) = 8th smallest
    assert conformal_quantile(scores, 0.95) == math.inf  # ceil(0.95 * 10) = 10 > n
    with pytest.raises(ValueError):
        conformal_quantile(scores, 1.0)


def test_coverage_on_exchangeable_synthetic_runs() -> None:
    """Runs of several checkpoints each, residuals correlated within a run: calibrated on
    some runs with run weights, the interval covers a new run's residual at about `level`
    (at least level, at most level + 1 / (runs + 1), up to sampling error)."""
    rng = np.random.default_rng(0)
    level, n_runs, trials, hits = 0.8, 30, 2000, 0
    for _ in range(trials):
        offsets = rng.normal(size=n_runs + 1)  # a run's shared error
        per_run = [o + 0.3 * rng.normal(size=int(rng.integers(1, 8))) for o in offsets]
        cal = per_run[:-1]
        scores = np.abs(np.concatenate(cal))
        groups = np.concatenate([[i] * len(r) for i, r in enumerate(cal)])
        q = conformal_quantile(scores, level, run_weights(groups))
        new = per_run[-1]
        hits += abs(new[rng.integers(len(new))]) <= q  # one checkpoint of a new run
    coverage = hits / trials
    assert level - 0.03 <= coverage <= level + 1 / (n_runs + 1) + 0.03, coverage
