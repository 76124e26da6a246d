# ruff: noqa: E402, E501, B023  (a benchmark script: imports after its path set-up; long
# report strings; lambdas timed inside the loop that made them)
"""Torch eager ops vs the fused kernels (kernels.cpp) for closed_form.py's per-example work.

Not built into grok-tui (bench/RESULTS.md, "Fused kernels in C++, measured again"). Run:
    .venv/bin/python -m pip install ninja && .venv/bin/python bench/fused_kernels/bench.py
One process; torch.set_num_threads(1); alternating blocks of calls
(torch, native, portable, torch, ...); medians over blocks of the per-call wall and CPU time.
"""

import json
import os
import statistics
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]  # build.py; the repo's Slots
import build
import torch
import torch.nn.functional as F

from grok_tui.engine.core.closed_form import (
    Slots,
    cross_entropy,
    member_means_into,
    sorted_by_input,
)
from grok_tui.engine.core.fastpath import InputPlan
from grok_tui.engine.core.loss import GRADIENT_FLOOR

torch.set_num_threads(1)
BLOCKS = int(os.environ.get("BLOCKS", 7))
CALLS = int(os.environ.get("CALLS", 30))
H, D_MLP = 4, 512
PRESETS = {"paper": (113, 3830), "quick": (53, 1124)}

nat, t_nat = build.load(True)
por, t_por = build.load(False)
print(f"load (cached if built before): native {t_nat:.2f}s portable {t_por:.2f}s")


def bits_equal(a, b):
    return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def diff(a, b):
    d = (a - b).abs().max().item()
    rel = d / max(a.abs().max().item(), 1e-30)
    return f"max|d|={d:.3g} (rel {rel:.2g}) bit-identical={bits_equal(a, b)} n_diff={(a != b).sum().item()}/{a.numel()}"


def timeit(fns, blocks=BLOCKS, calls=CALLS):
    for f in fns.values():
        for _ in range(3):
            f()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(blocks):
        for k, f in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                f()
            w1, c1 = time.perf_counter(), time.process_time()
            wall[k].append((w1 - w0) / calls * 1e3)
            cpu[k].append((c1 - c0) / calls * 1e3)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), min(wall[k])) for k in fns}


RESULTS = []


def report(label, res):
    base_w, base_c, _ = res["torch"]
    print(f"  {label}")
    for k, (w, c, mn) in res.items():
        print(
            f"    {k:10s} wall {w:8.4f} ms  cpu {c:8.4f} ms  (min wall {mn:.4f})  "
            f"speed-up wall {base_w / w:5.2f}x cpu {base_c / c:5.2f}x"
        )
    RESULTS.append(
        {
            "case": label,
            **{k: dict(wall_ms=v[0], cpu_ms=v[1], min_wall_ms=v[2]) for k, v in res.items()},
        }
    )


def setup(p, n_train, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(p).repeat_interleave(p)
    y = torch.arange(p).repeat(p)
    perm = torch.randperm(p * p, generator=g)
    tr, te = perm[:n_train], perm[n_train:]
    out = {}
    for which, sel in (("train", tr), ("test", te)):
        plan, labels = sorted_by_input(InputPlan(x[sel], y[sel], p, H), (x[sel] + y[sel]) % p)
        out[which] = (plan, labels, Slots(plan, torch.float32))
    V = p + 1
    rows = out["train"][2].rows
    assert rows == H * (2 * p + 1) + 1
    table = torch.randn(rows, V + D_MLP, generator=g) * 0.5
    return out, table, V, g


def weights_for(B, g):
    pat = torch.softmax(torch.randn(B, H, 3, generator=g) * 2, -1)
    w = torch.ones(B, 2 * H + 1)
    w[:, : 2 * H] = pat[:, :, :2].reshape(B, 2 * H)
    return w.view(-1).contiguous()


for preset, (p, n_train) in PRESETS.items():
    data, table, V, g = setup(p, n_train)
    t_l, t_post = table[:, :V].contiguous(), table[:, V:].contiguous()
    print(
        f"\n=== {preset}: p={p}, table {tuple(table.shape)}, train B={data['train'][0].batch}, test B={data['test'][0].batch}"
    )
    for which in ("train", "test"):
        plan, labels, slots = data[which]
        B = plan.batch
        w = weights_for(B, g)
        fi, offs, idx2 = slots.flat_idx, slots.bag_offsets, slots.idx.contiguous()

        # ---- candidate 1: forward bags
        def t_post_relu():
            return F.embedding_bag(fi, t_post, offs, per_sample_weights=w, mode="sum").relu_()

        def t_logits():
            return F.embedding_bag(fi, t_l, offs, per_sample_weights=w, mode="sum")

        ref_post, ref_log = t_post_relu(), t_logits()
        outs = {}
        for name, mod in (("native", nat), ("portable", por)):
            for var in (0, 1, 2, 3, 4):
                o = torch.empty(B, D_MLP)
                mod.bag_fwd(idx2, w, t_post, o, True, var)
                ol = torch.empty(B, V)
                mod.bag_fwd(idx2, w, t_l, ol, False, var)
                print(
                    f"  check {which} {name} variant{var}: post+relu {diff(ref_post, o)}; logits {diff(ref_log, ol)}"
                )
            ob_l, ob_p = torch.empty(B, V), torch.empty(B, D_MLP)
            mod.bag_fwd_both(idx2, w, table, ob_l, ob_p)
            print(
                f"  check {which} {name} both-from-full-table: post {diff(ref_post, ob_p)}; logits {diff(ref_log, ob_l)}"
            )
            outs[name] = (torch.empty(B, D_MLP), torch.empty(B, V), ob_l, ob_p)
        VAR = int(os.environ.get("VARIANT", 4))
        res = timeit(
            {
                "torch": t_post_relu,
                "native": lambda: nat.bag_fwd(idx2, w, t_post, outs["native"][0], True, VAR),
                "portable": lambda: por.bag_fwd(idx2, w, t_post, outs["portable"][0], True, VAR),
                "native_v0": lambda: nat.bag_fwd(idx2, w, t_post, outs["native"][0], True, 0),
                "native_v3": lambda: nat.bag_fwd(idx2, w, t_post, outs["native"][0], True, 3),
                "portable_v0": lambda: por.bag_fwd(idx2, w, t_post, outs["portable"][0], True, 0),
            }
        )
        report(
            f"{preset} {which} B={B}: forward bag+ReLU (W={D_MLP}) [compiled variant {VAR}]", res
        )
        res = timeit(
            {
                "torch": t_logits,
                "native": lambda: nat.bag_fwd(idx2, w, t_l, outs["native"][1], False, VAR),
                "portable": lambda: por.bag_fwd(idx2, w, t_l, outs["portable"][1], False, VAR),
                "native_v0": lambda: nat.bag_fwd(idx2, w, t_l, outs["native"][1], False, 0),
                "native_v3": lambda: nat.bag_fwd(idx2, w, t_l, outs["native"][1], False, 3),
            }
        )
        report(f"{preset} {which} B={B}: forward logits bag (W={V})", res)
        res = timeit(
            {
                "torch": lambda: (t_logits(), t_post_relu()),
                "native": lambda: nat.bag_fwd_both(
                    idx2, w, table, outs["native"][2], outs["native"][3]
                ),
                "portable": lambda: por.bag_fwd_both(
                    idx2, w, table, outs["portable"][2], outs["portable"][3]
                ),
            }
        )
        report(
            f"{preset} {which} B={B}: both forward bags (compiled: one pass over the full table)",
            res,
        )

        # ---- candidate 3: cross-entropy (+ gradient for train)
        w_l = torch.randn(D_MLP, V, generator=g) * (4.0 / D_MLP**0.5)
        logits = (ref_log + ref_post @ w_l).contiguous()
        lab2 = labels[:, None].contiguous()
        lab1 = labels.contiguous()
        metrics = torch.empty(1, 2)
        both = torch.empty(B, 2)
        rows = (both, both[:, :1], both[:, 1:])
        ce_out = torch.empty(B, V)
        if which == "train":
            row_scale = torch.full((B, 1), 1.0 / B)
            rs1 = row_scale.view(-1)
        else:
            row_scale, rs1 = None, torch.empty(0)

        def t_ce():
            cross_entropy(
                logits, lab2, plan.segments, ce_out, metrics, rows, row_scale, GRADIENT_FLOOR
            )

        t_ce()
        ref_ce, ref_rows, ref_m = ce_out.clone(), both.clone(), metrics.clone()
        k_out, k_both, k_m = {}, {}, {}
        for name, mod in (("native", nat), ("portable", por)):
            k_out[name], k_both[name], k_m[name] = (
                torch.empty(B, V),
                torch.empty(B, 2),
                torch.empty(1, 2),
            )
            mod.cross_entropy(logits, lab1, k_out[name], k_both[name], rs1, GRADIENT_FLOOR)
            member_means_into(k_both[name], plan.segments, k_m[name])
            print(
                f"  check {which} {name} CE: {'grad' if which == 'train' else 'exp'} {diff(ref_ce, k_out[name])}; "
                f"row loss {diff(ref_rows[:, 0], k_both[name][:, 0])}; correct equal={torch.equal(ref_rows[:, 1], k_both[name][:, 1])}; "
                f"mean loss {ref_m[0, 0].item():.9g} vs {k_m[name][0, 0].item():.9g}"
            )

        for name, mod in (("native", nat), ("portable", por)):
            o3, b3, m3 = torch.empty(B, V), torch.empty(B, 2), torch.empty(1, 2)
            mod.cross_entropy3(logits, lab1, o3, b3, rs1, GRADIENT_FLOOR)
            member_means_into(b3, plan.segments, m3)
            print(
                f"  check {which} {name} CE3: {diff(ref_ce, o3)}; row loss {diff(ref_rows[:, 0], b3[:, 0])}; vs CE1 out equal={torch.equal(o3, k_out[name])} rows equal={torch.equal(b3, k_both[name])}"
            )

        def k_ce3(mod, name):
            def go():
                mod.cross_entropy3(logits, lab1, k_out[name], k_both[name], rs1, GRADIENT_FLOOR)
                member_means_into(k_both[name], plan.segments, k_m[name])

            return go

        def k_ce(mod, name):
            def go():
                mod.cross_entropy(logits, lab1, k_out[name], k_both[name], rs1, GRADIENT_FLOOR)
                member_means_into(k_both[name], plan.segments, k_m[name])

            return go

        res = timeit(
            {
                "torch": t_ce,
                "native": k_ce3(nat, "native"),
                "portable": k_ce3(por, "portable"),
                "native_1pass": k_ce(nat, "native"),
            }
        )
        report(
            f"{preset} {which} B={B}: cross-entropy {'+ gradient' if which == 'train' else '(test: no gradient)'} (V={V})",
            res,
        )

        # ---- candidate 2: transposed bag (train only)
        if which != "train":
            continue
        grad = torch.randn(B, V + D_MLP, generator=g) * 1e-3
        grad[:, V:] *= torch.rand(B, D_MLP, generator=g) > 0.5  # dpre: the ReLU mask
        grad = grad.contiguous()
        R = slots.rows

        def t_bag_t():
            return F.embedding_bag(
                slots.examples,
                grad,
                slots.offsets,
                per_sample_weights=w.index_select(0, slots.perm),
                mode="sum",
            )

        ref_t = t_bag_t()
        tout = {}
        for name, mod in (("native", nat), ("portable", por)):
            tout[name] = (torch.empty(R, V + D_MLP), torch.empty(R, V + D_MLP))
            mod.bag_t_scatter(idx2, w, grad, tout[name][0])
            mod.bag_t_gather(
                slots.examples, slots.offsets, w.index_select(0, slots.perm), grad, tout[name][1]
            )
            print(
                f"  check train {name} transposed: scatter {diff(ref_t, tout[name][0])}; gather {diff(ref_t, tout[name][1])}"
            )
        res = timeit(
            {
                "torch": t_bag_t,
                "native": lambda: nat.bag_t_scatter(idx2, w, grad, tout["native"][0]),
                "portable": lambda: por.bag_t_scatter(idx2, w, grad, tout["portable"][0]),
                "native_gather": lambda: nat.bag_t_gather(
                    slots.examples,
                    slots.offsets,
                    w.index_select(0, slots.perm),
                    grad,
                    tout["native"][1],
                ),
            }
        )
        report(
            f"{preset} train B={B}: transposed bag (R={R}, W={V + D_MLP}) [native/portable: scatter form]",
            res,
        )

with open(os.path.join(tempfile.gettempdir(), "fused_kernels_results.json"), "w") as fh:
    json.dump(RESULTS, fh, indent=1)
