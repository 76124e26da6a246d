"""Prieto et al. 2025's orthogonal gradient (their ⊥Grad), applied before AdamW.

Their `OrthoGrad` optimiser (github.com/LucasPrietoAl/grokking-at-the-edge-of-numerical-
stability, orthograd.py) wraps the base optimiser and, before each step, replaces every
parameter's gradient g by its component orthogonal to the parameter w, rescaled to g's norm:

    g_perp = g - (<w, g> / (<w, w> + 1e-30)) w
    g     <- g_perp * ||g|| / (||g_perp|| + 1e-30)

per parameter tensor (each weight matrix and bias on its own, not the model as one vector).
The component along w is what only scales the logits up ("naive loss minimisation"): it
lowers the loss of an example already classified right without changing any prediction,
until the softmax collapses in floating point.

Here a member's trained parameters are one flat row (training/stepper.py `Layout`): the
projection runs on each parameter's segment of the row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

EPS = 1e-30  # their constant, in <w, w> + eps and ||g_perp|| + eps


class Orthogonaliser:
    """⊥Grad for flat rows made of parameters of the given sizes, in order."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = [int(n) for n in sizes]

    def apply(self, grad: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The orthogonalised, rescaled gradient of one member's row (a new tensor).

        Parameter by parameter, with their operations (a handful of small kernels each:
        the per-parameter sums measured ~10x faster on a CPU than a scatter-add over the row)."""
        out = torch.empty_like(grad)
        split = self.sizes
        for g, w, o in zip(grad.split(split), weights.split(split), out.split(split), strict=True):
            proj = torch.dot(w, g) / (torch.dot(w, w) + EPS)
            perp = g - proj * w
            torch.mul(perp, g.norm(2) / (perp.norm(2) + EPS), out=o)
        return out
