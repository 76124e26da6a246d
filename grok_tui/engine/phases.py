"""Training phases from the progress measures (Nanda et al. 2023, section 5.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PHASES = ("memorisation_end", "circuit_formation_end", "cleanup_end")
MEMORISED_ACC = 0.99  # train accuracy at which the training set counts as memorised
GENERALISED_ACC = 0.99  # test accuracy required at the end of cleanup
EXCLUDED_RISE = 2.0  # the excluded loss must later exceed its minimum by this factor
MIN_DROP_DECADES = 1.0  # the test loss must fall this many decades below its peak
DROP_START = 0.1  # share of the log test-loss fall that marks the start of cleanup
FLOOR_BAND = 0.1  # within this share of the log fall above the floor: cleanup has ended
FLOOR_CONFIRM = 2  # checkpoints after the floor is reached before it counts
FLOOR_CONFIRM_SHARE = 0.25  # ... and epochs after it, as a share of the cleanup so far


def detect_phases(table: Any) -> dict[str, int | None]:
    """Phase boundaries of a table's curves; see `find_phases`."""
    return find_phases(
        table.epochs,
        train_acc=table["train_acc"],
        test_loss=table["test_loss"],
        test_acc=table["test_acc"],
        excluded_loss=table["excluded_loss"],
    )


def find_phases(
    epochs: np.ndarray | Sequence[int],
    train_acc: np.ndarray | Sequence[float],
    test_loss: np.ndarray | Sequence[float],
    test_acc: np.ndarray | Sequence[float],
    excluded_loss: np.ndarray | Sequence[float],
) -> dict[str, int | None]:
    """The ends of memorisation, circuit formation and cleanup, detected from the curves.

    Following the paper's description of the phases (section 5.1), per checkpoint:

    - memorisation ends where the excluded loss stops falling with the train loss and
      starts to rise (the model begins to use the key frequencies): the epoch of the
      excluded loss' minimum before its later maximum, provided the training set is
      memorised there (train acc >= 0.99) and the rise is real (max >= 2 x min).
    - circuit formation ends (cleanup starts) when the test loss starts its sudden fall:
      the first epoch after max(memorisation end, test-loss peak) at which log10 test
      loss has covered 10% of its fall from the peak to its minimum; only if that fall
      spans at least one decade.
    - cleanup ends when the test loss reaches its floor: the first epoch from there on
      with log10 test loss within 10% of the fall above the minimum and test acc >= 0.99,
      confirmed by at least 2 later checkpoints spanning at least a quarter of the
      cleanup's length (a curve still falling steadily has no floor yet).

    A phase not reached (no rise of the excluded loss, no fall of the test loss, floor not
    yet confirmed) is None. Boundaries come out in order. NaN values are skipped.
    """
    ep = np.asarray(epochs, dtype=np.int64)
    tr_acc = np.asarray(train_acc, dtype=np.float64)
    te_acc = np.asarray(test_acc, dtype=np.float64)
    excl = np.asarray(excluded_loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_te = np.log10(np.asarray(test_loss, dtype=np.float64))
    log_te = np.where(np.isfinite(log_te), log_te, np.nan)
    out: dict[str, int | None] = dict.fromkeys(PHASES)
    n = len(ep)
    if n == 0:
        return out

    start = 0
    ex_ok = np.isfinite(excl)
    if ex_ok.any():
        i_max = int(np.nanargmax(np.where(ex_ok, excl, -np.inf)))
        before = np.where(ex_ok[: i_max + 1], excl[: i_max + 1], np.inf)
        i_min = int(np.argmin(before))
        if (
            i_min < i_max
            and excl[i_max] >= EXCLUDED_RISE * excl[i_min]
            and tr_acc[i_min] >= MEMORISED_ACC
        ):
            out["memorisation_end"] = int(ep[i_min])
            start = i_min

    te_ok = np.isfinite(log_te[start:])
    if not te_ok.any():
        return out
    tail = np.where(te_ok, log_te[start:], -np.inf)
    i_peak = start + int(np.argmax(tail))
    after_peak = np.where(np.isfinite(log_te[i_peak:]), log_te[i_peak:], np.inf)
    low = float(after_peak.min())
    fall = float(log_te[i_peak]) - low
    if not fall >= MIN_DROP_DECADES:
        return out
    dropped = np.flatnonzero(after_peak <= log_te[i_peak] - DROP_START * fall)
    i_drop = i_peak + int(dropped[0])
    out["circuit_formation_end"] = int(ep[i_drop])

    floor = (after_peak[i_drop - i_peak :] <= low + FLOOR_BAND * fall) & (
        te_acc[i_drop:] >= GENERALISED_ACC
    )
    hits = np.flatnonzero(floor)
    if hits.size:
        i_end = i_drop + int(hits[0])
        # A curve still falling steadily has no floor yet: the band follows its newest
        # value down. Count the floor only once the run went on past it for a while.
        span = ep[i_end] + FLOOR_CONFIRM_SHARE * (ep[i_end] - ep[i_drop])
        if i_end + FLOOR_CONFIRM <= n - 1 and ep[-1] >= span:
            out["cleanup_end"] = int(ep[i_end])
    return out
