"""The local learning coefficient (LLC) by SGLD (Lau et al. 2023, "Quantifying degeneracy in
singular models via the learning coefficient"), as devinterp estimates it; model-free.

The learning coefficient lambda of a loss L at a local minimum w* measures how degenerate
the minimum is: the volume of {w near w*: L(w) - L(w*) < t} shrinks like t^lambda (up to
log factors) as t -> 0. A regular minimum of d parameters has lambda = d/2; flat
directions and higher-order terms lower it (L = w^4 in one parameter: lambda = 1/4).

The estimator: sample the tempered posterior localised at w*,

    p(w) ~ exp(-nbeta L(w) - gamma/2 |w - w*|^2),

and take

    llc = nbeta * (E_p[L(w)] - L(w*)).

Why: without localisation and with L(w) - L(w*) ~ t^(1/lambda)-scaled volume, the density
of states gives E_p[L - L(w*)] ~ lambda / nbeta; for a quadratic L = 1/2 sum h_i w_i^2 the
posterior is Gaussian with variance 1/(nbeta h_i), so E[L] = d / (2 nbeta) and llc = d/2
at any temperature; for L = sum w_i^4, E[w^4] under exp(-a w^4) is 1/(4a), so llc = d/4.
nbeta = n / log n is Watanabe's optimal inverse temperature for n samples (WBIC); devinterp
defaults to m / log m for a minibatch of m. gamma keeps the chain near w* (a singular loss
has valleys that run away); it biases the estimate down slightly (for the quadratic:
llc = d/2 * nbeta h / (nbeta h + gamma)).

SGLD samples p with noisy gradient steps (Welling and Teh 2011; devinterp's SGLD with
noise_level 1 and no weight decay):

    w <- w - epsilon/2 * (nbeta * grad L_m(w) + gamma * (w - w*)) + sqrt(epsilon) * N(0, I)

with L_m the mean loss of a minibatch. Each chain starts at w*, takes `burn_in` steps, then
`draws` steps whose minibatch losses (evaluated at the step's point, before it moves, as
devinterp does) are averaged into E_p[L]. The discrete steps bias the variance up by a
factor 1/(1 - epsilon a / 4) along a direction of curvature a = nbeta h + gamma, so
epsilon * a must stay well under 4 (at 4 the chain diverges).

Each chain's estimate is kept (`chain_llc`); `llc` is their mean and `llc_std` their
standard deviation (ddof 1, as devinterp's). The loss at every step, burn-in included, is
kept in `trace` (chains x steps), so a chain can be checked for stability: flat after
burn-in, no divergence. A chain whose loss goes non-finite stops; it and the estimate are
NaN and `diverged` says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

BatchLoss = Callable[[torch.Generator], torch.Tensor]


# SGLD steps between calls of `should_stop`: the background service's burst, after which
# it rests (llc_service.py). A tenth of a second alone on a CPU for this model; several
# times that beside a trainer in the same process (they share the GIL).
STEPS_PER_CHECK = 8


@dataclass(frozen=True)
class SGLDSettings:
    """The sampler's settings (the names of Lau et al.; devinterp's lr is epsilon, its
    localization gamma)."""

    epsilon: float
    gamma: float
    nbeta: float
    chains: int = 4
    draws: int = 200
    burn_in: int = 100
    seed: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class LLCEstimate:
    llc: float  # mean of the chains' estimates (NaN if any chain diverged)
    llc_std: float  # standard deviation over chains (ddof 1)
    chain_llc: np.ndarray  # (chains,)
    init_loss: float  # L(w*)
    trace: np.ndarray  # (chains, burn_in + draws): the minibatch loss at every step
    diverged: bool
    settings: SGLDSettings
    seconds: float = 0.0

    @property
    def mean_loss(self) -> float:
        """E_p[L] over the draws of every chain."""
        return float(self.trace[:, self.settings.burn_in :].mean())


def default_nbeta(n: int) -> float:
    """n / log n (Watanabe's WBIC temperature; devinterp's default with n the batch size)."""
    if n < 2:
        raise ValueError(f"nbeta needs at least 2 samples, got {n}")
    return n / math.log(n)


def sgld_step(
    params: Sequence[torch.Tensor],
    anchors: Sequence[torch.Tensor],
    settings: SGLDSettings,
    generator: torch.Generator,
) -> None:
    """One SGLD step in place, from the gradients in `p.grad` (module doc's update). Noise
    is drawn parameter by parameter in order, after the drift, as devinterp's SGLD does."""
    eps, nbeta, gamma = settings.epsilon, settings.nbeta, settings.gamma
    with torch.no_grad():
        for w, w0 in zip(params, anchors, strict=True):
            drift = w.grad * nbeta if w.grad is not None else torch.zeros_like(w)
            if gamma:
                drift.add_(w - w0, alpha=gamma)
            noise = torch.normal(0.0, 1.0, size=w.shape, generator=generator, dtype=w.dtype,
                                 device=w.device)  # fmt: skip
            w.add_(drift, alpha=-0.5 * eps)
            w.add_(noise, alpha=math.sqrt(eps))


def run_chain(
    params: Sequence[torch.Tensor],
    anchors: Sequence[torch.Tensor],
    batch_loss: BatchLoss,
    settings: SGLDSettings,
    generator: torch.Generator,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray | None:
    """One chain from w* (the anchors): the loss at every step, (burn_in + draws,); NaN from
    the first non-finite loss on. None if asked to stop."""
    with torch.no_grad():
        for w, w0 in zip(params, anchors, strict=True):
            w.copy_(w0)
    steps = settings.burn_in + settings.draws
    losses = np.full(steps, math.nan)
    for i in range(steps):
        if should_stop is not None and i % STEPS_PER_CHECK == 0 and should_stop():
            return None
        for w in params:
            w.grad = None
        loss = batch_loss(generator)
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        losses[i] = value
        loss.backward()
        sgld_step(params, anchors, settings, generator)
    return losses


def estimate_llc(
    params: Sequence[torch.Tensor],
    batch_loss: BatchLoss,
    init_loss: float,
    settings: SGLDSettings,
    should_stop: Callable[[], bool] | None = None,
    device: torch.device | str = "cpu",
) -> LLCEstimate | None:
    """The LLC at the parameters' current values w* (restored afterwards).

    `params`: leaf tensors with requires_grad; `batch_loss(generator)` draws a minibatch with
    the generator and returns its mean loss at the parameters' current values; `init_loss`
    is L(w*) (the full loss, not a minibatch's). Chain c is seeded with settings.seed + c:
    the estimate is deterministic on a given device. None if `should_stop` said so."""
    start = time.perf_counter()
    anchors = [w.detach().clone() for w in params]
    traces = []
    try:
        for chain in range(settings.chains):
            generator = torch.Generator(device=device).manual_seed(settings.seed + chain)
            trace = run_chain(params, anchors, batch_loss, settings, generator, should_stop)
            if trace is None:
                return None
            traces.append(trace)
    finally:
        with torch.no_grad():
            for w, w0 in zip(params, anchors, strict=True):
                w.copy_(w0)
                w.grad = None
    return summarise(np.stack(traces), init_loss, settings, time.perf_counter() - start)


def summarise(
    trace: np.ndarray, init_loss: float, settings: SGLDSettings, seconds: float = 0.0
) -> LLCEstimate:
    """The estimate from the chains' loss traces (chains, burn_in + draws)."""
    draws = trace[:, settings.burn_in :]
    diverged = bool(~np.isfinite(trace).all())
    chain_llc = settings.nbeta * (draws.mean(axis=1) - init_loss)
    llc = math.nan if diverged else float(chain_llc.mean())
    std = float(chain_llc.std(ddof=1)) if len(chain_llc) > 1 and not diverged else math.nan
    return LLCEstimate(llc, std, chain_llc, float(init_loss), trace, diverged, settings, seconds)
