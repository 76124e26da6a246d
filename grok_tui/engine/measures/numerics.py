"""The numerical view of a checkpoint (Prieto et al. 2025, "Grokking at the edge of numerical
stability"): how close its train predictions are to float32's limits. No circuit needed:
every op has them.

Over the train examples, from the float32 logits of the p number classes (what the other
progress measures read):

- `softmax_collapse`: the share whose float32 softmax has collapsed: the label has the top
  logit and the other classes' exp(z_j - z_label) sum to S <= 2^-24 (half a float32 ulp of
  1), so float32 rounds the softmax denominator 1 + S to exactly 1, the label's probability
  is exactly 1.0 and a float32 cross-entropy's gradient (p - 1 at the label, ~p_j elsewhere)
  vanishes. S is summed in float64 and rounded once, so the share does not depend on the
  order a kernel sums in; a kernel that adds the terms to 1 one by one rounds each away and
  collapses a little earlier (S up to ~(classes - 1) 2^-24: torch's float32 softmax does).
  The paper's `softmax_collapse` (their logger.py: the float32 sum of exp equal to 1) is
  this, as their kernel summed.
- `zero_loss`: the share whose cross-entropy, rounded to float32, is exactly 0: S <= 2^-150
  (half the smallest float32 subnormal), a gap above ~103. This project's trainer computes
  its loss as log1p(S) (engine/core/loss.py), exact to float32 rounding, so these examples
  give it no gradient at all, while the collapsed ones still do (its float32 exp and log1p
  kernels may round subnormal values to 0, so it can reach 0 a little earlier, S < 2^-126);
  a plain float32 log_softmax is 0 on every collapsed example already. (The trainer's
  gradient also drops its entries below 2^-100, loss.py's floor: with ~4,000 train
  examples, a wrong class more than ~61 nats below the label gives it no gradient, though
  the loss counts it.)
- `logit_gap_p10`, `logit_gap_p50`, `logit_gap_p90`: quantiles (linear interpolation) of the
  gap between each example's top logit and its runner-up. Collapse starts near
  ln(2^24) = 16.6 for an example with one close rival (less spread, more rivals: later).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from grok_tui.engine.core.loss import member_loss_and_accuracy

NUMERIC_SCALARS = (
    "softmax_collapse",
    "zero_loss",
    "logit_gap_p10",
    "logit_gap_p50",
    "logit_gap_p90",
)
GAP_QUANTILES = {"logit_gap_p10": 0.1, "logit_gap_p50": 0.5, "logit_gap_p90": 0.9}
# 1 + S rounds to 1 in float32 (round to nearest, ties to even) iff S <= 2^-24; log1p(S) ~ S
# rounds to 0 iff S <= 2^-150 (half of float32's smallest subnormal, 2^-149).
COLLAPSE_REST = 2.0**-24
ZERO_LOSS_REST = 2.0**-150


def label_rest(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: whether the label has the top logit, and S = sum_{j != label}
    exp(z_j - z_label) in float64 (what the label's softmax probability is 1 / (1 + S) of)."""
    z = logits.to(torch.float64)
    z_label = z.gather(1, labels[:, None])
    rest = (z - z_label).exp_().scatter_(1, labels[:, None], 0.0).sum(1)
    return (z.amax(1, keepdim=True) == z_label).squeeze(1), rest


def collapsed(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row (bool): the label's float32 softmax probability is exactly 1 (module doc)."""
    leads, rest = label_rest(logits, labels)
    return leads & (rest <= COLLAPSE_REST)


def zero_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row (bool): the cross-entropy rounded to float32 is exactly 0 (module doc)."""
    leads, rest = label_rest(logits, labels)
    return leads & (rest <= ZERO_LOSS_REST)


def row_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's float32 cross-entropy as the trainer computes it: (n,)."""
    n = len(labels)
    with torch.no_grad():
        return member_loss_and_accuracy(logits.float(), labels, [(0, n, 1, 0)])[0]


def logit_gaps(logits: torch.Tensor) -> torch.Tensor:
    """Top logit minus the runner-up, per row, in float64: (n,)."""
    top2 = logits.to(torch.float64).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def numerical_measures(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """NUMERIC_SCALARS of train `logits` (n, classes) against `labels` (n,); NaN if n = 0."""
    if len(labels) == 0 or logits.shape[1] < 2:
        return {name: math.nan for name in NUMERIC_SCALARS}
    with torch.no_grad():
        gaps = logit_gaps(logits)
        qs = torch.quantile(gaps, torch.tensor(list(GAP_QUANTILES.values()), dtype=gaps.dtype,
                                               device=gaps.device))  # fmt: skip
        leads, rest = label_rest(logits, labels)
        values = torch.stack([
            (leads & (rest <= COLLAPSE_REST)).double().mean(),
            (leads & (rest <= ZERO_LOSS_REST)).double().mean(),
            *qs,
        ]).tolist()  # fmt: skip
    return dict(zip(NUMERIC_SCALARS, values, strict=True))


def checkpoint_numerics(analyzer: Any, weights: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """One checkpoint's numerical view, with its per-example parts (numpy, train order):
    NUMERIC_SCALARS, and `logit_gap`, `collapsed`, `loss` (float32 cross-entropy) per train
    example. `analyzer` is an engine.measures.analysis.Analyzer of the run's config."""
    a, p = analyzer, analyzer.cfg.p
    with torch.no_grad():
        a.model.load_classic(weights)
        logits = a.model.plan_logits(a.model.tables(), a.plan)[:, :p][a.train_idx]
        labels = a.labels[a.train_idx]
        out: dict[str, Any] = numerical_measures(logits, labels)
        out["logit_gap"] = logit_gaps(logits).cpu().numpy()
        out["collapsed"] = collapsed(logits, labels).cpu().numpy()
        out["loss"] = row_losses(logits, labels).cpu().numpy()
    return out
