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


def rising_then_stopped(epochs: int, last_rise: float, noise: float = 0.0):
    """Train accuracy fitted early; test accuracy flat at 0.3, then rising by `last_rise`
    over the last 200 epochs (the reported member: 0.34 -> 0.65), never reaching 99%."""
    e = list(range(epochs + 1))
    train = [1.0 if x >= 100 else x / 100 for x in e]
    start = epochs - 200
    test = [0.3 + (last_rise * (x - start) / 200 if x > start else 0.0) for x in e]
    test = [t + (noise if x % 2 else -noise) for x, t in zip(e, test, strict=True)]
    return e, train, test


def test_a_member_stopped_while_still_improving_is_undecided_not_memorisation() -> None:
    """Before, a member whose budget ran out with test accuracy climbing 0.34 -> 0.65 was
    called memorisation (never generalises)."""
    out = classify(*rising_then_stopped(1200, 0.31, noise=0.04), finished=True)
    assert (out.name, out.final, out.at) == ("undecided", True, 1200)
    assert out.label == "undecided at 1,200 (still improving)"
    assert out.short_label == "undecided"
    # Not finished yet: it may still grok, as before.
    assert classify(*rising_then_stopped(1200, 0.31), finished=False).label == "memorisation?"


@pytest.mark.parametrize(
    ("rise", "want"),
    [(0.0, "memorisation"), (0.03, "memorisation"), (0.06, "undecided"), (-0.2, "memorisation")],
)
def test_the_still_improving_boundary(rise: float, want: str) -> None:
    # The rule: a least-squares line over the last 200 epochs rises by >= 0.05. Noise
    # (+-0.2 on alternate rows) averages out; it neither makes nor breaks the call.
    assert classify(*rising_then_stopped(1200, rise, noise=0.2), finished=True).name == want


def test_rise_over_is_a_least_squares_line() -> None:
    from grok_tui.engine.lab.outcomes import rise_over

    assert rise_over([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0]) == pytest.approx(3.0)
    # Brute force: the slope minimising squared error, searched on a fine grid.
    xs, ys = [0, 10, 20, 30, 40], [0.1, 0.5, 0.2, 0.9, 0.6]
    best = min((sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True)), b)
               for a in [i / 200 for i in range(-100, 200)]
               for b in [j / 20000 for j in range(-400, 400)])[1]  # fmt: skip
    assert rise_over(xs, ys) == pytest.approx(best * 40, abs=0.01)
    assert rise_over([5], [1.0]) == 0.0 and rise_over([1, 2], [0.5, float("nan")]) == 0.0


def test_a_sweep_member_summary_reads_the_same_rule_from_its_rows() -> None:
    from grok_tui.engine.core.config import RunConfig
    from grok_tui.engine.lab.sweep_status import MemberSummary

    e, train, test = rising_then_stopped(1200, 0.31, noise=0.04)
    rows = [{"epoch": x, "train_loss": 0.1, "test_loss": 2.0, "train_acc": a, "test_acc": b}
            for x, a, b in zip(e, train, test, strict=True)]  # fmt: skip
    summary = MemberSummary("m", {}, RunConfig(epochs=1200))
    for i in range(0, len(rows), 37):  # read in pieces, as a live poll does
        summary.add(rows[i : i + 37])
    assert len(summary.recent) <= 201  # only the window is kept
    summary.status = "running"
    assert summary.outcome.label == "memorisation?"
    summary.status = "done"
    assert summary.outcome.label == "undecided at 1,200 (still improving)"
    summary.status = "failed"  # a crash is not a budget: no claim about the trend
    assert summary.outcome.name == "memorisation"
