"""The data set: every pair (x, y), its label under the run's op, and the paper's split.

All p^2 pairs are kept in lexicographic order (flat index x * p + y), so any per-input array
can be reshaped to (p, p) for the (x, y) maps of the analysis. The train/test split is the
one the paper drew: Python's `random.seed(seed)` then `random.shuffle` of the op's input
list, first `int(frac * n)` inputs for training. For every op but `divide` that list is all
p^2 pairs (the paper's split exactly); `divide` leaves out y = 0 (`ops.input_indices`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from grok_tui.engine.core import ops
from grok_tui.engine.core.config import RunConfig


@dataclass(frozen=True)
class Dataset:
    """Index tensors into the p^2 grid; tokens and labels for every pair."""

    p: int
    tokens: torch.Tensor  # (p^2, 3) int64: [x, y, =]
    labels: torch.Tensor  # (p^2,) int64: op(x, y) mod p (0 off the op's input set)
    train_idx: torch.Tensor  # (n_train,) flat indices, in shuffle order
    test_idx: torch.Tensor  # (n_test,)

    @property
    def x(self) -> torch.Tensor:
        return self.tokens[:, 0]

    @property
    def y(self) -> torch.Tensor:
        return self.tokens[:, 1]

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.p,
            self.tokens.to(device),
            self.labels.to(device),
            self.train_idx.to(device),
            self.test_idx.to(device),
        )


def all_tokens(p: int) -> torch.Tensor:
    """Every input [x, y, =] in lexicographic order, shape (p^2, 3)."""
    x = torch.arange(p).repeat_interleave(p)
    y = torch.arange(p).repeat(p)
    return torch.stack([x, y, torch.full_like(x, p)], dim=1)


def split_indices(
    p: int, frac_train: float, seed: int, op: str = "add"
) -> tuple[list[int], list[int]]:
    """The paper's split: shuffle the op's flat input indices with Python's RNG, cut at frac."""
    order = ops.input_indices(op, p)
    random.Random(seed).shuffle(order)
    n_train = int(frac_train * len(order))
    return order[:n_train], order[n_train:]


def make_dataset(cfg: RunConfig) -> Dataset:
    tokens = all_tokens(cfg.p)
    labels = ops.labels(cfg.op, cfg.p, cfg.data_seed)
    train, test = split_indices(cfg.p, cfg.frac_train, cfg.data_seed, cfg.op)
    return Dataset(cfg.p, tokens, labels, torch.tensor(train), torch.tensor(test))
