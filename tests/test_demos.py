"""The planted-function demo: values match the formula, fft2d recovers the planted terms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grok_tui.engine.measures.demos import (
    component_index,
    default_freqs,
    default_terms,
    describe_term,
    planted_demo,
    planted_function,
)
from tests.planted import explicit_basis


@pytest.mark.parametrize("p", [5, 23, 113])
def test_default_demo_is_the_formula_and_its_spectrum_is_the_terms(p: int) -> None:
    demo = planted_demo(p)
    a, b, c = default_freqs(p)
    x = np.arange(p)
    w = 2 * math.pi / p
    expected = (
        np.cos(a * w * x)[:, None]
        + 0.6 * np.sin(b * w * x)[None, :]
        + 0.8 * np.cos(c * w * (x[:, None] + x[None, :]))
    )
    np.testing.assert_allclose(demo.values, expected, atol=1e-12)
    # The spectrum, computed with an independent basis, holds the planted terms and nothing else.
    f = explicit_basis(p)
    np.testing.assert_allclose(demo.spectrum, f @ demo.values @ f.T, atol=1e-9)
    planted = np.zeros((p, p))
    for coeff, i, j in demo.terms:
        planted[i, j] += coeff
    np.testing.assert_allclose(demo.spectrum, planted, atol=1e-9)
    assert f"{p}" in demo.formula and len(demo.describe()) == len(demo.terms)
    corner = np.zeros_like(planted)
    corner[: demo.span, : demo.span] = planted[: demo.span, : demo.span]
    np.testing.assert_array_equal(corner, planted)  # the corner holds every planted term


def test_custom_terms_and_names() -> None:
    p = 11
    terms = [(2.0, component_index("sin", 3), component_index("cos", 1)), (-1.0, 0, 0)]
    demo = planted_demo(p, terms)
    assert demo.formula == ""
    assert demo.spectrum[6, 1] == pytest.approx(2.0) and demo.spectrum[0, 0] == pytest.approx(-1)
    assert np.count_nonzero(np.abs(demo.spectrum) > 1e-9) == 2
    assert describe_term(p, terms[0]) == "+2.00 sin 3(x)·cos 1(y)"
    assert component_index("const", 7) == 0 and component_index("cos", 2) == 3


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        planted_function(7, [(1.0, 7, 0)])
    with pytest.raises(ValueError):
        component_index("tan", 1)
    with pytest.raises(ValueError):
        default_terms(1)
    assert default_freqs(5) == (1, 2, 2)  # clipped to the frequencies p has
