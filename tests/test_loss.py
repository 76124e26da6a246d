"""`cross_entropy` equals the paper's float64 log_softmax loss, also where float32 fails."""

from __future__ import annotations

import pytest
import torch

from grok_tui.engine.core.loss import (
    GRADIENT_FLOOR,
    cross_entropy,
    loss_and_accuracy,
    reference_cross_entropy,
)

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny  # 2^-126


def subnormal(t: torch.Tensor) -> torch.Tensor:
    """Where `t` holds a float32 subnormal: nonzero, below the smallest normal."""
    return (t != 0) & (t.abs() < SMALLEST_NORMAL)


def both(logits: torch.Tensor, labels: torch.Tensor):
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    fast = cross_entropy(a, labels)
    ref = reference_cross_entropy(b, labels)
    fast.backward()
    ref.backward()
    return fast, ref, a.grad, b.grad


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0, 300.0])
def test_matches_float64_loss_and_gradient(scale: float) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 114, generator=g) * scale
    labels = torch.randint(0, 113, (500,), generator=g)
    fast, ref, grad_fast, grad_ref = both(logits, labels)
    assert fast.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(grad_fast, grad_ref, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("margin", [12.0, 18.0, 25.0, 40.0])
def test_exact_near_zero_loss_where_float32_log_softmax_rounds(margin: float) -> None:
    """Late in training the label's logit leads by ~20: float32 log_softmax says 0."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 113, (256,), generator=g)
    logits = torch.randn(256, 114, generator=g)
    logits.scatter_(1, labels[:, None], margin)
    fast, ref, grad_fast, _grad_ref = both(logits, labels)

    # Closed form in float64 when the label leads: loss = log1p(S), dL/dlabel = -S/(1+S)/n,
    # S = sum_{j != label} exp(l_j - l_label). Exact even where log_softmax64 rounds.
    diffs = (logits.double() - logits.double().gather(1, labels[:, None])).exp()
    s = diffs.scatter(1, labels[:, None], 0.0).sum(1)
    exact_loss = torch.log1p(s).mean().item()
    exact_label_grad = (-s / (1 + s) / len(labels)).float()
    assert fast.item() == pytest.approx(exact_loss, rel=1e-5)
    label_grad_fast = grad_fast.gather(1, labels[:, None]).squeeze(1)
    torch.testing.assert_close(label_grad_fast, exact_label_grad, rtol=1e-4, atol=0)
    if margin <= 25:
        assert fast.item() == pytest.approx(ref.item(), rel=1e-5)
    if margin >= 18:  # what plain float32 log_softmax would have said
        naive = -logits.log_softmax(-1).gather(1, labels[:, None]).mean().item()
        assert naive == 0.0 or abs(naive - exact_loss) / exact_loss > 0.01


def test_the_gradient_floor_drops_only_what_lies_below_it() -> None:
    """After grokking, wrong classes' probabilities fall past float32's smallest normal
    number. The gradient's entries at most 2^-100 become 0 (so none is subnormal: x86 GEMMs
    slow down 6-10x on those); every larger entry is float64's, and the loss stays exact
    (log1p(S), S summed in float64), the floor touching only the gradient."""
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 113, (400,), generator=g)
    # gaps of 0..130 nats below the label: probabilities from 1 down past 2^-150
    logits = -torch.rand(400, 114, generator=g) * 130
    logits.scatter_(1, labels[:, None], 0.0)
    fast, _ref, grad_fast, grad_ref = both(logits, labels)
    exact = grad_ref.double()
    unfloored = exact.float()
    assert int(subnormal(unfloored).sum()) > 1000  # the regime the floor is for
    dropped = exact.abs() <= GRADIENT_FLOOR
    assert int((dropped & (exact != 0)).sum()) > 1000
    assert not bool(subnormal(grad_fast).any())
    assert bool((grad_fast[dropped] == 0).all())
    kept = ~dropped
    torch.testing.assert_close(grad_fast[kept].double(), exact[kept], rtol=1e-5, atol=0)
    diffs = (logits.double() - logits.double().gather(1, labels[:, None])).exp()
    s = diffs.scatter(1, labels[:, None], 0.0).sum(1)
    assert fast.item() == pytest.approx(torch.log1p(s).mean().item(), rel=1e-5)


def test_the_stablemax_gradient_has_the_floor_too() -> None:
    """StableMax's tail decays as 1 / x^2: logits near -1e21 give float32 gradients below
    2^-126, which the floor turns to 0 as it does cross-entropy's."""
    from grok_tui.engine.core.loss import stablemax_loss

    g = torch.Generator().manual_seed(6)
    logits = (-(10.0 ** (torch.rand(64, 24, generator=g) * 30))).requires_grad_(True)
    labels = torch.randint(0, 24, (64,), generator=g)
    ref = logits.detach().double().requires_grad_(True)
    stablemax_loss(logits, labels).backward()
    their_stablemax_cross_entropy(ref, labels).backward()
    unfloored = ref.grad.float()
    assert bool(subnormal(unfloored).any())
    assert not bool(subnormal(logits.grad).any())
    kept = ref.grad.abs() > GRADIENT_FLOOR
    torch.testing.assert_close(logits.grad[kept], unfloored[kept], rtol=1e-6, atol=0)
    assert bool((logits.grad[~kept] == 0).all())


def test_label_not_the_largest_and_huge_gaps() -> None:
    logits = torch.tensor([[0.0, 200.0, -200.0], [-100.0, 50.0, 100.0]])
    labels = torch.tensor([2, 0])
    fast, ref, grad_fast, grad_ref = both(logits, labels)
    assert torch.isfinite(fast)
    assert fast.item() == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(grad_fast, grad_ref.float(), rtol=1e-5, atol=1e-9)


def test_accuracy_is_the_share_of_rows_the_label_leads() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1000, 114, generator=g)
    labels = torch.randint(0, 113, (1000,), generator=g)
    _, accuracy = loss_and_accuracy(logits, labels)
    want = (logits.argmax(-1) == labels).float().mean()
    assert accuracy.item() == pytest.approx(want.item())
    assert 0 < want.item() < 0.05  # random logits: a few right, by chance
    labels = logits.argmax(-1)
    assert loss_and_accuracy(logits, labels)[1].item() == 1.0


# -- StableMax (Prieto et al. 2025) ------------------------------------------------------------


def their_stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """github.com/LucasPrietoAl/grokking-at-the-edge-of-numerical-stability utils.py, verbatim
    (s, log_stablemax, stablemax_cross_entropy with reduction "mean")."""

    def s(x, epsilon=1e-30):
        return torch.where(x < 0, 1 / (1 - x + epsilon), x + 1)

    def log_stablemax(x, dim=-1):
        s_x = s(x)
        return torch.log(s_x / torch.sum(s_x, dim=dim, keepdim=True))

    labels = labels.to(torch.int64)
    logprobs = log_stablemax(logits.to(torch.float64), dim=-1)
    prediction_logprobs = torch.gather(logprobs, index=labels[:, None], dim=-1).to(torch.float64)
    return -torch.mean(prediction_logprobs)


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0, 1e4])
def test_stablemax_loss_and_gradient_are_theirs(scale: float) -> None:
    """Loss and hand-derived gradient against autograd through their definition, float64."""
    from grok_tui.engine.core.loss import stablemax_loss

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(300, 24, generator=g, dtype=torch.float64) * scale
    logits[::7] = logits[::7].abs()  # rows with every logit >= 0, the x + 1 branch only
    labels = torch.randint(0, 24, (300,), generator=g)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours, theirs = stablemax_loss(a, labels), their_stablemax_cross_entropy(b, labels)
    ours.backward()
    theirs.backward()
    assert ours.dtype == torch.float64
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-18)


def test_stablemax_on_float32_logits_computes_in_float64() -> None:
    """As their code: float32 logits, the loss and its gradient in float64, the gradient
    handed back in float32."""
    from grok_tui.engine.core.loss import stablemax_loss

    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(64, 114, generator=g) * 50).requires_grad_(True)
    labels = torch.randint(0, 113, (64,), generator=g)
    ref = logits.detach().double().requires_grad_(True)
    stablemax_loss(logits, labels).backward()
    their_stablemax_cross_entropy(ref, labels).backward()
    assert logits.grad.dtype == torch.float32
    torch.testing.assert_close(logits.grad, ref.grad.float(), rtol=1e-6, atol=1e-12)


def test_stablemax_members_and_the_mixed_objective() -> None:
    """Per-member means over segments; a chunk mixing losses gives each member the gradient
    of its own loss, and the cross-entropy of all of them for the metrics."""
    from grok_tui.engine.core.loss import member_training_loss

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5 + 5 + 3, 9, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, 9, (13,), generator=g)
    segments = [(0, 2, 5, 0), (2, 3, 3, 10)]  # members of 5, 5 and 3 rows
    rows = [slice(0, 5), slice(5, 10), slice(10, 13)]
    for kinds in ([True, False, True], [False, True, False], [True] * 3, [False] * 3):
        x = logits.clone().requires_grad_(True)
        objective, ce, _acc = member_training_loss(x, labels, segments, kinds)
        objective.backward()
        for m, r in enumerate(rows):
            y = logits[r].clone().requires_grad_(True)
            own = their_stablemax_cross_entropy if kinds[m] else reference_cross_entropy
            own(y, labels[r]).backward()
            torch.testing.assert_close(x.grad[r], y.grad, rtol=1e-9, atol=1e-15)
            assert ce[m].item() == pytest.approx(
                reference_cross_entropy(logits[r], labels[r]).item()
            )
            assert not ce.requires_grad
