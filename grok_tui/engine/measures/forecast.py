"""When will a run grok? A forecast from the progress measures, with an honest interval.

What is extrapolated: the share of the logits' variance that is a function of x + y
(`xy_share_logits`: the generalising part of the logits; the rest is the memorising
residual). It is exact live, needs no key frequencies, and grows smoothly through circuit
formation (full-batch training: no sampling noise) to about 0.85-0.9 when test accuracy
reaches 99%. With z = log(share / (1 - share)), the log-odds of the generalising part:

- extrapolating z linearly (the recent trend of the log-odds) under-predicts growth that
  keeps accelerating, which it does through circuit formation: a late estimate;
- extrapolating the odds' reciprocal exp(-z) linearly (the memorising residual's relative
  size shrinking at its recent rate) over-predicts it: an early estimate.

Both are fitted on the last `window` of the epochs since memorisation ended (so the fit
follows the acceleration), to the target share `target_share`; the raw forecast is their
geometric mean.

`forecast_grok`, the forecast shown: the raw forecast corrected by a log-ratio fitted on a
corpus of lab runs, as a function of how far the run has come (its bias is systematic:
early on it comes too soon), with a split-conformal 80% interval from runs held out from
the fit, wider the less of the run the curves since memorisation cover (`evidence`; not the
progress the forecast itself implies, which is most sure of itself exactly when it comes
too soon: engine/measures/forecast_model.py; the constants
ship in forecast_constants.json, bench/forecast_refit.py refits them). It speaks as soon as
the share has grown over `min_points` checkpoints since memorisation ended: a wide range
early, narrowing as evidence comes in. Once the share has reached the target (the circuit is
in place, test accuracy lags) the raw forecast is now and the correction (its `reached`
term) says how long the lag is. Late on the correction also reads test accuracy's own
trend (`acc_trend`: its recent log-odds extrapolated to 99%), which says when accuracy
gets there where the share, at its target, cannot; its weight grows with accuracy now (the
`trend` feature; which features the correction uses is the refit's choice). No forecast
(None, with the reason) before `min_points` checkpoints, while the share is not growing, or
while its trend reaches the target only after `FAR` times now.

Where memorisation ends is the phases' announced boundary when there is one. The phases
announce it only once the train loss has held its floor or the test loss has halved from
its peak, which on a fast run comes late (at 60-80% of the way to grokking), so until then
the forecast starts from a provisional end of its own (`provisional_start`): the peak of
the test loss, once the test loss has come a third of the way down from it. That start is
fixed the first time it is found (a later, higher peak does not move it) and belongs to the
forecast alone: the phases shown never see it. Where the test loss does not come down early
(it may rise again after its first peak) a third start may speak (`memorised_start`: where
the train set was memorised, once the x + y share has risen since, by the constants'
`share_rise`, with test accuracy at least their `memo_min_acc`), and on runs that
generalise while they memorise a fourth (`generalising_start`: where test accuracy reached
the constants' `generalising_acc`); both are chosen, or left off, on the corpus by
bench/forecast_starts.py. Forecasts from either carry the `memo` feature and their own
interval width. Such forecasts are marked provisional.

`rule_forecast`, the forecast before issue 19 (kept for comparison in the benchmarks): the
two estimates widened by `margin`, after a wait for the share to grow `min_growth` times and
for the recent forecasts to agree within `stable_tol`.

A run that has grokked reports the epoch seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grok_tui.engine.measures.forecast_model import ForecastModel, shipped_model

GROKKED_ACC = 0.99  # the event forecast: test accuracy reaches 99%


def first_grokked(rows: Iterable[Mapping[str, float]], upto: float = math.inf) -> int | None:
    """The first metrics row's epoch (up to `upto`) with test accuracy >= GROKKED_ACC: the
    grok epoch as the app, `analyze` and headless training say it (rows have every epoch;
    the measures, whose forecast turns observed, only checkpoints)."""
    return next(
        (int(r["epoch"]) for r in rows if r["epoch"] <= upto and r["test_acc"] >= GROKKED_ACC),
        None,
    )


# Test accuracy at which a run with no start yet is said to generalise while it memorises
# (a fast run: held-out p = 167 at train fraction 0.45 was at 60-83% at 65% of its way);
# words for the silence, never a forecast (the fitted `generalising_acc` starts one).
SAID_GENERALISING_ACC = 0.5
FAR = 10.0  # a raw forecast beyond FAR x now is no forecast: the share is hardly growing


@dataclass(frozen=True)
class ForecastParams:
    target_share: float = 0.85  # x + y share of the logits' variance when a run groks
    window: float = 0.5  # fit on the last half of the epochs since memorisation ended
    min_points: int = 6  # checkpoints in the fit, at least
    min_growth: float = 2.0  # no forecast until the share is this many times its value at
    # memorisation end: before that, circuit formation has barely begun to show
    max_ratio: float = 3.0  # no forecast while late / early estimate exceeds this
    stable_window: float = 0.2  # ... or while the forecasts made over this share of the
    stable_tol: float = 0.03  # epochs since memorisation differ from this one by more
    margin: float = 0.1  # the interval: [early / (1 + margin), late * (1 + margin)]


DEFAULT = ForecastParams()


@dataclass
class Forecast:
    """A forecast of the epoch at which test accuracy reaches 99% (None: see `reason`)."""

    grok_epoch: int | None
    low: int | None = None
    high: int | None = None
    reason: str = ""
    observed: bool = False  # the run has already grokked: grok_epoch is what happened
    level: float | None = None  # the interval's coverage, when calibrated (0.8: an 80% one)
    as_of: int | None = None  # the newest checkpoint the forecast saw
    details: dict[str, Any] = field(default_factory=dict)
    provisional: bool = False  # made before the phases announced the memorisation end

    def to_json(self) -> dict[str, Any] | None:
        if self.grok_epoch is None:
            return None
        return {"grok_epoch": self.grok_epoch, "low": self.low, "high": self.high,
                "level": self.level, "provisional": self.provisional}  # fmt: skip

    def short(self) -> str:
        """A few characters for a status bar: 'grok ~10.6k (9,800-11.9k)', with a '?' after
        the epoch while provisional; '' without one."""
        if self.grok_epoch is None:
            return ""
        if self.observed:
            return f"grokked {self.grok_epoch:,}"
        mark = "?" if self.provisional else ""
        return f"grok ~{_k(self.grok_epoch)}{mark} ({_k(self.low)}-{_k(self.high)})"

    def describe(self) -> str:
        """One line for a status bar: 'groks ~10,600 (9,800-11,900)'."""
        if self.grok_epoch is None:
            return f"no forecast: {self.reason}"
        if self.observed:
            return f"grokked at {self.grok_epoch:,}"
        level = f"{self.level:.0%}: " if self.level is not None else ""
        mark = ", provisional" if self.provisional else ""
        return f"groks ~{self.grok_epoch:,} ({level}{self.low:,}-{self.high:,}{mark})"


def _settled_or_premature(
    epochs: np.ndarray, test_acc: Any, memorisation_end: int | None
) -> Forecast | None:
    """What any forecaster answers before looking at curves: no checkpoints, already
    grokked (the epoch seen), memorisation not over; None when there is work to do."""
    if not len(epochs):
        return Forecast(None, reason="no checkpoints yet")
    now = int(epochs[-1])
    hit = np.flatnonzero(np.asarray(test_acc, dtype=np.float64) >= GROKKED_ACC)
    if hit.size:
        seen = int(epochs[hit[0]])
        return Forecast(seen, seen, seen, reason="grokked", observed=True, as_of=now)
    if memorisation_end is None:
        why = "memorisation has not ended yet"
        acc = _last_finite(test_acc)
        if acc >= SAID_GENERALISING_ACC:  # no delay after memorisation to extrapolate: say so
            why += f" (test accuracy already {acc:.0%}: it generalises as it memorises)"
        return Forecast(None, reason=why, as_of=now)
    return None


# The test loss' peak reads as the end of memorisation only when it stands this far above the
# first checkpoint's test loss (memorising drives the test loss up from chance; a small
# early bump is not that) ...
PEAK_RISE = 1.5
# ... and once the test loss has come down to this share of it: the circuit is at work. The
# phases wait for half (with the train loss memorised), which on fast runs comes at 60-80%
# of the way to grokking; a third of the way down comes at 100-280 on the corpus' grokking
# runs (memorisation ends at 60-80) and never, within 1,000 epochs, on three of its five
# subtract runs that never grokked (their test loss stays at 80% of its peak): chosen on
# the corpus (bench/forecast_corpus.py), never on the held-out runs.
PEAK_FALL = 2 / 3


def provisional_start(test_loss: Any, epochs: Any) -> int | None:
    """The forecast's own memorisation end, before the phases announce one: the epoch of the
    test loss' highest value so far, the first time the test loss is down to `PEAK_FALL` of
    it (and it rose `PEAK_RISE` times above the first checkpoint's). Fixed once found: it
    depends only on the checkpoints up to the one where it was found."""
    loss = np.asarray(test_loss, dtype=np.float64)
    x = np.asarray(epochs, dtype=np.float64)
    peak, base = -1, math.nan
    for j, v in enumerate(loss):
        if not math.isfinite(v):
            continue
        if math.isnan(base):
            base = v
        if peak < 0 or v > loss[peak]:
            peak = j
        elif v <= PEAK_FALL * loss[peak] and loss[peak] >= PEAK_RISE * base:
            return int(x[peak])
    return None


# A second provisional start, for runs whose test loss does not come down early (it may
# rise again after its first peak) while the circuit already forms: the first checkpoint at
# which the train set is memorised (train accuracy >= MEMORISED_ACC), once the x + y share's
# log-odds have risen by a given amount since then, at each of the last two checkpoints,
# with test accuracy at least a given level there too (runs whose share rises and stalls
# never grok and keep test accuracy near chance; runs about to grok fast are already well
# above it). Both belong to the fitted constants (`ForecastModel.share_rise` and
# `memo_min_acc`: the correction and the intervals were fitted with that start; a rise of
# None: not used), chosen on the corpus by bench/forecast_starts.py, never on the held-out
# runs.
MEMORISED_ACC = 0.99


def _log_odds(share: np.ndarray) -> np.ndarray:
    s = np.clip(share, 1e-6, 1 - 1e-6)
    return np.log(s / (1 - s))


def memorised_start(
    epochs: Any,
    train_acc: Any,
    xy_share: Any,
    rise: float | None,
    test_acc: Any = None,
    min_acc: float = 0.0,
) -> int | None:
    """The epoch the train set was first memorised, once the x + y share has risen by `rise`
    log-odds since (None: never) with test accuracy >= `min_acc`, at each of two checkpoints
    in a row. Depends only on the checkpoints up to the one where it is found, so it is
    fixed once found."""
    if rise is None or train_acc is None or xy_share is None:
        return None
    if min_acc > 0 and test_acc is None:
        return None
    acc = np.asarray(train_acc, dtype=np.float64)
    share = np.asarray(xy_share, dtype=np.float64)
    hit = np.flatnonzero(np.isfinite(acc) & (acc >= MEMORISED_ACC))
    if not hit.size or not math.isfinite(share[hit[0]]):
        return None
    j0 = int(hit[0])
    z = _log_odds(share)
    above = np.isfinite(share) & (z - z[j0] >= rise)
    if min_acc > 0:
        test = np.asarray(test_acc, dtype=np.float64)
        above &= np.isfinite(test) & (test >= min_acc)
    both = above[j0 + 2 :] & above[j0 + 1 : -1]
    return int(np.asarray(epochs)[j0]) if both.any() else None


# A last start, for runs that generalise while they memorise (a large train fraction: test
# accuracy at 60-83% before the train set is memorised, held-out p = 167 at 0.45): the first
# checkpoint with test accuracy at a given level, once it holds there at two checkpoints in
# a row. The level belongs to the fitted constants (`ForecastModel.generalising_acc`; None:
# not used), chosen on the corpus by bench/forecast_starts.py.


def generalising_start(epochs: Any, test_acc: Any, level: float | None) -> int | None:
    """The first checkpoint epoch with test accuracy >= `level`, once test accuracy is at or
    above it at two checkpoints in a row (None: never, or `level` None). Depends only on
    the checkpoints up to the one where it is found, so it is fixed once found."""
    if level is None or test_acc is None:
        return None
    acc = np.asarray(test_acc, dtype=np.float64)
    above = np.isfinite(acc) & (acc >= level)
    hit = np.flatnonzero(above)
    if not hit.size or not (above[1:] & above[:-1]).any():
        return None
    return int(np.asarray(epochs)[hit[0]])


# The starts a forecast speaks from before the phases or the test loss give one: their
# forecasts carry the correction's `memo` feature and take `memo_half_width`.
EARLY_STARTS = ("memorised", "generalising")


def forecast_start(
    epochs: Any,
    test_loss: Any,
    memorisation_end: int | None,
    train_acc: Any = None,
    xy_share: Any = None,
    share_rise: float | None = None,
    test_acc: Any = None,
    memo_min_acc: float = 0.0,
    generalising_acc: float | None = None,
) -> tuple[int | None, str]:
    """Where the forecast's extrapolation starts, and which start that is: the announced
    memorisation end ("announced"), else `provisional_start` ("provisional"), else
    `memorised_start` with `share_rise` and `memo_min_acc` ("memorised"), else
    `generalising_start` at `generalising_acc` ("generalising"); (None, "") while there is
    none."""
    if memorisation_end is not None:
        return memorisation_end, "announced"
    start = None if test_loss is None else provisional_start(test_loss, epochs)
    if start is not None:
        return start, "provisional"
    start = memorised_start(epochs, train_acc, xy_share, share_rise, test_acc, memo_min_acc)
    if start is not None:
        return start, "memorised"
    start = generalising_start(epochs, test_acc, generalising_acc)
    return (start, "generalising") if start is not None else (None, "")


def model_start(
    model: ForecastModel,
    epochs: Any,
    test_loss: Any,
    memorisation_end: int | None,
    train_acc: Any,
    xy_share: Any,
    test_acc: Any,
) -> tuple[int | None, str]:
    """`forecast_start` under the start rules `model` was fitted with (`share_rise`,
    `memo_min_acc`, `generalising_acc`): the forecast and the refit both start here."""
    return forecast_start(epochs, test_loss, memorisation_end, train_acc, xy_share,
                          model.share_rise, test_acc, model.memo_min_acc,
                          model.generalising_acc)  # fmt: skip


def _last_finite(values: Any) -> float:
    """The newest finite value of a curve (0 when there is none)."""
    if values is None:
        return 0.0
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else 0.0


def _k(epoch: int | None) -> str:
    if epoch is None:
        return "?"
    return f"{epoch / 1000:.1f}k" if epoch >= 10_000 else f"{epoch:,}"


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _estimates(
    x: np.ndarray, s: np.ndarray, memorisation_end: float, params: ForecastParams
) -> tuple[float, float] | str:
    """(early, late) estimates from the share s at epochs x (since memorisation, up to a
    cut), or the reason there are none."""
    start = x[-1] - params.window * (x[-1] - memorisation_end)
    fit = x >= min(start, x[-params.min_points])
    x, z = x[fit], np.log(s[fit] / (1 - s[fit]))
    z_target = math.log(params.target_share / (1 - params.target_share))
    if z[-1] >= z_target:
        return "the circuit is in place; test accuracy lags"
    slope, intercept = _fit_line(x, z)
    inv_slope, inv_intercept = _fit_line(x, np.exp(-z))
    if not slope > 0 or not inv_slope < 0:
        return "the generalising share of the logits is not growing"
    late = (z_target - intercept) / slope
    early = (math.exp(-z_target) - inv_intercept) / inv_slope
    return max(early, x[-1]), max(late, x[-1])


def rule_forecast(
    epochs: np.ndarray,
    xy_share: np.ndarray,
    test_acc: np.ndarray,
    memorisation_end: int | None,
    params: ForecastParams = DEFAULT,
) -> Forecast:
    """The forecast before issue 19 (uncalibrated, with a settle rule), as of the last
    checkpoint of curves over checkpoint epochs (ascending)."""
    epochs = np.asarray(epochs, dtype=np.float64)
    early_answer = _settled_or_premature(epochs, test_acc, memorisation_end)
    if early_answer is not None:
        return early_answer
    assert memorisation_end is not None
    now = int(epochs[-1])
    share = np.asarray(xy_share, dtype=np.float64)
    ok = np.isfinite(share) & (share > 0) & (share < 1) & (epochs >= memorisation_end)
    x, s = epochs[ok], share[ok]
    if len(x) < params.min_points:
        return Forecast(None, reason="too few checkpoints since memorisation", as_of=now)
    if s[-1] < params.min_growth * s[0]:
        why = f"circuit formation has only begun (x+y share {s[-1]:.3f}, {s[0]:.3f} at first)"
        return Forecast(None, reason=why, as_of=now)
    est = _estimates(x, s, memorisation_end, params)
    if isinstance(est, str):
        return Forecast(None, reason=est, as_of=now)
    early, late = est
    center = math.sqrt(early * late)
    details = {"early": early, "late": late, "share": float(s[-1])}
    if late > params.max_ratio * early:
        lo, hi = round(early), round(late)
        return Forecast(None, reason=f"too uncertain yet ({lo:,}-{hi:,})", as_of=now,
                        details=details)  # fmt: skip
    # Settled: the forecasts this rule made over the recent past agree with this one.
    since = x[-1] - params.stable_window * (x[-1] - memorisation_end)
    past = [
        _estimates(x[: j + 1], s[: j + 1], memorisation_end, params)
        for j in range(params.min_points - 1, len(x) - 1)
        if x[j] >= since
    ]
    centers = [math.sqrt(e[0] * e[1]) for e in past if not isinstance(e, str)]
    if len(centers) < len(past) or any(abs(c / center - 1) > params.stable_tol for c in centers):
        spread = [*centers, center]
        return Forecast(None, as_of=now, details=details, reason="settling (recent forecasts "
                        f"{round(min(spread)):,}-{round(max(spread)):,})")  # fmt: skip
    return Forecast(
        grok_epoch=round(center),
        low=round(early / (1 + params.margin)),
        high=round(late * (1 + params.margin)),
        as_of=now,
        details=details,
    )


@dataclass(frozen=True)
class Features:
    """What the calibrated forecast reads off the curves at a cut (see forecast_model)."""

    now: int
    raw: float  # the geometric mean of the two extrapolations
    early: float
    late: float
    values: dict[str, float]  # forecast_model.FEATURES


# The late estimate (`acc_trend`): logit(test accuracy) extrapolated linearly over the last
# ACC_WINDOW of the epochs since memorisation ended (at least ACC_POINTS checkpoints) to
# logit(GROKKED_ACC). Late in circuit formation test accuracy climbs steadily in logit
# terms, and its own trend says when it gets there, which the x + y share (at its target:
# the circuit is there) cannot. The short window follows the acceleration (chosen on the
# corpus' fit split, bench/forecast_refit.py).
ACC_WINDOW = 0.1
ACC_POINTS = 3
LAG_CLIP = 1.0  # |log(late estimate / raw)| is clipped here: a flat trend says little


def acc_trend(epochs: Any, test_acc: Any, start: float) -> float | None:
    """The epoch at which test accuracy's recent logit trend reaches `GROKKED_ACC` (None:
    too few checkpoints since `start`, or no rise)."""
    if test_acc is None:
        return None
    x = np.asarray(epochs, dtype=np.float64)
    a = np.asarray(test_acc, dtype=np.float64)
    ok = np.isfinite(a) & (x >= start)
    x, a = x[ok], np.clip(a[ok], 1e-4, 1 - 1e-4)
    if len(x) < ACC_POINTS:
        return None
    since = x[-1] - ACC_WINDOW * (x[-1] - start)
    fit = x >= min(since, x[-ACC_POINTS])
    slope, intercept = _fit_line(x[fit], np.log(a[fit] / (1 - a[fit])))
    if not slope > 0:
        return None
    return max((math.log(GROKKED_ACC / (1 - GROKKED_ACC)) - intercept) / slope, float(x[-1]))


def _decay(sum_sq_weights: Any, x: np.ndarray, start: float) -> float:
    """log(the sum of squared weights at `start` / now): how much weight decay has taken off
    since memorisation (0 without the curve)."""
    if sum_sq_weights is None:
        return 0.0
    w = np.asarray(sum_sq_weights, dtype=np.float64)
    w = w[np.isfinite(w) & (x >= start) & (w > 0)]
    return float(math.log(w[0] / w[-1])) if w.size else 0.0


def _loss_fall(test_loss: Any, x: np.ndarray, start: float) -> float:
    """log(the test loss' peak since `start` / the test loss now): how far it has come down
    (0 without the curve)."""
    if test_loss is None:
        return 0.0
    loss = np.asarray(test_loss, dtype=np.float64)
    loss = loss[np.isfinite(loss) & (x >= start) & (loss > 0)]
    return float(math.log(loss.max() / loss[-1])) if loss.size else 0.0


def forecast_features(
    epochs: Any,
    xy_share: Any,
    memorisation_end: int,
    model: ForecastModel,
    test_acc: Any = None,
    test_loss: Any = None,
    sum_sq_weights: Any = None,
    early_start: bool = False,
) -> Features | str:
    """The raw forecast and the correction's features at the last checkpoint, or the reason
    there are none. Shared by the forecast and bench/forecast_refit.py, so the fit sees
    exactly what the forecast computes (both pass every curve; without one, the features
    read from it are 0)."""
    all_x = np.asarray(epochs, dtype=np.float64)
    x = all_x
    share = np.asarray(xy_share, dtype=np.float64)
    ok = np.isfinite(share) & (share > 0) & (share < 1) & (x >= memorisation_end)
    x, s = x[ok], share[ok]
    if len(x) < model.min_points:
        return "too few checkpoints since memorisation"
    now = float(x[-1])
    params = ForecastParams(target_share=model.target_share, window=model.window,
                            min_points=model.min_points)  # fmt: skip
    if s[-1] >= model.target_share:  # the circuit is in place: how long test accuracy lags
        est: tuple[float, float] | str = (now, now)  # is the correction's to say
    else:
        est = _estimates(x, s, memorisation_end, params)
    if isinstance(est, str):
        return est
    early, late = est
    raw = math.sqrt(early * late)
    values = {
        "progress": (now - memorisation_end) / max(raw - memorisation_end, 1.0),
        "spread": math.log(late / early),
        "share": float(s[-1]) / model.target_share,
        "growth": math.log(float(s[-1]) / float(s[0])),
        "reached": float(s[-1] >= model.target_share),
        "acc": _last_finite(test_acc),
        "trend": 0.0,
        "fall": _loss_fall(test_loss, all_x, memorisation_end),
        "decay": _decay(sum_sq_weights, all_x, memorisation_end),
        "evidence": (now - memorisation_end) / now if now > 0 else 0.0,
        "memo": float(early_start),
    }
    late_acc = acc_trend(all_x, test_acc, memorisation_end)
    if late_acc is not None:
        lag = max(-LAG_CLIP, min(LAG_CLIP, math.log(late_acc / raw)))
        values["trend"] = values["acc"] * lag
    return Features(int(now), raw, float(early), float(late), values)


def forecast_grok(
    epochs: np.ndarray,
    xy_share: np.ndarray,
    test_acc: np.ndarray,
    memorisation_end: int | None,
    model: ForecastModel | None = None,
    test_loss: Any = None,
    sum_sq_weights: Any = None,
    train_acc: Any = None,
) -> Forecast:
    """The calibrated forecast from curves over checkpoint epochs (ascending) as of the last
    one, with its conformal interval (`model`: the shipped constants by default). With the
    `test_loss` curve (or `train_acc`: `memorised_start`) it speaks before the memorisation
    end is announced, provisionally; the correction reads `test_loss` and `sum_sq_weights`
    too (forecast_model.FEATURES)."""
    epochs = np.asarray(epochs, dtype=np.float64)
    model = model if model is not None else shipped_model()
    anchor, kind = model_start(model, epochs, test_loss, memorisation_end, train_acc, xy_share,
                               test_acc)  # fmt: skip
    provisional = kind in ("provisional", *EARLY_STARTS)
    early_answer = _settled_or_premature(epochs, test_acc, anchor)
    if early_answer is not None:
        return early_answer
    assert anchor is not None
    now = int(epochs[-1])
    got = forecast_features(epochs, xy_share, anchor, model, test_acc, test_loss,
                            sum_sq_weights, early_start=kind in EARLY_STARTS)  # fmt: skip
    if isinstance(got, str):
        return Forecast(None, reason=got, as_of=now, provisional=provisional)
    if got.raw > FAR * now:
        why = f"no grokking in sight (the share's trend reaches it after {round(got.raw):,})"
        return Forecast(None, reason=why, as_of=now, provisional=provisional)
    v = got.values
    if v["evidence"] < model.min_evidence:
        why = f"memorisation ended too recently ({anchor:,}) to extrapolate from"
        return Forecast(None, reason=why, as_of=now, provisional=provisional)
    if v["growth"] < model.min_growth:
        why = f"the x + y share has hardly grown since {anchor:,}"
        return Forecast(None, reason=why, as_of=now, provisional=provisional)
    center = math.log(got.raw) + model.correction(v)
    width = model.width(v[model.width_by], memo=kind in EARLY_STARTS)
    value = max(math.exp(center), now)
    return Forecast(
        grok_epoch=round(value),
        low=round(max(math.exp(center - width), now)),
        high=round(max(math.exp(center + width), value)),
        as_of=now,
        level=model.level,
        details={"raw": got.raw, "early": got.early, "late": got.late, "start": anchor, **v},
        provisional=provisional,
    )


# -- a baseline without the progress measures ----------------------------------------------


@dataclass(frozen=True)
class BaselineParams:
    target_loss: float = 0.05  # test loss when test accuracy reaches 99% (tuning runs)
    window: float = 0.5
    min_points: int = 6
    margin: float = 0.25


def baseline_forecast(
    epochs: np.ndarray,
    test_loss: np.ndarray,
    test_acc: np.ndarray,
    memorisation_end: int | None,
    params: BaselineParams = BaselineParams(),
) -> Forecast:
    """What one can say from the test loss alone: extrapolate log test loss linearly (fit on
    the same window) to the loss at which runs grok. For comparison with `forecast_grok`."""
    epochs = np.asarray(epochs, dtype=np.float64)
    early_answer = _settled_or_premature(epochs, test_acc, memorisation_end)
    if early_answer is not None:
        return early_answer
    now = int(epochs[-1])
    loss = np.asarray(test_loss, dtype=np.float64)
    ok = np.isfinite(loss) & (loss > 0) & (epochs >= memorisation_end)
    x, y = epochs[ok], np.log(loss[ok])
    if len(x) < params.min_points:
        return Forecast(None, reason="too few checkpoints since memorisation", as_of=now)
    start = x[-1] - params.window * (x[-1] - memorisation_end)
    fit = x >= min(start, x[-params.min_points])
    slope, intercept = _fit_line(x[fit], y[fit])
    if not slope < 0:
        return Forecast(None, reason="the test loss is not falling", as_of=now)
    at = max((math.log(params.target_loss) - intercept) / slope, x[-1])
    return Forecast(round(at), round(at / (1 + params.margin)), round(at * (1 + params.margin)),
                    as_of=now)  # fmt: skip
