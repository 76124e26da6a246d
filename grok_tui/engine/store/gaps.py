"""Epochs without a metrics row: a metrics file cut short, emptied or torn says so.

The trainer writes a row for every epoch, and writes the rows up to an epoch before that
epoch's checkpoint (and resume state); so every epoch from 0 to the newest checkpoint has
a row in an intact run. A file cut in half parses cleanly (its torn last line is taken for
one still being written), so the rows that are missing must be counted, not just the
lines that fail to parse. Computed from ranges, never one epoch at a time: a hostile
checkpoint name may claim epoch 10,000,000.
"""

from __future__ import annotations

from collections.abc import Iterable


def epoch_gaps(present: Iterable[int], through: int) -> list[tuple[int, int]]:
    """Inclusive ranges of epochs in 0..through that are not in `present`."""
    gaps: list[tuple[int, int]] = []
    expected = 0
    for epoch in sorted({e for e in present if 0 <= e <= through}):
        if epoch > expected:
            gaps.append((expected, epoch - 1))
        expected = epoch + 1
    if expected <= through:
        gaps.append((expected, through))
    return gaps


def describe_gaps(gaps: list[tuple[int, int]], most: int = 6) -> str:
    """[(3, 5), (9, 9)] -> '3-5, 9' (the first few ranges)."""
    parts = [f"{a:,}" if a == b else f"{a:,}-{b:,}" for a, b in gaps[:most]]
    return ", ".join(parts) + (", ..." if len(gaps) > most else "")


def count_epochs(gaps: list[tuple[int, int]]) -> int:
    return sum(b - a + 1 for a, b in gaps)


def missing_rows_warning(name: str, gaps: list[tuple[int, int]], newest_checkpoint: int) -> str:
    """One line naming the epochs up to the newest checkpoint that have no row ('' if none)."""
    if not gaps:
        return ""
    n = count_epochs(gaps)
    epochs = f"epoch {gaps[0][0]:,}" if n == 1 else f"{n:,} epochs ({describe_gaps(gaps)})"
    return (
        f"{name} has no row for {epochs} though the run has a "
        f"checkpoint at epoch {newest_checkpoint:,}: the file was cut short or damaged"
    )
