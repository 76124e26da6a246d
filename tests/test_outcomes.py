"""The four outcomes of Liu et al. 2022, read off planted metric histories."""

from __future__ import annotations

import math

import pytest

from grok_tui.engine.lab.outcomes import classify, classify_rows, outcome_of


def history(train_at: int | None, test_at: int | None, epochs: int = 3000, noise: bool = True):
    """Accuracies that rise as sigmoids crossing 99% at the given epochs (None: never)."""
    e = list(range(epochs + 1))

    def curve(at: int | None, floor: float) -> list[float]:
        if at is None:
            return [floor + 0.3 * (1 - math.exp(-x / 500)) for x in e]  # creeps, never 99%
        width = max(at / 20, 1.0)
        # 1 / (1 + exp(-(x - mid) / width)) crosses 0.99 at mid + width * ln(99) = at.
        mid = at - width * math.log(99)
        return [1 / (1 + math.exp(-(x - mid) / width)) for x in e]

    train, test = curve(train_at, 0.3), curve(test_at, 0.01)
    # A dip below 99% after crossing must not move the first crossing.
    if noise and train_at is not None and train_at + 10 <= epochs:
        train[train_at + 10] = 0.5
    return e, train, test


@pytest.mark.parametrize(
    ("train_at", "test_at", "finished", "want", "final"),
    [
        (150, 10_596 // 5, True, "grokking", True),  # memorises, generalises much later
        (53, 1000, False, "grokking", True),  # the quick preset; final before the end
        (300, 340, True, "comprehension", True),  # generalises as it fits
        (300, 340, False, "comprehension", True),
        (200, None, True, "memorisation", True),  # fits, never generalises
        (200, None, False, "memorisation", False),  # ... so far: it may still grok
        (None, None, True, "confusion", True),  # never fits the train set
        (None, None, False, "confusion", False),
    ],
)
def test_planted_histories(train_at, test_at, finished, want, final) -> None:
    epochs, train, test = history(train_at, test_at)
    out = classify(epochs, train, test, finished)
    assert (out.name, out.final) == (want, final)
    assert out.memorised_at == train_at
    assert out.grokked_at == test_at
    assert out.label == (want if final else want + "?")


def test_the_delay_rule_boundary() -> None:
    # Grokking: generalised at least as long again after memorising, and >= 50 epochs later.
    assert outcome_of(100, 199, True).name == "comprehension"
    assert outcome_of(100, 200, True).name == "grokking"
    assert outcome_of(10, 59, True).name == "comprehension"  # 49 epochs: too short a gap
    assert outcome_of(10, 60, True).name == "grokking"
    assert outcome_of(None, 500, True).name == "comprehension"  # test before train: no gap


def test_nan_rows_never_count_as_reached() -> None:
    rows = [
        {"epoch": 0, "train_acc": 0.1, "test_acc": 0.0},
        {"epoch": 1, "train_acc": math.nan, "test_acc": math.nan},
    ]
    out = classify_rows(rows, finished=True)
    assert out.name == "confusion" and out.memorised_at is None
