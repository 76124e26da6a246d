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

Here a member's trained parameters are one flat row (training/stepper.py `Layout`), so the
dot products and norms are per-parameter sums over that row's segments.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

EPS = 1e-30  # their constant, in <w, w> + eps and ||g_perp|| + eps


class Orthogonaliser:
    """⊥Grad for flat rows made of parameters of the given sizes, in order."""

    def __init__(self, sizes: Sequence[int], device: torch.device) -> None:
        self.n_params = len(sizes)
        self.segment = torch.repeat_interleave(
            torch.arange(self.n_params, device=device), torch.tensor(list(sizes), device=device)
        )

    def _sums(self, values: torch.Tensor) -> torch.Tensor:
        """Per-parameter sums of a flat row, (n_params,)."""
        out = values.new_zeros(self.n_params)
        return out.index_add_(0, self.segment, values)

    def apply(self, grad: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The orthogonalised, rescaled gradient of one member's row (a new tensor)."""
        proj = self._sums(weights * grad) / (self._sums(weights * weights) + EPS)
        perp = grad - proj[self.segment] * weights
        norm = self._sums(grad * grad).sqrt()
        norm_perp = self._sums(perp * perp).sqrt() + EPS
        return perp * (norm / norm_perp)[self.segment]
