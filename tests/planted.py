"""Hand-built models whose neurons use known frequencies, and an independent Fourier basis."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init

PLANTED = RunConfig(p=23, frac_train=0.5, d_model=32, n_heads=4, d_head=8, d_mlp=24, preset="test")


def explicit_basis(p: int) -> np.ndarray:
    """F from its definition, written out independently of grok_tui.engine.core.fourier."""
    x = np.arange(p)
    rows = [np.ones(p) / math.sqrt(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows.append(np.cos(2 * math.pi * k * x / p) * math.sqrt(2 / p))
        rows.append(np.sin(2 * math.pi * k * x / p) * math.sqrt(2 / p))
    return np.stack(rows)


def planted_weights(
    cfg: RunConfig, freqs: Sequence[int], per_freq: int, n_mixed: int, seed: int = 0
) -> tuple[dict[str, torch.Tensor], dict[int, list[int]]]:
    """Weights whose neurons are cos(w_k x - phi) + cos(w_k y - phi) + bias, kept linear.

    Attention is uniform (W_Q = W_K = 0) and each head copies its slice of the residual
    stream (OV = identity), so the last position holds (E[x] + E[y]) / 3. Embedding dims
    2i, 2i+1 hold cos and sin of w_k for freqs[i]. Neurons come in blocks of `per_freq` per
    frequency, then `n_mixed` neurons reading two frequencies equally (50% each: below the
    0.85 threshold), then dead neurons (constant zero). Returns the weights and the expected
    clusters (-1 = unclustered).
    """
    p, d, h, e, m = cfg.p, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
    assert 2 * len(freqs) <= d and len(freqs) * per_freq + n_mixed <= m
    g = torch.Generator().manual_seed(seed)
    w = {k: torch.zeros_like(v) for k, v in paper_init(cfg).items()}
    t = torch.arange(p, dtype=torch.float64)
    for i, k in enumerate(freqs):
        w["embed.W_E"][:p, 2 * i] = torch.cos(2 * math.pi * k * t / p).float()
        w["embed.W_E"][:p, 2 * i + 1] = torch.sin(2 * math.pi * k * t / p).float()
    for head in range(h):
        block = slice(head * e, (head + 1) * e)
        w["blocks.0.attn.W_V"][head, block] = torch.eye(e)
        w["blocks.0.attn.W_O"][head, :, block] = torch.eye(e)
    w_in, b_in = w["blocks.0.mlp.W_in"], w["blocks.0.mlp.b_in"]
    expected: dict[int, list[int]] = {k: [] for k in sorted(freqs)}
    expected[-1] = []
    n = 0
    for i, k in enumerate(freqs):
        for _ in range(per_freq):
            phi = float(torch.rand(1, generator=g)) * 2 * math.pi
            w_in[2 * i, n], w_in[2 * i + 1, n] = 3 * math.cos(phi), 3 * math.sin(phi)
            b_in[n] = 3.0  # pre >= 1 everywhere: the ReLU is the identity
            expected[k].append(n)
            n += 1
    for _ in range(n_mixed):
        w_in[0, n] = w_in[2, n] = 3.0
        b_in[n] = 5.0
        expected[-1].append(n)
        n += 1
    for dead in range(n, m):
        b_in[dead] = -1.0
        expected[-1].append(dead)
    w["blocks.0.mlp.W_out"] = torch.randn(m, d, generator=g) * 0.1
    w["unembed.W_U"] = torch.randn(d, cfg.d_vocab, generator=g) * 0.1
    return w, expected
