"""How fast is the analysis? (a) one Snapshot for p = 113 against a TransformerLens reference,
(b) progress measures over a synthetic run of many checkpoints.

    .venv/bin/python bench/analysis_speed.py                  # p = 113, 500 checkpoints
    .venv/bin/python bench/analysis_speed.py --checkpoints 100 --repeats 5
    .venv/bin/python bench/analysis_speed.py --device cuda     # both sides on the GPU

(a) The reference is what the analysis would be without the fast path: `run_with_cache`
over all p^2 inputs, then the same quantities computed plainly (full 2D transforms of every
neuron by einsum, block shares by a loop over frequencies, circuits from the TL weight
views). Both run in this process, so the ratio is fair even on a busy machine.
(b) Writes N checkpoints of the paper's initial weights, each perturbed, into a temporary
run directory, then times `ProgressTracker.update()` over all of them (load, forward, the
record of each, saved), reopening from the cache, and a change of key set on the first
--key-change checkpoints (rebuild from the records, plus the new set's excluded losses).
Prints medians and a markdown summary.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core import fourier
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

PAPER_KEY_FREQS = (14, 35, 41, 42, 52)  # the published run's; only sets the work per row


def reference_snapshot(cfg: RunConfig, tl: Any, f: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Snapshot's quantities the plain way, from a TransformerLens cache (on f's device;
    the results stay there, as a Snapshot's would be read back: see `sync`)."""
    p, h = cfg.p, cfg.n_heads
    data = make_dataset(cfg).to(f.device)
    with torch.no_grad():
        logits, cache = tl.run_with_cache(all_tokens(p).to(f.device))
        logits = logits[:, -1, :p]
        pattern = cache["blocks.0.attn.hook_pattern"][:, :, -1]
        post = cache["blocks.0.mlp.hook_post"][:, -1]
        out = {
            "train_loss": torch.nn.functional.cross_entropy(
                logits[data.train_idx], data.labels[data.train_idx]
            ),
            "test_loss": torch.nn.functional.cross_entropy(
                logits[data.test_idx], data.labels[data.test_idx]
            ),
            "avg_attn": pattern.mean(0),
        }
        attn0 = pattern[:, :, 0].T.reshape(h, p, p)
        out["attn_key0_fourier"] = torch.einsum("hxy,ix,jy->hij", attn0, f, f)
        acts = post.reshape(p, p, -1)
        spec = torch.einsum("xyn,ix,jy->ijn", acts - acts.mean((0, 1)), f, f)
        total = spec.square().sum((0, 1))
        shares = torch.stack(
            [
                spec[[0, 2 * k - 1, 2 * k]][:, [0, 2 * k - 1, 2 * k]].square().sum((0, 1)) / total
                for k in range(1, (p - 1) // 2 + 1)
            ]
        )
        out["neuron_frac"], out["neuron_freq"] = shares.max(0)
        out["logits_fourier_sq"] = (
            torch.einsum("xyc,ix,jy->ijc", logits.reshape(p, p, p), f, f).square().sum(2)
        )
        w_e = tl.W_E[:p]
        out["embed_fourier_sq"] = (f @ w_e).square().sum(1)
        out["W_neur"] = torch.stack(
            [w_e @ tl.W_V[0, i] @ tl.W_O[0, i] @ tl.W_in[0] for i in range(h)]
        )
        out["W_attn"] = torch.stack(
            [(tl.W_E[p] + tl.W_pos[2]) @ tl.W_Q[0, i] @ tl.W_K[0, i].T @ w_e.T for i in range(h)]
        ) / math.sqrt(cfg.d_head)
        out["W_L_fourier"] = (tl.W_out[0] @ tl.W_U[:, :p]) @ f.T
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Any, repeats: int, device: str = "cpu") -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench_snapshot(repeats: int, device: str = "cpu") -> dict[str, float]:
    from grok_tui.engine.core.tl import hooked_model

    cfg = RunConfig()
    weights = paper_init(cfg)
    analyzer = Analyzer(cfg, device)
    tl = hooked_model(cfg, weights, device)
    f = fourier.fourier_basis(cfg.p).to(device)
    analyzer.snapshot(weights, 0)  # warm up both
    reference_snapshot(cfg, tl, f)
    fast, ref = [], []
    for _ in range(repeats):  # interleaved, so load changes hit both alike
        fast += timed(lambda: analyzer.snapshot(weights, 0), 1, device)
        ref += timed(lambda: reference_snapshot(cfg, tl, f), 1, device)
    fresh = timed(lambda: Analyzer(cfg, device).snapshot(weights, 0), max(1, repeats // 3), device)
    return {
        "fast_ms": 1e3 * statistics.median(fast),
        "fast_min_ms": 1e3 * min(fast),
        "fresh_ms": 1e3 * statistics.median(fresh),
        "ref_ms": 1e3 * statistics.median(ref),
        "ratio": statistics.median(ref) / statistics.median(fast),
    }


def bench_progress(
    n_checkpoints: int, root: Path, key_change: int, device: str = "cpu"
) -> dict[str, float]:
    cfg = RunConfig().replace(checkpoint_every=100, epochs=100 * (n_checkpoints - 1))
    run = Run.create(root / "synthetic", cfg, device="cpu")
    base = paper_init(cfg)
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    for i in range(n_checkpoints):
        scale = 1.0 - 0.5 * i / n_checkpoints  # weights shrink, as with weight decay
        run.save_checkpoint(
            100 * i,
            {k: v * scale + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()},
        )
    write_s = time.perf_counter() - start

    tracker = ProgressTracker(run, device)
    start = time.perf_counter()
    done = tracker.update()
    total_s = time.perf_counter() - start
    assert len(done) == n_checkpoints

    start = time.perf_counter()
    again = ProgressTracker(run, device)
    assert again.update() == []
    table = again.table()
    cached_s = time.perf_counter() - start
    assert len(table) == n_checkpoints

    # A key-set change on the first `key_change` checkpoints: the restricted loss, trig
    # fractions, Table 1 are rebuilt from the records at once; the excluded losses of the
    # new set need one train forward per checkpoint. "Absorbed": all of it, table included.
    cut = ProgressTracker(run, device)
    cut.update()
    start = time.perf_counter()
    cut.table(upto=100 * (key_change - 1))
    rebuild_s = time.perf_counter() - start
    start = time.perf_counter()
    for epoch in cut.epochs()[:key_change]:
        weights = run.load_checkpoint(epoch, cfg)
        coeffs = cut.records[epoch].arrays["logit_coeffs"]
        cut.recorder.excluded_losses(weights, PAPER_KEY_FREQS, coeffs)
    cut.table(upto=100 * (key_change - 1))
    absorbed_s = time.perf_counter() - start + rebuild_s
    return {
        "checkpoints": n_checkpoints,
        "write_s": write_s,
        "total_s": total_s,
        "ms_per_checkpoint": 1e3 * total_s / n_checkpoints,
        "cached_reopen_s": cached_s,
        "key_change_checkpoints": key_change,
        "key_change_rebuild_s": rebuild_s,
        "key_change_absorbed_s": absorbed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="snapshot timings (median)")
    parser.add_argument("--checkpoints", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-progress", action="store_true")
    parser.add_argument("--key-change", type=int, default=150, help="checkpoints re-keyed")
    parser.add_argument("--device", default="cpu", help="cpu, cuda[:N], auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    snap = bench_snapshot(args.repeats, device)
    print(
        f"snapshot p=113: fast {snap['fast_ms']:.1f} ms (min {snap['fast_min_ms']:.1f}, "
        f"fresh Analyzer {snap['fresh_ms']:.1f}), reference {snap['ref_ms']:.1f} ms, "
        f"ratio {snap['ratio']:.1f}x"
    )
    prog = None
    if not args.skip_progress:
        with tempfile.TemporaryDirectory() as tmp:
            prog = bench_progress(args.checkpoints, Path(tmp), args.key_change, device)
        print(
            f"progress: {prog['checkpoints']} checkpoints recorded in {prog['total_s']:.1f} s "
            f"= {prog['ms_per_checkpoint']:.1f} ms/checkpoint; reopen from cache "
            f"{prog['cached_reopen_s']:.2f} s; key-set change on {args.key_change} "
            f"checkpoints: table rebuilt in {prog['key_change_rebuild_s']:.2f} s, absorbed "
            f"(excluded losses too) in {prog['key_change_absorbed_s']:.1f} s"
        )

    print("\n| measure | value |\n|---|---|")
    print(f"| Snapshot p=113, fast path (median of {args.repeats}) | {snap['fast_ms']:.0f} ms |")
    print(
        f"| Snapshot reference: run_with_cache + plain post-processing | {snap['ref_ms']:.0f} ms |"
    )
    print(f"| speed-up | {snap['ratio']:.1f}x |")
    if prog:
        print(
            f"| progress measures, {prog['checkpoints']} checkpoints (p=113) | "
            f"{prog['total_s']:.1f} s ({prog['ms_per_checkpoint']:.0f} ms/checkpoint) |"
        )
        print(f"| reopening: measures from the cache | {prog['cached_reopen_s']:.2f} s |")
        print(
            f"| key-set change, {prog['key_change_checkpoints']} checkpoints: rebuilt from "
            f"records / absorbed with excluded losses | {prog['key_change_rebuild_s']:.2f} s / "
            f"{prog['key_change_absorbed_s']:.1f} s |"
        )


if __name__ == "__main__":
    main()
