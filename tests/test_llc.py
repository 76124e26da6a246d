"""The SGLD estimate of the local learning coefficient against independent truths: models
whose learning coefficient is known analytically, devinterp's update written out by hand,
and a brute-force checkpoint loss. Everything is seeded: each test gives the same numbers
every time on a given machine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grok_tui.engine.measures.llc import SGLDSettings, estimate_llc, sgld_step, summarise


def analytic_llc(loss, d: int, settings: SGLDSettings):
    """The estimate for a data-free loss L(w) of d parameters with minimum at w* = 0."""
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    est = estimate_llc([w], lambda _g: loss(w), 0.0, settings)
    assert est is not None and not est.diverged
    assert torch.equal(w.detach(), torch.zeros(d, dtype=torch.float64))  # w* restored
    return est


def standard_error(est) -> float:
    """The chains are independent: the spread of their estimates over sqrt(chains)."""
    return float(est.chain_llc.std(ddof=1) / math.sqrt(len(est.chain_llc)))


def test_a_regular_quadratic_has_half_its_dimension() -> None:
    """L = 1/2 sum h_i w_i^2 in d = 6: lambda = d/2 = 3 (the posterior exp(-nbeta L) is
    Gaussian, E[L] = d / (2 nbeta) exactly). The discrete chain's stationary variance is
    1 / (a (1 - epsilon a / 4)) along curvature a = nbeta h_i, which shifts the expected
    estimate to sum_i 1 / (2 (1 - epsilon a_i / 4)) (here 3.06); the estimate is within four
    standard errors of that, and the standard error is small against lambda."""
    h = torch.tensor([0.5, 1.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    s = SGLDSettings(epsilon=5e-4, gamma=0.0, nbeta=100.0, chains=8, draws=4000, burn_in=500)
    est = analytic_llc(lambda w: 0.5 * (h * w * w).sum(), 6, s)
    a = s.nbeta * h.numpy()
    expected = float(np.sum(1.0 / (2.0 * (1.0 - s.epsilon * a / 4.0))))
    se = standard_error(est)
    assert se < 0.05 * 3.0
    assert abs(est.llc - expected) < 4 * se, (est.llc, expected, se)
    assert abs(est.llc - 3.0) < 4 * se + (expected - 3.0)


def test_localisation_lowers_a_quadratic_as_its_formula_says() -> None:
    """With gamma the posterior's precision is nbeta h + gamma: llc = d/2 * nbeta h /
    (nbeta h + gamma) (before the discretisation factor, which is included)."""
    s = SGLDSettings(epsilon=5e-4, gamma=100.0, nbeta=100.0, chains=8, draws=4000, burn_in=500)
    est = analytic_llc(lambda w: 0.5 * (w * w).sum(), 4, s)
    a = s.nbeta + s.gamma
    expected = 4 * 0.5 * s.nbeta / a / (1.0 - s.epsilon * a / 4.0)  # 1.0 + 2.5%
    se = standard_error(est)
    assert abs(est.llc - expected) < 4 * se, (est.llc, expected, se)
    assert est.llc < 1.5  # far from the unlocalised 2


def test_a_quartic_is_singular_with_a_quarter_per_parameter() -> None:
    """L = sum w_i^4 in d = 4: lambda = d/4 = 1, not the regular d/2 = 2 (E[w^4] under
    exp(-a w^4) is 1/(4a) exactly). The flat minimum mixes slowly and w^4 is heavy-tailed,
    so the chains are long; the step is small enough that the discretisation bias (+4% at
    2.5 times this step, measured with 20,000 draws) stays inside four standard errors."""
    s = SGLDSettings(epsilon=2e-3, gamma=0.0, nbeta=100.0, chains=8, draws=10000, burn_in=1000)
    est = analytic_llc(lambda w: (w**4).sum(), 4, s)
    se = standard_error(est)
    assert se < 0.05
    assert abs(est.llc - 1.0) < 4 * se, (est.llc, se)


def test_a_mixed_minimum_adds_its_parts() -> None:
    """L = w1^2 / 2 + w2^4: lambda = 1/2 + 1/4 (the coordinates are independent)."""
    s = SGLDSettings(epsilon=2e-3, gamma=0.0, nbeta=100.0, chains=8, draws=10000, burn_in=1000)
    est = analytic_llc(lambda w: 0.5 * w[0] ** 2 + w[1] ** 4, 2, s)
    se = standard_error(est)
    quadratic = 0.5 / (1.0 - s.epsilon * s.nbeta / 4.0)  # its discrete chain's exact part
    assert abs(est.llc - (quadratic + 0.25)) < 4 * se, (est.llc, se)


def test_the_sgld_step_is_devinterps_update() -> None:
    """devinterp's SGLD.step (noise_level 1, no weight decay), written out by hand: for each
    parameter in order, dw = nbeta grad + gamma (w - w0), noise ~ N(0, 1) from the same
    generator, w <- w - lr/2 dw + sqrt(lr) noise."""
    g = torch.Generator().manual_seed(3)
    params = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    anchors = [p + 0.1 * torch.randn(p.shape, generator=g) for p in params]
    grads = [torch.randn(p.shape, generator=g) for p in params]
    s = SGLDSettings(epsilon=0.01, gamma=5.0, nbeta=46.2)

    ours = [p.clone() for p in params]
    for w, grad in zip(ours, grads, strict=True):
        w.grad = grad.clone()
    sgld_step(ours, anchors, s, torch.Generator().manual_seed(11))

    noise_gen = torch.Generator().manual_seed(11)
    for w, w0, grad, got in zip(params, anchors, grads, ours, strict=True):
        dw = grad * s.nbeta
        dw = dw + (w - w0) * s.gamma
        noise = torch.normal(mean=0.0, std=1.0, size=dw.size(), generator=noise_gen)
        want = w + dw * (-0.5 * s.epsilon) + noise * s.epsilon**0.5
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_the_estimate_is_nbeta_times_the_mean_draw_loss_above_the_start() -> None:
    """llc = nbeta (mean over draws, burn-in left out, - L(w*)), per chain then averaged;
    the same seed gives the same trace."""
    s = SGLDSettings(epsilon=1e-3, gamma=1.0, nbeta=20.0, chains=3, draws=50, burn_in=20)
    w = torch.zeros(3, requires_grad=True)
    first = estimate_llc([w], lambda _g: (w * w).sum() + 0.5, 0.5, s)
    again = estimate_llc([w], lambda _g: (w * w).sum() + 0.5, 0.5, s)
    assert first is not None and again is not None
    np.testing.assert_array_equal(first.trace, again.trace)
    assert first.trace.shape == (3, 70)
    per_chain = [20.0 * (sum(row[20:].tolist()) / 50 - 0.5) for row in first.trace]
    assert first.chain_llc.tolist() == pytest.approx(per_chain, rel=1e-9)
    assert first.llc == pytest.approx(sum(per_chain) / 3, rel=1e-9)
    assert first.trace[:, 0].tolist() == pytest.approx([0.5] * 3)  # each chain starts at w*


def test_a_diverging_chain_is_said_and_gives_no_estimate() -> None:
    """epsilon * curvature > 4 makes the chain blow up: NaN, diverged, not a number."""
    s = SGLDSettings(epsilon=0.1, gamma=0.0, nbeta=100.0, chains=2, draws=400, burn_in=10)
    w = torch.zeros(2, requires_grad=True)
    est = estimate_llc([w], lambda _g: 0.5 * (w * w).sum(), 0.0, s)
    assert est is not None and est.diverged and math.isnan(est.llc)
    assert torch.equal(w.detach(), torch.zeros(2))


def test_stopping_gives_no_estimate_and_restores_the_weights() -> None:
    s = SGLDSettings(epsilon=1e-3, gamma=0.0, nbeta=10.0, chains=2, draws=100, burn_in=10)
    w = torch.ones(2, requires_grad=True)
    assert estimate_llc([w], lambda _g: (w * w).sum(), 2.0, s, should_stop=lambda: True) is None
    assert torch.equal(w.detach(), torch.ones(2))


def test_summarise_by_hand() -> None:
    s = SGLDSettings(epsilon=1.0, gamma=0.0, nbeta=2.0, chains=2, draws=2, burn_in=1)
    est = summarise(np.array([[9.0, 1.0, 3.0], [9.0, 2.0, 2.0]]), 1.0, s)
    assert est.chain_llc.tolist() == [2.0, 2.0] and est.llc == 2.0 and est.llc_std == 0.0
    assert est.mean_loss == 2.0
