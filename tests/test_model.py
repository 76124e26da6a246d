"""The fast training forward is the TransformerLens model's forward, value and gradient."""

from __future__ import annotations

import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import (
    CLASSIC_NAMES,
    GrokModel,
    WeightsError,
    check_weights,
    classic_to_paper,
    paper_init,
    paper_to_classic,
)
from grok_tui.engine.core.tl import hooked_model
from tests.tl_reference import tl_to_classic

SMALL = RunConfig(p=7, frac_train=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32, preset="test")


def random_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    """Random weights everywhere, biases included, so no term of the forward hides."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.4 for k, v in paper_init(cfg).items()}


@pytest.fixture(params=["onednn", "bmm"])
def gemm(request, monkeypatch) -> str:
    """Both ways the fast path multiplies by W_L: oneDNN's linear (CPUs that have it) and
    torch's batched matmul (GPUs, and every member block of a batched pass)."""
    import grok_tui.engine.core.fastpath as fastpath

    if request.param == "bmm":
        monkeypatch.setattr(fastpath, "_USE_ONEDNN", False)
    elif not fastpath._USE_ONEDNN:
        pytest.skip("this torch has no oneDNN linear")
    return request.param


@pytest.mark.parametrize("cfg", [RunConfig(), SMALL], ids=["p113", "p7"])
def test_fast_forward_and_gradients_match_transformer_lens(cfg: RunConfig, gemm: str) -> None:
    weights = random_weights(cfg, seed=1)
    fast = GrokModel.from_classic(cfg, weights, train_biases=True)
    tl = hooked_model(cfg, weights).train()
    data = make_dataset(cfg)
    idx = data.train_idx

    fast_logits = fast.last_logits(data.x[idx], data.y[idx])
    tl_logits = tl(data.tokens[idx])[:, -1]
    scale = tl_logits.abs().max().item()
    torch.testing.assert_close(fast_logits, tl_logits, rtol=1e-5, atol=1e-5 * scale)

    reference_cross_entropy(fast_logits, data.labels[idx]).backward()
    reference_cross_entropy(tl_logits, data.labels[idx]).backward()
    tl_grads = tl_to_classic(tl, cfg, what="grad")
    assert set(CLASSIC_NAMES.values()) - set(tl_grads) <= {"unembed.b_U"}
    for short, name in CLASSIC_NAMES.items():
        if name not in tl_grads:
            continue
        got = getattr(fast, short).grad
        want = tl_grads[name]
        if name == "blocks.0.attn.b_K":
            # q.b_K shifts every score of a head equally, and softmax ignores shifts:
            # its true gradient is zero, so both sides hold rounding noise only.
            w_k_scale = tl_grads["blocks.0.attn.W_K"].abs().max().item()
            assert got.abs().max().item() < 1e-4 * w_k_scale
            continue
        g_scale = want.abs().max().item()
        assert g_scale > 0, name
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * g_scale, msg=name)


def test_paper_model_trains_mlp_biases_only() -> None:
    model = GrokModel(RunConfig())
    trained = {name for name, _ in model.named_parameters()}
    assert trained == {
        "W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out", "W_U",
    }  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == 226_816


def test_paper_init_scales_and_seed() -> None:
    cfg = RunConfig()
    w = paper_init(cfg)
    check_weights(cfg, w)
    assert torch.equal(w["embed.W_E"], paper_init(cfg)["embed.W_E"])
    assert not torch.equal(w["embed.W_E"], paper_init(cfg.replace(seed=1))["embed.W_E"])
    # std 1/sqrt(d_model) for every W but W_U, which is 1/sqrt(d_vocab); biases zero.
    for name in ("embed.W_E", "blocks.0.attn.W_Q", "blocks.0.mlp.W_in", "blocks.0.mlp.W_out"):
        assert w[name].std().item() == pytest.approx(128**-0.5, rel=0.05)
    assert w["unembed.W_U"].std().item() == pytest.approx(114**-0.5, rel=0.05)
    assert not w["blocks.0.mlp.b_in"].any() and not w["unembed.b_U"].any()


def test_paper_layout_round_trip() -> None:
    cfg = RunConfig()
    w = random_weights(cfg, seed=2)
    for name in ("blocks.0.attn.b_Q", "blocks.0.attn.b_K", "blocks.0.attn.b_V"):
        w[name] = torch.zeros_like(w[name])
    w["blocks.0.attn.b_O"] = torch.zeros_like(w["blocks.0.attn.b_O"])
    w["unembed.b_U"] = torch.zeros_like(w["unembed.b_U"])
    paper = classic_to_paper(w)
    assert paper["embed.W_E"].shape == (128, 114)
    assert paper["blocks.0.attn.W_O"].shape == (128, 128)
    assert paper["blocks.0.attn.W_Q"].shape == (4, 32, 128)
    back = paper_to_classic(paper, n_heads=4)
    assert back.keys() == w.keys()
    for name in w:
        assert torch.equal(back[name], w[name]), name


def test_check_weights_names_the_bad_key() -> None:
    cfg = RunConfig()
    w = paper_init(cfg)
    w["blocks.0.attn.W_Q"] = torch.zeros(4, 32, 128)
    with pytest.raises(WeightsError, match=r"blocks\.0\.attn\.W_Q.*shape"):
        check_weights(cfg, w)
    del w["blocks.0.attn.W_Q"]
    with pytest.raises(WeightsError, match="lack"):
        check_weights(cfg, w)
