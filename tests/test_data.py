"""The data set and the paper's split, reproduced from the paper's own code."""

from __future__ import annotations

import random

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset


def papers_split(p: int, frac: float, seed: int) -> list[tuple[int, int, int]]:
    """Nanda et al.'s training script, verbatim in substance."""
    pairs = [(i, j, p) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    return pairs[: int(frac * len(pairs))]


def test_split_sizes_for_the_paper() -> None:
    data = make_dataset(RunConfig())
    assert len(data.train_idx) == 3830
    assert len(data.test_idx) == 8939
    both = torch.cat([data.train_idx, data.test_idx])
    assert torch.equal(both.sort().values, torch.arange(113 * 113))


def test_split_equals_the_papers_shuffle() -> None:
    for p, frac, seed in [(113, 0.3, 0), (23, 0.5, 7)]:
        data = make_dataset(RunConfig(p=p, frac_train=frac, data_seed=seed))
        ours = [tuple(t) for t in data.tokens[data.train_idx].tolist()]
        assert ours == papers_split(p, frac, seed)


def test_tokens_and_labels() -> None:
    p = 7
    tokens = all_tokens(p)
    assert tokens.shape == (49, 3)
    assert tokens[10].tolist() == [1, 3, 7]  # flat index x * p + y
    data = make_dataset(RunConfig(p=p, frac_train=0.5))
    assert torch.equal(data.labels, (tokens[:, 0] + tokens[:, 1]) % p)
