"""Training speed: the exact fast path against the reference loop, in one process.

Reference: the paper's loop on a plain TransformerLens model (full forward over all three
positions, float64 log_softmax, AdamW step, test loss every epoch under inference_mode).
Fast: grok-tui's Trainer step (per-token tables, last position only, train and test metrics
of the same weights, AdamW step). Blocks of each alternate, so drifting machine load hits
both; the ratio is the median over blocks.

    .venv/bin/python bench/train_speed.py [--device cpu|cuda] [--blocks 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer, keep_freed_memory


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
    """The Trainer's own epoch: metrics of W_e on train and test, then the step."""

    def __init__(self, cfg: RunConfig, device: str, workdir: Path) -> None:
        run = Run.create(workdir / "fast", cfg, device)
        self.stepper = Trainer(run, device).stepper

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
        start = time.perf_counter()
        f()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def time_epochs(loop, n: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        loop.epoch()
    sync(device)
    return (time.perf_counter() - start) / n


def full_run_rate(cfg: RunConfig, device: str, workdir: Path, epochs: int) -> float:
    """Epochs per second of Trainer.train() itself: flushes, metrics.jsonl, checkpoints."""
    run = Run.create(workdir / "full", cfg.replace(epochs=epochs), device)
    trainer = Trainer(run, device)
    start = time.perf_counter()
    trainer.train()
    return epochs / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--ref-epochs", type=int, default=10)
    parser.add_argument("--fast-epochs", type=int, default=100)
    parser.add_argument("--full-epochs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device == "cpu":
        keep_freed_memory()  # the Trainer does this; give the reference the same allocator
    cfg = RunConfig()
    with tempfile.TemporaryDirectory() as tmp:
        ref, fast = ReferenceLoop(cfg, device), FastLoop(cfg, device, Path(tmp))
        floor = GemmFloor(cfg, device)
        time_epochs(ref, 3, device)  # warm-up
        time_epochs(fast, 10, device)
        time_epochs(floor, 10, device)
        ref_ms, fast_ms, floor_ms = [], [], []
        for _ in range(args.blocks):
            ref_ms.append(1e3 * time_epochs(ref, args.ref_epochs, device))
            fast_ms.append(1e3 * time_epochs(fast, args.fast_epochs, device))
            floor_ms.append(1e3 * time_epochs(floor, args.fast_epochs, device))
        ratios = [r / f for r, f in zip(ref_ms, fast_ms, strict=True)]
        fractions = [g / f for g, f in zip(floor_ms, fast_ms, strict=True)]
        full = full_run_rate(cfg, device, Path(tmp), args.full_epochs)

    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    threads = torch.get_num_threads()
    print(f"device: {device} ({name}), torch {torch.__version__}, {threads} threads")
    print(f"reference loop: {statistics.median(ref_ms):8.2f} ms/epoch  (blocks: "
          + ", ".join(f"{x:.1f}" for x in ref_ms) + ")")  # fmt: skip
    print(f"fast loop:      {statistics.median(fast_ms):8.2f} ms/epoch  (blocks: "
          + ", ".join(f"{x:.1f}" for x in fast_ms) + ")")  # fmt: skip
    print(
        f"speed-up:       {statistics.median(ratios):8.2f}x (median of per-block ratios; "
        f"min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )
    print(f"GEMM floor:     {statistics.median(floor_ms):8.2f} ms/epoch  (blocks: "
          + ", ".join(f"{x:.1f}" for x in floor_ms) + ")")  # fmt: skip
    names = ("logits, all inputs", "grad_post, train", "grad_W_L, train")
    for name, times in zip(names, floor.kernels, strict=True):
        dnn = f", oneDNN {times[1]:.2f} ms" if len(times) > 1 else ""
        print(f"  {name}: torch.matmul {times[0]:.2f} ms{dnn} (best of 5, at start)")
    print(
        f"fast loop at {statistics.median(fractions):.0%} of the GEMM floor's speed "
        f"(median of per-block floor / fast; min {min(fractions):.0%}, max {max(fractions):.0%})"
    )
    print(
        f"Trainer.train() with I/O: {full:.1f} epochs/s = {1e3 / full:.2f} ms/epoch "
        f"({args.full_epochs} epochs, checkpoint every {cfg.checkpoint_every})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
