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
"""

from __future__ import annotations

import torch

# (first member, end member, rows per member, first row), as in `fastpath.Segment`.
Segment = tuple[int, int, int, int]


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
        return grad_logits, None, None


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
