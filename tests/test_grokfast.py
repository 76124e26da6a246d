"""Grokfast: the filter is the paper's (its own gradfilter_ema / gradfilter_ma, written out
here on a torch model), and a stopped or killed run resumes exactly as an uninterrupted one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest
import torch

from grok_tui.cli.options import config_from_args
from grok_tui.cli.parser import build_parser
from grok_tui.engine.core.config import ConfigError, RunConfig
from grok_tui.engine.core.grokfast import GradientFilter
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.stepper import MemberState, Stepper
from grok_tui.engine.training.train import TrainControl, Trainer
from tests.devices import TEST_DEVICE
from tests.test_stepper import reference_run

SMALL = RunConfig(
    p=23, frac_train=0.5, d_model=32, n_heads=4, d_head=8, d_mlp=64, epochs=40, preset="t"
)


def gradfilter_ema(m, grads=None, alpha=0.98, lamb=2.0):
    """Lee et al. 2024, github.com/ironjr/grokfast grokfast.py, verbatim in substance."""
    if grads is None:
        grads = {n: p.grad.data.detach() for n, p in m.named_parameters() if p.requires_grad}
    for n, p in m.named_parameters():
        if p.requires_grad:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb
    return grads


def gradfilter_ma(m, grads=None, window_size=100, lamb=5.0):
    """The paper's MA filter (mean, warm-up: no change until the window is full)."""
    if grads is None:
        grads = {n: deque(maxlen=window_size) for n, p in m.named_parameters() if p.requires_grad}
    for n, p in m.named_parameters():
        if p.requires_grad:
            grads[n].append(p.grad.data.detach())
            if len(grads[n]) == window_size:
                avg = sum(grads[n]) / len(grads[n])
                p.grad.data = p.grad.data + avg * lamb
    return grads


def paper_grokfast_run(cfg: RunConfig, epochs: int) -> list[float]:
    """Train losses of W_0..W_epochs: torch's AdamW with the paper's filter before step()."""
    state: dict[str, object] = {"grads": None}

    def grad_filter(model: torch.nn.Module) -> None:
        if cfg.grokfast == "ema":
            state["grads"] = gradfilter_ema(
                model, state["grads"], cfg.grokfast_alpha, cfg.grokfast_lamb
            )
        else:
            state["grads"] = gradfilter_ma(
                model, state["grads"], cfg.grokfast_window, cfg.grokfast_lamb
            )

    rows, _ = reference_run(cfg, epochs, grad_filter)
    return [row[0] for row in rows]


def stepper_losses(cfg: RunConfig, epochs: int) -> list[float]:
    stepper = Stepper([cfg], TEST_DEVICE, [MemberState(0, paper_init(cfg))])
    out = []
    for epoch in range(epochs + 1):
        out.append(stepper.measure()[0, 0].item())
        if epoch < epochs:
            stepper.step()
    return out


@pytest.mark.parametrize(
    "changes",
    [
        {"grokfast": "ema", "grokfast_alpha": 0.9, "grokfast_lamb": 2.0},
        {"grokfast": "ma", "grokfast_window": 7, "grokfast_lamb": 5.0},
    ],
    ids=["ema", "ma"],
)
def test_the_filter_is_the_papers(changes) -> None:
    cfg = SMALL.replace(lr=3e-3, **changes)
    ours, theirs = stepper_losses(cfg, 40), paper_grokfast_run(cfg, 40)
    rel = [abs(a - b) / b for a, b in zip(ours, theirs, strict=True)]
    assert max(rel) < 1e-4
    # ... and the filter matters: without it the losses part from the filtered run's.
    plain = stepper_losses(SMALL.replace(lr=3e-3), 40)
    assert max(abs(a - b) / b for a, b in zip(plain, theirs, strict=True)) > 100 * max(
        rel, default=0
    )
    assert max(abs(a - b) / b for a, b in zip(plain, theirs, strict=True)) > 1e-2


def test_filter_arithmetic_on_a_known_sequence() -> None:
    """h and the output by hand on g_t = t (one coordinate)."""
    ema = GradientFilter(
        RunConfig(grokfast="ema", grokfast_alpha=0.5, grokfast_lamb=2.0), 1, torch.device("cpu")
    )
    got = [ema.apply(torch.tensor([float(t)])).item() for t in (1, 2, 3)]
    # h: 1 (first: 0.5 * 1 + 0.5 * 1), 1.5, 2.25; out = g + 2 h
    assert got == [3.0, 5.0, 7.5]
    ma = GradientFilter(
        RunConfig(grokfast="ma", grokfast_window=2, grokfast_lamb=3.0), 1, torch.device("cpu")
    )
    got = [ma.apply(torch.tensor([float(t)])).item() for t in (1, 2, 3, 4)]
    assert got == [1.0, 2 + 3 * 1.5, 3 + 3 * 2.5, 4 + 3 * 3.5]


def stop_and_resume(tmp_path: Path, cfg: RunConfig, stop: int) -> tuple[Run, Run]:
    straight = Run.create(tmp_path / "straight", cfg, TEST_DEVICE)
    Trainer(straight, TEST_DEVICE).train()
    run = Run.create(tmp_path / "stopped", cfg, TEST_DEVICE)
    control = TrainControl(stop_at=stop)
    assert Trainer(run, TEST_DEVICE).train(control).status == "paused"
    assert run.checkpoint_epochs()[-1] == stop
    assert "grokfast" in torch.load(run.resume_path, weights_only=True)
    assert Trainer(run, TEST_DEVICE).train().status == "done"
    return straight, run


@pytest.mark.parametrize(
    "changes",
    [
        {"grokfast": "ema"},
        {"grokfast": "ma", "grokfast_window": 8, "grokfast_lamb": 5.0},  # window full at the stop
        {"grokfast": "ma", "grokfast_window": 30, "grokfast_lamb": 5.0},  # still filling
    ],
    ids=["ema", "ma-full", "ma-filling"],
)
def test_stop_then_resume_equals_uninterrupted_bit_for_bit(tmp_path, changes) -> None:
    cfg = SMALL.replace(epochs=40, checkpoint_every=10, lr=3e-3, **changes)
    straight, run = stop_and_resume(tmp_path, cfg, stop=20)
    a, b = run.load_checkpoint(40), straight.load_checkpoint(40)
    assert all(torch.equal(a[n], b[n]) for n in a)
    losses = [[r["train_loss"], r["test_loss"]] for r in run.read_metrics()]
    assert losses == [[r["train_loss"], r["test_loss"]] for r in straight.read_metrics()]


def test_a_resume_state_without_the_filter_state_is_refused(tmp_path) -> None:
    cfg = SMALL.replace(epochs=20, checkpoint_every=10, grokfast="ema")
    run = Run.create(tmp_path / "r", cfg, TEST_DEVICE)
    Trainer(run, TEST_DEVICE).train(TrainControl(stop_at=10))
    state = torch.load(run.resume_path, weights_only=True)
    del state["grokfast"]
    torch.save(state, run.resume_path)
    with pytest.raises((RunError, ValueError), match="Grokfast"):
        Trainer(run, TEST_DEVICE)
    state["grokfast"] = {"ema": torch.zeros(5)}
    torch.save(state, run.resume_path)
    with pytest.raises((RunError, ValueError), match="Grokfast EMA does not have shape"):
        Trainer(run, TEST_DEVICE)


def test_cli_options_and_validation() -> None:
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["train", "--grokfast", "ema", "--op", "divide"]))
    assert (cfg.grokfast, cfg.grokfast_alpha, cfg.grokfast_lamb, cfg.op) == (
        "ema",
        0.98,
        2.0,
        "divide",
    )
    cfg = config_from_args(parser.parse_args(["train", "--grokfast", "ma"]))
    assert (cfg.grokfast_window, cfg.grokfast_lamb) == (100, 5.0)  # the paper's MA defaults
    for bad, match in [
        (["--grokfast-alpha", "1.0"], "--grokfast-alpha"),
        (["--grokfast-lamb", "nan"], "--grokfast-lamb"),
        (["--grokfast-window", "0"], "--grokfast-window"),
    ]:
        with pytest.raises(ConfigError, match=match):
            config_from_args(parser.parse_args(["train", "--grokfast", "ma", *bad]))


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path) -> None:
    """A real SIGKILL mid-run: the resumed run's final weights are the uninterrupted run's."""
    args = ["--p", "13", "--frac-train", "0.5", "--checkpoint-every", "25", "--epochs", "400",
            "--grokfast", "ema", "--lr", "3e-3", "--device", "cpu"]  # fmt: skip

    def train(*extra: str, run_dir: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "grok_tui", "train", "--headless", "--run-dir", str(run_dir),
             *args, *extra], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    assert train(run_dir=tmp_path / "straight").wait(timeout=600) == 0
    killed = tmp_path / "killed"
    proc = train(run_dir=killed)
    deadline = time.time() + 300
    while len(list((killed / "checkpoints").glob("*.safetensors"))) < 4:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(
        [sys.executable, "-m", "grok_tui", "open", str(killed), "--resume", "--headless",
         "--device", "cpu"], cwd=tmp_path, capture_output=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    a = Run.open(killed).load_checkpoint(400)
    b = Run.open(tmp_path / "straight").load_checkpoint(400)
    assert all(torch.equal(a[n], b[n]) for n in a)
