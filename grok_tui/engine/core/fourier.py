"""The real Fourier basis of Z_p, and transforms in it (Nanda et al. 2023, section 4).

    F (p x p, orthonormal rows): row 0 = 1/sqrt(p) ("Const"); rows 2k-1, 2k = the normalised
    cos and sin of w_k x, w_k = 2 pi k / p, for k = 1 .. (p-1)/2 ("cos k", "sin k").

    fft1d(v)[..., i]    = sum_x v[..., x] F[i, x]               (v @ F.T; along `dim`)
    fft2d(T)[i, j, ...] = sum_xy T[x, y, ...] F[i, x] F[j, y]  (along `dims`, default 0, 1)

A second basis serves multiplicative ops (`ops.py`): the "log basis" (`basis="log"`), the
same real Fourier basis but of Z_(p-1), over tokens 1..p-1 read in discrete-log order a =
log_g(t) (`zp.py`), with the indicator of token 0 (which has no log) as a row of its own:

    row 0 = 1/sqrt(p-1) on t != 0 ("Const"); rows 2k-1, 2k = normalised cos, sin of
    v_k a, v_k = 2 pi k / (p-1), k = 1 .. K-1; row 2K-1 = (-1)^a / sqrt(p-1) ("cos K", the
    Legendre symbol: sin K would be 0); row 2K = p - 1 = the indicator of 0 ("zero"),
    with K = (p-1)/2.

Its rows are orthonormal too, so every transform works the same; frequencies group rows by
`component_freqs` ("zero" counts with Const as frequency 0: neither varies along a).

Everything here is torch, on the input's device and in its float dtype; a numpy array in
gives a numpy array out (float64), so tests and notebooks can stay in numpy. Transforms are
matmuls with F (O(p) per output entry): for p = 113 a (p, p, 512) fft2d takes tens of ms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch

from grok_tui.engine.core.zp import discrete_log

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def n_freqs(p: int) -> int:
    """Number of non-constant frequencies, (p - 1) / 2 for odd p."""
    return (p - 1) // 2


@functools.lru_cache(maxsize=8)
def _basis64(p: int) -> np.ndarray:
    x = np.arange(p)
    rows = [np.full(p, 1.0 / math.sqrt(p))]
    for k in range(1, n_freqs(p) + 1):
        w = 2 * math.pi * k / p
        for row in (np.cos(w * x), np.sin(w * x)):
            rows.append(row / np.linalg.norm(row))
    basis = np.stack(rows)
    basis.setflags(write=False)
    return basis


@functools.lru_cache(maxsize=8)
def _log_basis64(p: int) -> np.ndarray:
    n, k_top = p - 1, n_freqs(p)
    a = discrete_log(p)[1:].astype(np.float64)  # log of tokens 1..p-1
    basis = np.zeros((p, p))
    basis[0, 1:] = 1.0 / math.sqrt(n)
    for k in range(1, k_top):
        v = 2 * math.pi * k / n
        basis[2 * k - 1, 1:] = np.cos(v * a) * math.sqrt(2 / n)
        basis[2 * k, 1:] = np.sin(v * a) * math.sqrt(2 / n)
    basis[2 * k_top - 1, 1:] = np.where(a % 2 == 0, 1.0, -1.0) / math.sqrt(n)
    basis[p - 1, 0] = 1.0
    basis.setflags(write=False)
    return basis


BASES = ("fourier", "log")


def basis_matrix(basis: str, p: int) -> np.ndarray:
    """The (p, p) read-only float64 rows of a basis: "fourier" (F) or "log" (see above)."""
    if basis == "log":
        if p < 3 or p % 2 == 0:
            raise ValueError(f"the log basis needs an odd prime p >= 3, got {p}")
        return _log_basis64(p)
    if basis != "fourier":
        raise ValueError(f"unknown basis {basis!r} (known: {', '.join(BASES)})")
    return fourier_basis_np(p)


def fourier_basis_np(p: int) -> np.ndarray:
    """F as a read-only float64 numpy array (p, p): rows are basis vectors."""
    if p < 3 or p % 2 == 0:
        raise ValueError(f"the Fourier basis here needs an odd p >= 3, got {p}")
    return _basis64(p)


def fourier_basis(
    p: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """F as a fresh torch tensor (p, p) on `device`, built in float64 then cast."""
    return _basis_tensor(p, torch.device(device or "cpu"), dtype).clone()


@functools.lru_cache(maxsize=32)
def _basis_tensor(
    p: int, device: torch.device, dtype: torch.dtype, basis: str = "fourier"
) -> torch.Tensor:
    """Shared read-only copy for the transforms (never handed out: callers could write it)."""
    return torch.tensor(basis_matrix(basis, p), dtype=dtype, device=device)


def basis_names(p: int, basis: str = "fourier") -> list[str]:
    """Names of the rows: Const, cos 1, sin 1, ..., cos K, sin K (log basis: ..., cos K, zero)."""
    names = ["Const"]
    for k in range(1, n_freqs(p) + 1):
        names += [f"cos {k}", f"sin {k}"]
    if basis == "log":
        names[-1] = "zero"
    return names


def component_freqs(p: int, basis: str = "fourier") -> np.ndarray:
    """Frequency of each row: 0 for Const (and the log basis' "zero"), k for cos k and sin k."""
    freqs = np.concatenate([[0], np.repeat(np.arange(1, n_freqs(p) + 1), 2)])
    if basis == "log":
        freqs[-1] = 0
    return freqs


def _grouping(p: int, basis: str) -> np.ndarray:
    """(K + 1, p) one-hot: row f sums the components of frequency f."""
    freqs = component_freqs(p, basis)
    out = np.zeros((n_freqs(p) + 1, p))
    out[freqs, np.arange(p)] = 1.0
    return out


# -- transforms ------------------------------------------------------------------------------


def _as_tensor(a: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.asarray(a, dtype=np.float64)), True
    if not a.is_floating_point():
        a = a.to(torch.get_default_dtype())
    return a, False


def _dft_axis(t: torch.Tensor, axis: int, basis: str = "fourier") -> torch.Tensor:
    """Coefficients of t in the basis along one axis (same shape as t): F @ t on that axis.

    Plain matmuls with the axis in the middle of a (outer, p, inner) view, so no transposed
    copy is made. (Folding the axis on the basis' mirror symmetry halves the multiply-adds
    but was measured slower: at these sizes the transform is bound by memory traffic.)
    """
    p = t.shape[axis]
    f = _basis_tensor(p, t.device, t.dtype, basis)
    shape = t.shape
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1 :])
    if inner == 1:
        out = t.reshape(outer, p) @ f.T
    elif outer == 1:
        out = f @ t.reshape(p, inner)
    else:
        out = torch.matmul(f, t.reshape(outer, p, inner))
    return out.reshape(shape)


def _idft_axis(c: torch.Tensor, axis: int, basis: str = "fourier") -> torch.Tensor:
    """Inverse of `_dft_axis` (F.T @ c), F being orthonormal."""
    p = c.shape[axis]
    f = _basis_tensor(p, c.device, c.dtype, basis)
    moved = c.movedim(axis, -1)
    return (moved @ f).movedim(-1, axis).contiguous()


def fft1d(v: Array, dim: int = -1, basis: str = "fourier") -> Array:
    """Coefficients in F along `dim` (default: last axis, i.e. v @ F.T)."""
    t, was_np = _as_tensor(v)
    out = _dft_axis(t.contiguous(), dim % t.ndim, basis)
    return out.numpy() if was_np else out


def ifft1d(c: Array, dim: int = -1, basis: str = "fourier") -> Array:
    """Values from coefficients along `dim` (c @ F)."""
    t, was_np = _as_tensor(c)
    out = _idft_axis(t, dim % t.ndim, basis)
    return out.numpy() if was_np else out


def fft2d(t: Array, dims: tuple[int, int] = (0, 1), basis: str = "fourier") -> Array:
    """2D coefficients: out[i, j] = sum_xy t[x, y] F[i, x] F[j, y] over `dims` (rows, columns)."""
    x, was_np = _as_tensor(t)
    x = x.contiguous()
    for axis in dims:
        x = _dft_axis(x, axis % x.ndim, basis)
    return x.numpy() if was_np else x


def ifft2d(c: Array, dims: tuple[int, int] = (0, 1), basis: str = "fourier") -> Array:
    """Inverse of `fft2d` over `dims`."""
    x, was_np = _as_tensor(c)
    for axis in dims:
        x = _idft_axis(x, axis % x.ndim, basis)
    return x.numpy() if was_np else x


# -- directions in R^(p^2) -----------------------------------------------------------------


def trig_directions(
    p: int,
    freqs: Iterable[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    sign: int = 1,
    basis: str = "fourier",
) -> torch.Tensor:
    """Unit vectors cos(w_k(x+y)), sin(w_k(x+y)) over the p^2 inputs (flat x * p + y);
    with sign -1 those of (x - y); in the log basis those of (log x +- log y), zero on the
    inputs with x = 0 or y = 0.

    Rows 2i, 2i + 1 belong to freqs[i]. Built from the 2D basis terms B[i, j] = F[i] (x) F[j]:
    cos = (B[2k-1, 2k-1] - B[2k, 2k]) / sqrt(2), sin = (B[2k, 2k-1] + B[2k-1, 2k]) / sqrt(2),
    which is cos(a + b) = cos a cos b - sin a sin b (and the sine rule) in the basis; for
    a - b: cos = (B[c, c] + B[s, s]) / sqrt(2), sin = (B[s, c] - B[c, s]) / sqrt(2). They
    are orthonormal, and orthogonal to constants, so projections need no mean handling.
    The log basis' top frequency K has only its cosine row (-1)^a, so cos(pi (a +- b)) =
    B[cos K, cos K] and its sine row is zero.
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    f = basis_matrix(basis, p)
    rows = []
    for k in freqs:
        if not 1 <= k <= n_freqs(p):
            raise ValueError(f"frequency {k} is outside 1..{n_freqs(p)} for p={p}")
        c, s = f[2 * k - 1], f[2 * k]
        if basis == "log" and k == n_freqs(p):
            rows.append(np.outer(c, c).ravel())
            rows.append(np.zeros(p * p))
            continue
        rows.append((np.outer(c, c) - sign * np.outer(s, s)).ravel() / math.sqrt(2))
        rows.append((np.outer(s, c) + sign * np.outer(c, s)).ravel() / math.sqrt(2))
    out = np.stack(rows) if rows else np.zeros((0, p * p))
    return torch.as_tensor(out, dtype=dtype, device=device)


def project(values: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Orthogonal projection of values (p^2, ...) onto the span of orthonormal `directions`."""
    flat = values.reshape(values.shape[0], -1)
    coeffs = directions @ flat  # (n_dirs, rest)
    return (directions.T @ coeffs).reshape(values.shape)


def block_shares(spectrum: Array, basis: str = "fourier") -> Array:
    """Share of each frequency's 3x3 block {Const, cos k, sin k}^2 in a centred 2D spectrum.

    spectrum: (p, p, n) fft2d of n maps over (x, y); entry [0, 0] (the mean) is ignored, so
    this is the centred analysis of DESIGN 4. Returns (K, n) with row k-1 for frequency k;
    a map with no variance (up to rounding) gets shares 0. In the log basis frequency 0 has
    two rows (Const, zero): its whole (0, 0) block is left out, and the block of k is
    {frequency 0, frequency k}^2 less (0, 0).
    """
    t, was_np = _as_tensor(spectrum)
    p = t.shape[0]
    if basis != "fourier":
        out = _grouped_block_shares(t, basis).reshape(n_freqs(p), *t.shape[2:])
        return out.numpy() if was_np else out
    sq = t.reshape(p, p, -1).square()
    mean_sq = sq[0, 0].clone()
    sq[0, 0] = 0.0
    total = sq.sum(dim=(0, 1))  # (n)
    k = n_freqs(p)
    # Rows/columns 2k-1, 2k of frequency k, each paired with the Const row/column.
    pair_rows = sq[1:].reshape(k, 2, p, -1).sum(dim=1)  # (K, p, n): freq of x, any y
    diag = pair_rows[:, 1:].reshape(k, k, 2, -1).sum(dim=2)  # (K, K, n): freq x, freq y
    same = torch.diagonal(diag, dim1=0, dim2=1).T  # (K, n): both axes at frequency k
    x_only = pair_rows[:, 0]  # (K, n): frequency k in x, Const in y
    y_only = sq[0, 1:].reshape(k, 2, -1).sum(dim=1)  # (K, n)
    block = same + x_only + y_only
    out = shares_of(block, total, total + mean_sq, p)
    out = out.reshape(k, *t.shape[2:])
    return out.numpy() if was_np else out


def _grouped_block_shares(t: torch.Tensor, basis: str) -> torch.Tensor:
    """`block_shares` for any basis, by summing squares per frequency pair."""
    p = t.shape[0]
    group = torch.as_tensor(_grouping(p, basis), dtype=t.dtype, device=t.device)
    sq = t.reshape(p, p, -1).square()
    g = torch.einsum("ax,xyn,by->abn", group, sq, group)  # (K+1, K+1, n) per frequency pair
    mean_sq = g[0, 0].clone()
    g[0, 0] = 0.0
    total = g.sum(dim=(0, 1))
    block = torch.diagonal(g, dim1=0, dim2=1).T[1:] + g[1:, 0] + g[0, 1:]  # (K, n)
    return shares_of(block, total, total + mean_sq, p)


def shares_of(
    block: torch.Tensor, total: torch.Tensor, energy: torch.Tensor, p: int
) -> torch.Tensor:
    """block / total per map, 0 where the variance `total` is rounding noise of `energy`.

    A constant map (a dead or always-on neuron) has a spectrum of rounding errors away
    from [0, 0]; their shares would be noise over noise.
    """
    eps = torch.finfo(block.dtype).eps
    live = total > (10 * p * eps) ** 2 * energy
    return torch.where(live, block / total.clamp_min(1e-30), torch.zeros_like(block))


def freq_norms(
    component_values: Sequence[float] | np.ndarray, basis: str = "fourier"
) -> np.ndarray:
    """Sum a per-component quantity (length p) per frequency: [Const, k=1, ..., k=K]."""
    v = np.asarray(component_values, dtype=np.float64)
    p = v.shape[0]
    if basis != "fourier":
        return _grouping(p, basis) @ v
    out = np.empty(n_freqs(p) + 1)
    out[0] = v[0]
    out[1:] = v[1:].reshape(-1, 2).sum(axis=1)
    return out


def freq_amplitudes(coefficients: np.ndarray, basis: str = "fourier") -> np.ndarray:
    """Fourier coefficients over the last axis (..., p) -> amplitude per frequency (..., K+1).

    cos k and sin k together (the root of the sum of their squares), the constant alone:
    one number per frequency says how much of it a curve holds, whatever its phase.
    """
    sq = np.asarray(coefficients, dtype=np.float64) ** 2
    if basis != "fourier":
        return np.sqrt(sq @ _grouping(sq.shape[-1], basis).T)
    k = (sq.shape[-1] - 1) // 2
    per_freq = np.concatenate([sq[..., :1], sq[..., 1:].reshape(*sq.shape[:-1], k, 2).sum(-1)], -1)
    return np.sqrt(per_freq)


def freq_pair_amplitudes(spectra: np.ndarray, basis: str = "fourier") -> np.ndarray:
    """2D coefficients (..., p, p) -> amplitude per frequency pair (..., K+1, K+1).

    Entry [kx, ky] gathers the (up to 2 x 2) components {cos, sin} kx by {cos, sin} ky:
    a sparse spectrum keeps its few strong pairs at half the size, so a pooled map of it
    still shows them.
    """
    per_ky = freq_amplitudes(spectra, basis)  # the last axis gathered per frequency
    return freq_amplitudes(np.swapaxes(per_ky, -1, -2), basis).swapaxes(-1, -2)
