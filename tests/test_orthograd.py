"""Prieto et al. 2025's training options: ⊥Grad against their published OrthoGrad, StableMax
and ⊥Grad trajectories against a plain torch loop with their definitions, members that mix
them, resume, run.json, the command line and sweeps."""

from __future__ import annotations

import json

import pytest
import torch

from grok_tui.cli.entry import main
from grok_tui.cli.options import config_from_args
from grok_tui.cli.parser import build_parser
from grok_tui.engine.core.config import ConfigError, RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import loss_and_accuracy, reference_stablemax_loss
from grok_tui.engine.core.model import GrokModel, InputPlan, paper_init
from grok_tui.engine.core.orthograd import Orthogonaliser
from grok_tui.engine.lab.sweep import SweepSpec
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.stepper import MemberState, Stepper, lr_at
from grok_tui.engine.training.train import TrainControl, Trainer
from tests.devices import TEST_DEVICE

SMALL = RunConfig(
    p=23, frac_train=0.5, d_model=32, n_heads=4, d_head=8, d_mlp=64, epochs=30, lr=3e-3,
    weight_decay=0.0, preset="t",
)  # fmt: skip


class OrthoGrad(torch.optim.Optimizer):
    """github.com/LucasPrietoAl/grokking-at-the-edge-of-numerical-stability orthograd.py,
    verbatim but for comments."""

    def __init__(self, params, base_optimizer_cls=torch.optim.SGD, **base_optimizer_args):
        defaults = {}
        super().__init__(params, defaults)
        self.base_optimizer = base_optimizer_cls(self.param_groups, **base_optimizer_args)

    @staticmethod
    def _orthogonalize_gradients(params):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    w = p.view(-1)
                    g = p.grad.view(-1)
                    w_norm_sq = torch.dot(w, w) + 1e-30
                    proj = torch.dot(w, g) / w_norm_sq
                    g_orth = g - proj * w
                    g_norm = g.norm(2)
                    g_orth_norm = g_orth.norm(2) + 1e-30
                    g_orth_scaled = g_orth * (g_norm / g_orth_norm)
                    p.grad.copy_(g_orth_scaled.view_as(p.grad))

    def step(self, closure=None):
        for group in self.param_groups:
            self._orthogonalize_gradients(group["params"])
        return self.base_optimizer.step(closure)


def test_the_orthogonaliser_is_their_projection() -> None:
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4, 2), (6,)]
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[3].zero_()  # a zero parameter (a bias at init): the gradient passes unchanged
    grads = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    theirs = [torch.nn.Parameter(p.clone()) for p in params]
    for t, gr in zip(theirs, grads, strict=True):
        t.grad = gr.clone()
    OrthoGrad._orthogonalize_gradients(theirs)
    flat_w = torch.cat([p.reshape(-1) for p in params])
    flat_g = torch.cat([gr.reshape(-1) for gr in grads])
    ours = Orthogonaliser([p.numel() for p in params]).apply(flat_g, flat_w)
    torch.testing.assert_close(ours, torch.cat([t.grad.reshape(-1) for t in theirs]))
    # What it is: per parameter, orthogonal to the parameter, with the gradient's norm.
    for part, w, gr in zip(ours.split([p.numel() for p in params]), params, grads, strict=True):
        assert abs(float(part @ w.reshape(-1))) < 1e-12 * float(w.norm() * gr.norm()) + 1e-30
        assert float(part.norm()) == pytest.approx(float(gr.norm()), rel=1e-12)
    assert torch.equal(ours[-6:], grads[3])


def their_run(cfg: RunConfig, epochs: int) -> list[float]:
    """Train cross-entropy of W_0..W_epochs: a GrokModel trained by a plain torch loop with
    their loss (`stablemax_cross_entropy`) and their OrthoGrad around torch's AdamW, float64."""
    model = GrokModel(cfg).to(torch.float64)
    model.load_classic(paper_init(cfg))
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "betas": (cfg.beta1, cfg.beta2)}
    if cfg.orthogonal_grad:
        opt = OrthoGrad(model.parameters(), torch.optim.AdamW, **kwargs)
        sched_opt = opt.base_optimizer
    else:
        opt = sched_opt = torch.optim.AdamW(model.parameters(), **kwargs)
    sched = torch.optim.lr_scheduler.LambdaLR(sched_opt, lambda s: lr_at(cfg, s) / cfg.lr)
    data = make_dataset(cfg)
    plan = InputPlan(data.x[data.train_idx], data.y[data.train_idx], cfg.p, cfg.n_heads)
    labels = data.labels[data.train_idx]
    losses = []
    for epoch in range(epochs + 1):
        logits = model.plan_logits(model.tables(), plan)
        losses.append(loss_and_accuracy(logits.detach(), labels)[0].item())
        if epoch == epochs:
            break
        objective = (
            reference_stablemax_loss(logits, labels)
            if cfg.loss == "stablemax"
            else loss_and_accuracy(logits, labels)[0]
        )
        objective.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return losses


def stepper_run(cfg: RunConfig, epochs: int) -> list[float]:
    st = Stepper([cfg], TEST_DEVICE, [MemberState(0, paper_init(cfg))], dtype=torch.float64)
    out = []
    for epoch in range(epochs + 1):
        out.append(st.measure()[0, 0].item())
        if epoch < epochs:
            st.step()
    return out


VARIANTS = {
    "stablemax": {"loss": "stablemax"},
    "orthograd": {"orthogonal_grad": True},
    "both": {"loss": "stablemax", "orthogonal_grad": True, "weight_decay": 0.5},
}


@pytest.mark.parametrize("changes", list(VARIANTS.values()), ids=list(VARIANTS))
def test_the_fast_path_trains_as_their_definitions_do(changes) -> None:
    cfg = SMALL.replace(**changes)
    ours, theirs = stepper_run(cfg, 30), their_run(cfg, 30)
    rel = max(abs(a - b) / b for a, b in zip(ours, theirs, strict=True))
    assert rel < 1e-9
    # ... and the option matters: plain training parts from it.
    plain = stepper_run(SMALL.replace(weight_decay=cfg.weight_decay), 30)
    assert max(abs(a - b) / b for a, b in zip(plain, theirs, strict=True)) > 1e-3


def test_members_mixing_the_options_train_as_their_single_runs() -> None:
    cfgs = [SMALL, *(SMALL.replace(seed=i + 1, **c) for i, c in enumerate(VARIANTS.values()))]
    states = [MemberState(0, paper_init(c)) for c in cfgs]
    st = Stepper(cfgs, TEST_DEVICE, states, chunk_size=len(cfgs), dtype=torch.float64)
    history = []
    for epoch in range(21):
        history.append(st.measure()[:, 0].tolist())
        if epoch < 20:
            st.step()
    for m, cfg in enumerate(cfgs):
        single = stepper_run(cfg, 20)
        ours = [row[m] for row in history]
        assert max(abs(a - b) / b for a, b in zip(ours, single, strict=True)) < 1e-10


def test_stop_then_resume_equals_uninterrupted_bit_for_bit(tmp_path) -> None:
    cfg = SMALL.replace(epochs=40, checkpoint_every=10, loss="stablemax", orthogonal_grad=True)
    straight = Run.create(tmp_path / "straight", cfg, TEST_DEVICE)
    Trainer(straight, TEST_DEVICE).train()
    run = Run.create(tmp_path / "stopped", cfg, TEST_DEVICE)
    assert Trainer(run, TEST_DEVICE).train(TrainControl(stop_at=20)).status == "paused"
    resumed = Run.open(run.path)
    assert resumed.meta().config == cfg  # the options come back from run.json
    assert Trainer(resumed, TEST_DEVICE).train().status == "done"
    a, b = resumed.load_checkpoint(40), straight.load_checkpoint(40)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_run_json_without_the_fields_loads_and_bad_values_are_one_line() -> None:
    old = {k: v for k, v in SMALL.to_dict().items() if k not in ("loss", "orthogonal_grad")}
    cfg = RunConfig.from_dict(json.loads(json.dumps(old)))
    assert (cfg.loss, cfg.orthogonal_grad) == ("cross-entropy", False)
    with pytest.raises(ConfigError, match="--loss must be one of cross-entropy, stablemax"):
        RunConfig.from_dict({**old, "loss": "softmax"})
    with pytest.raises(ConfigError, match="'orthogonal_grad' must be bool"):
        RunConfig.from_dict({**old, "orthogonal_grad": 1})


def test_train_flags(capsys) -> None:
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["train", "--loss", "stablemax", "--orthogonal-grad"]))
    assert (cfg.loss, cfg.orthogonal_grad) == ("stablemax", True)
    cfg = config_from_args(parser.parse_args(["train", "--no-orthogonal-grad"]))
    assert (cfg.loss, cfg.orthogonal_grad) == ("cross-entropy", False)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "--loss {cross-entropy,stablemax}" in out and "--orthogonal-grad" in out
    assert main(["train", "--loss", "softmax"]) == 2
    assert "--loss" in capsys.readouterr().err


def test_sweep_axes(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--preset", "quick", "--loss", "cross-entropy,stablemax",
            "--orthogonal-grad", "off,on", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "4 members" in err and "loss-stablemax_og1" in err
    assert main([*argv[:-3], "--orthogonal-grad", "maybe", "--dry-run"]) == 2
    assert "--orthogonal-grad: 'maybe' is not on/off" in capsys.readouterr().err
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'preset = "quick"\nloss = ["cross-entropy", "stablemax"]\northogonal_grad = true\n'
    )
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    assert "2 members" in capsys.readouterr().err
    members = SweepSpec(SMALL, {"orthogonal_grad": [False, True]}).validated().members()
    assert [m.config.orthogonal_grad for m in members] == [False, True]
