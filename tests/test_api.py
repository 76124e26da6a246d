"""The notebook API: open_run reads a run; its TransformerLens model reproduces the logged
losses and the Snapshot's activations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_tui import open_run
from grok_tui.api import GrokRun
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.train import Trainer

CFG = RunConfig(p=23, frac_train=0.6, lr=3e-3, epochs=200, checkpoint_every=50, preset="t")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> GrokRun:
    path = tmp_path_factory.mktemp("api") / "run"
    assert Trainer(Run.create(path, CFG, "cpu"), "cpu").train().status == "done"
    return open_run(path)


def test_epochs_metrics_weights(run: GrokRun) -> None:
    assert run.epochs == [0, 50, 100, 150, 200]
    m = run.metrics()
    assert list(m["epoch"]) == list(range(201))
    assert all(m[k].dtype == np.float64 and len(m[k]) == 201 for k in m)
    w = run.weights(100)
    assert w["embed.W_E"].shape == (CFG.p + 1, CFG.d_model)
    assert torch.equal(run.weights()["embed.W_E"], run.weights(200)["embed.W_E"])
    with pytest.raises(RunError, match="no checkpoint at epoch 75"):
        run.weights(75)
    with pytest.raises(RunError):
        open_run(Path("/nonexistent/run"))


@pytest.mark.parametrize("epoch", [50, 200])
def test_model_reproduces_the_logged_losses(run: GrokRun, epoch: int) -> None:
    model = run.model(epoch)
    data = run.dataset()
    with torch.no_grad():
        logits = model(run.tokens())[:, -1, :].double()  # all p + 1 classes, as the trainer
    m = run.metrics()
    row = int(np.flatnonzero(m["epoch"] == epoch)[0])
    train = reference_cross_entropy(logits[data.train_idx], data.labels[data.train_idx])
    test = reference_cross_entropy(logits[data.test_idx], data.labels[data.test_idx])
    assert float(train) == pytest.approx(m["train_loss"][row], rel=1e-4)
    assert float(test) == pytest.approx(m["test_loss"][row], rel=1e-4)


def test_cached_activations_equal_the_snapshot(run: GrokRun) -> None:
    p, h = CFG.p, CFG.n_heads
    model = run.model(150)
    with torch.no_grad():
        _, cache = model.run_with_cache(run.tokens())
    snap = run.snapshot(150)
    pattern = cache["blocks.0.attn.hook_pattern"][:, :, -1, :].numpy()  # (p^2, h, 3)
    post = cache["blocks.0.mlp.hook_post"][:, -1, :].numpy()  # (p^2, d_mlp)
    assert np.allclose(pattern[:, :, 0].T.reshape(h, p, p), snap.attn_key0, atol=1e-5)
    assert np.allclose(pattern.mean(axis=0), snap.avg_attn, atol=1e-5)
    assert np.allclose(post.reshape(p, p, -1), snap.neuron_acts, rtol=1e-4, atol=1e-5)
    assert snap.epoch == 150


def test_measures_cover_every_checkpoint(run: GrokRun) -> None:
    table = run.measures()
    assert list(table.epochs) == run.epochs
    assert set(table.phases()) == {"memorisation_end", "circuit_formation_end", "cleanup_end"}


def test_open_run_is_lazy() -> None:
    """`import grok_tui` stays light; TransformerLens loads with the first model only."""
    code = (
        "import sys, grok_tui\n"
        "print('torch' in sys.modules)\n"
        "from grok_tui import open_run\n"
        "print('transformer_lens' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_wrong_inputs_are_one_line_errors_never_a_quiet_wrong_answer(run: GrokRun) -> None:
    """Found by probing: `neurons='123'` ablated neurons 1, 2 and 3, `heads=[0.9]` head 0
    and `neurons=[True]` neuron 1 without a word; `heads=5`, `weights(50.0)`, `llc(epochs=5)`,
    `open_run(None)` and `open_run(path, device='auto'...)` failed deep inside torch or
    pathlib."""
    from grok_tui.engine.core.device import DeviceError
    from grok_tui.errors import UserError

    first = run.epochs[0]
    for bad in ({"neurons": "123"}, {"heads": [0.9]}, {"neurons": [True]}, {"heads": 5},
                {"heads": ["a"]}, {"heads": [None]}, {"keep_freqs": 5}, {"mode": 3}):  # fmt: skip
        with pytest.raises(UserError) as exc:
            run.ablate(first, **bad)
        assert "\n" not in str(exc.value)
    assert run.ablate(first, heads=[np.int64(1)]).ablation.heads == (1,)  # numpy ints: fine
    for epoch in (float(first), str(first), True):
        with pytest.raises(RunError, match="an epoch is an integer"):
            run.weights(epoch)
    with pytest.raises(RunError, match="a list of checkpoint epochs"):
        run.llc(epochs=5)
    with pytest.raises(RunError, match="a list of checkpoint epochs"):
        run.llc(epochs=str(first))
    for path in (None, 5):
        with pytest.raises(RunError, match="a run is a directory's path"):
            open_run(path)
    for device in ("CPU", "bogus", 5):
        with pytest.raises(DeviceError, match=r"^device .* is not one of auto, cpu"):
            open_run(run.path, device=device)
    assert open_run(run.path, device="auto").device in ("cpu", "cuda", "mps")
    assert open_run(run.path, device=torch.device("cpu")).device == "cpu"  # as before
    for bad in ({"neurons": torch.tensor([0.5])}, {"neurons": np.array([[1, 2]])}):
        with pytest.raises(UserError, match="must be integers"):  # not their TypeError
            run.ablate(first, **bad)
    with pytest.raises(RunError, match="an epoch is an integer"):
        run.weights(torch.tensor(float(first)))
