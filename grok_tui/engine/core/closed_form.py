"""The fast path's training step written out by hand: forward, loss and every gradient.

`fastpath` computes the last position from per-token tables and lets autograd take the
gradient; here the same maths runs with the gradient in closed form, which autograd only
finds through a few hundred small nodes and copies. Three rewrites cut the per-example work,
the part of an epoch that is not the float32 GEMMs:

- One table for both read-outs: columns [W_U read (direct logits) | W_in read (MLP input)],
  built by one batched GEMM. The forward reads its two column blocks (copied contiguous,
  `read_halves`) with one embedding bag each; the ReLU runs in place on the MLP input and
  the logits accumulate in place onto the direct ones (direct + post @ W_L).
- Eight rows per example, not 12: each head's pattern sums to 1, so with T the table of
  `fastpath` (row (head, t), keys t = x, p + y, = at 2p),

      sum_h sum_j a_hj T[h, t_j] = C + sum_h a_h0 T'[h, x] + a_h1 T'[h, p + y]
      T'[h, t] = T[h, t] - T[h, 2p],   C = sum_h T[h, 2p]

  (C is a ninth row of weight 1, the same for every example: it stays in the L1 cache).
  The gradient of a weight a_hj is then g . T'[h, t_j], and the `=` key's is 0: softmax's
  backward ignores a shift of all three by g . T[h, 2p], so nothing is lost.
- Examples sorted by (x, y) within a member (the loss is a mean: order only changes
  rounding), so consecutive examples read the same x rows.

The backward: G = dloss/dlogits (the loss's own formulas, engine/core/loss.py, by
differentiating the loss alone; with its gradient floor, so that after grokking no
subnormal reaches the GEMMs) and dpre = (G @ W_L^T) * [pre > 0] share one (B, W) buffer,
so every table row's gradient is ONE weighted bag over it (S^T @ [G | dpre]) and every
attention weight's ONE sampled product; dW_L = post^T G; the O(p) table gradient follows by
hand (`_table_backward`), written straight into the members' flat gradient rows.

The fixed cost (issue 21): every aten call costs the dispatcher and Python a few
microseconds whatever its size, a fifth of a quick-preset epoch once. So the O(p) work is
a few batched GEMMs over (members x heads) with no broadcasting copies: T' is stored in the
scores' layout (K = 2p + 1 rows per head, the row T'[h, 2p] = 0 unread), so one index
picks a key's score and its table row and the table's gradient needs no cat; products
write into the gradient rows (out=); the weights' and gradients' reshaped views
(`Views`), the bag structures and every scratch buffer are made once, not per epoch.
`bench/train_calls.py` counts the calls (203 per epoch, from 410).

Shards (issue 21): one member of a large model (the paper preset) splits its examples in
two halves, each measured with its own buffers and, where the caller has two threads or
more, on its own thread (torch releases the GIL inside every op), their gradients then
summed for the O(p) backward, which runs once (its two branches, through ov and through v,
side by side where the shards ran so; every O(p) op on one thread): the paper preset's
epoch 1.34x faster on an Intel Xeon's two cores than one shard on both
(bench/train_shards.py). Each shard runs on half the caller's threads (one each on two or
three cores); in a sweep's worker thread, one after the other on that worker's threads.
Small models keep one shard: their epoch is short ops, and a chunk pool already steps two
chunks side by side.

tests/test_closed_form.py compares the forward and each gradient with autograd through
`fastpath` (itself pinned to TransformerLens in tests/test_model.py).

Coverage: whatever the stepper trains. Cross-entropy and StableMax members (and a mix)
get G from loss.py; Grokfast and ⊥Grad act on the gradient row afterwards; batched members
use the plan's member segments (one GEMM per member block, batched where a block has
several members). The autograd step stays in the stepper as the reference
(`Stepper(gradient="autograd")`); no option falls back to it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from grok_tui.engine.core.fastpath import InputPlan, Segment, blocks
from grok_tui.engine.core.loss import GRADIENT_FLOOR, member_training_loss
from grok_tui.engine.core.threads import torch_threads

# The training step's float32 arithmetic, by the date of its last change that moved a run's
# numbers: 2026-12-04, a large model's examples in two shards (`ClosedFormStep`; runs below
# stepper.ONE_THREAD_BYTES of per-example buffers, the quick preset among them, round as
# on 2026-12-03); 2026-12-03, the "fixedcost" rework of this step (runs trained before it
# round differently from epoch 2 on; bench/RESULTS.md, "Reproducing the held-out
# judgement"). Recorded in every run.json and sweep.json (`software_versions`), so that a
# corpus can tell which of its runs are comparable bit for bit. Change it with any such
# change (a reordered sum, another kernel); the gradient floor moved none measured.
ARITHMETIC = "2026-12-04"


@dataclass
class TableForward:
    """The O(p) part of the forward of M members, kept for the backward."""

    resid: torch.Tensor  # (M h, K, d) every key's residual stream (K = 2p + 1), per head
    q: torch.Tensor  # (M h, e, 1) the query at `=`, head by head
    qk: torch.Tensor  # (M h, d, 1) W_K q: a key's score is resid . qk (+ q . b_K)
    scores: torch.Tensor  # (M, h, K) scaled attention scores
    v: torch.Tensor  # (M h, K, e) every key's value
    eq_resid: torch.Tensor  # (M, d) `=`'s residual stream after attention, less its output
    w_read: torch.Tensor  # (M, d, W) [W_U | W_in], W = V + d_mlp
    ov: torch.Tensor  # (M h, e, W) W_O [W_U | W_in]
    table: torch.Tensor  # (M h K + M, W) rows T'[m, h, t] (0 at t = 2p), then the rows C[m]
    w_l: torch.Tensor  # (M, d_mlp, V) W_out W_U

    @property
    def eq(self) -> torch.Tensor:
        """(M h, 1, d) the residual stream at `=` before attention (key 2p), per head."""
        return self.resid[:, -1:]


@functools.cache
def _key_index(p: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The token and the position of each key t (x at 0, p + y at 1, `=` at 2p): resid is
    W_E[token] + W_pos[position], and their gradients are index_add over the same indices."""
    token = torch.cat([torch.arange(p), torch.arange(p), torch.tensor([p])]).to(device)
    position = torch.tensor([0] * p + [1] * p + [2], device=device)
    return token, position


def _per_head(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(M, ...) as (M h, ...), each member's tensor repeated for its heads (a view when
    M = 1: a batched GEMM reads the repeats with a zero stride)."""
    return t[:, None].expand(t.shape[0], n_heads, *t.shape[1:]).flatten(0, 1)


class Views:
    """The weights (`w`) and their gradients (`out`, views (M, *shape) of the members'
    gradient rows) in the shapes the step's batched GEMMs take: per head (M h, ...), with
    a member axis (M, ...), transposed. Made once per pair of dicts where they are all views
    (one member per pass: the stepper's rows stay where they are between epochs), so an
    epoch makes none of these calls; with several members a per-head reshape of their
    rows copies, so those are made again each epoch (`ClosedFormStep.views`)."""

    def __init__(
        self, w: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor] | None = None
    ) -> None:
        self.source = (w, out)  # held: what the views are of
        n_members, n_heads, d_model, d_head = w["W_Q"].shape
        mh = n_members * n_heads
        self.shape = (n_members, n_heads, d_model, d_head)
        self.cacheable = n_members == 1
        self.w_e, self.w_pos, self.w_in, self.w_out = w["W_E"], w["W_pos"], w["W_in"], w["W_out"]
        self.w_u, self.w_u_t, self.w_out_t = (
            w["W_U"],
            w["W_U"].transpose(1, 2),
            w["W_out"].transpose(1, 2),
        )
        self.w_q = w["W_Q"].reshape(mh, d_model, d_head)
        self.w_k = w["W_K"].reshape(mh, d_model, d_head)
        self.w_v = w["W_V"].reshape(mh, d_model, d_head)
        self.w_q_t, self.w_v_t = self.w_q.transpose(1, 2), self.w_v.transpose(1, 2)
        self.b_q = w["b_Q"].reshape(mh, 1, d_head)
        self.b_k = w["b_K"].reshape(mh, 1, d_head)
        self.b_v = w["b_V"].reshape(mh, 1, d_head)
        self.b_o = w["b_O"]
        self.w_o = w["W_O"].view(n_members, n_heads * d_head, d_model)
        self.w_o_t = self.w_o.transpose(1, 2)
        self.b_u_row, self.b_in_row = w["b_U"][:, None], w["b_in"][:, None]
        self.b_out_row, self.b_out_col = w["b_out"][:, None], w["b_out"][:, :, None]
        if out is not None:
            self._gradient_views(out, mh)

    def _gradient_views(self, out: Mapping[str, torch.Tensor], mh: int) -> None:
        self.g_w_o = out["W_O"].view_as(self.w_o)
        self.g_w_in, self.g_b_in, self.g_w_u, self.g_w_out = (
            out["W_in"], out["b_in"], out["W_U"], out["W_out"])  # fmt: skip
        self.g_b_out_col = out["b_out"][..., None]
        self.g_w_e, self.g_w_pos = out["W_E"], out["W_pos"]
        self.g_heads = {s: _heads_out(out[s], mh) for s in ("W_Q", "W_K", "W_V")}


def _heads_out(dest: torch.Tensor, mh: int) -> torch.Tensor:
    """A gradient (M, h, d, e) as (M h, d, e): a view of a one-member row; else `dest`
    itself, which `_bmm_into` fills through a copy."""
    return dest.view(mh, *dest.shape[2:]) if dest.is_contiguous() else dest


def table_forward(w: Mapping[str, torch.Tensor] | Views, p: int) -> TableForward:
    """`fastpath.member_tables` as the eight-row table T' and the constant rows C, from
    the weights (or their `Views`).

    Table layout: member m's head h has K = 2p + 1 rows, row t = T'[h, t], so the same
    index (m h + h) K + t picks a key's score and its table row (row 2p is T'[h, 2p] = 0,
    read by no example); after the M h K rows come the M rows C."""
    wv = w if isinstance(w, Views) else Views(w)
    n_members, n_heads, _, d_head = wv.shape
    mh, k = n_members * n_heads, 2 * p + 1
    token, position = _key_index(p, wv.w_e.device)
    resid = wv.w_e.index_select(1, token).add_(wv.w_pos.index_select(1, position))  # (M, K, d)
    eq = resid[:, 2 * p]
    resid = _per_head(resid, n_heads)  # (M h, K, d)
    q = torch.baddbmm(wv.b_q, resid[:, 2 * p :], wv.w_q).view(mh, d_head, 1)
    qk = torch.bmm(wv.w_k, q)  # (M h, d, 1)
    # scores = (resid . qk + q . b_K) / sqrt(e), the scale applied to both terms
    scale = 1 / math.sqrt(d_head)
    scores = torch.baddbmm(torch.bmm(wv.b_k, q), resid, qk, beta=scale, alpha=scale)
    v = torch.baddbmm(wv.b_v, resid, wv.w_v)  # (M h, K, e)
    eq_resid = eq + wv.b_o
    w_read = torch.cat([wv.w_u, wv.w_in], 2)
    width = w_read.shape[2]
    ov = torch.bmm(wv.w_o, w_read)  # (M, h e, W)
    n_rows = mh * k
    table = eq.new_empty(n_rows + n_members, width)
    # T'[h, t] = T[h, t] - T[h, 2p] = (v[h, t] - v[h, 2p]) @ ov[h]: the constants cancel.
    torch.bmm(v - v[:, 2 * p :], ov.view(mh, d_head, width), out=table[:n_rows].view(mh, k, width))
    # C = sum_h T[h, 2p] = sum_h v[h, 2p] @ ov[h] + eq_resid @ w_read + [b_out W_U + b_U | b_in]
    const = torch.cat([torch.baddbmm(wv.b_u_row, wv.b_out_row, wv.w_u), wv.b_in_row], 2)
    const.baddbmm_(eq_resid[:, None], w_read)
    v_eq = v[:, 2 * p].reshape(n_members, 1, n_heads * d_head)
    torch.baddbmm(const, v_eq, ov, out=table[n_rows:, None])
    return TableForward(
        resid, q, qk, scores.view(n_members, n_heads, k), v, eq_resid, w_read,
        ov.view(mh, d_head, width), table, torch.bmm(wv.w_out, wv.w_u),
    )  # fmt: skip


def _table_backward(
    wv: Views,
    f: TableForward,
    grad_scores: torch.Tensor,
    grad_slots: torch.Tensor,
    grad_w_l: torch.Tensor,
    run: Callable[[list[Callable[[], None]]], object] | None = None,
) -> None:
    """Gradients of the trained weights from those of the scores (M, h, K; already times
    the scores' scale 1 / sqrt(e)), the table rows (as `TableForward.table`, its rows
    T'[h, 2p] zero) and W_L (M, d_mlp, V), written into the gradient views of `wv`.

    grad_slots is overwritten: its T' rows become the gradient of fastpath's table T.

    Two branches follow from the table's gradient, one through ov = W_O [W_U | W_in] (and
    W_L), one through v = resid W_V (and the scores): they read no result of each other
    and write disjoint gradients, so `run` may run them side by side (each op the same
    arithmetic either way); None: one after the other here."""
    n_members, n_heads, d_model, _ = wv.shape
    mh, k = n_members * n_heads, grad_scores.shape[2]
    p, n_rows = k // 2, mh * k
    n_vocab, width = wv.w_u.shape[2], grad_slots.shape[1]
    grad_c = grad_slots[n_rows:]  # (M, W)
    grad_table = grad_slots[:n_rows].view(mh, k, width)
    # back to fastpath's T: T[h, t < 2p] reaches the loss through T' only; T[h, 2p] through
    # C and, negated, through every T'[h, t] (grad_table's row 2p is still 0 here)
    torch.sub(_per_head(grad_c, n_heads), grad_table.sum(1), out=grad_table[:, 2 * p])
    w_read_t = f.w_read.transpose(1, 2)

    def through_ov() -> None:
        # T = v @ ov + const / h on every row: const's gradient is sum_{h, t} grad_T / h
        grad_ov = torch.bmm(f.v.transpose(1, 2), grad_table)  # (M h, e, W)
        # ov = W_O @ w_read; const = eq_resid @ w_read + [b_out @ W_U + b_U | b_in]
        grad_ov = grad_ov.view(n_members, -1, width)
        grad_read = torch.baddbmm(
            f.eq_resid[:, :, None] * grad_c[:, None, :], wv.w_o_t, grad_ov
        )  # (M, d, W)
        torch.bmm(grad_ov, w_read_t, out=wv.g_w_o)
        grad_direct = grad_c[:, :n_vocab]
        wv.g_w_in.copy_(grad_read[:, :, n_vocab:])
        wv.g_b_in.copy_(grad_c[:, n_vocab:])
        torch.bmm(wv.w_u, grad_direct[..., None], out=wv.g_b_out_col)
        # W_U: read directly, through the direct bias (b_out @ W_U) and through W_L
        torch.baddbmm(grad_read[:, :, :n_vocab], wv.w_out_t, grad_w_l, out=wv.g_w_u)
        wv.g_w_u.addcmul_(wv.b_out_col, grad_direct[:, None, :])
        torch.bmm(grad_w_l, wv.w_u_t, out=wv.g_w_out)

    def through_v() -> None:
        grad_v = torch.bmm(grad_table, f.ov.transpose(1, 2))  # (M h, K, e)
        # v = resid @ W_V + b_V, per head
        _bmm_into(wv.g_heads["W_V"], f.resid.transpose(1, 2), grad_v)
        grad_resid = torch.bmm(grad_v, wv.w_v_t).view(n_members, n_heads, k, d_model).sum(1)
        # scores = (resid . qk + q . b_K) / sqrt(e)
        grad_s = grad_scores.view(n_members, n_heads, k)
        grad_resid.baddbmm_(grad_s.transpose(1, 2), f.qk.view(n_members, n_heads, d_model))
        grad_qk = torch.bmm(grad_scores.view(mh, 1, k), f.resid)  # (M h, 1, d)
        grad_q = torch.baddbmm(
            wv.b_k * grad_s.sum(2).view(mh, 1, 1), grad_qk, wv.w_k
        )  # (M h, 1, e)
        _bmm_into(wv.g_heads["W_K"], grad_qk.transpose(1, 2), f.q.transpose(1, 2))
        # q = eq @ W_Q + b_Q, then eq_resid = eq + b_O: both reach the loss through eq
        _bmm_into(wv.g_heads["W_Q"], f.eq.transpose(1, 2), grad_q)
        grad_eq = grad_resid[:, 2 * p]
        grad_eq += torch.bmm(grad_q, wv.w_q_t).view(n_members, n_heads, d_model).sum(1)
        grad_eq.unsqueeze(1).baddbmm_(grad_c[:, None], w_read_t)
        # resid = W_E[token] + W_pos[position]
        token, position = _key_index(p, grad_resid.device)
        wv.g_w_e.zero_().index_add_(1, token, grad_resid)
        wv.g_w_pos.zero_().index_add_(1, position, grad_resid)

    if run is None:
        through_ov()
        through_v()
    else:
        run([through_ov, through_v])


def _bmm_into(dest: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """a @ b (batched over M h) into `dest`: (M h, ...) straight into a one-member row
    (`_heads_out`), (M, h, ...) through a copy where members' rows leave gaps between their
    blocks."""
    if dest.dim() == 3:
        torch.bmm(a, b, out=dest)
    else:
        dest.copy_(torch.bmm(a, b).view(dest.shape))


def _softmax_last(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the short last axis, in place (as `fastpath._SoftmaxLast`)."""
    e = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def member_means_into(rows: torch.Tensor, segments: list[Segment], out: torch.Tensor) -> None:
    """Each member's mean of the (B, k) rows, into `out` (M, k)."""
    if len(segments) == 1:  # members of equal counts: the rows are one block
        m0, m1, n, _ = segments[0]
        torch.mean(rows.view(m1 - m0, n, rows.shape[1]), 1, out=out)
        return
    for m0, m1, n, r0 in segments:
        block = rows[r0 : r0 + (m1 - m0) * n].view(m1 - m0, n, rows.shape[1])
        torch.mean(block, 1, out=out[m0:m1])


def member_sums_into(rows: torch.Tensor, segments: list[Segment], out: torch.Tensor) -> None:
    """Each member's sum of the (B, k) rows, into `out` (M, k)."""
    for m0, m1, n, r0 in segments:
        block = rows[r0 : r0 + (m1 - m0) * n].view(m1 - m0, n, rows.shape[1])
        torch.sum(block, 1, out=out[m0:m1])


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    segments: list[Segment],
    out: torch.Tensor,
    metrics: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    row_scale: torch.Tensor | None = None,
    floor: float = GRADIENT_FLOOR,
    reduce: Callable[[torch.Tensor, list[Segment], torch.Tensor], None] = member_means_into,
) -> None:
    """Per-member [mean cross-entropy, accuracy] by loss.py's exact formula, in few passes,
    into `metrics` (M, 2) (their sums with `reduce=member_sums_into`); `labels` (B, 1);
    `rows`: scratch (B, 2) for the per-row values and its two columns.

    `out` (the logits' shape) receives exp(z_j) for j != label (0 at the label); with
    `row_scale` (B, 1), the derivative of the members' summed mean losses by each logit
    instead (row_scale = 1 / the member's example count): loss.py's backward, written
    where the caller wants it, entries below `floor` set to 0 (loss.py's `GRADIENT_FLOOR`:
    no subnormals for the backward's GEMMs; 0 keeps every entry, for benchmarks).
    """
    shift = logits.amax(1, keepdim=True)
    z_label = logits.gather(1, labels).sub_(shift)  # <= 0
    others = torch.sub(logits, shift, out=out).exp_()
    others.scatter_(1, labels, 0.0)
    rest = others.sum(1, keepdim=True)  # sum over j != label of exp(z_j)
    label_term = z_label.exp()
    both, row_loss, correct = rows
    torch.log1p(rest + (label_term - 1.0), out=row_loss).sub_(z_label)
    torch.eq(z_label, 0, out=correct)
    reduce(both, segments, metrics)
    if row_scale is not None:
        scale = torch.div(row_scale, label_term.add_(rest))  # row_scale / the softmax's sum
        # loss.py's gradient floor, in one pass while every entry is >= 0
        F.threshold_(others.mul_(scale), floor, 0.0)
        label_grad = F.threshold_(scale.mul_(rest), floor, 0.0).neg_()
        others.scatter_(1, labels, label_grad)


class Slots:
    """Which rows of `TableForward.table` each example reads: per head its x and y rows of
    T' (ascending, head by head), then its member's C: the S of `fastpath.InputPlan` less
    the `=` keys, plus C, 2h + 1 entries a row. Its 2h key entries as CSR (for the sampled
    product) and all of it transposed (for the bag that sums each table row's gradient)."""

    def __init__(self, plan: InputPlan, dtype: torch.dtype) -> None:
        p, h, device = plan.p, plan.n_heads, plan.x.device
        self.width = 2 * h + 1
        n_rows = plan.n_members * h * (2 * p + 1)  # the T' rows, in the scores' layout
        keys = plan.idx.view(plan.batch, h, 3)[:, :, :2].reshape(plan.batch, 2 * h)
        const = n_rows + plan.member[:, None]
        self.idx = torch.cat([keys, const], 1)  # (B, 2h + 1)
        col = self.idx.flatten()
        self.flat_idx = col  # the bag's input as one list with offsets: no per-call arange
        self.bag_offsets = torch.arange(0, col.numel(), self.width, device=device)
        self.rows = n_rows + plan.n_members
        keys = keys.reshape(-1)
        self.keys = torch.sparse_csr_tensor(
            torch.arange(0, keys.numel() + 1, 2 * h, device=device),
            keys,
            torch.ones(keys.numel(), dtype=dtype, device=device),
            (plan.batch, self.rows),
            check_invariants=False,
        )
        self.perm = torch.argsort(col, stable=True)
        per_row = torch.bincount(col, minlength=self.rows)
        self.offsets = torch.cat([per_row.new_zeros(1), per_row.cumsum(0)])[:-1]
        self.examples = torch.div(self.perm, self.width, rounding_mode="floor")


def sorted_by_input(plan: InputPlan, labels: torch.Tensor) -> tuple[InputPlan, torch.Tensor]:
    """The plan's examples sorted by (member, x, y), and their labels."""
    key = (plan.member * plan.p + plan.x) * plan.p + plan.y
    order = torch.argsort(key, stable=True)
    sorted_plan = InputPlan(plan.x[order], plan.y[order], plan.p, plan.n_heads, plan.counts)
    return sorted_plan, labels[order]


def read_halves(f: TableForward) -> tuple[torch.Tensor, torch.Tensor]:
    """The table's two column blocks, each contiguous: (rows, V) read by W_U, (rows, d_mlp)
    by W_in. The forward reads them with one bag each, into contiguous logits and MLP
    input: measured 1.03x the epoch of one bag over the whole rows on an Intel Xeon (CPU
    time, 1 thread; the bag over 626 columns was ~15% slower than the two, and the strided
    halves of its output slowed the ReLU, GEMMs and loss that read them)."""
    n_vocab = f.w_l.shape[2]
    return f.table[:, :n_vocab].contiguous(), f.table[:, n_vocab:].contiguous()


class ShardResult(NamedTuple):
    """What a shard of examples gives the step: sums over its examples, and its part of
    every gradient the O(p) table backward takes."""

    sums: torch.Tensor  # (M, 2, 2) [member, (loss, accuracy), (train, test)]: summed
    # over the shard's examples; means where the shard is the whole chunk
    grad_scores: torch.Tensor  # (M, h, K) times the scores' scale 1 / sqrt(e)
    grad_slots: torch.Tensor  # (M h K + M, W) each table row's gradient
    grad_w_l: torch.Tensor  # (M, d_mlp, V)


Clock = Callable[[str], None]


def no_clock(stage: str) -> None:
    """The stage clock's default: an epoch's stages go untimed."""


class ExampleShard:
    """A contiguous run of a chunk's examples (sorted by input), the structures of their
    table reads and the buffers every epoch rewrites: the per-example part of the step.

    A chunk is one shard, or (one member of a large model) two, which `ClosedFormStep`
    runs side by side on their own threads or one after the other; each scales its
    gradient by the chunk's example count, so the shards' gradients add up to the
    chunk's."""

    def __init__(
        self,
        train: InputPlan,
        train_labels: torch.Tensor,
        test: InputPlan,
        test_labels: torch.Tensor,
        row_scale: torch.Tensor,
        share: float,
        dtype: torch.dtype,
    ) -> None:
        """`row_scale` (B, 1): 1 / the member's example count in the chunk, per train
        example; `share`: this shard's part of a one-member chunk's train examples (1.0
        for a whole chunk), which StableMax's objective (a mean over the examples it is
        given) is scaled by."""
        self.train, self.train_labels = train, train_labels
        self.test, self.test_labels = test, test_labels
        self.train_slots, self.test_slots = Slots(train, dtype), Slots(test, dtype)
        self.row_scale, self.share = row_scale, share
        device = train.x.device
        self.labels = {"train": train_labels[:, None], "test": test_labels[:, None]}
        self.weights, self.pattern_weights, self.rows = {}, {}, {}
        for which, plan, slots in (
            ("train", train, self.train_slots), ("test", test, self.test_slots)
        ):  # fmt: skip
            weights = torch.ones(plan.batch, slots.width, dtype=dtype, device=device)
            self.weights[which] = weights.view(-1)  # its every (2h + 1)th stays 1 (C's row)
            self.pattern_weights[which] = weights[:, : 2 * plan.n_heads].view(
                plan.batch, plan.n_heads, 2
            )
            both = torch.empty(plan.batch, 2, dtype=dtype, device=device)
            self.rows[which] = (both, both[:, :1], both[:, 1:])
        self._scratch: dict[str, torch.Tensor] = {}

    def _scratch_for(self, f: TableForward) -> dict[str, torch.Tensor]:
        """The tensors every epoch rewrites, allocated at the first: [G | dpre], its two
        blocks, the test loss's exponentials and W_L's gradient."""
        if not self._scratch:
            n_vocab, width = f.w_l.shape[2], f.table.shape[1]
            grad = f.table.new_empty(self.train.batch, width)
            self._scratch = {
                "grad": grad,
                "grad_l": grad[:, :n_vocab],
                "grad_pre": grad[:, n_vocab:],
                "test_exp": f.table.new_empty(self.test.batch, n_vocab),
                "grad_w_l": torch.empty_like(f.w_l),
            }
        return self._scratch

    def forward(
        self, f: TableForward, which: str, halves: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pattern (B, h, 3), bag weights (B (2h + 1),), logits (B, V), post (B, d_mlp)) of
        the train or test examples; `halves`: `read_halves(f)`, if the caller has them."""
        plan, slots = (self.train, self.train_slots) if which == "train" else (
            self.test, self.test_slots)  # fmt: skip
        h = plan.n_heads
        scores = f.scores.view(-1).index_select(0, plan.col).view(plan.batch, h, 3)
        pattern = _softmax_last(scores)
        self.pattern_weights[which].copy_(pattern[:, :, :2])
        weights = self.weights[which]
        logits, post = (
            F.embedding_bag(
                slots.flat_idx, t, slots.bag_offsets, per_sample_weights=weights, mode="sum"
            )
            for t in (halves or read_halves(f))
        )
        post.relu_()
        if plan.n_members == 1:
            logits.addmm_(post, f.w_l[0])
            return pattern, weights, logits, post
        for seg in plan.segments:
            m0, m1 = seg[0], seg[1]
            if m1 - m0 == 1:
                blocks(logits, seg)[0].addmm_(blocks(post, seg)[0], f.w_l[m0])
            else:
                blocks(logits, seg).baddbmm_(blocks(post, seg), f.w_l[m0:m1])
        return pattern, weights, logits, post

    @torch.no_grad()  # grad mode is per thread, and a shard may run on a pool's thread
    def run(
        self,
        f: TableForward,
        halves: tuple[torch.Tensor, torch.Tensor],
        stablemax: Sequence[bool],
        floor: float,
        clock: Clock = no_clock,
    ) -> ShardResult:
        """This shard's metric sums (means, for a whole chunk: the arithmetic of a step
        before shards) and gradient parts at the weights `f` was made of; `clock` is told
        each stage's name as it ends (`ClosedFormStep.clock`)."""
        clock("shard start")
        sums = f.table.new_empty(self.train.n_members, 2, 2)
        self.test_metrics(f, halves, sums[:, :, 1], clock)
        return self.train_gradients(f, halves, stablemax, floor, sums, clock)

    @torch.no_grad()
    def test_metrics(
        self,
        f: TableForward,
        halves: tuple[torch.Tensor, torch.Tensor],
        out: torch.Tensor,
        clock: Clock = no_clock,
    ) -> None:
        """The test examples' [loss, accuracy] per member into `out` (M, 2): means for a
        whole chunk, sums for a shard. Reads nothing the train half writes, so it may run
        on its own (bench/overlapped_test_metrics.py measured that against the step as it is)."""
        reduce = member_means_into if self.share == 1.0 else member_sums_into
        scratch = self._scratch_for(f)
        _, _, test_logits, _ = self.forward(f, "test", halves)
        clock("test forward")
        cross_entropy(
            test_logits, self.labels["test"], self.test.segments, scratch["test_exp"],
            out, self.rows["test"], reduce=reduce,
        )  # fmt: skip
        clock("test loss")

    @torch.no_grad()
    def train_gradients(
        self,
        f: TableForward,
        halves: tuple[torch.Tensor, torch.Tensor],
        stablemax: Sequence[bool],
        floor: float,
        sums: torch.Tensor,
        clock: Clock = no_clock,
    ) -> ShardResult:
        """The train examples' [loss, accuracy] into `sums[:, :, 0]` (as `test_metrics`)
        and this shard's gradient parts; the result carries `sums`."""
        plan, slots = self.train, self.train_slots
        reduce = member_means_into if self.share == 1.0 else member_sums_into
        scratch = self._scratch_for(f)
        h = plan.n_heads
        pattern, weights, logits, post = self.forward(f, "train", halves)
        clock("train forward")
        # [G | dpre] in one buffer: G = dloss/dlogits, dpre = (G @ W_L^T) masked by the ReLU.
        grad, grad_l, grad_pre = scratch["grad"], scratch["grad_l"], scratch["grad_pre"]
        if not any(stablemax):
            cross_entropy(
                logits, self.labels["train"], plan.segments, grad_l, sums[:, :, 0],
                self.rows["train"], self.row_scale, floor, reduce=reduce,
            )  # fmt: skip
        else:  # StableMax members: G by differentiating loss.py's objective alone
            with torch.enable_grad():
                leaf = logits.detach().requires_grad_(True)
                objective, train_loss, train_acc = member_training_loss(
                    leaf, self.train_labels, plan.segments, list(stablemax)
                )
                if self.share != 1.0:  # a mean over this shard's examples: the chunk's
                    objective = objective * self.share  # part, scaled before loss.py's floor
                (grad_logits,) = torch.autograd.grad(objective, leaf)
            grad_l.copy_(grad_logits)
            sums[:, 0, 0], sums[:, 1, 0] = train_loss, train_acc
            if self.share != 1.0:  # means over this shard: its sums
                sums[:, :, 0] *= plan.batch
        clock("train loss and G")
        grad_w_l = scratch["grad_w_l"]
        if plan.n_members == 1:
            grad_pre.addmm_(grad_l, f.w_l[0].T, beta=0)
            torch.mm(post.T, grad_l, out=grad_w_l[0])
        for seg in plan.segments if plan.n_members > 1 else ():
            m0, m1 = seg[0], seg[1]
            g_seg, post_seg, pre_seg = blocks(grad_l, seg), blocks(post, seg), blocks(grad_pre, seg)
            if m1 - m0 == 1:
                pre_seg[0].addmm_(g_seg[0], f.w_l[m0].T, beta=0)
                torch.mm(post_seg[0].T, g_seg[0], out=grad_w_l[m0])
            else:
                pre_seg.baddbmm_(g_seg, f.w_l[m0:m1].transpose(1, 2), beta=0)
                torch.bmm(post_seg.transpose(1, 2), g_seg, out=grad_w_l[m0:m1])
        torch.ops.aten.threshold_backward.grad_input(grad_pre, post, 0.0, grad_input=grad_pre)
        clock("dpre and W_L's gradient")
        # d/d a_hj = [G | dpre] . T'[h, t_j] for the x and y keys; 0 for `=` (see above).
        dots = torch.sparse.sampled_addmm(slots.keys, grad, f.table.T, beta=0.0).values()
        clock("sampled product")
        grad_pattern = F.pad(dots.view(plan.batch, h, 2), (0, 1))
        grad_pattern.sub_((grad_pattern * pattern).sum(-1, keepdim=True)).mul_(pattern)
        # the scores' gradient times their scale 1 / sqrt(e), as _table_backward takes it
        grad_scores = f.scores.new_zeros(f.scores.shape)
        grad_scores.view(-1).index_add_(
            0, plan.col, grad_pattern.view(-1), alpha=1 / math.sqrt(f.q.shape[1])
        )
        clock("scores' gradient")
        # Each table row's gradient: the weighted sum of its examples' [G | dpre] rows.
        grad_slots = F.embedding_bag(
            slots.examples,
            grad,
            slots.offsets,
            per_sample_weights=weights.index_select(0, slots.perm),
            mode="sum",
        )
        clock("table rows' gradient")
        return ShardResult(sums, grad_scores, grad_slots, grad_w_l)


def _cut(plan: InputPlan, labels: torch.Tensor, parts: int) -> list[tuple[InputPlan, torch.Tensor]]:
    """A one-member plan's examples in `parts` contiguous runs of near-equal size."""
    ends = [plan.batch * (i + 1) // parts for i in range(parts)]
    return [
        (InputPlan(plan.x[a:b], plan.y[a:b], plan.p, plan.n_heads), labels[a:b])
        for a, b in zip([0, *ends[:-1]], ends, strict=True)
    ]


Jobs = Callable[[Sequence[Callable[[], Any]]], list[Any]]


def _on_one_thread(run: Jobs) -> Callable[[list[Callable[[], None]]], object]:
    """`run`, each job on one torch thread (the O(p) work's count, wherever it runs)."""

    def one_thread(job: Callable[[], None]) -> Callable[[], None]:
        def go() -> None:
            with torch_threads(1), torch.no_grad():  # grad mode is per thread too
                job()

        return go

    return lambda jobs: run([one_thread(job) for job in jobs])


class ClosedFormStep:
    """One chunk's measure-and-gradient: its train and test examples (sorted by input) in
    one shard, or in `shards` (a one-member chunk only) that `measure` may run side by
    side, then the O(p) table backward of their summed gradients.

    `measure` returns the (M, 4) metrics [train loss, test loss, train acc, test acc] of
    the weights given and writes the gradient of each member's training objective into
    `grad_out` (views (M, *shape) of the members' flat gradient rows).

    Why shards: a large model's epoch on two cores scaled 1.34x from one intra-op thread
    to two (its bags, elementwise passes and small O(p) products barely gain from an
    OpenMP team), while two halves of its examples on one thread each, torch releasing the
    GIL inside every op, do nearly twice the work (bench/RESULTS.md). The split is fixed
    by the chunk (`shards`), never by the threads that run it, so a run's numbers do not
    depend on whether its shards ran side by side.
    """

    def __init__(
        self,
        train: InputPlan,
        train_labels: torch.Tensor,
        test: InputPlan,
        test_labels: torch.Tensor,
        dtype: torch.dtype,
        shards: int = 1,
    ) -> None:
        self.train, self.train_labels = sorted_by_input(train, train_labels)
        self.test, self.test_labels = sorted_by_input(test, test_labels)
        if shards > 1 and self.train.n_members != 1:
            raise ValueError("only a one-member chunk splits its examples into shards")
        device = train.x.device
        counts = torch.tensor(self.train.counts, device=device)
        row_scale = (1.0 / counts.to(dtype))[self.train.member][:, None]
        self.counts = torch.tensor(
            [self.train.counts, self.test.counts], dtype=dtype, device=device
        ).T[:, None, :]  # (M, 1, 2): the sums' divisors
        if shards == 1:
            parts = [(self.train, self.train_labels, self.test, self.test_labels)]
        else:
            cuts = zip(
                _cut(self.train, self.train_labels, shards),
                _cut(self.test, self.test_labels, shards),
                strict=True,
            )
            parts = [(*a, *b) for a, b in cuts]
        starts = itertools.accumulate((part[0].batch for part in parts), initial=0)
        self.shards = []
        for (plan, labels, test_plan, test_labels), start in zip(parts, starts, strict=False):
            rows = row_scale[start : start + plan.batch]
            share = plan.batch / self.train.batch
            self.shards.append(
                ExampleShard(plan, labels, test_plan, test_labels, rows, share, dtype)
            )
        self._views: Views | None = None
        # loss.py's floor on the cross-entropy's gradient; bench/denormals.py sets 0 (none)
        self.gradient_floor = GRADIENT_FLOOR
        # told each stage's name as it ends, on the thread that ran it (stages named "...
        # start" open one); bench/epoch_parts.py times an epoch's anatomy with it
        self.clock: Clock = no_clock

    def views(self, w: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor]) -> Views:
        """`Views` of these weights and gradients: the last epoch's, if of the same dicts
        and all views (`Views.cacheable`)."""
        v = self._views
        if v is None or not v.cacheable or v.source[0] is not w or v.source[1] is not out:
            v = self._views = Views(w, out)
        return v

    def measure(
        self,
        w: Mapping[str, torch.Tensor],
        stablemax: Sequence[bool],
        grad_out: Mapping[str, torch.Tensor],
        run: Jobs | None = None,
    ) -> torch.Tensor:
        """`run`: runs the shards' jobs (side by side, on a `ChunkPool`); None: one after
        the other in the caller's thread."""
        clock = self.clock
        clock("measure start")
        views = self.views(w, grad_out)
        # A sharded chunk's O(p) work on one thread, wherever it runs: faster than on two
        # (its small products do not pay an OpenMP team: on an Intel Xeon's 2 cores the
        # paper preset's table forward 1.12 against 1.66 ms, backward 1.97 against 2.91),
        # and the same numbers in a sweep's worker thread as in a single run.
        one_thread = torch_threads(1 if len(self.shards) > 1 else None)
        with one_thread:
            f = table_forward(views, self.train.p)
            halves = read_halves(f)
        clock("O(p) table forward")
        floor = self.gradient_floor
        jobs = [functools.partial(s.run, f, halves, stablemax, floor, clock) for s in self.shards]
        results = run(jobs) if run is not None and len(jobs) > 1 else [job() for job in jobs]
        clock("shards' results")  # their wall time where they ran on other threads
        return self.backward(views, f, results, run)

    def backward(
        self, views: Views, f: TableForward, results: list[ShardResult], run: Jobs | None = None
    ) -> torch.Tensor:
        """The shards' results summed (in shard order: the same sums however they ran), the
        O(p) table backward of their gradients into `views`' gradients, and the (M, 4)
        metrics; `run` as `measure`'s."""
        clock = self.clock
        sums, grad_scores, grad_slots, grad_w_l = results[0]
        if len(results) == 1:  # a whole chunk: its means
            _table_backward(views, f, grad_scores, grad_slots, grad_w_l)
            clock("O(p) table backward")
            return sums.view(self.train.n_members, 4)
        with torch_threads(1):
            for more in results[1:]:
                sums += more.sums
                grad_scores += more.grad_scores
                grad_slots += more.grad_slots
                grad_w_l = grad_w_l + more.grad_w_l
            # its two branches side by side where the shards ran so, one thread each
            branches = None if run is None else _on_one_thread(run)
            _table_backward(views, f, grad_scores, grad_slots, grad_w_l, branches)
            clock("O(p) table backward")
            return sums.div_(self.counts).view(self.train.n_members, 4)
