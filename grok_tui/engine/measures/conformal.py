"""Split-conformal intervals: how wide an interval must be to contain the truth at a level.

Given the scores |residual| of a calibration set the fit never saw, the interval
prediction +- q contains a new case's truth with probability >= level whenever the new
case is exchangeable with the calibration cases (Vovk et al. 2005; Lei et al. 2018).
q is the ceil(level (n + 1))-th smallest score; none (inf) when n is too small for the level.

Weighted: the forecast's calibration cases are checkpoints of runs, and checkpoints of one
run are not exchangeable with each other, runs are. Each run's cases then carry weight
1 / (its cases), the new case weight 1 (one run), and q is the smallest score at which
the weight of the scores at or below it reaches level (total weight + 1) (the weighted
form of Tibshirani et al. 2019, the test point's mass at infinity). With unit weights it is
the unweighted rule above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def conformal_quantile(
    scores: Sequence[float] | np.ndarray,
    level: float,
    weights: Sequence[float] | np.ndarray | None = None,
    test_weight: float = 1.0,
) -> float:
    """The half-width q of a split-conformal interval at `level` (inf: too few cases)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    s = np.asarray(scores, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    if s.shape != w.shape or not np.all(np.isfinite(s)) or np.any(w < 0):
        raise ValueError("scores must be finite, with one non-negative weight each")
    order = np.argsort(s, kind="stable")
    s, w = s[order], w[order]
    need = level * (w.sum() + test_weight)
    reached = np.flatnonzero(np.cumsum(w) >= need * (1 - 1e-12))
    return float(s[reached[0]]) if reached.size else math.inf


def run_weights(groups: Sequence[object]) -> np.ndarray:
    """1 / (cases of its group) for each case: every group (run) weighs 1 in all."""
    names, inverse, counts = np.unique(np.asarray(groups, dtype=object).astype(str),
                                       return_inverse=True, return_counts=True)  # fmt: skip
    del names
    return 1.0 / counts[inverse]
