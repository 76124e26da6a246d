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
differentiating the loss alone) and dpre = (G @ W_L^T) * [pre > 0] share one (B, W) buffer,
so every table row's gradient is ONE weighted bag over it (S^T @ [G | dpre]) and every
attention weight's ONE sampled product; dW_L = post^T G; the O(p) table gradient follows by
hand (`_table_backward`), written straight into the members' flat gradient rows.

tests/test_closed_form.py compares the forward and each gradient with autograd through
`fastpath` (itself pinned to TransformerLens in tests/test_model.py).

Coverage: whatever the stepper trains. Cross-entropy and StableMax members (and a mix)
get G from loss.py; Grokfast and ⊥Grad act on the gradient row afterwards; batched members
use the plan's member segments (one GEMM per member block, batched where a block has
several members). The autograd step stays in the stepper as the reference
(`Stepper(gradient="autograd")`); no option falls back to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from grok_tui.engine.core.fastpath import InputPlan, Segment, blocks
from grok_tui.engine.core.loss import member_means, member_training_loss


@dataclass
class TableForward:
    """The O(p) part of the forward of M members, kept for the backward."""

    eq: torch.Tensor  # (M, d) the residual stream at `=` before attention
    resid: torch.Tensor  # (M, K, d) every key's residual stream (K = 2p + 1)
    q: torch.Tensor  # (M, h, e) the query at `=`
    qk: torch.Tensor  # (M, h, d) W_K q: a key's score is resid . qk (+ q . b_K)
    scores: torch.Tensor  # (M, h, K) scaled attention scores
    v: torch.Tensor  # (M, h, K, e) every key's value
    eq_resid: torch.Tensor  # (M, d) `=`'s residual stream after attention, less its output
    w_read: torch.Tensor  # (M, d, W) [W_U | W_in], W = V + d_mlp
    ov: torch.Tensor  # (M, h, e, W) W_O [W_U | W_in]
    table: torch.Tensor  # (M h 2p + M, W) rows T'[m, h, t], then the rows C[m]
    w_l: torch.Tensor  # (M, d_mlp, V) W_out W_U


def table_forward(w: Mapping[str, torch.Tensor], p: int) -> TableForward:
    """`fastpath.member_tables` as the eight-row table T' and the constant rows C."""
    w_e, w_pos, w_u = w["W_E"], w["W_pos"], w["W_U"]
    n_members, n_heads, _, d_head = w["W_Q"].shape
    eq = w_e[:, p] + w_pos[:, 2]
    resid = torch.cat([w_e[:, :p] + w_pos[:, 0:1], w_e[:, :p] + w_pos[:, 1:2], eq[:, None]], 1)
    q = torch.matmul(eq[:, None, None, :], w["W_Q"]).squeeze(2) + w["b_Q"]
    qk = torch.matmul(w["W_K"], q[..., None]).squeeze(-1)
    q_bk = (q * w["b_K"]).sum(-1)
    scores = torch.baddbmm(q_bk[..., None], qk, resid.transpose(1, 2)).mul_(1 / math.sqrt(d_head))
    v = torch.matmul(resid[:, None], w["W_V"]) + w["b_V"][:, :, None]
    eq_resid = eq + w["b_O"]
    w_read = torch.cat([w_u, w["W_in"]], 2)
    width = w_read.shape[2]
    direct_bias = torch.bmm(w["b_out"][:, None], w_u).squeeze(1) + w["b_U"]
    const = torch.bmm(eq_resid[:, None], w_read).squeeze(1) + torch.cat([direct_bias, w["b_in"]], 1)
    ov = torch.matmul(w["W_O"], w_read[:, None])
    n_rows = n_members * n_heads * 2 * p
    table = eq.new_empty(n_rows + n_members, width)
    # T'[h, t] = T[h, t] - T[h, 2p] = (v[h, t] - v[h, 2p]) @ ov[h]: the constants cancel.
    torch.matmul(v[:, :, : 2 * p] - v[:, :, 2 * p :], ov, out=table[:n_rows].view(
        n_members, n_heads, 2 * p, width))  # fmt: skip
    # C = sum_h T[h, 2p] = sum_h v[h, 2p] @ ov[h] + const
    v_eq = v[:, :, 2 * p].reshape(n_members, 1, -1)
    torch.baddbmm(const[:, None], v_eq, ov.reshape(n_members, -1, width), out=table[n_rows:, None])
    return TableForward(
        eq, resid, q, qk, scores, v, eq_resid, w_read, ov, table, torch.bmm(w["W_out"], w_u)
    )


def _table_backward(
    w: Mapping[str, torch.Tensor],
    f: TableForward,
    p: int,
    grad_scores: torch.Tensor,
    grad_slots: torch.Tensor,
    grad_w_l: torch.Tensor,
    out: Mapping[str, torch.Tensor],
) -> None:
    """Gradients of the trained weights from those of the scores (M, h, K), the table
    rows T' and C (as `TableForward.table`) and W_L (M, d_mlp, V), written into `out`
    (views (M, *shape))."""
    n_members, n_heads = f.scores.shape[0], f.scores.shape[1]
    n_rows = n_members * n_heads * 2 * p
    grad_c = grad_slots[n_rows:]  # (M, W)
    grad_t = grad_slots[:n_rows].view(n_members, n_heads, 2 * p, -1)
    # back to fastpath's T: T[h, t < 2p] reaches the loss through T' only; T[h, 2p] through
    # C and, negated, through every T'[h, t]
    grad_table = torch.cat([grad_t, grad_c[:, None, None] - grad_t.sum(2, keepdim=True)], 2)
    w_u, w_o = w["W_U"], w["W_O"]
    n_members, n_heads, d_model, d_head = w["W_Q"].shape
    n_vocab = w_u.shape[2]
    # table = v @ ov + const / h on every row
    grad_const = grad_table.sum((1, 2)).div_(n_heads)  # (M, W)
    grad_ov = torch.matmul(f.v.transpose(-1, -2), grad_table)  # (M, h, e, W)
    grad_v = torch.matmul(grad_table, f.ov.transpose(-1, -2))  # (M, h, K, e)
    # ov = W_O @ w_read; const = eq_resid @ w_read + [b_out @ W_U + b_U | b_in]
    grad_read = torch.baddbmm(
        f.eq_resid[:, :, None] * grad_const[:, None, :],
        w_o.reshape(n_members, n_heads * d_head, d_model).transpose(1, 2),
        grad_ov.reshape(n_members, n_heads * d_head, -1),
    )  # (M, d, W)
    out["W_O"].copy_(torch.matmul(grad_ov, f.w_read.transpose(1, 2)[:, None]))
    grad_eq = torch.bmm(f.w_read, grad_const[..., None]).squeeze(-1)  # via eq_resid
    grad_direct = grad_const[:, :n_vocab]
    out["W_in"].copy_(grad_read[:, :, n_vocab:])
    out["b_in"].copy_(grad_const[:, n_vocab:])
    out["b_out"].copy_(torch.bmm(w_u, grad_direct[..., None]).squeeze(-1))
    # W_U: read directly, through the direct bias (b_out @ W_U) and through W_L = W_out W_U
    grad_w_u = torch.baddbmm(grad_read[:, :, :n_vocab], w["W_out"].transpose(1, 2), grad_w_l)
    out["W_U"].copy_(grad_w_u.addcmul_(w["b_out"][:, :, None], grad_direct[:, None, :]))
    out["W_out"].copy_(torch.bmm(grad_w_l, w_u.transpose(1, 2)))
    # v = resid @ W_V + b_V
    out["W_V"].copy_(torch.matmul(f.resid.transpose(1, 2)[:, None], grad_v))
    grad_resid = torch.matmul(grad_v, w["W_V"].transpose(-1, -2)).sum(1)  # (M, K, d)
    # scores = (resid . qk + q . b_K) / sqrt(e)
    grad_s = grad_scores * (1 / math.sqrt(d_head))
    grad_resid.baddbmm_(grad_s.transpose(1, 2), f.qk)
    grad_qk = torch.bmm(grad_s, f.resid)  # (M, h, d)
    grad_q = torch.matmul(grad_qk[:, :, None, :], w["W_K"]).squeeze(2)
    grad_q.addcmul_(grad_s.sum(-1, keepdim=True), w["b_K"])
    out["W_K"].copy_(grad_qk[..., None] * f.q[:, :, None, :])
    # q = eq @ W_Q + b_Q
    out["W_Q"].copy_(f.eq[:, None, :, None] * grad_q[:, :, None, :])
    grad_eq += torch.matmul(w["W_Q"], grad_q[..., None]).squeeze(-1).sum(1)
    grad_eq += grad_resid[:, 2 * p]
    # resid = [W_E[:p] + W_pos[0], W_E[:p] + W_pos[1], W_E[p] + W_pos[2]]
    grad_w_e, grad_w_pos = out["W_E"], out["W_pos"]
    grad_w_e[:, :p] = grad_resid[:, :p] + grad_resid[:, p : 2 * p]
    grad_w_e[:, p] = grad_eq
    grad_w_pos[:, 0] = grad_resid[:, :p].sum(1)
    grad_w_pos[:, 1] = grad_resid[:, p : 2 * p].sum(1)
    grad_w_pos[:, 2] = grad_eq


def _softmax_last(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the short last axis, in place (as `fastpath._SoftmaxLast`)."""
    e = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    segments: list[Segment],
    out: torch.Tensor,
    row_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member (mean cross-entropy, accuracy) by loss.py's exact formula, in few passes.

    `out` (the logits' shape) receives exp(z_j) for j != label (0 at the label); with
    `row_scale` (B, 1), the derivative of the members' summed mean losses by each logit
    instead (row_scale = 1 / the member's example count): loss.py's backward, written
    where the caller wants it.
    """
    shift = logits.amax(1, keepdim=True)
    z_label = logits.gather(1, labels[:, None]).sub_(shift)  # <= 0
    others = torch.sub(logits, shift, out=out).exp_()
    others.scatter_(1, labels[:, None], 0.0)
    rest = others.sum(1, keepdim=True)  # sum over j != label of exp(z_j)
    label_term = z_label.exp()
    row_loss = (torch.log1p(rest + (label_term - 1.0)) - z_label).squeeze(1)
    loss = member_means(row_loss, segments)
    accuracy = member_means((z_label == 0).squeeze(1).to(logits.dtype), segments)
    if row_scale is not None:
        total = label_term + rest
        others.mul_(row_scale / total)
        others.scatter_(1, labels[:, None], -rest / total * row_scale)
    return loss, accuracy


class Slots:
    """Which rows of `TableForward.table` each example reads: per head its x and y rows of
    T' (ascending, head by head), then its member's C: the S of `fastpath.InputPlan` with
    2h + 1 entries a row. Its 2h key entries as CSR (for the sampled product) and all of
    it transposed (for the bag that sums each table row's gradient)."""

    def __init__(self, plan: InputPlan, dtype: torch.dtype) -> None:
        p, h, device = plan.p, plan.n_heads, plan.x.device
        self.width = 2 * h + 1
        n_rows = plan.n_members * h * 2 * p
        base = plan.member[:, None] * (h * 2 * p) + torch.arange(h, device=device) * (2 * p)
        keys = torch.stack([base + plan.x[:, None], base + p + plan.y[:, None]], 2)
        const = n_rows + plan.member[:, None]
        self.idx = torch.cat([keys.reshape(plan.batch, 2 * h), const], 1)  # (B, 2h + 1)
        col = self.idx.flatten()
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


class ClosedFormStep:
    """One chunk's measure-and-gradient: its train and test examples (sorted by input) and
    the structures of their table reads.

    `measure` returns the (M, 4) metrics [train loss, test loss, train acc, test acc] of
    the weights given and writes the gradient of each member's training objective into
    `grad_out` (views (M, *shape) of the members' flat gradient rows).
    """

    def __init__(
        self,
        train: InputPlan,
        train_labels: torch.Tensor,
        test: InputPlan,
        test_labels: torch.Tensor,
        dtype: torch.dtype,
    ) -> None:
        self.train, self.train_labels = sorted_by_input(train, train_labels)
        self.test, self.test_labels = sorted_by_input(test, test_labels)
        self.train_slots, self.test_slots = Slots(self.train, dtype), Slots(self.test, dtype)
        counts = torch.tensor(self.train.counts, device=train.x.device)
        self.row_scale = (1.0 / counts.to(dtype))[self.train.member][:, None]
        self.weights = {
            "train": torch.ones(self.train.batch, self.train_slots.width, dtype=dtype),
            "test": torch.ones(self.test.batch, self.test_slots.width, dtype=dtype),
        }
        self.weights = {k: t.to(train.x.device) for k, t in self.weights.items()}

    def forward(
        self, f: TableForward, which: str, halves: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pattern (B, h, 3), bag weights (B, 2h + 1), logits (B, V), post (B, d_mlp)) of
        the train or test examples; `halves`: `read_halves(f)`, if the caller has them."""
        plan, slots = (self.train, self.train_slots) if which == "train" else (
            self.test, self.test_slots)  # fmt: skip
        h = plan.n_heads
        scores = f.scores.reshape(-1).index_select(0, plan.col).view(plan.batch, h, 3)
        pattern = _softmax_last(scores)
        weights = self.weights[which]  # its last column stays 1 (the C row)
        weights[:, : 2 * h].view(plan.batch, h, 2).copy_(pattern[:, :, :2])
        logits, post = (
            F.embedding_bag(slots.idx, t, per_sample_weights=weights, mode="sum")
            for t in (halves or read_halves(f))
        )
        post.relu_()
        for seg in plan.segments:
            m0, m1 = seg[0], seg[1]
            if m1 - m0 == 1:
                blocks(logits, seg)[0].addmm_(blocks(post, seg)[0], f.w_l[m0])
            else:
                blocks(logits, seg).baddbmm_(blocks(post, seg), f.w_l[m0:m1])
        return pattern, weights, logits, post

    def measure(
        self,
        w: Mapping[str, torch.Tensor],
        stablemax: Sequence[bool],
        grad_out: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        plan, slots, p = self.train, self.train_slots, self.train.p
        f = table_forward(w, p)
        n_vocab, h = f.w_l.shape[2], plan.n_heads
        halves = read_halves(f)
        _, _, test_logits, _ = self.forward(f, "test", halves)
        test_loss, test_acc = cross_entropy(
            test_logits, self.test_labels, self.test.segments, torch.empty_like(test_logits)
        )
        del test_logits
        pattern, weights, logits, post = self.forward(f, "train", halves)
        # [G | dpre] in one buffer: G = dloss/dlogits, dpre = (G @ W_L^T) masked by the ReLU.
        grad = logits.new_empty(plan.batch, n_vocab + post.shape[1])
        grad_l, grad_pre = grad[:, :n_vocab], grad[:, n_vocab:]
        if not any(stablemax):
            train_loss, train_acc = cross_entropy(
                logits, self.train_labels, plan.segments, grad_l, self.row_scale
            )
        else:  # StableMax members: G by differentiating loss.py's objective alone
            with torch.enable_grad():
                leaf = logits.detach().requires_grad_(True)
                objective, train_loss, train_acc = member_training_loss(
                    leaf, self.train_labels, plan.segments, list(stablemax)
                )
                (grad_logits,) = torch.autograd.grad(objective, leaf)
            grad_l.copy_(grad_logits)
        grad_w_l = torch.empty_like(f.w_l)
        for seg in plan.segments:
            m0, m1 = seg[0], seg[1]
            g_seg, post_seg, pre_seg = blocks(grad_l, seg), blocks(post, seg), blocks(grad_pre, seg)
            if m1 - m0 == 1:
                pre_seg[0].addmm_(g_seg[0], f.w_l[m0].T, beta=0)
                torch.mm(post_seg[0].T, g_seg[0], out=grad_w_l[m0])
            else:
                pre_seg.baddbmm_(g_seg, f.w_l[m0:m1].transpose(1, 2), beta=0)
                torch.bmm(post_seg.transpose(1, 2), g_seg, out=grad_w_l[m0:m1])
        torch.ops.aten.threshold_backward.grad_input(grad_pre, post, 0.0, grad_input=grad_pre)
        # d/d a_hj = [G | dpre] . T'[h, t_j] for the x and y keys; 0 for `=` (see above).
        dots = torch.sparse.sampled_addmm(slots.keys, grad, f.table.T, beta=0.0).values()
        grad_pattern = torch.zeros_like(pattern)
        grad_pattern[:, :, :2] = dots.view(plan.batch, h, 2)
        grad_pattern.sub_((grad_pattern * pattern).sum(-1, keepdim=True)).mul_(pattern)
        grad_scores = f.scores.new_zeros(f.scores.numel())
        grad_scores.index_add_(0, plan.col, grad_pattern.view(-1))
        # Each table row's gradient: the weighted sum of its examples' [G | dpre] rows.
        grad_slots = F.embedding_bag(
            slots.examples,
            grad,
            slots.offsets,
            per_sample_weights=weights.view(-1)[slots.perm],
            mode="sum",
        )
        _table_backward(w, f, p, grad_scores.view_as(f.scores), grad_slots, grad_w_l, grad_out)
        return torch.stack([train_loss, test_loss, train_acc, test_acc], dim=1)
