"""The grok forecast before issue 19 (`rule_forecast`, kept for comparison): its two
extrapolations on curves with a known answer, when it refuses to forecast and why, and (a
regression test, not an evaluation: that is bench/forecast_backtest.py on held-out runs)
its behaviour on a recorded tuning run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from grok_tui.engine.measures.forecast import (
    DEFAULT,
    Forecast,
    ForecastParams,
    baseline_forecast,
    rule_forecast,
)
from grok_tui.engine.measures.phases import find_phases

DATA = Path(__file__).parent / "data"


def logistic_share(x: np.ndarray, rate: float, cross: float) -> np.ndarray:
    """A share whose log-odds grow linearly, reaching the target share at `cross`."""
    z_target = math.log(DEFAULT.target_share / (1 - DEFAULT.target_share))
    return 1 / (1 + np.exp(-(z_target + rate * (x - cross))))


# The two extrapolations alone, without the rule that waits for recent forecasts to agree
# (tested on its own below): on these curves the early estimate drifts by design.
UNSETTLED = replace(DEFAULT, stable_window=0.0)


def test_linear_log_odds_are_forecast_within_the_interval() -> None:
    x = np.arange(0, 6001, 100.0)
    share = logistic_share(x, rate=1e-3, cross=9000)
    fc = rule_forecast(x, share, np.zeros_like(x), memorisation_end=1000, params=UNSETTLED)
    # The log-odds extrapolate exactly (the late estimate); the odds' reciprocal, convex
    # here, comes early: the truth sits at the top of the interval, the centre below it.
    assert fc.details["late"] == pytest.approx(9000, rel=1e-6)
    assert fc.low < fc.grok_epoch < 9000 <= fc.high
    assert fc.as_of == 6000 and not fc.observed
    assert fc.to_json() == {"grok_epoch": fc.grok_epoch, "low": fc.low, "high": fc.high,
                            "level": None, "provisional": False}  # fmt: skip


def test_a_shrinking_residual_is_forecast_by_the_early_estimate() -> None:
    """Odds whose reciprocal falls linearly: the early estimate is exact, the late one late."""
    x = np.arange(0, 6001, 100.0)
    target_inv = (1 - DEFAULT.target_share) / DEFAULT.target_share
    inv_odds = target_inv + (9000 - x) * 4e-3
    share = 1 / (1 + inv_odds)
    fc = rule_forecast(x, share, np.zeros_like(x), memorisation_end=1000, params=UNSETTLED)
    assert fc.details["early"] == pytest.approx(9000, rel=1e-6)
    assert fc.low <= 9000 < fc.grok_epoch < fc.high


def test_no_forecast_without_its_preconditions() -> None:
    x = np.arange(0, 3001, 100.0)
    share = logistic_share(x, rate=1e-3, cross=9000)
    none = np.zeros_like(x)
    assert rule_forecast([], [], [], None).reason == "no checkpoints yet"
    assert "memorisation" in rule_forecast(x, share, none, None).reason
    assert "too few" in rule_forecast(x[:12], share[:12], none[:12], 800).reason
    flat = np.full_like(x, 0.05)
    assert rule_forecast(x, flat, none, 500).grok_epoch is None
    barely = logistic_share(x, rate=1e-4, cross=30_000)  # grows by less than 2x
    assert "only begun" in rule_forecast(x, barely, none, 500).reason
    falling = share[::-1].copy()
    assert rule_forecast(x, falling, none, 500).grok_epoch is None
    strict = ForecastParams(max_ratio=1.01)
    assert "too uncertain" in rule_forecast(x, share, none, 500, strict).reason


def test_a_run_that_has_grokked_reports_when() -> None:
    x = np.arange(0, 3001, 100.0)
    acc = np.where(x >= 2200, 0.995, 0.3)
    fc = rule_forecast(x, logistic_share(x, 1e-3, 2000), acc, 500)
    assert fc.observed and (fc.grok_epoch, fc.low, fc.high) == (2200, 2200, 2200)
    assert fc.describe() == "grokked at 2,200"
    assert Forecast(None, reason="why").to_json() is None
    assert Forecast(None, reason="why").short() == ""
    made = Forecast(10_600, 9_800, 11_900)
    assert made.short() == "grok ~10.6k (9,800-11.9k)"
    assert Forecast(10_600, 9_800, 11_900, provisional=True).short() == "grok ~10.6k? (9,800-11.9k)"


def test_the_baseline_extrapolates_the_test_loss() -> None:
    x = np.arange(0, 3001, 100.0)
    loss = np.exp(3.0 - 1e-3 * x)  # reaches 0.05 at (3 - ln 0.05) / 1e-3
    fc = baseline_forecast(x, loss, np.zeros_like(x), 500)
    assert fc.grok_epoch == round((3.0 - math.log(0.05)) / 1e-3)
    assert fc.low < fc.grok_epoch < fc.high
    flat = baseline_forecast(x, np.full_like(x, 20.0), np.zeros_like(x), 500)
    assert flat.grok_epoch is None and "not falling" in flat.reason


def test_a_recorded_tuning_run_cut_at_every_checkpoint() -> None:
    """Regression on the run the thresholds were tuned on (quick_f30, groks at 7,294): from
    the first forecast on, every forecast is within 25% and never looks back in time."""
    data = json.loads((DATA / "quick_f30_curves.json").read_text())
    x = np.array(data["epochs"], dtype=float)
    c = {
        k: np.array([math.nan if v is None else v for v in vs]) for k, vs in data["curves"].items()
    }
    grok = data["grok_epoch"]
    issued = []
    for i in range(4, len(x)):
        if x[i] >= grok:
            break
        curves = {k: v[: i + 1] for k, v in c.items()}
        memorised = find_phases(x[: i + 1], curves)["memorisation_end"]
        fc = rule_forecast(x[: i + 1], curves["xy_share_logits"], curves["test_acc"], memorised)
        if fc.grok_epoch is not None:
            assert fc.grok_epoch >= x[i] and fc.low <= fc.grok_epoch <= fc.high
            issued.append((x[i], fc))
    assert issued, "no forecast before the run grokked"
    first_at = issued[0][0]
    assert grok - first_at >= 0.3 * grok
    assert all(abs(fc.grok_epoch - grok) <= 0.25 * grok for _, fc in issued)


def test_a_forecast_waits_until_recent_forecasts_agree() -> None:
    """The same curve: with the settle rule, the drifting early estimate holds the forecast
    back (a reason that says so); with a tolerance wide enough for the drift, it is given."""
    x = np.arange(0, 6001, 100.0)
    share = logistic_share(x, rate=1e-3, cross=9000)
    held = rule_forecast(x, share, np.zeros_like(x), memorisation_end=1000)
    assert held.grok_epoch is None and held.reason.startswith("settling"), held
    loose = rule_forecast(x, share, np.zeros_like(x), memorisation_end=1000,
                          params=replace(DEFAULT, stable_tol=0.5))  # fmt: skip
    assert loose.grok_epoch is not None and loose.low < loose.grok_epoch < loose.high
