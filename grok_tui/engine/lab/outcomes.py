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

A fifth answer is not Liu's: **undecided**. A member that memorised and was stopped by its
epoch budget while its test accuracy was still rising has not shown that it never
generalises (a grokking run spends most of its gap there). "Still rising" is a least-squares
line through the test accuracy of its last `trend_window` epochs rising by at least
`min_rise` over that window: a slope, so one noisy row neither makes nor breaks it. Such a
member is final for its budget; `grok-tui sweep --extend N` trains it further.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OUTCOMES = ("comprehension", "grokking", "memorisation", "confusion", "undecided")


@dataclass(frozen=True)
class OutcomeRule:
    acc: float = 0.99  # accuracy that counts as fitted (train) or generalised (test)
    delay_ratio: float = 1.0  # grokking: (generalised - memorised) >= ratio * memorised ...
    min_delay: int = 50  # ... and >= this many epochs
    trend_window: int = 200  # undecided: the last this many epochs of test accuracy ...
    min_rise: float = 0.05  # ... rose by at least this much (a fitted line's rise)


@dataclass(frozen=True)
class Outcome:
    name: str  # one of OUTCOMES
    memorised_at: int | None  # first epoch with train accuracy >= rule.acc
    grokked_at: int | None  # first epoch with test accuracy >= rule.acc
    final: bool  # False while more training could still change it
    at: int | None = None  # undecided: the epoch training stopped at

    @property
    def label(self) -> str:
        if self.name == "undecided":
            return f"undecided at {self.at:,} (still improving)"
        return self.name if self.final else f"{self.name}?"

    @property
    def short_label(self) -> str:
        """The name alone (a narrow column): 'undecided', 'memorisation?'."""
        return self.name if self.final else f"{self.name}?"


def rise_over(epochs: Sequence[int], values: Sequence[float]) -> float:
    """How much a least-squares line through (epochs, values) rises from the first epoch to
    the last (0.0 for fewer than two points or no spread of epochs; NaN values skipped)."""
    pts = [(float(e), float(v)) for e, v in zip(epochs, values, strict=True) if v == v]
    if len(pts) < 2:
        return 0.0
    n = len(pts)
    mx = sum(e for e, _ in pts) / n
    my = sum(v for _, v in pts) / n
    sxx = sum((e - mx) ** 2 for e, _ in pts)
    if sxx == 0:
        return 0.0
    slope = sum((e - mx) * (v - my) for e, v in pts) / sxx
    return slope * (pts[-1][0] - pts[0][0])


def still_improving(
    epochs: Sequence[int], test_acc: Sequence[float], rule: OutcomeRule = OutcomeRule()
) -> bool:
    """True if the test accuracy of the last `rule.trend_window` epochs rises by at least
    `rule.min_rise` (a fitted line; epochs ascending)."""
    if not epochs:
        return False
    start = epochs[-1] - rule.trend_window
    tail = [(e, v) for e, v in zip(epochs, test_acc, strict=True) if e >= start]
    return rise_over([e for e, _ in tail], [v for _, v in tail]) >= rule.min_rise


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
    improving = finished and bool(epochs) and still_improving(epochs, test_acc, rule)
    last = int(epochs[-1]) if epochs else None
    return outcome_of(memorised, grokked, finished, rule, improving_at=last if improving else None)


def outcome_of(
    memorised: int | None,
    grokked: int | None,
    finished: bool,
    rule: OutcomeRule = OutcomeRule(),
    improving_at: int | None = None,
) -> Outcome:
    """The outcome from the first epochs of fitting and of generalising (None: not yet).
    `improving_at`: the epoch a finished member stopped at with its test accuracy still
    rising (None: it was not); a memorised one is then undecided, not memorisation."""
    if grokked is not None:
        start = grokked if memorised is None else min(memorised, grokked)
        delay = grokked - start
        delayed = delay >= max(rule.delay_ratio * start, rule.min_delay)
        return Outcome("grokking" if delayed else "comprehension", memorised, grokked, True)
    if memorised is not None and finished and improving_at is not None:
        return Outcome("undecided", memorised, None, True, improving_at)
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
