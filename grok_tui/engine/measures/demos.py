"""Built-in demonstrations that need no checkpoint (blog view 10: a planted 2D function).

A learner sees fft2d at work on a function whose answer is known: plant a sum of a few 2D
basis terms B[i, j] = F[i] (outer) F[j], transform it, and exactly those coefficients come
back. The default terms include cos(w_k (x + y)) = (p / 2) (B[cos k, cos k] - B[sin k, sin k]),
the shape the grokked model's neurons and logits take, so the demo shows what "a neuron of
frequency k" looks like in both pictures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from grok_tui.engine.core import fourier

# (coefficient, x component i, y component j): coefficient * F[i](x) * F[j](y).
PlantedTerm = tuple[float, int, int]


def component_index(kind: str, k: int) -> int:
    """Row of F for "const" (k ignored), "cos" k or "sin" k."""
    if kind == "const":
        return 0
    if kind not in ("cos", "sin") or k < 1:
        raise ValueError(f"no basis component {kind} {k}")
    return 2 * k - 1 if kind == "cos" else 2 * k


def default_freqs(p: int) -> tuple[int, int, int]:
    """Frequencies of the default demo's x wave, y wave and (x + y) wave."""
    top = fourier.n_freqs(p)
    if top < 1:
        raise ValueError(f"p={p} has no non-constant frequency")
    a, b, c = (min(k, top) for k in (1, 2, 3))
    return a, b, c


def default_formula(p: int) -> str:
    """The default demo in ordinary notation."""
    a, b, c = default_freqs(p)
    return f"f(x,y) = cos({a}wx) + 0.6 sin({b}wy) + 0.8 cos({c}w(x+y)),  w = 2π/{p}"


def default_terms(p: int) -> tuple[PlantedTerm, ...]:
    """Three ingredients a learner can spot in the spectrum, scaled to this p:

    - a wave along x only:      (cos a, Const)           -> a dot on the left column;
    - a wave along y only:      (Const, sin b)           -> a dot on the top row;
    - a wave along x + y:       (cos c, cos c), -(sin c, sin c) -> two dots on the diagonal.

    Frequencies a, b, c are 1, 2, 3 where p allows (clipped to 1..(p - 1) / 2); the
    amplitudes over (x, y) are 1, 0.6 and 0.8 (F's rows have norm 1, so a single term
    cos(w_a x) is sqrt(2) / p times F[cos a] (outer) F[Const], and so on).
    """
    a, b, c = default_freqs(p)
    one_axis = p / math.sqrt(2)  # coefficient of amplitude 1 for cos(w x) (outer) Const
    both = p / 2  # and for cos(w x) cos(w y)
    return (
        (1.0 * one_axis, component_index("cos", a), 0),
        (0.6 * one_axis, 0, component_index("sin", b)),
        (0.8 * both, component_index("cos", c), component_index("cos", c)),
        (-0.8 * both, component_index("sin", c), component_index("sin", c)),
    )


def planted_function(p: int, terms: Sequence[PlantedTerm]) -> np.ndarray:
    """f[x, y] = sum of coefficient * F[i, x] * F[j, y] over the terms, (p, p) float64."""
    basis = fourier.fourier_basis_np(p)
    out = np.zeros((p, p))
    for coeff, i, j in terms:
        if not (0 <= i < p and 0 <= j < p):
            raise ValueError(f"basis component ({i}, {j}) is outside 0..{p - 1}")
        out += coeff * np.outer(basis[i], basis[j])
    return out


def describe_term(p: int, term: PlantedTerm) -> str:
    """One planted term in words, with the basis names, e.g. '+1.20 cos 2(x)·Const(y)'."""
    names = fourier.basis_names(p)
    coeff, i, j = term
    return f"{coeff:+.2f} {names[i]}(x)·{names[j]}(y)"


@dataclass(frozen=True)
class PlantedDemo:
    """A planted function, its 2D spectrum, and the terms that made it."""

    p: int
    terms: tuple[PlantedTerm, ...]
    values: np.ndarray  # (p, p) f[x, y]
    spectrum: np.ndarray  # (p, p) fft2d(values): the planted coefficients, zeros elsewhere
    formula: str = ""  # the function in ordinary notation, when known

    def describe(self) -> list[str]:
        return [describe_term(self.p, t) for t in self.terms]

    @property
    def span(self) -> int:
        """Components 0..span-1 hold every planted term: the corner of the spectrum to show
        (the rest is zero), so a small terminal need not pool the dots away."""
        used = [max(i, j) for _, i, j in self.terms]
        return min(self.p, max(used, default=0) + 3)


def planted_demo(p: int, terms: Sequence[PlantedTerm] | None = None) -> PlantedDemo:
    """Plant `terms` (default: `default_terms(p)`) and transform them back with fft2d."""
    chosen = tuple(default_terms(p) if terms is None else terms)
    values = planted_function(p, chosen)
    spectrum = np.asarray(fourier.fft2d(values), dtype=np.float64)
    formula = default_formula(p) if terms is None else ""
    return PlantedDemo(p=p, terms=chosen, values=values, spectrum=spectrum, formula=formula)
