"""Training phases from the progress measures (Nanda et al. 2023, section 5.1).

The paper splits training into memorisation (0 - 1.4k epochs for its run), circuit
formation (1.4k - 9.4k) and cleanup (9.4k - 14k), reading several curves at once. Each
boundary here is the median of the estimates from those curves, so that no one noisy curve
decides it:

- memorisation ends when the train loss reaches its floor and the model turns to the
  circuit: where the train loss comes within a band of its floor, the peak of the test
  loss, and (once the key frequencies are known) the minimum of the excluded loss, which
  turns up there;
- circuit formation ends (cleanup starts) when the test loss, the sum of squared weights and
  the Gini coefficient of W_E's Fourier norms start their sharp change: the restricted loss
  has already fallen, and the memorising weights are now removed;
- cleanup ends when those sharp changes are over: the test loss reaches its floor, the
  weights stop shrinking fast, the Gini coefficient stops rising fast.

Where a sharp change starts and ends is read the way one reads it off a plot: draw the
tangent at the steepest point of the (smoothed, log for losses) curve and intersect it with
the level before the change and with the level after it. The steepest point and the levels
are extremes of the whole curve, so moving the smoothing window or dropping every second
checkpoint moves them little (tests/test_phases.py checks this on recorded curves).

A boundary that the curves do not show yet is None: the sharp fall has not happened, or
has not ended (the curve after it must stay within a band around its floor for a while).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

PHASES = ("memorisation_end", "circuit_formation_end", "cleanup_end")
PHASE_NAMES = {  # what a run is doing after each boundary
    None: "memorising",
    "memorisation_end": "circuit forming",
    "circuit_formation_end": "cleaning up",
    "cleanup_end": "cleaned up",
}


@dataclass(frozen=True)
class PhaseParams:
    """The internal thresholds (tests move each by +-50%)."""

    smooth: float = 0.02  # smoothing window, as a share of the epochs seen so far
    min_change: float = 1.0  # a sharp change must span this many decades (losses) ...
    min_change_lin: float = 0.15  # ... or this share of the level (weights, Gini)
    train_floor: float = 0.05  # train loss within this share of its fall above its floor
    floor_band: float = 0.1  # after the change the curve moves by less than this share of it
    confirm: float = 0.25  # ... for this share of the change's duration, to count as ended


DEFAULT = PhaseParams()


@dataclass
class Change:
    """A sharp monotone change of a curve: where it starts and ends (epochs)."""

    start: float
    end: float | None  # None while the curve has not settled after it
    steepest: float


def smooth(x: np.ndarray, y: np.ndarray, window: float) -> np.ndarray:
    """Moving average over an epoch window (NaN skipped); the curve itself if too short.

    x ascending: each window is a slice, its sum a difference of cumulative sums (the as-of
    phases analyse every prefix of a run, so this runs n times per checkpoint)."""
    if window <= 0 or len(x) < 3:
        return y.copy()
    ok = np.isfinite(y)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    lo = np.searchsorted(x, x - window / 2, side="left")
    hi = np.searchsorted(x, x + window / 2, side="right")
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def sharp_change(
    x: np.ndarray,
    y: np.ndarray,
    falling: bool,
    params: PhaseParams,
    min_change: float,
    after: float = -math.inf,
    before: float = math.inf,
) -> Change | None:
    """The steepest monotone change of y between epochs `after` and `before`, by the
    tangent construction.

    y is a (log) curve sampled at epochs x. The steepest point is the largest slope
    (of the smoothed curve, between neighbouring samples) in the falling (or rising)
    direction; the level before is the curve's extreme between `after` and that point, the
    level after is its extreme from that point on. The tangent at the steepest point meets
    them at the start and the end. The end counts once it is `confirm` of the change's span
    in the past and the curve has since moved by less than `floor_band` of the change.
    """
    keep = np.isfinite(y) & (x > after) & (x < before)
    x, y = x[keep].astype(np.float64), y[keep].astype(np.float64)
    if len(x) < 4:
        return None
    sign = -1.0 if falling else 1.0
    span = x[-1] - x[0]
    ys = sign * smooth(x, y, params.smooth * max(x[-1], span))  # rising from here on
    slopes = np.diff(ys) / np.diff(x)
    i = int(np.argmax(slopes))
    if not slopes[i] > 0:
        return None
    x_mid = (x[i] + x[i + 1]) / 2
    y_mid = (ys[i] + ys[i + 1]) / 2
    low = float(ys[: i + 1].min())
    high = float(ys[i + 1 :].max())
    if not high - low >= min_change:
        return None
    start = onset(x[: i + 1], ys[: i + 1], x_mid, y_mid, float(slopes[i]))
    end = x_mid + (high - y_mid) / slopes[i]
    # Settled: the tangent's end lies `confirm` of the change's span in the past, and over
    # that recent stretch the curve has moved by less than `floor_band` of the change. (Not
    # "within a band of its extreme": a test loss keeps drifting down under weight decay
    # long after cleanup, so its extreme is wherever the run happens to stop.)
    settled = None
    wait = params.confirm * (end - start)
    if end < x[-1] and x[-1] - end >= wait:
        recent = ys[x >= min(x[-1] - wait, x[-2])]  # two checkpoints at least
        if recent.size >= 2 and recent.max() - recent.min() <= params.floor_band * (high - low):
            settled = end
    return Change(start=float(start), end=settled, steepest=float(x_mid))


def train_floor(x: np.ndarray, log_train: np.ndarray, params: PhaseParams) -> float | None:
    """Where the train loss reaches its floor: the first epoch after its steepest fall at
    which log10 train loss is within `train_floor` of its fall above the floor, the floor
    being the median level after the steepest fall (the plateau that fills most of a run).

    Only once the floor has held: the curve must have been seen for as long after that
    epoch as it took to get there, and over that stretch it moved by less than
    `floor_band` of the fall. A train loss still falling steadily (decades more to go, as
    in the first thousand epochs of the paper's run) has a median "floor" that is just its
    middle, reached half-way through the epochs seen: read as a floor it put the end of
    memorisation at 400 on the paper's run (1,400 in fact) and at 60 on a quick one (1,160).
    """
    ok = np.isfinite(log_train)
    if ok.sum() < 4:
        return None
    xs, ys = x[ok], log_train[ok]
    i = int(np.argmin(np.diff(ys) / np.diff(xs)))
    floor = float(np.median(ys[i + 1 :]))
    top = float(ys[: i + 1].max())
    if not top - floor >= params.min_change:
        return None
    hits = np.flatnonzero(ys[i + 1 :] <= floor + params.train_floor * (top - floor))
    if not hits.size or i + 1 + hits[0] == len(ys) - 1:
        return None  # not yet, or only just: the floor is not known yet
    hit = float(xs[i + 1 + hits[0]])
    held_until = hit + (hit - float(xs[0]))
    if xs[-1] < held_until:
        return None  # not held long enough to tell a floor from a slowing fall
    held = ys[(xs >= hit) & (xs <= held_until)]
    if held.max() - held.min() > params.floor_band * (top - floor):
        return None  # still falling through the stretch after it: not the floor
    return hit


def onset(x: np.ndarray, y: np.ndarray, x_mid: float, y_mid: float, slope: float) -> float:
    """Where the tangent at the steepest point leaves the curve's trend before it.

    The trend is the straight line through the first half of the curve before the steepest
    point (least squares): a curve that was already drifting (a test loss creeping down, a
    Gini coefficient rising slowly through circuit formation) has its knee where the steep
    tangent meets that drift, not where it meets the curve's lowest value.
    """
    half = x <= (x[0] + x_mid) / 2
    if half.sum() >= 2:
        b, a = np.polyfit(x[half], y[half], 1)
        if slope > b:
            return float(max((a - y_mid + slope * x_mid) / (slope - b), x[0]))
    return float(x_mid - (y_mid - y.min()) / slope)


def _log(y: Any) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(y, dtype=np.float64))
    return np.where(np.isfinite(out), out, np.nan)


# The test loss has come down from its peak when it fell this far below it (decades: by
# half). Not less: right after memorising, a test loss can overshoot and settle back by a
# quarter before it rises on for a thousand epochs (quick_f30: 19.2 at 60, 14.0 at 180,
# 25.9 at 1,440), and a tenth read that dip as the end of memorisation.
TEST_TURN = math.log10(2.0)


def _memorised_train(log_train: np.ndarray, params: PhaseParams) -> bool:
    """The train loss has fallen by `min_change` decades from its highest: memorised."""
    ok = log_train[np.isfinite(log_train)]
    return ok.size >= 2 and bool(ok.max() - ok[-1] >= params.min_change)


def memorisation_estimate(estimates: Sequence[float | None]) -> float | None:
    """The median of the three signals; with only two (no key set yet for the excluded
    loss), the earlier: a train loss that keeps falling as the circuit forms has no clear
    floor, and a test loss that turns down says the circuit is already at work."""
    got = [v for v in estimates if v is not None and math.isfinite(v)]
    if len(got) == 2:
        return min(got)
    return _median(got)


def _median(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(got)) if got else None


def _snap(epochs: np.ndarray, value: float | None) -> int | None:
    """The checkpoint epoch nearest a boundary estimate (boundaries are checkpoint epochs)."""
    if value is None or not len(epochs):
        return None
    return int(epochs[int(np.argmin(np.abs(epochs - value)))])


def find_phases(
    epochs: Sequence[int] | np.ndarray,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    params: PhaseParams = DEFAULT,
) -> dict[str, int | None]:
    """Phase boundaries from the curves (keys: `PHASE_CURVES`; any may be missing or NaN).
    Boundaries come out in order."""
    x = np.asarray(epochs, dtype=np.float64)
    out: dict[str, int | None] = dict.fromkeys(PHASES)
    if len(x) < 4:
        return out

    def get(name: str) -> np.ndarray:
        values = curves.get(name)
        if values is None:
            return np.full(len(x), np.nan)
        return np.asarray(values, dtype=np.float64)

    log_train, log_test = _log(get("train_loss")), _log(get("test_loss"))
    log_excl = _log(get("excluded_loss"))
    weights, gini_e = get("sum_sq_weights"), get("gini_W_E_freq")

    # Memorisation ends: train loss at its floor, test loss at its peak, excluded loss turning.
    estimates: list[float | None] = [train_floor(x, log_train, params)]
    test_turned = False  # the test loss has fallen well below its peak since
    if np.isfinite(log_test).any():
        i_peak = int(np.nanargmax(log_test))
        if i_peak < len(x) - 1:  # a peak only once the curve has come down from it
            estimates.append(float(x[i_peak]))
            fallen = log_test[i_peak] - np.nanmin(log_test[i_peak:])
            test_turned = bool(fallen >= TEST_TURN) and _memorised_train(log_train, params)
    if np.isfinite(log_excl).sum() >= 4:
        i_min = int(np.nanargmin(log_excl))
        if 0 < i_min < len(x) - 1 and np.nanmax(log_excl[i_min:]) - log_excl[i_min] >= math.log10(
            2.0
        ):
            estimates.append(float(x[i_min]))
    # The train loss at its floor is what memorisation ending means: without it the other
    # signals (a test loss dipping early, say) say nothing yet; unless the test loss has
    # already come down from its peak by half, the circuit at work while the train loss
    # still falls (a run that groks fast has no plateau first): memorisation ended there.
    if estimates[0] is not None:
        memorised = memorisation_estimate(estimates)
    else:
        memorised = estimates[1] if test_turned else None
    out["memorisation_end"] = _snap(x, memorised)
    if memorised is None:
        return out

    # Cleanup: the sharp fall of the test loss and of the weights, the sharp rise of the Gini.
    level = lambda v: v / np.nanmax(v) if np.isfinite(v).any() else v  # noqa: E731
    test_change = sharp_change(x, log_test, True, params, params.min_change, after=memorised)
    if test_change is None:  # no grokking yet: the other curves alone do not decide
        return out
    # The weights and the Gini change sharply during cleanup, but the weights also relax
    # after memorisation: look for their change only around the test loss' own.
    reach = 2 * (test_change.steepest - test_change.start)
    window = {
        "after": max(memorised, test_change.start - reach),
        "before": test_change.steepest + reach,
    }
    changes = [
        test_change,
        sharp_change(x, level(weights), True, params, params.min_change_lin, **window),
        sharp_change(x, level(gini_e), False, params, params.min_change_lin, **window),
    ]
    starts = [c.start for c in changes if c is not None]
    start = max(_median(starts) or memorised, memorised)
    out["circuit_formation_end"] = _snap(x, start)
    if test_change.end is None:
        return out
    ends = [c.end for c in changes if c is not None and c.end is not None]
    end = _median(ends)
    if end is not None and end > start:
        out["cleanup_end"] = _snap(x, end)
    return out


# The curves `find_phases` reads, named as in a `ProgressTable`. The Gini is the
# phase-invariant per-frequency one: a circuit whose phase turns moves mass between cos k
# and sin k, which moves the paper's per-component Gini but is no change of phase.
PHASE_CURVES = ("train_loss", "test_loss", "excluded_loss", "sum_sq_weights", "gini_W_E_freq")


def detect_phases(table: Any, params: PhaseParams = DEFAULT) -> dict[str, int | None]:
    """Phase boundaries of a `ProgressTable`'s curves (all of them: the raw estimate, which
    may move and flip back as checkpoints come; `PhaseMachine` makes the live ones)."""
    return find_phases(table.epochs, {n: table[n] for n in PHASE_CURVES}, params)


def not_applicable(op: str) -> str:
    """Why phases and a grok forecast mean nothing for this op ('' where they do): a random
    table has no rule to find, so a run of it memorises and never forms a circuit; its test
    loss cannot fall, and any "boundary" read off its curves would be noise."""
    if op == "random":
        return "n/a for op random: a random table has no rule to generalise to"
    return ""


def current_phase(phases: Mapping[str, int | None]) -> tuple[str, int | None]:
    """(what the run is doing now, since which epoch): 'circuit forming', 1400."""
    name, since = PHASE_NAMES[None], None
    for key in PHASES:
        if phases.get(key) is not None:
            name, since = PHASE_NAMES[key], phases[key]
    return name, since


def scaled(params: PhaseParams, field: str, factor: float) -> PhaseParams:
    """`params` with one threshold multiplied by `factor` (robustness tests)."""
    return replace(params, **{field: getattr(params, field) * factor})
