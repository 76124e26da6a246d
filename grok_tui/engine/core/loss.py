"""Cross-entropy that stays exact near zero loss, in the logits' own dtype.

The paper computes log_softmax in float64 because float32 `log_softmax` rounds
`1 - p_label` to 0 once the loss falls near 1e-7, which breaks the loss and its gradient
late in training. The rounding is avoidable: with z = logits - max(logits),
S = sum_{j != label} exp(z_j) and T = exp(z_label) + S,

    loss = log1p(S + (exp(z_label) - 1)) - z_label      (= log1p(S) when the label leads)
    dloss/dlogit_j = exp(z_j) / T  for j != label,   -S / T  for the label

and every term is computed without subtracting nearly equal numbers. This matches float64
`log_softmax` to float32 rounding (tests/test_loss.py), needs no float64 (which MPS lacks),
and moves a quarter of the bytes.

The gradient has a floor (`GRADIENT_FLOOR`): entries of dloss/dlogits of magnitude at most
2^-100 are set to 0. Once a model has grokked, the wrong classes' probabilities fall
below float32's smallest normal number (2^-126) and the gradient fills with subnormals, on
which x86 GEMMs run 6-10x slower (bench/RESULTS.md, "Subnormal floats after grokking");
with the floor, every nonzero entry is normal, and so is its product with any weight or
activation above 2^-26 in magnitude. What it drops is below what an AdamW step can resolve:
an entry changes a weight's gradient by at most 2^-100 times an activation, summed over the
batch (< 3.2e-25 for 4,000 examples and activations up to 100), so an AdamW step (lr times
the gradient's average over sqrt(v) + eps, eps = 1e-8) moves by < 3.2e-20 at the paper's lr
of 1e-3: under half a float32 ulp of any weight above 2^-40 (9e-13); a larger lr or
Grokfast's amplification scales that bound by their factor. Unlike the CPU's flush-to-zero
mode it is not a thread's state, and it leaves the loss exact: a row's loss is 0 only when
S <= 2^-150 still (engine/measures/numerics.py).
"""

from __future__ import annotations

import torch

# (first member, end member, rows per member, first row), as in `fastpath.Segment`.
Segment = tuple[int, int, int, int]

# dloss/dlogits entries below this magnitude are set to 0 (module doc): far above float32's
# smallest normal number (2^-126), far below anything an AdamW step resolves.
GRADIENT_FLOOR = 2.0**-100


def floor_gradient_(grad: torch.Tensor, floor: float = GRADIENT_FLOOR) -> torch.Tensor:
    """`grad` with its entries of magnitude <= `floor` set to 0, in place (module doc)."""
    return grad.masked_fill_(grad.abs() <= floor, 0.0)


class _CrossEntropy(torch.autograd.Function):
    """Per-member (mean loss, accuracy); the accuracy is free: the label leads iff z_label = 0.

    Rows are grouped by member in `segments`; each member's loss is the mean over its own
    rows, so the sum over members has each member's own gradient.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, segments: list[Segment]):  # type: ignore[override]
        shift = logits.amax(1, keepdim=True)
        z_label = logits.gather(1, labels[:, None]) - shift  # <= 0
        others = (logits - shift).exp_()
        label_term = z_label.exp()  # 1 when the label has the largest logit
        others.scatter_(1, labels[:, None], 0.0)
        rest = others.sum(1, keepdim=True)  # sum over j != label of exp(z_j - shift)
        # loss = log(label_term + rest) - z_label; log1p keeps the label-is-max case exact.
        row_loss = (torch.log1p(rest + (label_term - 1.0)) - z_label).squeeze(1)
        loss = member_means(row_loss, segments)
        accuracy = member_means((z_label == 0).squeeze(1).to(logits.dtype), segments)
        ctx.mark_non_differentiable(accuracy)
        ctx.segments = segments
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(others, labels, rest, label_term + rest)
        return loss, accuracy

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_accuracy: torch.Tensor):  # type: ignore[override]
        others, labels, rest, total = ctx.saved_tensors
        scale = torch.cat(
            [
                (grad[m0:m1, None] / n).expand(m1 - m0, n).reshape(-1)
                for m0, m1, n, _ in ctx.segments
            ]
        )[:, None]
        grad_logits = others.div_(total).mul_(scale)
        grad_logits.scatter_(1, labels[:, None], (-rest / total) * scale)
        return floor_gradient_(grad_logits), None, None


def member_means(rows: torch.Tensor, segments: list[Segment]) -> torch.Tensor:
    """Mean of each member's rows, (M,)."""
    means = [rows[r0 : r0 + (m1 - m0) * n].view(m1 - m0, n).mean(1) for m0, m1, n, r0 in segments]
    return means[0] if len(means) == 1 else torch.cat(means)


def member_loss_and_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, segments: list[Segment]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy of each member, both (M,), rows grouped by segments."""
    return _CrossEntropy.apply(logits, labels, segments)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of `logits` (batch, classes) against integer `labels`."""
    return loss_and_accuracy(logits, labels)[0]


def loss_and_accuracy(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and the share of rows whose label has the largest logit.

    A row whose label ties for the largest logit counts as correct (argmax would pick the
    first of the tied classes; ties do not happen with trained float logits).
    """
    loss, accuracy = _CrossEntropy.apply(logits, labels, [(0, 1, len(labels), 0)])
    return loss[0], accuracy[0]


def reference_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's loss: log_softmax in float64. The ground truth `cross_entropy` is tested on."""
    logprobs = logits.to(torch.float64).log_softmax(dim=-1)
    return -logprobs.gather(-1, labels[:, None]).mean()


# -- StableMax (Prieto et al. 2025) ------------------------------------------------------------
#
# "Grokking at the edge of numerical stability", github.com/LucasPrietoAl/
# grokking-at-the-edge-of-numerical-stability, utils.py: s(x) = x + 1 for x >= 0 and
# 1 / (1 - x) for x < 0, StableMax(x)_i = s(x_i) / sum_j s(x_j), and the loss
# -log StableMax(x)_label computed in float64 (`stablemax_cross_entropy`). Their s adds 1e-30
# to 1 - x, which float64 rounds away (1 - x >= 1 there); it is left out here. Unlike softmax
# it is not shift-invariant, and its tail decays as 1 / |x| rather than exp(x), so the
# label's probability cannot round to 1 before its logit is ~1e16 times the rest.


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """Their s(x): x + 1 for x >= 0, 1 / (1 - x) below (continuous, derivative 1 at 0)."""
    return torch.where(x < 0, 1.0 / (1.0 - x.clamp_max(0.0)), x + 1.0)


def stablemax_dtype(device: torch.device) -> torch.dtype:
    """float64, as the paper computes it; float32 on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


class _StableMaxLoss(torch.autograd.Function):
    """Per-member mean StableMax loss, computed (and differentiated) in float64.

    With S = sum_j s(x_j), rest = S - s(x_label) (summed over j != label, no cancellation):

        loss = log(S) - log(s(x_label)) = log1p(rest / s(x_label))
        dloss/dx_j = s'(x_j) / S                              for j != label
        dloss/dx_label = -s'(x_label) rest / (s(x_label) S)   (= s'/S - s'/s, exactly)

    with s'(x) = 1 for x >= 0 and 1 / (1 - x)^2 = s(x)^2 below. The gradient is returned in
    the logits' dtype (the paper's float64 loss backpropagates into float32 logits too).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, segments: list[Segment]):  # type: ignore[override]
        x = logits.to(stablemax_dtype(logits.device))
        s = stablemax_s(x)
        s_label = s.gather(1, labels[:, None])
        others = s.scatter(1, labels[:, None], 0.0)
        rest = others.sum(1, keepdim=True)
        total = s_label + rest
        loss = member_means(torch.log1p(rest / s_label).squeeze(1), segments)
        ctx.segments = segments
        ctx.logits_dtype = logits.dtype
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x, s, labels, s_label, rest, total)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, s, labels, s_label, rest, total = ctx.saved_tensors
        scale = torch.cat(
            [
                (grad[m0:m1, None] / n).expand(m1 - m0, n).reshape(-1)
                for m0, m1, n, _ in ctx.segments
            ]
        )[:, None].to(x.dtype)
        slope = torch.where(x < 0, s * s, torch.ones_like(s))  # s'(x)
        grad_x = slope / total
        slope_label = slope.gather(1, labels[:, None])
        grad_x.scatter_(1, labels[:, None], -slope_label * rest / (s_label * total))
        return floor_gradient_((grad_x * scale).to(ctx.logits_dtype)), None, None


def member_stablemax_loss(
    logits: torch.Tensor, labels: torch.Tensor, segments: list[Segment]
) -> torch.Tensor:
    """Mean StableMax loss of each member, (M,), in float64 (see `_StableMaxLoss`)."""
    return _StableMaxLoss.apply(logits, labels, segments)


def stablemax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean StableMax loss of `logits` (batch, classes) against integer `labels`."""
    return _StableMaxLoss.apply(logits, labels, [(0, 1, len(labels), 0)])[0]


def member_training_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    segments: list[Segment],
    stablemax: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objective, cross-entropy (M,), accuracy (M,)) of members whose loss is cross-entropy
    or, where `stablemax[m]`, StableMax.

    The objective is the sum of each member's own training loss (its gradient is each
    member's own). The cross-entropy is every member's, whatever it trains on, so that
    metrics compare across runs; it is detached.
    """
    if not any(stablemax):
        loss, accuracy = member_loss_and_accuracy(logits, labels, segments)
        return loss.sum(), loss.detach(), accuracy
    stable = member_stablemax_loss(logits, labels, segments)
    if all(stablemax):
        with torch.no_grad():
            loss, accuracy = member_loss_and_accuracy(logits, labels, segments)
        return stable.sum(), loss, accuracy
    loss, accuracy = member_loss_and_accuracy(logits, labels, segments)
    mask = torch.tensor(stablemax, device=logits.device)
    return torch.where(mask, stable, loss.to(stable.dtype)).sum(), loss.detach(), accuracy


def reference_stablemax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's `stablemax_cross_entropy` (utils.py) as published, for tests."""
    x = logits.to(torch.float64)
    s_x = torch.where(x < 0, 1 / (1 - x + 1e-30), x + 1)
    logprobs = torch.log(s_x / torch.sum(s_x, dim=-1, keepdim=True))
    return -torch.mean(torch.gather(logprobs, index=labels[:, None].to(torch.int64), dim=-1))
