"""Ablations (engine/measures/ablate.py): heads and neurons against TransformerLens
`run_with_hooks`, frequencies against a projection written out here, the key frequencies of
a grokked run against chance, and `grok-tui ablate` / `run.ablate`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from grok_tui.api import open_run
from grok_tui.cli import main
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.measures.ablate import Ablation, AblationError, Ablator, ablate_run, replay
from grok_tui.engine.measures.analysis import UNCLUSTERED, Analyzer
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer
from tests.planted import PLANTED
from tests.test_analysis import random_weights
from tests.test_report import TINY as REPORT_TINY

TINY = REPORT_TINY.replace(checkpoint_every=500)  # analyze's tiny run, fewer checkpoints


def scores(logits: torch.Tensor, cfg: RunConfig) -> dict[str, float]:
    """The four scores of (p^2, p) logits, computed plainly."""
    data = make_dataset(cfg)
    logits = logits.double()
    out = {}
    for split, idx in (("train", data.train_idx), ("test", data.test_idx)):
        out[f"{split}_loss"] = float(reference_cross_entropy(logits[idx], data.labels[idx]))
        out[f"{split}_acc"] = float((logits[idx].argmax(1) == data.labels[idx]).double().mean())
    return out


def assert_scores(got: dict[str, float], want: dict[str, float]) -> None:
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def tl_ablated(
    cfg: RunConfig, weights: dict[str, torch.Tensor], heads=(), neurons=(), mode="zero"
) -> torch.Tensor:
    """Logits (p^2, p) of TransformerLens with hooks on the last position: hook_z per head
    (the head's output is z @ W_O[h], linear in z, so zeroing or averaging z does the same to
    the output) and mlp.hook_post per neuron; means from a clean run_with_cache."""
    tl = hooked_model(cfg, weights)
    tokens = all_tokens(cfg.p)
    with torch.no_grad():
        _, cache = tl.run_with_cache(tokens)
    z_mean = cache["blocks.0.attn.hook_z"][:, -1].mean(dim=0)  # (h, e)
    post_mean = cache["blocks.0.mlp.hook_post"][:, -1].mean(dim=0)  # (m,)
    heads, neurons = list(heads), list(neurons)

    def on_z(z: torch.Tensor, hook) -> torch.Tensor:
        z = z.clone()
        z[:, -1, heads] = z_mean[heads] if mode == "mean" else 0.0
        return z

    def on_post(post: torch.Tensor, hook) -> torch.Tensor:
        post = post.clone()
        post[:, -1, neurons] = post_mean[neurons] if mode == "mean" else 0.0
        return post

    hooks = [("blocks.0.attn.hook_z", on_z), ("blocks.0.mlp.hook_post", on_post)]
    with torch.no_grad():
        logits = tl.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits[:, -1, : cfg.p]


@pytest.fixture(scope="module")
def random_model() -> tuple[Ablator, dict[str, torch.Tensor]]:
    return Ablator(Analyzer(PLANTED)), random_weights(PLANTED, 3)


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize(
    ("heads", "neurons"),
    [((1,), ()), ((0, 2), ()), ((), (3, 17)), ((), tuple(range(24))), ((1, 3), (0, 5, 9))],
)
def test_heads_and_neurons_match_transformer_lens_hooks(random_model, heads, neurons, mode):
    ablator, weights = random_model
    spec = Ablation.of(heads=heads, neurons=neurons, mode=mode)
    base, ablated = ablator.logits(weights, spec)
    want = tl_ablated(PLANTED, weights, heads, neurons, mode)
    torch.testing.assert_close(ablated, want, atol=2e-4, rtol=1e-4)
    assert (ablated - base).abs().max() > 1e-3  # the ablation did something
    result = ablator.ablate(weights, spec, epoch=5)
    assert_scores(result.ablated, scores(want, PLANTED))
    assert_scores(result.base, scores(tl_ablated(PLANTED, weights), PLANTED))


def test_the_empty_ablation_is_the_intact_model(random_model) -> None:
    ablator, weights = random_model
    result = ablator.ablate(weights, Ablation())
    assert result.ablated == result.base


def explicit_directions(p: int, freqs) -> np.ndarray:
    """Unit vectors cos/sin(2 pi k (x + y) / p) over the p^2 inputs (flat x * p + y)."""
    x, y = np.divmod(np.arange(p * p), p)
    rows = []
    for k in freqs:
        for trig in (np.cos, np.sin):
            v = trig(2 * math.pi * k * (x + y) / p)
            rows.append(v / np.linalg.norm(v))
    return np.array(rows).reshape(-1, p * p)


def test_frequency_ablations_are_the_projections_written_out(random_model) -> None:
    ablator, weights = random_model
    p = PLANTED.p
    base, _ = ablator.logits(weights, Ablation())
    logits = base.double().numpy()
    d = explicit_directions(p, (2, 7))
    proj = d.T @ (d @ logits)
    _, removed = ablator.logits(weights, Ablation.of(freqs=(2, 7)))
    np.testing.assert_allclose(removed.numpy(), logits - proj, atol=1e-4)
    _, kept = ablator.logits(weights, Ablation.of(keep_freqs=(2, 7)))
    np.testing.assert_allclose(kept.numpy(), logits.mean(axis=0) + proj, atol=1e-4)
    # keep less remove: keeping {2, 7} and removing 7 keeps 2 only.
    d2 = explicit_directions(p, (2,))
    _, both = ablator.logits(weights, Ablation.of(keep_freqs=(2, 7), freqs=(7,)))
    np.testing.assert_allclose(both.numpy(), logits.mean(axis=0) + d2.T @ (d2 @ logits), atol=1e-4)
    result = ablator.ablate(weights, Ablation.of(freqs=(2, 7)))
    assert_scores(result.ablated, scores(torch.as_tensor(logits - proj), PLANTED))


def test_heads_combine_with_frequencies(random_model) -> None:
    ablator, weights = random_model
    want = tl_ablated(PLANTED, weights, heads=(2,)).double().numpy()
    d = explicit_directions(PLANTED.p, (4,))
    _, got = ablator.logits(weights, Ablation.of(heads=(2,), freqs=(4,)))
    np.testing.assert_allclose(got.numpy(), want - d.T @ (d @ want), atol=2e-4)


def test_unknown_parts_are_one_line_errors(random_model) -> None:
    ablator, weights = random_model
    for spec, words in [
        (Ablation.of(heads=(4,)), "no head 4 (the model has heads 0..3)"),
        (Ablation.of(neurons=(24,)), "no neuron 24 (the model has neurons 0..23)"),
        (Ablation.of(freqs=(12,)), "no frequency 12 (p = 23 has frequencies 1..11)"),
        (Ablation.of(keep_freqs=(0,)), "no frequency 0"),
        (Ablation.of(heads=(0,), mode="half"), "unknown ablation mode 'half'"),
    ]:
        with pytest.raises(AblationError, match=words.replace("(", r"\(").replace(")", r"\)")):
            ablator.ablate(weights, spec)


def test_an_op_without_a_fourier_circuit_has_no_frequency_ablations() -> None:
    cfg = PLANTED.replace(op="random")
    with pytest.raises(AblationError, match="op 'random' has no Fourier circuit"):
        Ablation.of(freqs=(1,)).check(cfg)
    Ablation.of(heads=(0,), neurons=(1,)).check(cfg)  # heads and neurons still ablate


# -- a grokked run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def grokked(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Run:
    run = Run.create(tmp_path_factory.mktemp("ablate") / "tiny", TINY, device="cpu")
    assert Trainer(run, device="cpu").train().status == "done"
    assert run.read_metrics()[-1]["test_acc"] > 0.99
    return run


def test_the_key_frequencies_carry_a_grokked_model(grokked: Run) -> None:
    snap = Analyzer(TINY).snapshot(grokked.load_checkpoint(2000), 2000)
    keys = snap.key_freqs
    assert keys
    chance = 1 / TINY.p
    without = ablate_run(grokked, Ablation.of(freqs=keys))
    assert without.base["test_acc"] > 0.99
    assert without.ablated["test_acc"] < 3 * chance
    only = ablate_run(grokked, Ablation.of(keep_freqs=keys))
    assert only.ablated["test_acc"] > 0.99
    other = next(k for k in range(1, 16) if k not in keys)
    one = ablate_run(grokked, Ablation.of(freqs=(other,)))
    assert one.ablated["test_acc"] == one.base["test_acc"]
    assert one.ablated["test_loss"] == pytest.approx(one.base["test_loss"], rel=0.05, abs=1e-3)


def test_a_cluster_is_its_neurons_and_a_replay_covers_every_checkpoint(grokked: Run) -> None:
    snap = Analyzer(TINY).snapshot(grokked.load_checkpoint(2000), 2000)
    k = snap.key_freqs[0]
    by_cluster = ablate_run(grokked, Ablation.of(clusters=(k,)))
    by_neurons = ablate_run(grokked, Ablation.of(neurons=snap.clusters[k]))
    assert by_cluster.ablated == by_neurons.ablated
    assert by_cluster.cluster_neurons == {k: [int(n) for n in snap.clusters[k]]}
    absent = next(c for c in range(1, 16) if c not in snap.key_freqs)
    with pytest.raises(AblationError, match=f"no cluster {absent} at epoch 2000"):
        ablate_run(grokked, Ablation.of(clusters=(absent,)))
    ablate_run(grokked, Ablation.of(clusters=(UNCLUSTERED,)))  # always a cluster
    results = replay(grokked, Ablation.of(clusters=(k,), mode="mean"))
    assert [r.epoch for r in results] == grokked.checkpoint_epochs()
    assert (
        results[-1].ablated == ablate_run(grokked, Ablation.of(clusters=(k,), mode="mean")).ablated
    )


def test_the_api_gives_the_same_result(grokked: Run) -> None:
    run = open_run(grokked.path)
    got = run.ablate(1000, heads=[0, 2], neurons=[3, 17], mode="mean")
    want = ablate_run(grokked, Ablation.of(heads=(0, 2), neurons=(3, 17), mode="mean"), 1000)
    assert got.as_dict() == want.as_dict()
    assert [r.epoch for r in run.ablate("all", freqs=[1])] == grokked.checkpoint_epochs()


# -- the command line ------------------------------------------------------------------------


def test_cli_json(grokked: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", str(grokked.path), "--epoch", "1500", "--heads", "0,2",
                 "--freqs", "3", "--mode", "mean", "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["epoch"] == 1500
    for part in ("base", "ablated"):
        assert set(out[part]) == {"train_loss", "test_loss", "train_acc", "test_acc"}
    assert out["ablations"]["heads"] == [0, 2] and out["ablations"]["freqs"] == [3]
    assert out["ablations"]["mode"] == "mean"
    want = ablate_run(grokked, Ablation.of(heads=(0, 2), freqs=(3,), mode="mean"), 1500)
    assert out == want.as_dict()
    assert main(["ablate", str(grokked.path), "--epoch", "all", "--keep-freqs", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["epoch"] for r in rows] == grokked.checkpoint_epochs()
    assert all(r["ablations"]["keep_freqs"] == [1] for r in rows)


def test_cli_table(grokked: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ablate", str(grokked.path), "--neurons", "3,17"]) == 0
    out = capsys.readouterr().out
    assert "neurons 3,17" in out and "test_acc" in out and "2,000" in out
    assert main(["ablate", str(grokked.path), "--epoch", "all", "--heads", "1"]) == 0
    assert capsys.readouterr().out.count("\n") >= len(grokked.checkpoint_epochs())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--heads", "9"], "no head 9 (the model has heads 0..3)"),
        (["--neurons", "256"], "no neuron 256"),
        (["--freqs", "16"], "no frequency 16 (p = 31 has frequencies 1..15)"),
        (["--keep-freqs", "x"], "--keep-freqs: 'x' is not a list of integers"),
        (["--clusters", "0"], "no cluster 0 at epoch 2000"),
        (["--epoch", "7"], "no checkpoint at epoch 7"),
        (["--epoch", "soon"], "--epoch: 'soon' is neither an epoch nor 'all'"),
    ],
)
def test_cli_errors_are_one_line(grokked: Run, capsys, args, words) -> None:
    assert main(["ablate", str(grokked.path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_cli_error_for_a_missing_run(tmp_path, capsys) -> None:
    assert main(["ablate", str(tmp_path / "none"), "--heads", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
