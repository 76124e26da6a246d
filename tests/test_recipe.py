"""The Trainer is the paper's training loop: same optimiser, schedule, loss and steps."""

from __future__ import annotations

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import PAPER_TRAINED, paper_init
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.stepper import Layout
from grok_tui.engine.training.train import Trainer, lr_at
from tests.tl_reference import tl_to_classic


def papers_loop(cfg: RunConfig, steps: int) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Nanda et al.'s loop on a plain TransformerLens model: full batch, AdamW, LambdaLR."""
    model = hooked_model(cfg, paper_init(cfg)).train()
    for name, param in model.named_parameters():
        # The paper's model has no attention biases: keep TransformerLens's at zero.
        if ".attn." in name and name.endswith("bias"):
            param.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(step / 10, 1))
    data = make_dataset(cfg)
    tokens, labels = data.tokens[data.train_idx], data.labels[data.train_idx]
    losses = []
    for _ in range(steps):
        loss = reference_cross_entropy(model(tokens)[:, -1], labels)
        loss.backward()
        losses.append(loss.item())
        opt.step()
        sched.step()
        opt.zero_grad()
    return tl_to_classic(model, cfg), losses


@pytest.mark.parametrize(
    "cfg",
    [
        RunConfig(p=23, frac_train=0.5, epochs=25, checkpoint_every=25, preset="t"),
        RunConfig(epochs=12, checkpoint_every=12),
    ],
    ids=["p23", "p113"],
)
def test_trainer_follows_the_papers_loop(cfg: RunConfig, tmp_path) -> None:
    run = Run.create(tmp_path / "run", cfg, "cpu")
    Trainer(run, "cpu").train()
    ours = run.load_checkpoint(cfg.epochs)
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == list(range(cfg.epochs + 1))

    want, losses = papers_loop(cfg, cfg.epochs)
    ours_losses = [r["train_loss"] for r in rows[: cfg.epochs]]
    assert ours_losses == pytest.approx(losses, rel=1e-5)
    # Adam divides by sqrt(v): where a gradient is rounding noise (dead neurons), the step
    # is +-lr either way, so single weights may differ by ~lr * steps. The updates as a
    # whole must agree: same direction, 1% of the size (a missing weight decay is ~10%).
    start = paper_init(cfg)
    for name, tensor in want.items():
        theirs, mine = tensor - start[name], ours[name] - start[name]
        if not theirs.any():
            assert not mine.any(), name  # biases the paper does not train stay zero
            continue
        assert (mine - theirs).norm() < 0.01 * theirs.norm(), name
        cos = (mine * theirs).sum() / (mine.norm() * theirs.norm())
        assert cos > 0.9999, name
    # Row e's lr is the one step e used: the paper's warm-up, 0 at step 0.
    assert [r["lr"] for r in rows[:12]] == pytest.approx([lr_at(cfg, e) for e in range(12)])
    assert rows[0]["lr"] == 0.0 and rows[10]["lr"] == cfg.lr


def test_optimizer_settings(tmp_path) -> None:
    """The paper's optimiser: AdamW on the 11 weights it trains, its settings in resume.pt."""
    cfg = RunConfig(p=7, frac_train=0.5, epochs=1, preset="t")
    run = Run.create(tmp_path / "r", cfg, "cpu")
    trainer = Trainer(run, "cpu")
    assert trainer.stepper.layout.trained == list(PAPER_TRAINED)
    assert trainer.train().status == "done"
    (group,) = run.load_resume()["optimizer"]["param_groups"]
    assert group["weight_decay"] == 1.0 and group["betas"] == (0.9, 0.98)
    assert group["lr"] == 1e-3 and len(group["params"]) == 11
    assert Layout(RunConfig()).width == 226_816  # the paper model's trained parameters
