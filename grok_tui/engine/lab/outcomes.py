"""What a member's training came to, in the four phases of Liu et al. 2022.

Liu et al. ("Towards Understanding Grokking: An Effective Theory of Representation
Learning", 2022) draw phase diagrams with four outcomes:

- comprehension: the model generalises without a long memorisation gap;
- grokking: it memorises the train set, then generalises much later;
- memorisation: it fits the train set and never generalises;
- confusion: it never fits the train set.

Their thresholds were set for their own toy models and step budgets. grok-tui reads them off
a member's metric history with the thresholds of `OutcomeRule`: memorised at the first
epoch with train accuracy >= 99%, generalised (grokked) at the first with test accuracy >=
99%, and generalisation counts as delayed (grokking) when it comes at least as long again
after memorising as memorising took, and at least 50 epochs after. Until a member finishes,
an outcome without generalisation is provisional (`final` False): it may still grok.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OUTCOMES = ("comprehension", "grokking", "memorisation", "confusion")


@dataclass(frozen=True)
class OutcomeRule:
    acc: float = 0.99  # accuracy that counts as fitted (train) or generalised (test)
    delay_ratio: float = 1.0  # grokking: (generalised - memorised) >= ratio * memorised ...
    min_delay: int = 50  # ... and >= this many epochs


@dataclass(frozen=True)
class Outcome:
    name: str  # one of OUTCOMES
    memorised_at: int | None  # first epoch with train accuracy >= rule.acc
    grokked_at: int | None  # first epoch with test accuracy >= rule.acc
    final: bool  # False while more training could still change it

    @property
    def label(self) -> str:
        return self.name if self.final else f"{self.name}?"


def first_epoch(epochs: Sequence[int], values: Sequence[float], level: float) -> int | None:
    """The first epoch whose value is >= level (NaN never is)."""
    return next((int(e) for e, v in zip(epochs, values, strict=True) if v >= level), None)


def classify(
    epochs: Sequence[int],
    train_acc: Sequence[float],
    test_acc: Sequence[float],
    finished: bool,
    rule: OutcomeRule = OutcomeRule(),
) -> Outcome:
    """The outcome of one metric history (epochs ascending). `finished`: no more epochs
    will come (done, diverged or given up), so the absence of an event is final."""
    memorised = first_epoch(epochs, train_acc, rule.acc)
    grokked = first_epoch(epochs, test_acc, rule.acc)
    return outcome_of(memorised, grokked, finished, rule)


def outcome_of(
    memorised: int | None, grokked: int | None, finished: bool, rule: OutcomeRule = OutcomeRule()
) -> Outcome:
    """The outcome from the first epochs of fitting and of generalising (None: not yet)."""
    if grokked is not None:
        start = grokked if memorised is None else min(memorised, grokked)
        delay = grokked - start
        delayed = delay >= max(rule.delay_ratio * start, rule.min_delay)
        return Outcome("grokking" if delayed else "comprehension", memorised, grokked, True)
    name = "memorisation" if memorised is not None else "confusion"
    return Outcome(name, memorised, None, finished)


def classify_rows(rows: Sequence[dict[str, float]], finished: bool) -> Outcome:
    """`classify` on metrics.jsonl rows."""
    return classify(
        [int(r["epoch"]) for r in rows],
        [r["train_acc"] for r in rows],
        [r["test_acc"] for r in rows],
        finished,
    )
