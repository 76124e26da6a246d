"""The hand-written training step (engine/core/closed_form.py) computes what autograd does.

Autograd through `fastpath` is the reference (pinned to TransformerLens in
tests/test_model.py): the closed form's tables, logits, metrics and the gradient of every
trained weight are compared with it on random weights (every bias non-zero, so no term
hides), for one member and for batched members mixing the options a member may have.

Tolerance, derived rather than tuned: the two sides compute the same sums of products in
different orders and groupings. A float sum of n terms is within gamma_n * sum |terms| of
the exact one, gamma_n = n u / (1 - n u), u the unit roundoff (2^-24 in float32, 2^-53 in
float64; Higham, Accuracy and Stability of Numerical Algorithms, section 3.1). A gradient
here is a chain of such sums; the lengths along the chain add up to at most

    N = 3h B  (the examples, 3h table reads each)  + d_mlp + V  (the W_L GEMMs)
        + h (2p + 1)  (the table rows)  + d_model + h d_head  (the weight products)

so each side is within gamma_N of the exact value, relative to the sum of absolute values,
and the two within 2 gamma_N. Random weights do not make the sums cancel (sum |terms| is of
the order of |sum|), so the bound is applied relative to each tensor's norm. Measured on an
Intel Xeon against the bound (float32: the closed form in float32 against autograd in
float64, the exact value to float32's precision):

    paper shape  float64  2e-14 (bound 1.1e-11)    float32  4e-6 (bound 5.7e-3)
    small shape  float64  1e-15 (bound 5.5e-14)    float32  1e-6 (bound 2.9e-5)

A wrong term moves a gradient by O(1) of its norm. Accuracies: the same examples right
(the share itself rounds once in the dtype).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grok_tui.engine.core.closed_form import ClosedFormStep, table_forward
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.fastpath import last_logits, member_tables
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.training.stepper import MemberState, Stepper, example_shards
from tests.devices import TEST_DEVICE

SMALL = RunConfig(p=7, frac_train=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32, preset="t")
PAPER = RunConfig()
# Batched members: the first two share a member block (equal train sets: one batched GEMM),
# the third has its own; one trains on StableMax.
MEMBERS = [SMALL, SMALL.replace(seed=3, loss="stablemax"), SMALL.replace(frac_train=0.3)]


def random_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=g, dtype=torch.float64) * 0.4
        for k, v in paper_init(cfg).items()
    }


def chain_length(cfg: RunConfig) -> int:
    """N of the module docstring: the longest chain of summed terms in a gradient."""
    h = cfg.n_heads
    return (
        3 * h * cfg.n_train + cfg.d_mlp + cfg.d_vocab + h * (2 * cfg.p + 1)
        + cfg.d_model + h * cfg.d_head
    )  # fmt: skip


def gamma(n: int, dtype: torch.dtype) -> float:
    u = torch.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


def steppers(cfgs: list[RunConfig], dtype: torch.dtype) -> tuple[Stepper, Stepper]:
    """(closed form in `dtype`, autograd in float64) on the same random weights."""
    states = [MemberState(0, random_weights(c, i)) for i, c in enumerate(cfgs)]
    chunk = len(cfgs)
    closed = Stepper(cfgs, TEST_DEVICE, states, chunk, dtype)
    exact = Stepper(cfgs, TEST_DEVICE, states, chunk, torch.float64, gradient="autograd")
    return closed, exact


CASES = {"paper": [PAPER], "small": [SMALL], "members": MEMBERS}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cfgs", list(CASES.values()), ids=list(CASES))
def test_metrics_and_every_gradient_are_autograds(cfgs, dtype) -> None:
    closed, exact = steppers(cfgs, dtype)
    got, want = closed.measure().double(), exact.measure()
    assert closed.chunks[0].end == len(cfgs)  # one pass of all members
    for m, cfg in enumerate(cfgs):
        bound = 2 * gamma(chain_length(cfg), dtype)
        losses = ((got[m, :2] - want[m, :2]).abs() / want[m, :2].abs()).max().item()
        assert losses <= bound, (m, losses, bound)
        # Accuracies: the same examples right; the share itself rounds in `dtype`.
        accuracy = (got[m, 2:] - want[m, 2:]).abs().max().item()
        assert accuracy <= torch.finfo(dtype).eps, (m, accuracy)
        ours = closed.layout.split(closed.grads[m].double()[None])
        theirs = exact.layout.split(exact.grads[m][None])
        for name, g in theirs.items():
            assert g.norm() > 0, name
            rel = ((ours[name] - g).norm() / g.norm()).item()
            assert rel <= bound, (m, name, rel, bound)


@pytest.mark.parametrize("cfg", [PAPER, SMALL], ids=["paper", "small"])
def test_tables_and_logits_are_fastpaths(cfg) -> None:
    """The forward alone: scores, W_L, the table T' and the rows C against `fastpath`'s
    table T (T'[h, t] = T[h, t] - T[h, 2p], so 0 at t = 2p; C = sum_h T[h, 2p]), and the
    logits of the train examples (in the closed form's order) against `last_logits`."""
    states = [MemberState(0, random_weights(cfg, 1))]
    st = Stepper([cfg], TEST_DEVICE, states, dtype=torch.float64)
    w = st.weights(st.flat)
    ours, theirs = table_forward(w, cfg.p), member_tables(w, cfg.p)
    bound = 2 * gamma(chain_length(cfg), torch.float64)
    h, k, p = cfg.n_heads, 2 * cfg.p + 1, cfg.p

    def close(a: torch.Tensor, b: torch.Tensor) -> None:
        assert ((a - b).norm() / b.norm()).item() <= bound

    close(ours.scores, theirs.scores)
    close(ours.w_l, theirs.w_l)
    table = torch.cat([theirs.to_logits, theirs.to_mlp], 2).view(h, k, -1)
    rows = ours.table[:-1].view(h, k, -1)  # T'[h, t] in the scores' layout
    close(rows[:, : 2 * p], table[:, : 2 * p] - table[:, 2 * p :])
    assert bool((rows[:, 2 * p] == 0).all())  # T'[h, 2p], read by no example
    close(ours.table[-1], table[:, 2 * p].sum(0))
    step: ClosedFormStep = st.chunks[0].closed_form
    assert len(step.shards) == example_shards([cfg], st.device)  # 2: a large model, CPU
    for shard in step.shards:
        _, _, logits, _ = shard.forward(ours, "train")
        close(logits, last_logits(theirs, shard.train))


@pytest.mark.parametrize("loss", ["cross_entropy", "stablemax"])
def test_shards_of_one_member_sum_to_its_gradient(monkeypatch, loss) -> None:
    """A member's examples in two shards (`example_shards`, forced here on a small shape):
    metrics and every gradient within the bound of autograd's, whether the shards run side
    by side on their own threads or one after the other (then equal bit for bit: the split
    is the chunk's, the threads only run it)."""
    import grok_tui.engine.training.stepper as stepper_module

    monkeypatch.setattr(stepper_module, "example_shards", lambda cfgs, device: 2)
    cfg = SMALL.replace(p=11, loss=loss)
    closed, exact = steppers([cfg], torch.float64)
    assert len(closed.chunks[0].closed_form.shards) == 2
    got, want = closed.measure(), exact.measure()
    bound = 2 * gamma(chain_length(cfg), torch.float64)
    assert ((got[0, :2] - want[0, :2]).abs() / want[0, :2].abs()).max().item() <= bound
    assert (got[0, 2:] - want[0, 2:]).abs().max().item() <= torch.finfo(torch.float64).eps
    for name, g in exact.layout.split(exact.grads[0][None]).items():
        ours = closed.layout.split(closed.grads[0][None])[name]
        assert ((ours - g).norm() / g.norm()).item() <= bound, name
    # float32, as training runs; each shard on one torch thread either way
    states = [MemberState(0, random_weights(cfg, 0))]
    with torch_threads(2):
        pooled = Stepper([cfg], TEST_DEVICE, states, 1)
    with torch_threads(1):
        alone = Stepper([cfg], TEST_DEVICE, states, 1)
        assert pooled.shard_pool is not None and alone.shard_pool is None
        try:
            assert torch.equal(pooled.measure(), alone.measure())
            assert torch.equal(pooled.grads[0], alone.grads[0])
        finally:
            pooled.close()


SHARD_STAGES = [
    "shard start", "test forward", "test loss", "train forward", "train loss and G",
    "dpre and W_L's gradient", "sampled product", "scores' gradient", "table rows' gradient",
]  # fmt: skip


@pytest.mark.parametrize("shards", [1, 2])
def test_the_stage_clock_names_every_stage_in_order(monkeypatch, shards) -> None:
    """`ClosedFormStep.clock` (bench/epoch_parts.py) hears each stage end, a shard's stages
    once per shard, and timing changes no number."""
    import grok_tui.engine.training.stepper as stepper_module

    monkeypatch.setattr(stepper_module, "example_shards", lambda cfgs, device: shards)
    states = [MemberState(0, random_weights(SMALL, 0))]
    with torch_threads(1):  # shards one after the other, on this thread
        st = Stepper([SMALL], TEST_DEVICE, states)
        untimed = st.measure()
        heard: list[str] = []
        st.chunks[0].closed_form.clock = heard.append
        assert torch.equal(st.measure(), untimed)
    assert heard == [
        "measure start", "O(p) table forward", *SHARD_STAGES * shards, "shards' results",
        "O(p) table backward",
    ]  # fmt: skip


def test_examples_are_sorted_by_input_with_their_labels() -> None:
    st = Stepper(MEMBERS, TEST_DEVICE, [MemberState(0, paper_init(c)) for c in MEMBERS], 3)
    chunk = st.chunks[0]
    step = chunk.closed_form
    for plan, labels, ours, our_labels in (
        (chunk.train_plan, chunk.train_labels, step.train, step.train_labels),
        (chunk.test_plan, chunk.test_labels, step.test, step.test_labels),
    ):
        assert ours.counts == plan.counts
        key = (ours.member * ours.p + ours.x) * ours.p + ours.y
        assert bool((key[1:] > key[:-1]).all())  # sorted, every example once
        want = sorted(zip(((plan.member * plan.p + plan.x) * plan.p + plan.y).tolist(),
                          labels.tolist(), strict=True))  # fmt: skip
        assert list(zip(key.tolist(), our_labels.tolist(), strict=True)) == want


class _Calls(TorchDispatchMode):
    """Counts aten calls below autograd (views included), as bench/train_calls.py does."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        self.n += 1
        return func(*args, **(kwargs or {}))


def test_an_epoch_makes_few_aten_calls() -> None:
    """The fixed cost stays cut (issue 21): every aten call costs microseconds whatever its
    size, so a one-member epoch (measure and step) makes at most 250 of them; it made 410
    before the views, buffers and bag structures were made once and the O(p) products
    batched (203 with torch 2.13). The count is exact and does not depend on the machine,
    unlike a timing; the same weights give the same gradients on a second call (nothing
    cached goes stale)."""
    st = Stepper([SMALL], TEST_DEVICE, [MemberState(0, random_weights(SMALL, 0))])
    first = st.measure()
    grads = [g.clone() for g in st.grads]
    assert torch.equal(first, st.measure())
    assert all(torch.equal(a, b) for a, b in zip(grads, st.grads, strict=True))
    with _Calls() as calls:
        st.measure()
        st.step()
    assert calls.n <= 250, calls.n


def test_no_subnormal_reaches_the_backwards_gemms() -> None:
    """After grokking most wrong classes' probabilities are subnormal float32 numbers, on
    which x86 GEMMs run 6-10x slower (bench/RESULTS.md). A state with that tail is made
    here as bench/denormals.py makes it, W_U scaled up (a confidently wrong model). With
    loss.py's gradient floor, [G | dpre] (what the backward's GEMMs, sampled product and
    bag read) holds no subnormal; without it, hundreds. The gradient moves by no more
    than the dropped entries (each <= 2^-100, at most B V of them) can carry through the
    backward's products: bounded here by B V 2^-100 M^4, M the largest magnitude of any
    weight, table entry or activation (the longest chain multiplies four of them)."""
    from grok_tui.engine.core.loss import GRADIENT_FLOOR

    cfg = SMALL.replace(p=23)
    weights = random_weights(cfg, 2)
    weights["unembed.W_U"] = weights["unembed.W_U"] * 6  # a mean loss of ~60 nats
    st = Stepper([cfg], TEST_DEVICE, [MemberState(0, weights)], dtype=torch.float32)
    step: ClosedFormStep = st.chunks[0].closed_form

    def backward_input(floor: float) -> tuple[torch.Tensor, torch.Tensor]:
        step.gradient_floor = floor
        st.measure()
        return step.shards[0]._scratch["grad"].clone(), st.grads[0].clone()  # [G | dpre], the row

    raw, raw_grad = backward_input(0.0)
    floored, grad = backward_input(GRADIENT_FLOOR)
    tiny = torch.finfo(torch.float32).tiny
    assert int(((raw != 0) & (raw.abs() < tiny)).sum()) > 300
    assert int(((floored != 0) & (floored.abs() < tiny)).sum()) == 0
    w = table_forward(st.weights(st.flat), cfg.p)
    m = max(1.0, *(t.abs().max().item() for t in (st.flat, w.table, w.w_l)))
    bound = raw.numel() * GRADIENT_FLOOR * m**4
    assert (grad - raw_grad).abs().max().item() <= bound
    assert grad.abs().max().item() > 1e6 * bound  # the gradient is not itself that small
