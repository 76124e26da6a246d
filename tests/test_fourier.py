"""The Fourier basis, its transforms and the cos/sin(w_k(x+y)) directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grok_tui.engine.core import fourier
from tests.planted import explicit_basis


@pytest.mark.parametrize("p", [3, 7, 23, 113])
def test_basis_is_orthonormal_and_matches_its_definition(p: int) -> None:
    f = fourier.fourier_basis_np(p)
    np.testing.assert_allclose(f @ f.T, np.eye(p), atol=1e-12)
    np.testing.assert_allclose(f, explicit_basis(p), atol=1e-12)
    names = fourier.basis_names(p)
    assert names[:3] == ["Const", "cos 1", "sin 1"] and names[-1] == f"sin {(p - 1) // 2}"
    assert len(names) == p
    assert fourier.component_freqs(p).tolist() == [0] + [
        k for k in range(1, p // 2 + 1) for _ in "cs"
    ]
    t = fourier.fourier_basis(p, dtype=torch.float64)
    np.testing.assert_allclose(t.numpy(), f)
    t[0, 0] = 99.0  # a caller's copy: writing it must not touch the shared basis
    assert fourier.fourier_basis_np(p)[0, 0] == pytest.approx(1 / math.sqrt(p))
    assert fourier.fft1d(np.eye(p)[0])[0] == pytest.approx(1 / math.sqrt(p))


def test_even_p_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        fourier.fourier_basis_np(10)


def test_fft2d_of_planted_terms_returns_exactly_their_coefficients() -> None:
    p = 31
    f = explicit_basis(p)
    planted = {(0, 0): 2.0, (5, 5): -1.5, (6, 11): 0.75, (12, 0): 3.0, (0, 30): -0.5}
    table = sum(c * np.outer(f[i], f[j]) for (i, j), c in planted.items())
    want = np.zeros((p, p))
    for (i, j), c in planted.items():
        want[i, j] = c
    np.testing.assert_allclose(fourier.fft2d(table), want, atol=1e-12)
    # torch in, torch out, same numbers; and over other axes (heads first).
    got = fourier.fft2d(torch.tensor(table, dtype=torch.float64))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    stacked = np.stack([table, 2 * table])
    np.testing.assert_allclose(fourier.fft2d(stacked, dims=(1, 2))[1], 2 * want, atol=1e-12)
    np.testing.assert_allclose(fourier.ifft2d(want), table, atol=1e-12)


def test_fft1d_is_v_at_f_transposed_along_any_axis() -> None:
    p = 13
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4, p))
    f = explicit_basis(p)
    np.testing.assert_allclose(fourier.fft1d(v), v @ f.T, atol=1e-12)
    w = rng.normal(size=(p, 3, 2))
    np.testing.assert_allclose(fourier.fft1d(w, dim=0), np.einsum("ix,xab->iab", f, w), atol=1e-12)
    np.testing.assert_allclose(fourier.ifft1d(fourier.fft1d(v)), v, atol=1e-12)
    # A pure cosine of frequency 4 has exactly one coefficient.
    x = np.arange(p)
    coeffs = fourier.fft1d(np.cos(2 * math.pi * 4 * x / p))
    assert np.argmax(np.abs(coeffs)) == 7
    np.testing.assert_allclose(np.delete(coeffs, 7), 0, atol=1e-12)


@pytest.mark.parametrize("p", [7, 113])
def test_trig_directions_are_orthonormal_cos_and_sin_of_x_plus_y(p: int) -> None:
    freqs = [1, 2, (p - 1) // 2]
    d = fourier.trig_directions(p, freqs, dtype=torch.float64).numpy()
    np.testing.assert_allclose(d @ d.T, np.eye(2 * len(freqs)), atol=1e-12)
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    for i, k in enumerate(freqs):
        angle = 2 * math.pi * k * (x + y) / p
        for row, wave in ((d[2 * i], np.cos(angle)), (d[2 * i + 1], np.sin(angle))):
            direct = wave.ravel() / np.linalg.norm(wave)  # flat index x * p + y
            np.testing.assert_allclose(row, direct, atol=1e-12)
    np.testing.assert_allclose(d.sum(axis=1), 0, atol=1e-10)  # orthogonal to constants
    with pytest.raises(ValueError, match="frequency"):
        fourier.trig_directions(p, [0])


def test_project_keeps_the_span_and_drops_the_rest() -> None:
    p = 11
    d = fourier.trig_directions(p, [2, 3], dtype=torch.float64)
    rng = np.random.default_rng(1)
    inside = d.T @ torch.tensor(rng.normal(size=(4, 5)))
    outside = torch.tensor(rng.normal(size=(p * p, 5)))
    outside = outside - fourier.project(outside, d)
    torch.testing.assert_close(fourier.project(inside + outside, d), inside)
    assert fourier.project(outside, d).abs().max() < 1e-12


def test_block_shares_find_a_planted_frequency() -> None:
    p = 17
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    w = 2 * math.pi / p
    pure = 3 + np.cos(w * 5 * x) * np.cos(w * 5 * y) + 2 * np.sin(w * 5 * x) + np.sin(w * 5 * y)
    half = np.cos(w * 2 * x) + np.cos(w * 6 * y)  # two frequencies, equal variance
    nothing = np.full((p, p), 4.0)
    spectra = fourier.fft2d(np.stack([pure, half, nothing], axis=-1))
    shares = fourier.block_shares(spectra)
    assert shares.shape == ((p - 1) // 2, 3)
    np.testing.assert_allclose(shares[:, 0], np.eye(8)[4], atol=1e-12)
    np.testing.assert_allclose(shares[[1, 5], 1], [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(shares[:, 2], 0)


def test_freq_norms_sum_cos_and_sin() -> None:
    values = np.arange(7.0)  # p = 7: Const, cos 1, sin 1, ..., sin 3
    np.testing.assert_allclose(fourier.freq_norms(values), [0, 3, 7, 11])


def test_frequency_amplitudes_gather_cos_and_sin() -> None:
    p = 11
    coeffs = np.zeros((2, p))
    coeffs[0, 0] = 2.0  # Const
    coeffs[0, 3], coeffs[0, 4] = 3.0, 4.0  # cos 2, sin 2 -> amplitude 5
    coeffs[1, 9] = -1.5  # cos 5
    amps = fourier.freq_amplitudes(coeffs)
    assert amps.shape == (2, 6)
    np.testing.assert_allclose(amps[0], [2, 0, 5, 0, 0, 0])
    np.testing.assert_allclose(amps[1], [0, 0, 0, 0, 0, 1.5])
    spectrum = np.zeros((p, p))
    spectrum[3, 10], spectrum[4, 9] = 3.0, 4.0  # (cos 2, sin 5) and (sin 2, cos 5)
    pairs = fourier.freq_pair_amplitudes(spectrum)
    assert pairs.shape == (6, 6)
    assert pairs[2, 5] == pytest.approx(5.0) and pairs.sum() == pytest.approx(5.0)
