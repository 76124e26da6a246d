"""A Snapshot from the fast path equals the TransformerLens brute force; clusters are found."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset
from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.measures.analysis import Analyzer, Snapshot, clusters_from, snapshot
from tests.devices import TEST_DEVICE
from tests.planted import PLANTED, explicit_basis, planted_weights

SMALL = RunConfig(p=17, frac_train=0.4, d_model=32, n_heads=4, d_head=8, d_mlp=48, preset="test")


def random_weights(cfg: RunConfig, seed: int) -> dict[str, torch.Tensor]:
    """Random weights, biases included, so no term of the forward hides."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.3 for k, v in paper_init(cfg).items()}


def brute_force(cfg: RunConfig, weights: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Every per-input quantity from TransformerLens run_with_cache, post-processed naively."""
    p, h = cfg.p, cfg.n_heads
    tl = hooked_model(cfg, weights)
    with torch.no_grad():
        logits, cache = tl.run_with_cache(all_tokens(p))
    pattern = cache["blocks.0.attn.hook_pattern"][:, :, -1, :].double().numpy()  # (b, h, 3)
    post = cache["blocks.0.mlp.hook_post"][:, -1].double().numpy()  # (b, m)
    logits = logits[:, -1, :p].double()
    f = explicit_basis(p)
    data = make_dataset(cfg)
    out: dict[str, np.ndarray] = {
        "avg_attn": pattern.mean(axis=0),
        "attn_key0": pattern[:, :, 0].T.reshape(h, p, p),
        "neuron_acts": post.reshape(p, p, -1),
        "train_loss": reference_cross_entropy(logits[data.train_idx], data.labels[data.train_idx]),
        "test_loss": reference_cross_entropy(logits[data.test_idx], data.labels[data.test_idx]),
        "train_acc": (logits[data.train_idx].argmax(1) == data.labels[data.train_idx])
        .double()
        .mean(),
        "test_acc": (logits[data.test_idx].argmax(1) == data.labels[data.test_idx]).double().mean(),
    }
    out["attn_key0_fourier"] = np.einsum("hxy,ix,jy->hij", out["attn_key0"], f, f, optimize=True)
    grid = logits.numpy().reshape(p, p, p)
    out["logits_fourier_sq"] = (np.einsum("xyc,ix,jy->ijc", grid, f, f, optimize=True) ** 2).sum(
        axis=2
    )
    # Neuron frequencies: centre, full 2D transform, 3x3 block share per frequency.
    centred = out["neuron_acts"] - out["neuron_acts"].mean(axis=(0, 1))
    spec = np.einsum("xyn,ix,jy->ijn", centred, f, f, optimize=True)
    total = (spec**2).sum(axis=(0, 1))
    shares = np.zeros(((p - 1) // 2, spec.shape[2]))
    for k in range(1, (p - 1) // 2 + 1):
        idx = [0, 2 * k - 1, 2 * k]
        block = (spec[np.ix_(idx, idx)] ** 2).sum(axis=(0, 1))
        shares[k - 1] = np.divide(block, total, out=np.zeros_like(block), where=total > 0)
    out["neuron_shares"] = shares

    # Circuits from TransformerLens's own weight views (leading layer axis).
    w_e, w_pos = tl.W_E.detach().double().numpy(), tl.W_pos.detach().double().numpy()
    w_q, w_k = tl.W_Q[0].detach().double().numpy(), tl.W_K[0].detach().double().numpy()
    w_v, w_o = tl.W_V[0].detach().double().numpy(), tl.W_O[0].detach().double().numpy()
    w_in, w_out = tl.W_in[0].detach().double().numpy(), tl.W_out[0].detach().double().numpy()
    w_u = tl.W_U.detach().double().numpy()
    out["W_neur"] = np.stack([w_e[:p] @ w_v[i] @ w_o[i] @ w_in for i in range(h)])
    out["W_attn"] = np.stack(
        [(w_e[p] + w_pos[2]) @ w_q[i] @ w_k[i].T @ w_e[:p].T for i in range(h)]
    ) / math.sqrt(cfg.d_head)
    out["W_attn_fourier"] = out["W_attn"] @ f.T
    out["W_L_fourier"] = (w_out @ w_u[:, :p]) @ f.T
    out["W_E"] = w_e[:p]
    out["W_E_fourier"] = f @ w_e[:p]
    out["embed_fourier_sq"] = ((f @ w_e[:p]) ** 2).sum(axis=1)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def assert_close(name: str, got: np.ndarray | float, want: np.ndarray) -> None:
    scale = max(float(np.abs(want).max()), 1e-6)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-4, atol=2e-5 * scale,
                               err_msg=name)  # fmt: skip


@pytest.mark.parametrize(
    "cfg,weights",
    [
        (SMALL, random_weights(SMALL, seed=3)),
        (RunConfig(), paper_init(RunConfig())),
    ],
    ids=["p17-random", "p113-paper-init"],
)
def test_snapshot_matches_transformer_lens_brute_force(
    cfg: RunConfig, weights: dict[str, torch.Tensor]
) -> None:
    snap = Analyzer(cfg, TEST_DEVICE).snapshot(weights, epoch=7)
    want = brute_force(cfg, weights)
    p, h, m = cfg.p, cfg.n_heads, cfg.d_mlp
    assert snap.epoch == 7 and snap.p == p
    shapes = {
        "avg_attn": (h, 3),
        "attn_key0": (h, p, p),
        "attn_key0_fourier": (h, p, p),
        "neuron_acts": (p, p, m),
        "neuron_shares": ((p - 1) // 2, m),
        "W_neur": (h, p, m),
        "W_attn": (h, p),
        "W_attn_fourier": (h, p),
        "W_L_fourier": (m, p),
        "logits_fourier_sq": (p, p),
        "W_E": (p, cfg.d_model),
        "W_E_fourier": (p, cfg.d_model),
        "embed_fourier_sq": (p,),
    }
    for name, shape in shapes.items():
        value = getattr(snap, name)
        assert isinstance(value, np.ndarray) and value.shape == shape, name
        assert_close(name, value, want[name])
    for name in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert_close(name, getattr(snap, name), want[name])
    # Frequencies and fractions follow from the shares.
    # (At init two frequencies can tie to float32 rounding: check the share, not the index.)
    chosen = want["neuron_shares"][snap.neuron_freq - 1, np.arange(m)]
    assert_close("neuron_freq", chosen, want["neuron_shares"].max(axis=0))
    assert_close("neuron_frac", snap.neuron_frac, want["neuron_shares"].max(axis=0))
    assert snap.embed_freq_sq.shape == ((p - 1) // 2 + 1,)
    assert snap.embed_freq_sq.sum() == pytest.approx(snap.embed_fourier_sq.sum(), rel=1e-5)
    # One neuron's full spectrum, on demand.
    n = int(np.argmax(snap.neuron_frac))
    f = explicit_basis(p)
    assert_close("spectrum", snap.neuron_spectrum(n), f @ want["neuron_acts"][:, :, n] @ f.T)


@pytest.mark.parametrize("freqs", [(3, 7), (2, 5, 11)])
def test_planted_frequencies_are_found_exactly(freqs: tuple[int, ...]) -> None:
    weights, expected = planted_weights(PLANTED, freqs, per_freq=6, n_mixed=2)
    snap = snapshot(PLANTED, weights)
    assert snap.key_freqs == tuple(sorted(freqs))
    assert list(snap.clusters) == [*sorted(freqs), -1]
    for k, neurons in expected.items():
        np.testing.assert_array_equal(snap.clusters[k], neurons, err_msg=f"cluster {k}")
    clustered = np.concatenate([expected[k] for k in freqs])
    np.testing.assert_allclose(snap.neuron_frac[clustered], 1.0, atol=1e-4)
    mixed = expected[-1][:2]
    np.testing.assert_allclose(snap.neuron_frac[mixed], 0.5, atol=1e-4)
    dead = expected[-1][2:]
    assert not snap.neuron_acts[:, :, dead].any() and not snap.neuron_frac[dead].any()
    assert snap.cluster_sizes == {k: len(v) for k, v in expected.items()}
    assert sorted(snap.neuron_order.tolist()) == list(range(PLANTED.d_mlp))
    assert (snap.neuron_cluster[snap.neuron_order][: len(clustered)] >= 1).all()
    # Uniform attention: W_Q = W_K = 0.
    np.testing.assert_allclose(snap.avg_attn, 1 / 3, atol=1e-6)
    # Embedding energy sits in the planted frequencies only.
    assert set(np.flatnonzero(snap.embed_freq_sq > 1e-6)) == set(freqs)


def test_clusters_from_threshold_and_order() -> None:
    freq = np.array([4, 4, 9, 2, 9, 4])
    frac = np.array([0.9, 0.84, 0.95, 0.99, 0.85, 0.2])
    cluster, clusters, keys = clusters_from(freq, frac)
    assert keys == (2, 4, 9)
    assert cluster.tolist() == [4, -1, 9, 2, 9, -1]
    assert {k: v.tolist() for k, v in clusters.items()} == {2: [3], 4: [0], 9: [2, 4], -1: [1, 5]}


def test_snapshot_is_plain_numpy_and_the_analyzer_is_reusable() -> None:
    analyzer = Analyzer(SMALL, TEST_DEVICE)
    a = analyzer.snapshot(random_weights(SMALL, 1), 1)
    kept = {k: v.copy() for k, v in vars(a).items() if isinstance(v, np.ndarray)}
    b = analyzer.snapshot(random_weights(SMALL, 2), 2)
    for name, value in kept.items():  # the next checkpoint must not write into this one
        np.testing.assert_array_equal(getattr(a, name), value, err_msg=name)
    assert isinstance(a, Snapshot)
    assert not np.allclose(a.neuron_acts, b.neuron_acts)
    np.testing.assert_array_equal(
        a.neuron_acts, snapshot(SMALL, random_weights(SMALL, 1)).neuron_acts
    )
    for value in vars(a).values():
        assert not isinstance(value, torch.Tensor)


def test_derived_arrays_match_explicit_loops() -> None:
    """Every number the panes show beyond the raw arrays, against plain loops over the basis."""
    snap = Analyzer(SMALL, TEST_DEVICE).snapshot(random_weights(SMALL, seed=5), epoch=3)
    p, h, m = SMALL.p, SMALL.n_heads, SMALL.d_mlp
    k = (p - 1) // 2
    f = explicit_basis(p)
    comps = [[0]] + [[2 * j - 1, 2 * j] for j in range(1, k + 1)]

    def amps(curve: np.ndarray) -> np.ndarray:  # (p,) over tokens -> (K + 1,) per frequency
        c = f @ curve.astype(np.float64)
        return np.array([math.sqrt(sum(c[i] ** 2 for i in comp)) for comp in comps])

    for head in range(h):
        assert_close("W_attn_freq", snap.W_attn_freq[head], amps(snap.W_attn[head]))
        spec = f @ snap.attn_key0[head].astype(np.float64) @ f.T
        pairs = np.array([[math.sqrt(sum(spec[i, j] ** 2 for i in a for j in b))
                           for b in comps] for a in comps])  # fmt: skip
        assert_close("attn_pair_norms", snap.attn_pair_norms[head], pairs)
        assert_close("attn_spectrum", snap.attn_spectrum(head), np.abs(spec))
        best = max(((a, b) for a in range(k + 1) for b in range(k + 1) if (a, b) != (0, 0)),
                   key=lambda ab: pairs[ab])  # fmt: skip
        assert snap.top_attn_pairs(head, 1)[0][:2] == best
    for n in (0, 7, m - 1):
        curves = np.stack([amps(snap.W_neur[i, :, n]) for i in range(h)])
        assert_close("W_neur_freq", snap.W_neur_freq[:, :, n], curves)
        freq = int(snap.neuron_freq[n])
        share = curves[:, freq] ** 2 / (curves**2).sum(axis=1)
        assert_close("ov_freq_shares", snap.ov_freq_shares(n), share)
        top = snap.neuron_top_freqs(n, 2)
        assert top[0] == (freq, pytest.approx(float(snap.neuron_frac[n])))
        assert top[1][1] <= top[0][1]
        magnitude = np.abs(f @ snap.neuron_acts[:, :, n].astype(np.float64) @ f.T)
        assert_close("neuron_spectrum", snap.neuron_spectrum(n, magnitude=True), magnitude)
    d = 3
    power = (f @ snap.W_E[:, d].astype(np.float64)) ** 2
    want = np.array([sum(power[i] for i in comp) for comp in comps])
    assert_close("embed_dim_power", snap.embed_dim_power(d), want)
    assert_close("W_L_by_cluster", snap.W_L_by_cluster,
                 np.abs(snap.W_L_fourier[snap.neuron_order]))  # fmt: skip
    assert_close("fourier_basis", snap.fourier_basis, f)


def test_cluster_helpers_on_planted_frequencies() -> None:
    weights, expected = planted_weights(PLANTED, (3, 7), per_freq=6, n_mixed=2)
    snap = snapshot(PLANTED, weights)
    assert snap.cluster_choices() == [None, 3, 7, -1]
    assert snap.neurons_in(None).tolist() == list(range(PLANTED.d_mlp))
    for cluster in (3, 7, -1):
        listed = snap.neurons_in(cluster)
        assert sorted(listed.tolist()) == sorted(np.asarray(expected[cluster]).tolist())
        assert (np.diff(snap.neuron_frac[listed]) <= 0).all()
    spans = snap.cluster_spans()
    assert [s[0] for s in spans] == [3, 7, -1]
    assert spans[0][1] == 0 and spans[-1][2] == PLANTED.d_mlp - 1
    for freq, first, last in spans:
        members = set(np.asarray(expected[freq]).tolist())
        assert set(snap.neuron_order[first : last + 1].tolist()) == members
    n = int(expected[3][0])
    assert snap.describe_neuron(n) == f"neuron {n}: freq 3, 100% explained, cluster 3 (6 neurons)"
    assert snap.describe_cluster(-1).startswith("unclustered (< 85%;")
    comps = snap.key_components().tolist()
    assert comps == [5, 6, 13, 14]  # cos 3, sin 3, cos 7, sin 7
    total = float(snap.embed_fourier_sq.sum())
    assert snap.embed_key_share() == pytest.approx(
        float(snap.embed_fourier_sq[comps].sum()) / total
    )
