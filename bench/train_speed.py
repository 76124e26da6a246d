"""Training speed: the exact fast path against the reference loop, in one process.

Reference: the paper's loop on a plain TransformerLens model (full forward over all three
positions, float64 log_softmax, AdamW step, test loss every epoch under inference_mode).
Fast: grok-tui's Trainer step (per-token tables, last position only, train and test metrics
of the same weights, AdamW step): "fast loop" with its closed-form gradient
(engine/core/closed_form.py, what training uses), "fast loop, autograd" with autograd through
`fastpath` (the fast loop before issue 21). Blocks of each
alternate, so drifting machine load hits all; ratios are medians of per-block ratios. The
CPU model and the load average (before and after) are printed beside the figures.

    .venv/bin/python bench/train_speed.py [--device cpu|cuda] [--blocks 5] [--preset quick]

`--clock cpu` times the loops by the process's CPU time instead of the wall clock (with
`--threads 1`: the CPU time each epoch costs, which a loaded machine inflates far less than
the wall time; `Trainer.train()` with I/O stays on the wall clock).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer, keep_freed_memory

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class ReferenceLoop:
    """Nanda et al.'s training loop on a TransformerLens model."""

    def __init__(self, cfg: RunConfig, device: str) -> None:
        self.model = hooked_model(cfg, paper_init(cfg), device).train()
        data = make_dataset(cfg).to(device)
        self.train_tokens = data.tokens[data.train_idx]
        self.test_tokens = data.tokens[data.test_idx]
        self.train_labels = data.labels[data.train_idx]
        self.test_labels = data.labels[data.test_idx]
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(s / 10, 1))

    def epoch(self) -> None:
        logits = self.model(self.train_tokens)[:, -1]
        loss = reference_cross_entropy(logits, self.train_labels)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad()
        with torch.inference_mode():
            test_logits = self.model(self.test_tokens)[:, -1]
            reference_cross_entropy(test_logits, self.test_labels).item()
        loss.item()


class FastLoop:
    """The Trainer's own epoch: metrics of W_e on train and test, then the step; `gradient`
    as `Stepper` takes it ("closed-form", what training uses, or "autograd")."""

    def __init__(self, cfg: RunConfig, device: str, workdir: Path, gradient: str) -> None:
        run = Run.create(workdir / f"fast-{gradient}", cfg, device)
        self.stepper = Trainer(run, device).stepper
        self.stepper.gradient = gradient

    def epoch(self) -> None:
        metrics = self.stepper.measure()
        self.stepper.step()
        metrics.tolist()  # what a flush costs when it happens every epoch


class GemmFloor:
    """The float32 GEMMs no exact rewrite removes from an epoch, alone: the logits of all
    p^2 inputs (post @ W_L), and on the train set the gradients grad_post = g @ W_L^T and
    grad_W_L = post^T @ g. Each with the fastest kernel this process has (torch.matmul,
    or oneDNN's linear where torch ships it), picked per GEMM during warm-up."""

    def __init__(self, cfg: RunConfig, device: str) -> None:
        n_all, n_train = cfg.p**2, cfg.n_train
        g = torch.Generator().manual_seed(0)

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g).to(device)

        post_all, w_l = rand(n_all, cfg.d_mlp).relu_(), rand(cfg.d_mlp, cfg.d_vocab)
        post, grad = post_all[:n_train].contiguous(), rand(n_train, cfg.d_vocab)
        w_l_t = w_l.T.contiguous()
        lin = getattr(torch.ops.mkldnn, "_linear_pointwise", None)

        def with_onednn(plain, x: torch.Tensor, w: torch.Tensor) -> list:
            """torch's kernel, and oneDNN's linear x @ w^T when torch ships it."""
            if lin is None or device != "cpu":
                return [plain]
            return [plain, lambda: lin(x, w, None, "none", [], "")]

        post_t = post.T.contiguous()
        candidates = [
            with_onednn(lambda: post_all @ w_l, post_all, w_l_t),
            with_onednn(lambda: grad @ w_l.T, grad, w_l),
            with_onednn(lambda: post.T @ grad, post_t, grad.T.contiguous()),
        ]
        timed = [[(best_of(f, device), f) for f in c] for c in candidates]
        self.gemms = [min(t, key=lambda pair: pair[0])[1] for t in timed]
        # ms of each GEMM with torch's kernel, and with oneDNN's where it has one
        self.kernels = [[1e3 * t for t, _ in pairs] for pairs in timed]

    def epoch(self) -> None:
        for f in self.gemms:
            f()


def best_of(f, device: str, n: int = 5) -> float:
    times = []
    for _ in range(n):
        sync(device)
        start = clock()
        f()
        sync(device)
        times.append(clock() - start)
    return min(times)


def time_epochs(loop, n: int, device: str) -> float:
    sync(device)
    start = clock()
    for _ in range(n):
        loop.epoch()
    sync(device)
    return (clock() - start) / n


def full_run_rate(cfg: RunConfig, device: str, workdir: Path, epochs: int) -> float:
    """Epochs per second of Trainer.train() itself: flushes, metrics.jsonl, checkpoints."""
    run = Run.create(workdir / "full", cfg.replace(epochs=epochs), device)
    trainer = Trainer(run, device)
    start = time.perf_counter()
    trainer.train()
    return epochs / (time.perf_counter() - start)


def cpu_model() -> str:
    """The CPU's model name (lscpu's), for the figures' context."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ratio_text(slow: list[float], fast: list[float]) -> str:
    """How much faster `fast` ran than `slow`, block for block: the median of the per-block
    ratios and their spread, e.g. "1.20x (min 1.16x, max 1.24x)"."""
    ratios = [s / f for s, f in zip(slow, fast, strict=True)]
    return (f"{statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")  # fmt: skip


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--ref-epochs", type=int, default=10)
    parser.add_argument("--fast-epochs", type=int, default=100)
    parser.add_argument("--full-epochs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--no-reference", action="store_true", help="skip the TransformerLens loop")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall or CPU time")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device == "cpu":
        keep_freed_memory()  # the Trainer does this; give the reference the same allocator
    cfg = preset(args.preset) if args.preset != "paper" else RunConfig()
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        loops = {} if args.no_reference else {"reference": ReferenceLoop(cfg, device)}
        loops["autograd"] = FastLoop(cfg, device, Path(tmp), "autograd")
        loops["closed-form"] = FastLoop(cfg, device, Path(tmp), "closed-form")
        floor = GemmFloor(cfg, device)
        for name, loop in loops.items():  # warm-up
            time_epochs(loop, 3 if name == "reference" else 10, device)
        time_epochs(floor, 10, device)
        ms: dict[str, list[float]] = {name: [] for name in loops}
        floor_ms = []
        for _ in range(args.blocks):
            for name, loop in loops.items():
                n = args.ref_epochs if name == "reference" else args.fast_epochs
                ms[name].append(1e3 * time_epochs(loop, n, device))
            floor_ms.append(1e3 * time_epochs(floor, args.fast_epochs, device))
        full = full_run_rate(cfg, device, Path(tmp), args.full_epochs)
    load_after = load()

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    name = torch.cuda.get_device_name() if device.startswith("cuda") else cpu_model()
    threads = torch.get_num_threads()
    wait = os.environ.get("OMP_WAIT_POLICY", "default")
    print(f"device: {device} ({name}), torch {torch.__version__}, {threads} threads, "
          f"OMP_WAIT_POLICY={wait}, {args.clock} clock")  # fmt: skip
    print(f"{args.preset} preset (p = {cfg.p}); {load_before} before, {load_after} after")
    stepped_on = loops["closed-form"].stepper.caller_threads or threads
    if stepped_on != threads:  # engine/training/stepper.py, `caller_threads`
        print(f"the Trainer steps this model on {stepped_on} torch thread(s) (the fast loops "
              f"too); the reference and the GEMM floor use {threads}")  # fmt: skip
    labels = {"reference": "reference loop", "closed-form": "fast loop",
              "autograd": "fast loop, autograd"}  # fmt: skip
    for key in ("reference", "closed-form", "autograd"):
        if key in ms:
            print(f"{labels[key] + ':':21s}{med(ms[key]):8.2f} ms/epoch  (blocks: "
                  + ", ".join(f"{x:.1f}" for x in ms[key]) + ")")  # fmt: skip
    print(f"GEMM floor:          {med(floor_ms):8.2f} ms/epoch  (blocks: "
          + ", ".join(f"{x:.1f}" for x in floor_ms) + ")")  # fmt: skip
    names = ("logits, all inputs", "grad_post, train", "grad_W_L, train")
    for gemm, times in zip(names, floor.kernels, strict=True):
        dnn = f", oneDNN {times[1]:.2f} ms" if len(times) > 1 else ""
        print(f"  {gemm}: torch.matmul {times[0]:.2f} ms{dnn} (best of 5, at start)")
    for key in ("closed-form", "autograd"):
        shares = [g / f for g, f in zip(floor_ms, ms[key], strict=True)]
        line = (
            f"{labels[key]} at {med(shares):.0%} of the GEMM floor's speed (median of "
            f"per-block floor / loop; min {min(shares):.0%}, max {max(shares):.0%})"
        )
        if "reference" in ms:
            line += f"; the reference's time over its own: {ratio_text(ms['reference'], ms[key])}"
        print(line)
    print(
        "fast loop / fast loop with autograd, speed: "
        + ratio_text(ms["autograd"], ms["closed-form"])
    )
    print(
        f"Trainer.train() with I/O: {full:.1f} epochs/s = {1e3 / full:.2f} ms/epoch "
        f"({args.full_epochs} epochs, checkpoint every {cfg.checkpoint_every}; closed form)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
