"""Axis ticks for every plot and heatmap: round steps on linear axes, labelled log axes."""

from __future__ import annotations

import math
from collections.abc import Iterable

STEP_MANTISSAS = (1, 2, 2.5, 5)


def nice_step(raw: float, integer: bool = True) -> float:
    """The smallest round step >= raw: 1, 2, 2.5 or 5 times a power of ten (2.5 only where
    it stays an integer, when `integer`)."""
    if not raw > 0 or not math.isfinite(raw):
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for scale in (power, 10 * power):
        for m in STEP_MANTISSAS:
            step = m * scale
            if integer and (step < 1 or step != int(step)):
                continue
            if step >= raw * (1 - 1e-12):
                return int(step) if integer else step
    return int(10 * power) if integer else 10 * power


def round_ticks(last: int, count: int, first: int = 0) -> list[int]:
    """About `count` round integer ticks over first..last (epochs, tokens, frequencies),
    and `last` itself when the last round tick falls short of it by half a step or more."""
    if last <= first:
        return [first]
    step = int(nice_step((last - first) / max(count - 1, 1)))
    ticks = list(range(first, last + 1, step))
    if last - ticks[-1] >= step / 2:
        ticks.append(last)
    return ticks


def tick_label(value: float) -> str:
    """'0.05', '3', '2000' in the readable range; '1e-5', '2e4' beyond it."""
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10**exponent
    return f"{round(mantissa, 1):g}e{exponent}"


def log_ticks(values: Iterable[float], most: int = 7) -> list[tuple[float, str]]:
    """Ticks of a log axis over the positive finite values, as (value, label).

    Decades while two or more fall inside the data (every other one, and so on, when there
    are many); a span under a decade (the paper run's first 100 epochs: loss 2.4 to 7.6)
    gets 1-2-5 steps, or every integer mantissa, so the axis always has labelled values.
    """
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if not positive:
        return []
    lo, hi = min(positive), max(positive)
    k_lo, k_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    inside = [10.0**k for k in range(k_lo, k_hi + 1) if lo <= 10.0**k <= hi]
    if len(inside) >= 2:
        step = max(1, (k_hi - k_lo) // (most - 1) + 1)
        if most == 2:  # the floor step leaves one tick: the two ends' decades
            step = k_hi - k_lo
        ticks = [10.0**k for k in range(k_lo, k_hi + 1, step)]
    else:
        ticks = []
        for mantissas in ((1, 2, 5), range(1, 10)):
            ticks = [
                m * 10.0**k
                for k in range(k_lo, k_hi + 1)
                for m in mantissas
                if lo <= m * 10.0**k <= hi
            ]
            if len(ticks) >= 3:
                break
        if len(ticks) < 2:  # a span inside one step of 1..9: its ends, rounded
            ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
        while len(ticks) > most:
            ticks = ticks[::2]
    return [(t, tick_label(t)) for t in ticks]


def ticks_that_fit(rows: int, most: int = 7) -> int:
    """How many labelled ticks a y axis of `rows` text rows takes, at most `most`: one row
    between labels, at least 2. plotext drops a label that would share a row, so a plot
    squeezed to 3 rows (12 runs compared at 80 x 24) showed log ticks with a decade missing
    from their even steps."""
    plot_rows = rows - 3  # the title, the x ticks and (on taller plots) their label
    return max(2, min(most, (plot_rows + 1) // 2))
