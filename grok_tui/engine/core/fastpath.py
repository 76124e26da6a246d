"""The exact fast forward of M models of one shape at once (a leading member axis).

The loss reads the last position only, and the query there is always `=` at position 2, so

    score_h(x, y) = [q_h . k_h(x at 0), q_h . k_h(y at 1), q_h . k_h(= at 2)] / sqrt(d_head)
    attn_out(x, y) = sum_h sum_j softmax(score_h)_j * (v_h(token_j, j) @ W_O[h]) + b_O

Everything before the MLP is a function of per-token tables of size p. `member_tables`
builds them once per step for every member (O(p) work each): per head, the score and the
value of each key (x at position 0, y at position 1, `=`), the value already pushed through
W_O and on through the two maps that read the residual stream, W_in and W_U. Per example,
`last_logits` only mixes 3h table rows by the attention pattern (an embedding bag with
sparse-kernel gradients), applies the ReLU and multiplies by W_L = W_out W_U: the one dense
GEMM of the step, batched over members. tests/test_model.py pins all of it to the
TransformerLens forward and gradients.

Layout (internal to this module and `InputPlan`): member m has R = h (2p + 1) table rows,
row (m, head, t) at m R + head (2p + 1) + t with t = x (key 0), p + y (key 1), 2p (`=`).
The same index picks an example's scores and its value rows, and an example's 3h indices
are ascending, which is what the sparse CSR kernels of the backward need.

Shapes: M members, B examples in all (each belongs to one member; a member's examples are
contiguous, members in order).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

# (first member, end member, examples per member, first row): a run of consecutive members
# with equal example counts, whose rows form one (members, n, ...) block for a batched GEMM.
Segment = tuple[int, int, int, int]


@dataclass
class Tables:
    """Per-token tables of every member (see `member_tables`)."""

    scores: torch.Tensor  # (M, h, 2p + 1) attention score of each key, per head
    to_mlp: torch.Tensor  # (M, R, d_mlp) each key's value as read by W_in, plus constants
    to_logits: torch.Tensor  # (M, R, d_vocab) each key's value as read by W_U, plus constants
    w_l: torch.Tensor  # (M, d_mlp, d_vocab) W_out @ W_U, the neuron-logit map


@dataclass
class LastPosition:
    """Per-example values at the last position (see `last_position`)."""

    pattern: torch.Tensor  # (B, h, 3) attention of `=` to keys x, y, =
    pre: torch.Tensor  # (B, d_mlp) MLP pre-activations (bias included)
    post: torch.Tensor  # (B, d_mlp) ReLU of pre
    logits: torch.Tensor  # (B, d_vocab)


def member_tables(w: Mapping[str, torch.Tensor], p: int) -> Tables:
    """Tables of M members from weights under short names with a leading member axis."""
    w_e, w_pos = w["W_E"], w["W_pos"]  # (M, v, d), (M, 3, d)
    n_members, n_heads, _, d_head = w["W_Q"].shape
    eq = w_e[:, p] + w_pos[:, 2]  # (M, d): the residual stream at `=` before attention
    # Residual stream of every key: x at position 0, y at position 1, then `=` at 2.
    resid = torch.cat([w_e[:, :p] + w_pos[:, 0:1], w_e[:, :p] + w_pos[:, 1:2], eq[:, None]], 1)

    q = torch.einsum("md,mhde->mhe", eq, w["W_Q"]) + w["b_Q"]  # (M, h, e)
    # A score is q . (resid W_K + b_K): fold q into W_K once rather than keying every token.
    qk = torch.einsum("mhde,mhe->mhd", w["W_K"], q)  # (M, h, d)
    q_bk = (q * w["b_K"]).sum(-1)  # (M, h)
    scores = (torch.bmm(qk, resid.transpose(1, 2)) + q_bk[..., None]) / math.sqrt(d_head)

    # What each head writes if it attends to a key, pushed on through W_in and W_U.
    v = torch.matmul(resid[:, None], w["W_V"]) + w["b_V"][:, :, None]  # (M, h, 2p+1, e)
    eq_resid = eq + w["b_O"]  # `=`'s own residual stream after attention, less its output
    direct_bias = torch.einsum("md,mdv->mv", w["b_out"], w["W_U"]) + w["b_U"]
    tables = []
    for w_read, bias in ((w["W_in"], w["b_in"]), (w["W_U"], direct_bias)):
        ov_read = torch.einsum("mhed,mdk->mhek", w["W_O"], w_read)  # (M, h, e, k)
        rows = torch.matmul(v, ov_read).reshape(n_members, -1, w_read.shape[2])  # (M, R, k)
        # Input-independent terms: `=`'s own residual stream, b_O and the read bias. Each
        # head's pattern sums to 1, so adding const / h to every row adds const once.
        const = torch.einsum("md,mdk->mk", eq_resid, w_read) + bias
        tables.append(rows + const[:, None] / n_heads)
    return Tables(scores, tables[0], tables[1], torch.bmm(w["W_out"], w["W_U"]))


class InputPlan:
    """The fixed gather structure of each member's input set [x, y, =], built once per set.

    `counts[m]` examples of member m, contiguous and in member order (one member if None).
    Example b of member m reads rows m R + head (2p + 1) + {x, p + y, 2p} of the flattened
    tables: the rows of a sparse (B, M R) matrix S whose values are the attention pattern.
    Forward is S @ table (an embedding bag); backward needs S^T @ grad and grad @ table^T
    sampled on S, both sparse kernels.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        p: int,
        n_heads: int,
        counts: Sequence[int] | None = None,
    ) -> None:
        h, device = n_heads, x.device
        counts = [len(x)] if counts is None else [int(c) for c in counts]
        if sum(counts) != len(x) or min(counts) < 1:
            raise ValueError(f"member counts {counts} do not cover {len(x)} examples")
        self.x, self.y = x, y
        self.p, self.n_heads = p, h
        self.counts = counts
        self.n_members = len(counts)
        self.batch = len(x)
        self.rows = self.n_members * h * (2 * p + 1)
        self.segments = segments_of(counts)
        self.member = torch.repeat_interleave(
            torch.arange(self.n_members, device=device), torch.tensor(counts, device=device)
        )
        keys = torch.stack([x, p + y, torch.full_like(x, 2 * p)], dim=1)  # (B, 3)
        heads = self.member[:, None] * h + torch.arange(h, device=device)  # (B, h)
        self.idx = (heads[:, :, None] * (2 * p + 1) + keys[:, None, :]).reshape(len(x), 3 * h)
        col = self.idx.flatten()
        nnz = col.numel()
        self.crow = torch.arange(0, nnz + 1, 3 * h, device=device)
        self.col = col
        # S^T in CSR form: the same entries sorted by table row (stable, so by example too).
        self.perm = torch.argsort(col, stable=True)
        per_row = torch.bincount(col, minlength=self.rows)
        self.crow_t = torch.cat([per_row.new_zeros(1), per_row.cumsum(0)])
        self.col_t = torch.div(self.perm, 3 * h, rounding_mode="floor")
        self._ones = torch.ones(nnz, device=device)

    def structure(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.sparse_csr_tensor(
            self.crow,
            self.col,
            self._ones.to(dtype),
            (self.batch, self.rows),
            check_invariants=False,
        )

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        """S^T with the given values (flattened in S's row order)."""
        return torch.sparse_csr_tensor(
            self.crow_t,
            self.col_t,
            values[self.perm],
            (self.rows, self.batch),
            check_invariants=False,
        )


def segments_of(counts: Sequence[int]) -> list[Segment]:
    """Maximal runs of consecutive members with equal counts."""
    out: list[Segment] = []
    row = 0
    for m, n in enumerate(counts):
        if out and out[-1][1] == m and out[-1][2] == n:
            m0, _, _, r0 = out[-1]
            out[-1] = (m0, m + 1, n, r0)
        else:
            out.append((m, m + 1, n, row))
        row += n
    return out


def blocks(t: torch.Tensor, seg: Segment) -> torch.Tensor:
    """The rows of one segment of a (B, ...) tensor as (members, n, ...)."""
    m0, m1, n, r0 = seg
    return t[r0 : r0 + (m1 - m0) * n].view(m1 - m0, n, *t.shape[1:])


def attention_pattern(tables: Tables, plan: InputPlan) -> torch.Tensor:
    """Softmax over the three keys per head: (B, h, 3)."""
    scores = tables.scores.reshape(-1)[plan.idx].view(plan.batch, plan.n_heads, 3)
    return _SoftmaxLast.apply(scores)


class _SoftmaxLast(torch.autograd.Function):
    """Softmax over a short last axis. torch's kernel vectorises along that axis, which
    here has 3 entries: measured 4x slower than these few whole-tensor ops."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        e = (scores - scores.amax(-1, keepdim=True)).exp_()
        pattern = e.div_(e.sum(-1, keepdim=True))
        ctx.save_for_backward(pattern)
        return pattern

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (pattern,) = ctx.saved_tensors
        return pattern * (grad - (grad * pattern).sum(-1, keepdim=True))


def last_logits(tables: Tables, plan: InputPlan) -> torch.Tensor:
    """Logits at the last position, (B, d_vocab); differentiable in the tables."""
    pattern = attention_pattern(tables, plan).view(plan.batch, -1)
    return _PerExample.apply(pattern, tables.to_mlp, tables.to_logits, tables.w_l, plan)


def last_position(tables: Tables, plan: InputPlan) -> LastPosition:
    """`last_logits` keeping what the analysis reads at the last position (no gradients)."""
    with torch.no_grad():
        pattern = attention_pattern(tables, plan)
        flat = pattern.view(plan.batch, -1)
        pre = _bag(flat, tables.to_mlp, plan)
        post = torch.relu(pre)
        logits = _logits(post, _bag(flat, tables.to_logits, plan), tables.w_l, plan)
        return LastPosition(pattern=pattern, pre=pre, post=post, logits=logits)


def neuron_blocks(
    tables: Tables, plan: InputPlan, width: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    """`last_position`'s MLP pre-activations `width` neurons at a time: (neurons, (B, width)).
    An analysis of all p^2 inputs then never holds B x d_mlp floats at once."""
    with torch.no_grad():
        flat = attention_pattern(tables, plan).view(plan.batch, -1)
        d_mlp = tables.to_mlp.shape[2]
        for start in range(0, d_mlp, width):
            cols = slice(start, min(start + width, d_mlp))
            yield cols, _bag(flat, tables.to_mlp[:, :, cols], plan)


def direct_logits(tables: Tables, plan: InputPlan) -> torch.Tensor:
    """The logits less the MLP's part: `last_position`'s logits = this + post @ W_L."""
    with torch.no_grad():
        return _bag(attention_pattern(tables, plan).view(plan.batch, -1), tables.to_logits, plan)


def _bag(weights: torch.Tensor, table: torch.Tensor, plan: InputPlan) -> torch.Tensor:
    """S @ table: each example's 3h rows of its member's table, weighted by its pattern."""
    flat = table.reshape(-1, table.shape[2])
    return F.embedding_bag(plan.idx, flat, per_sample_weights=weights, mode="sum")


# torch's float32 GEMM on x86 CPUs is MKL's, which on AMD processors runs a generic path
# at under half the speed of oneDNN's (measured 35-50 against 80-110 GFLOP/s per core on
# the development machine's AMD EPYC; bench/RESULTS.md). oneDNN's linear, which torch ships
# for its compiler, takes the two GEMMs of every example; it computes in float32 (tested
# against float64 in tests/test_model.py). Elsewhere (GPU, no oneDNN) torch's bmm does.
_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
_USE_ONEDNN = _LINEAR is not None and torch.backends.mkldnn.is_available()


def _onednn(t: torch.Tensor) -> bool:
    return _USE_ONEDNN and t.device.type == "cpu" and t.dtype == torch.float32


def _member_rows(plan: InputPlan) -> list[tuple[int, int, int]]:
    """(member, first row, end row) of each member's examples."""
    out, row = [], 0
    for m, n in enumerate(plan.counts):
        out.append((m, row, row + n))
        row += n
    return out


def _logits(post: torch.Tensor, direct: torch.Tensor, w_l: torch.Tensor, plan: InputPlan):
    """direct + post @ W_L per member: (resid_mid + post @ W_out + b_out) @ W_U + b_U with
    W_out @ W_U folded into W_L."""
    if _onednn(post):
        parts = [
            _LINEAR.binary(post[a:b], direct[a:b], w_l[m].T.contiguous(), None, "add")
            for m, a, b in _member_rows(plan)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    logits = post.new_empty(plan.batch, w_l.shape[2])
    for seg in plan.segments:
        m0, m1 = seg[0], seg[1]
        torch.baddbmm(blocks(direct, seg), blocks(post, seg), w_l[m0:m1], out=blocks(logits, seg))
    return logits


def _grad_post(grad_logits: torch.Tensor, w_l: torch.Tensor, plan: InputPlan) -> torch.Tensor:
    """grad_logits @ W_L^T per member."""
    if _onednn(grad_logits):
        parts = [
            _LINEAR(grad_logits[a:b], w_l[m], None, "none", [], "")
            for m, a, b in _member_rows(plan)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    out = grad_logits.new_empty(plan.batch, w_l.shape[1])
    for seg in plan.segments:
        m0, m1 = seg[0], seg[1]
        torch.bmm(blocks(grad_logits, seg), w_l[m0:m1].transpose(1, 2), out=blocks(out, seg))
    return out


def _grad_w_l(post: torch.Tensor, grad_logits: torch.Tensor, w_l: torch.Tensor, plan: InputPlan):
    """post^T @ grad_logits per member: the gradient of W_L."""
    if _onednn(post):
        return torch.stack([
            _LINEAR(post[a:b].T.contiguous(), grad_logits[a:b].T.contiguous(), None, "none", [], "")
            for _, a, b in _member_rows(plan)
        ])  # fmt: skip
    out = torch.empty_like(w_l)
    for seg in plan.segments:
        m0, m1 = seg[0], seg[1]
        torch.bmm(blocks(post, seg).transpose(1, 2), blocks(grad_logits, seg), out=out[m0:m1])
    return out


class _PerExample(torch.autograd.Function):
    """Per-example work: two embedding bags, the ReLU and the W_L GEMM, in one node.

    One node rather than a chain of autograd ops: the ReLU is applied in place to the bag's
    output, which the backward reads as its own mask.
    """

    @staticmethod
    def forward(ctx, weights, to_mlp, to_logits, w_l, plan: InputPlan):  # type: ignore[override]
        post = _bag(weights, to_mlp, plan).relu_()
        logits = _logits(post, _bag(weights, to_logits, plan), w_l, plan)
        ctx.save_for_backward(weights, to_mlp, to_logits, w_l, post)
        ctx.plan = plan
        return logits

    @staticmethod
    def backward(ctx, grad_logits: torch.Tensor):  # type: ignore[override]
        weights, to_mlp, to_logits, w_l, post = ctx.saved_tensors
        plan: InputPlan = ctx.plan
        grad_logits = grad_logits.contiguous()
        grad_pre = torch.ops.aten.threshold_backward(_grad_post(grad_logits, w_l, plan), post, 0.0)
        grad_w_l = _grad_w_l(post, grad_logits, w_l, plan) if ctx.needs_input_grad[3] else None
        grads = [grad_pre, grad_logits]
        grad_weights = None
        if ctx.needs_input_grad[0]:
            structure = plan.structure(grad_logits.dtype)
            grad_weights = sum(
                torch.sparse.sampled_addmm(structure, g, t.reshape(-1, t.shape[2]).T, beta=0.0)
                .values()
                .view_as(weights)
                for g, t in zip(grads, (to_mlp, to_logits), strict=True)
            )
        s_t = plan.transposed(weights.flatten())
        grad_to_mlp = (s_t @ grad_pre).view_as(to_mlp) if ctx.needs_input_grad[1] else None
        grad_to_logits = (s_t @ grad_logits).view_as(to_logits) if ctx.needs_input_grad[2] else None
        return grad_weights, grad_to_mlp, grad_to_logits, grad_w_l, None
