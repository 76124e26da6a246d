"""The numerical view (Prieto et al. 2025): each measure against a brute-force computation one
example at a time, in a record of a checkpoint and through every way out (table, analyze,
CSV, API)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS, numerical_measures
from grok_tui.engine.measures.record import Recorder
from tests.test_analysis import SMALL, random_weights


def brute_numerics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """One example at a time with Python floats: the measures from their definitions.

    Collapsed: the label leads and 1 + sum_{j != label} exp(z_j - z_label), rounded once to
    float32, is exactly 1. Zero loss: log1p of that sum rounded to float32 is exactly 0.
    Gap: the top logit minus the runner-up; quantiles by linear interpolation (numpy's)."""
    collapsed, zero, gaps = [], [], []
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        leads = row[label] == max(row)
        rest = math.fsum(math.exp(v - row[label]) for j, v in enumerate(row) if j != label)
        collapsed.append(leads and float(np.float32(1.0 + rest)) == 1.0)
        zero.append(leads and float(np.float32(math.log1p(rest))) == 0.0)
        ordered = sorted(row)
        gaps.append(ordered[-1] - ordered[-2])
    q = np.percentile(np.array(gaps), [10, 50, 90])
    return {
        "softmax_collapse": float(np.mean(collapsed)),
        "zero_loss": float(np.mean(zero)),
        "logit_gap_p10": float(q[0]),
        "logit_gap_p50": float(q[1]),
        "logit_gap_p90": float(q[2]),
    }


def spread_logits(n: int = 600, classes: int = 17, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Rows whose label leads by margins from 0 to 150 (collapse ~17, underflow ~104), and
    rows the label does not lead, in float32."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g)
    margin = torch.linspace(-5.0, 150.0, n)
    logits.scatter_(1, labels[:, None], logits.amax(1, keepdim=True) + margin[:, None])
    return logits.float(), labels


def test_measures_equal_the_per_example_brute_force() -> None:
    logits, labels = spread_logits()
    ours = numerical_measures(logits, labels)
    ref = brute_numerics(logits.double().numpy(), labels.numpy())
    assert set(ours) == set(NUMERIC_SCALARS)
    for name in NUMERIC_SCALARS:
        assert ours[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name
    # The spread covers every regime: some collapsed, fewer of them at zero loss.
    assert 0 < ours["zero_loss"] < ours["softmax_collapse"] < 1


def test_collapse_is_what_float32_softmax_and_log_softmax_say_away_from_the_threshold() -> None:
    """Where S is clearly below 2^-24 or clearly above what a term-by-term float32 sum can
    round away ((classes - 1) 2^-24), torch's float32 softmax agrees: probability exactly 1,
    log_softmax exactly 0; and away from float32's subnormal range (where exp and log1p
    kernels may round to 0 early) the trainer's own float32 loss is 0 on the zero-loss rows
    and positive elsewhere."""
    from grok_tui.engine.measures.numerics import row_losses, zero_loss

    logits, labels = spread_logits(seed=1)
    z = logits.double() - logits.double().gather(1, labels[:, None])
    rest = z.exp().scatter(1, labels[:, None], 0.0).sum(1)
    clear = (rest < 2**-24.5) | (rest > 2 * logits.shape[1] * 2**-24)
    prob = logits.softmax(-1).gather(1, labels[:, None]).squeeze(1)
    logp = logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1)
    ours = numerical_measures(logits[clear], labels[clear])["softmax_collapse"]
    assert ours == pytest.approx((prob[clear] == 1.0).double().mean().item())
    assert ours == pytest.approx((logp[clear] == 0.0).double().mean().item())
    away = (rest > 2**-120) | (rest < 2**-155)  # float32 kernels' subnormal rounding aside
    zero = zero_loss(logits, labels)[away]
    assert torch.equal(row_losses(logits, labels)[away] == 0, zero) and zero.any()


def test_label_not_leading_is_never_collapsed_and_empty_input_is_nan() -> None:
    logits = torch.tensor([[0.0, 100.0, -100.0], [300.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    got = numerical_measures(logits, labels)
    assert got["softmax_collapse"] == 0.5 and got["zero_loss"] == 0.5
    assert got["logit_gap_p50"] == pytest.approx((100.0 + 300.0) / 2)
    empty = numerical_measures(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert all(math.isnan(v) for v in empty.values())


def sharp_weights(cfg: RunConfig, seed: int, scale: float) -> dict[str, torch.Tensor]:
    """Random weights with the unembedding scaled up: logit gaps from ~0 to past collapse."""
    w = random_weights(cfg, seed)
    w["unembed.W_U"] = w["unembed.W_U"] * scale
    return w


def test_a_record_holds_the_numerics_of_its_train_logits() -> None:
    """Against TransformerLens' logits of the train inputs, brute-forced per example."""
    weights = sharp_weights(SMALL, seed=5, scale=12.0)
    record = Recorder(Analyzer(SMALL)).record(weights, epoch=3)
    with torch.no_grad():
        logits = hooked_model(SMALL, weights)(all_tokens(SMALL.p))[:, -1, : SMALL.p]
    data = make_dataset(SMALL)
    ref = brute_numerics(logits[data.train_idx].double().numpy(), data.labels[data.train_idx].numpy())
    assert 0 < ref["softmax_collapse"] < 1  # the case exercises the measure
    for name in NUMERIC_SCALARS:
        # Two forwards (TransformerLens, the fast path) round differently: a row at the
        # threshold may tip, so the shares agree to one example in the train set.
        tol = 1.01 / len(data.train_idx) if name in ("softmax_collapse", "zero_loss") else 1e-3
        assert record.scalars[name] == pytest.approx(ref[name], abs=tol, rel=1e-4), name
    assert all(name in record.row() for name in NUMERIC_SCALARS)
