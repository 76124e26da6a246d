"""The calibrated forecast (issue 19): its shipped constants load (as untrusted JSON, bad
ones a one-line error) and are what the forecast uses; the forecast is the raw
extrapolation corrected by them, with the conformal half-width of its progress bin."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from grok_tui.engine.measures.forecast import (
    ACC_POINTS,
    GROKKED_ACC,
    LAG_CLIP,
    MEMORISED_ACC,
    PEAK_FALL,
    PEAK_RISE,
    acc_trend,
    forecast_features,
    forecast_grok,
    forecast_start,
    generalising_start,
    memorised_start,
    provisional_start,
)
from grok_tui.engine.measures.forecast_model import (
    CONSTANTS_PATH,
    FEATURES,
    ForecastConstantsError,
    ForecastModel,
    load_model,
    model_from_json,
    shipped_model,
)

X = np.arange(0, 6001, 100.0)


def share_curve(target: float, rate: float = 1e-3, cross: float = 9000) -> np.ndarray:
    z = math.log(target / (1 - target)) + rate * (X - cross)
    return 1 / (1 + np.exp(-z))


def test_the_shipped_constants_load_and_say_where_they_came_from() -> None:
    model = shipped_model()
    assert model == load_model(CONSTANTS_PATH)
    assert model.level == 0.8 and set(model.features) <= set(FEATURES)
    assert len(model.coef) == len(model.features) + 1
    assert len(model.half_width) == len(model.edges) - 1
    assert model.fitted_on["runs_fit"] and model.fitted_on["runs_calibration"]
    assert not set(model.fitted_on["runs_fit"]) & set(model.fitted_on["runs_calibration"])


def test_the_forecast_uses_the_shipped_constants() -> None:
    model = shipped_model()
    share = share_curve(model.target_share)
    fc = forecast_grok(X, share, np.zeros_like(X), memorisation_end=1000)
    assert fc == forecast_grok(X, share, np.zeros_like(X), 1000, model)
    # By hand: the raw forecast, corrected, +- the half-width of its bin of the evidence, the
    # share of the epochs since memorisation ended (1000 of 6000 ago: 5/6).
    f = forecast_features(X, share, 1000, model)
    assert not isinstance(f, str)
    center = math.log(f.raw) + model.coef[0]
    center += sum(c * f.values[n] for c, n in zip(model.coef[1:], model.features, strict=True))
    assert model.width_by == "evidence" and f.values["evidence"] == pytest.approx(5 / 6)
    width = model.width(5 / 6)
    assert fc.grok_epoch == round(max(math.exp(center), 6000))
    assert fc.low == round(max(math.exp(center - width), 6000))
    assert fc.high == round(max(math.exp(center + width), fc.grok_epoch))
    assert fc.level == model.level and fc.to_json()["level"] == model.level
    # Other constants, another forecast: a shifted intercept moves it by exactly that factor.
    shifted = replace(model, coef=(model.coef[0] + math.log(1.5), *model.coef[1:]))
    moved = forecast_grok(X, share, np.zeros_like(X), 1000, shifted)
    assert shifted.fingerprint != model.fingerprint == shipped_model().fingerprint
    assert moved.grok_epoch == pytest.approx(1.5 * math.exp(center), abs=1)


def test_the_interval_narrows_with_progress() -> None:
    model = ForecastModel(level=0.8, target_share=0.85, window=0.5, min_points=4,
                          features=("progress",), coef=(0.0, 0.0), edges=(0.0, 0.5, 1.0),
                          half_width=(1.0, 0.1))  # fmt: skip
    share = share_curve(0.85)
    early = forecast_grok(X[:25], share[:25], np.zeros(25), 1000, model)  # little progress
    late = forecast_grok(X, share, np.zeros_like(X), 1000, model)
    assert early.details["progress"] < 0.5 <= late.details["progress"]
    assert early.high / early.grok_epoch == pytest.approx(math.e, rel=1e-3)
    assert late.high / late.grok_epoch == pytest.approx(math.exp(0.1), rel=1e-3)
    assert model.width(-1.0) == 1.0 and model.width(5.0) == 0.1  # out of range: the ends


def test_keyed_on_the_evidence_the_width_does_not_read_the_forecast() -> None:
    """With `width_by` "evidence" the interval's bin is the share of the epochs since
    memorisation ended: a forecast that comes sooner (a faster-growing share, so more
    `progress`) gets no narrower an interval. Keyed on progress, it would."""
    kw = dict(level=0.8, target_share=0.85, window=0.5, min_points=4, features=("progress",),
              coef=(0.0, 0.0), edges=(0.0, 0.5, 1.0), half_width=(1.0, 0.1))  # fmt: skip
    by_progress = ForecastModel(**kw)
    by_evidence = ForecastModel(**kw, width_by="evidence")
    slow, fast = share_curve(0.85, cross=20000), share_curve(0.85, cross=7000)
    got = {}
    for name, model in (("progress", by_progress), ("evidence", by_evidence)):
        for label, share in (("slow", slow), ("fast", fast)):
            fc = forecast_grok(X[:31], share[:31], np.zeros(31), 1000, model)  # now 3,000
            got[name, label] = math.log(fc.high / fc.grok_epoch)
            assert fc.details["evidence"] == pytest.approx(2 / 3)
    # (epochs are rounded to integers: 1e-3 is their rounding at ~3,000-10,000)
    assert got["evidence", "slow"] == pytest.approx(0.1, rel=1e-2)
    assert got["evidence", "fast"] == pytest.approx(0.1, rel=1e-2)
    assert got["progress", "slow"] == pytest.approx(1.0, rel=1e-2)  # little progress: wide
    assert got["progress", "fast"] == pytest.approx(0.1, rel=1e-2)  # soon: narrow
    data = by_evidence.to_json()
    assert data["width_by"] == "evidence" and model_from_json(data) == by_evidence
    assert "width_by" not in by_progress.to_json()  # the older fits keep their fingerprint
    with pytest.raises(ForecastConstantsError, match="width_by"):
        model_from_json({**data, "width_by": "nonsense"})


def test_an_early_range_rather_than_silence() -> None:
    """Four checkpoints of growth since memorisation: a forecast, however wide."""
    share = share_curve(0.85)
    fc = forecast_grok(X[:15], share[:15], np.zeros(15), 1000)
    assert fc.grok_epoch is not None and fc.low <= fc.grok_epoch <= fc.high
    assert "too few" in forecast_grok(X[:12], share[:12], np.zeros(12), 1000).reason
    flat = forecast_grok(X, np.full_like(X, 0.1), np.zeros_like(X), 1000)
    assert flat.grok_epoch is None and ("not growing" in flat.reason or "sight" in flat.reason)
    slow = share_curve(0.85, rate=1e-5, cross=500_000)
    creeping = forecast_grok(X, slow, np.zeros_like(X), 1000)
    assert creeping.grok_epoch is None and "no grokking in sight" in creeping.reason


def test_silence_before_memorisation_says_when_the_run_already_generalises() -> None:
    """No start yet: the reason says memorisation has not ended, and, once test accuracy is
    at `SAID_GENERALISING_ACC` or more (a fast run), that it generalises as it memorises."""
    share = share_curve(0.85)
    early = forecast_grok(X[:5], share[:5], np.full(5, 0.1), None)
    assert early.grok_epoch is None and early.reason == "memorisation has not ended yet"
    acc = np.array([0.0, 0.05, 0.1, 0.83, np.nan])  # the newest finite value is read
    fast = forecast_grok(X[:5], share[:5], acc, None)
    assert fast.grok_epoch is None and fast.reason == (
        "memorisation has not ended yet (test accuracy already 83%: it generalises as it memorises)"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": 7}, "version"),
        ({"coef": [1.0]}, "coef"),
        ({"coef": "0"}, "coef"),
        ({"half_width": []}, "half_width"),
        ({"edges": [1.0, 0.0]}, "edges"),
        ({"level": True}, "level"),
        ({"level": 1.5}, "level"),
        ({"features": ["future"]}, "features"),
        ({"coef": [float("nan")] * 5}, "coef"),
    ],
)
def test_bad_constants_are_a_one_line_error(change: dict, message: str, tmp_path: Path) -> None:
    good = shipped_model().to_json()
    good["features"], good["coef"] = list(FEATURES), [0.0] * (len(FEATURES) + 1)
    model_from_json(good)
    with pytest.raises(ForecastConstantsError, match=message) as info:
        model_from_json({**good, **change})
    assert "\n" not in str(info.value)
    path = tmp_path / "c.json"
    path.write_bytes(b"\x80\x04pickle?")
    with pytest.raises(ForecastConstantsError, match="cannot read"):
        load_model(path)
    path.write_text(json.dumps({**good, **change}))
    with pytest.raises(ForecastConstantsError):
        load_model(path)


def _brute_start(loss: list[float], epochs: list[int]) -> int | None:
    """provisional_start by its definition, from scratch at every cut: the first cut at which
    the test loss is down to PEAK_FALL of its highest so far (first of equals), that highest
    PEAK_RISE above the first checkpoint's."""
    for j in range(len(loss)):
        head = loss[: j + 1]
        top = max(range(len(head)), key=lambda i: (head[i], -i))
        if head[j] <= PEAK_FALL * head[top] and head[top] >= PEAK_RISE * head[0]:
            return epochs[top]
    return None


@pytest.mark.parametrize("seed", range(20))
def test_the_provisional_start_is_the_test_loss_peak_found_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    epochs = list(range(0, 20 * n, 20))
    loss = list(4.0 + rng.uniform(0, 1, n) * rng.choice([1.0, 10.0], n))
    got = [provisional_start(loss[: j + 1], epochs[: j + 1]) for j in range(n)]
    assert got == [_brute_start(loss[: j + 1], epochs[: j + 1]) for j in range(n)]
    found = [g for g in got if g is not None]
    assert len(set(found)) <= 1  # once found it never moves, whatever comes after
    assert all(g is not None for g in got[got.index(found[0]) :]) if found else True


def test_a_memorising_bump_starts_the_forecast_once_it_comes_down() -> None:
    epochs = [0, 20, 40, 60, 80, 100, 120, 140, 160]
    rise = [4.0, 9.0, 15.0, 19.0, 17.0, 15.0, 13.0, 12.0, 11.0]  # 2/3 of 19: 12.7
    assert [provisional_start(rise[: j + 1], epochs[: j + 1]) for j in range(9)] == [
        None] * 7 + [60, 60]  # fmt: skip
    later_peak = [*rise, 30.0, 29.0, 28.0, 27.0, 26.0]
    assert provisional_start(later_peak, [*epochs, 180, 200, 220, 240, 260]) == 60
    small = [4.0, 5.0, 5.5, 3.5, 3.0, 2.9, 2.8, 2.7, 2.6]  # up by less than PEAK_RISE
    assert provisional_start(small, epochs) is None
    stays_up = [4.0, 9.0, 15.0, 19.0, 18.0, 17.0, 16.5, 16.0, 15.5]  # not a third down
    assert provisional_start(stays_up, epochs) is None
    assert forecast_start(epochs, rise, 80) == (80, "announced")  # announced: that one
    assert forecast_start(epochs, rise, None) == (60, "provisional")
    assert forecast_start(epochs, None, None) == (None, "")


def brute_memorised_start(epochs, train_acc, share, rise, test_acc=None, min_acc=0.0):
    """memorised_start by its definition, one checkpoint at a time."""
    first = next((j for j, a in enumerate(train_acc) if a >= MEMORISED_ACC), None)
    if first is None:
        return None
    z0 = math.log(share[first] / (1 - share[first]))
    test_acc = [1.0] * len(share) if test_acc is None else test_acc
    up = [
        math.log(s / (1 - s)) - z0 >= rise and t >= min_acc
        for s, t in zip(share, test_acc, strict=True)
    ]
    found = any(up[j] and up[j - 1] for j in range(first + 2, len(share)))
    return epochs[first] if found else None


def test_memorisation_of_the_train_set_starts_the_forecast_once_the_share_rises() -> None:
    """The third start (forecast.memorised_start) equals its definition on random curves at
    every prefix (so it is fixed once found), and ranks after the announced end."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(3, 20))
        epochs = list(range(0, 20 * n, 20))
        acc = np.minimum(1.0, np.cumsum(rng.uniform(0, 0.4, n)))
        share = np.clip(0.2 + np.cumsum(rng.normal(0.02, 0.05, n)), 0.01, 0.99)
        rise = float(rng.choice([0.1, 0.25, 0.5]))
        test = np.clip(np.cumsum(rng.normal(0.02, 0.04, n)), 0.0, 1.0)
        gate = float(rng.choice([0.0, 0.05, 0.1]))
        for j in range(1, n + 1):
            got = memorised_start(epochs[:j], acc[:j], share[:j], rise)
            assert got == brute_memorised_start(epochs[:j], acc[:j], share[:j], rise)
            got = memorised_start(epochs[:j], acc[:j], share[:j], rise, test[:j], gate)
            want = brute_memorised_start(epochs[:j], acc[:j], share[:j], rise, test[:j], gate)
            assert got == want
    epochs = [0, 20, 40, 60, 80]
    acc, share = [0.5, 1.0, 1.0, 1.0, 1.0], [0.2, 0.2, 0.25, 0.3, 0.4]
    assert memorised_start(epochs, acc, share, 0.5) == 20  # log-odds up 0.29, 0.54, 0.98
    assert memorised_start(epochs[:4], acc[:4], share[:4], 0.5) is None  # one rise: not yet
    flat = [4.0] * 5
    assert memorised_start(epochs, acc, share, None) is None  # off
    assert forecast_start(epochs, flat, None, acc, share) == (None, "")
    assert forecast_start(epochs, flat, None, acc, share, 0.5) == (20, "memorised")
    assert forecast_start(epochs, flat, 60, acc, share, 0.5) == (60, "announced")
    # The gate: test accuracy >= memo_min_acc at the same two checkpoints in a row.
    test = [0.0, 0.01, 0.02, 0.12, 0.15]
    assert memorised_start(epochs, acc, share, 0.5, test, 0.1) == 20  # both rises above 0.1
    assert memorised_start(epochs, acc, share, 0.5, test, 0.13) is None  # only the last
    assert memorised_start(epochs, acc, share, 0.5, None, 0.1) is None  # no curve: no start
    assert forecast_start(epochs, flat, None, acc, share, 0.5, test, 0.13) == (None, "")
    assert forecast_start(epochs, flat, None, acc, share, 0.5, test, 0.1) == (20, "memorised")


def brute_generalising_start(epochs, test_acc, level):
    """generalising_start by its definition."""
    if level is None:
        return None
    up = [a >= level for a in test_acc]  # NaN compares False
    if not any(up[j] and up[j - 1] for j in range(1, len(up))):
        return None
    return epochs[up.index(True)]


def test_a_run_that_generalises_as_it_memorises_starts_where_test_accuracy_rose() -> None:
    """The last start (forecast.generalising_start) equals its definition on random curves
    at every prefix (so it is fixed once found), and ranks after every other start; its
    forecasts carry `memo` and take `memo_half_width`, and it is off without its level."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 20))
        epochs = list(range(0, 20 * n, 20))
        acc = np.clip(np.cumsum(rng.normal(0.03, 0.06, n)), 0.0, 1.0)
        acc[rng.random(n) < 0.1] = np.nan
        level = float(rng.choice([0.05, 0.1, 0.3]))
        for j in range(1, n + 1):
            got = generalising_start(epochs[:j], acc[:j], level)
            assert got == brute_generalising_start(epochs[:j], list(acc[:j]), level)
    epochs = [0, 20, 40, 60, 80]
    test = [0.0, 0.12, 0.08, 0.15, 0.3]
    assert generalising_start(epochs, test, 0.1) == 20  # first at 20, two in a row at 60-80
    assert generalising_start(epochs[:4], test[:4], 0.1) is None  # not yet two in a row
    assert generalising_start(epochs, test, None) is None
    acc, share, flat = [0.5] * 5, [0.2, 0.2, 0.25, 0.3, 0.4], [4.0] * 5
    start = (epochs, flat, None, acc, share, 0.25, test, 0.05)
    assert forecast_start(*start) == (None, "")
    assert forecast_start(*start, 0.1) == (20, "generalising")
    assert forecast_start(*start[:3], [1.0] * 5, *start[4:], 0.1) == (0, "memorised")
    assert forecast_start(epochs, flat, 60, acc, share, 0.25, test, 0.05, 0.1)[1] == "announced"
    kw = dict(level=0.8, target_share=0.85, window=0.5, min_points=4,
              features=("progress", "memo"), coef=(0.0, 0.0, 0.25), edges=(0.0, 0.5, 1.0),
              half_width=(1.0, 0.1), width_by="evidence", memo_half_width=0.7)  # fmt: skip
    on = ForecastModel(**kw, generalising_acc=0.1)
    assert model_from_json(on.to_json()) == on
    assert "generalising_acc" not in ForecastModel(**kw).to_json()
    with pytest.raises(ForecastConstantsError, match="generalising_acc"):
        model_from_json({**on.to_json(), "generalising_acc": 2.0})
    # A share that rises from epoch 1,000, the train set never memorised, test accuracy at
    # 0.2 from there: the forecast starts at 1,000, provisionally, as from the memorised start
    share = share_curve(0.85)
    test = np.where(X >= 1000, 0.2, 0.0)
    never = np.full_like(X, 0.5)
    loss = np.full_like(X, 4.0)
    fc = forecast_grok(X[:31], share[:31], test[:31], None, on, loss[:31], None, never[:31])
    off = forecast_grok(X[:31], share[:31], test[:31], None, ForecastModel(**kw), loss[:31],
                        None, never[:31])  # fmt: skip
    assert off.grok_epoch is None
    assert fc.provisional and fc.details["start"] == 1000 and fc.details["memo"] == 1.0
    assert math.log(fc.high / fc.grok_epoch) == pytest.approx(0.7, abs=1e-3)


def test_the_start_says_which_it_is_and_the_memorised_one_has_its_own_width() -> None:
    """forecast_start names the start it took (announced, provisional, memorised: in that
    order of precedence); a forecast from the memorised start carries `memo` = 1 for the
    correction and takes `memo_half_width`, not the bins of evidence (its early start reads
    as much evidence); without that constant, the bins as before."""
    epochs = [0, 20, 40, 60, 80]
    acc, share = [0.5, 1.0, 1.0, 1.0, 1.0], [0.2, 0.2, 0.25, 0.3, 0.4]
    flat, bump = [4.0] * 5, [4.0, 9.0, 15.0, 19.0, 12.0]
    assert forecast_start(epochs, flat, 60, acc, share, 0.5) == (60, "announced")
    assert forecast_start(epochs, bump, None, acc, share, 0.5) == (60, "provisional")
    assert forecast_start(epochs, flat, None, acc, share, 0.5) == (20, "memorised")
    assert forecast_start(epochs, flat, None, acc, share, None) == (None, "")  # off
    assert forecast_start(epochs[:4], flat[:4], None, acc[:4], share[:4], 0.5) == (None, "")
    kw = dict(level=0.8, target_share=0.85, window=0.5, min_points=4,
              features=("progress", "memo"), coef=(0.0, 0.0, 0.25), edges=(0.0, 0.5, 1.0),
              half_width=(1.0, 0.1), width_by="evidence")  # fmt: skip
    binned = ForecastModel(**kw)
    own = ForecastModel(**kw, memo_half_width=0.7, share_rise=0.5)
    assert model_from_json(own.to_json()) == own
    gated = ForecastModel(**kw, share_rise=0.5, memo_min_acc=0.1)
    assert model_from_json(gated.to_json()) == gated and "memo_min_acc" not in own.to_json()
    with pytest.raises(ForecastConstantsError, match="memo_min_acc"):
        model_from_json({**gated.to_json(), "memo_min_acc": 1.5})
    assert "memo_half_width" not in binned.to_json() and "share_rise" not in binned.to_json()
    assert own.width(0.9, memo=True) == 0.7 and own.width(0.9) == 0.1 == binned.width(0.9, True)
    with pytest.raises(ForecastConstantsError, match="memo_half_width"):
        model_from_json({**own.to_json(), "memo_half_width": -1.0})
    with pytest.raises(ForecastConstantsError, match="share_rise"):
        model_from_json({**own.to_json(), "share_rise": "0.5"})
    # A share that rises from epoch 1,000 and a train set memorised there, the test loss
    # flat (no provisional start) and no announced end: the memorised start.
    share = share_curve(0.85)
    acc = np.where(X >= 1000, 1.0, 0.5)
    loss = np.full_like(X, 4.0)
    fc = forecast_grok(X[:31], share[:31], np.zeros(31), None, own, loss[:31], None, acc[:31])
    announced = forecast_grok(X[:31], share[:31], np.zeros(31), 1000, own, loss[:31])
    off = forecast_grok(X[:31], share[:31], np.zeros(31), None, binned, loss[:31], None, acc[:31])
    assert off.grok_epoch is None and "memorisation" in off.reason  # the rise goes with them
    assert fc.provisional and fc.details["start"] == 1000 and fc.details["memo"] == 1.0
    gate = replace(own, memo_min_acc=0.1)  # test accuracy 0 there: no start; 0.2: the same
    args = (X[:31], share[:31])
    assert forecast_grok(*args, np.zeros(31), None, gate, loss[:31], None, acc[:31]).reason
    lifted = forecast_grok(*args, np.full(31, 0.2), None, gate, loss[:31], None, acc[:31])
    assert lifted.grok_epoch == fc.grok_epoch and lifted.details["start"] == 1000
    assert announced.details["memo"] == 0.0 and not announced.provisional
    # the same raw forecast; the correction adds 0.25 to the log epoch; widths 0.7 and 0.1
    assert fc.details["raw"] == pytest.approx(announced.details["raw"])
    assert math.log(fc.grok_epoch / announced.grok_epoch) == pytest.approx(0.25, abs=1e-3)
    assert math.log(fc.high / fc.grok_epoch) == pytest.approx(0.7, abs=1e-3)
    assert math.log(announced.high / announced.grok_epoch) == pytest.approx(0.1, abs=1e-3)


def test_the_guards_silence_a_forecast_from_a_recent_start_or_a_flat_share() -> None:
    """min_evidence: no forecast while the epochs since the start are under that share of the
    run; min_growth: none while the share's log growth since the start is under it. Either
    at 0 (the default, and absent from the JSON) lets the same forecast through."""
    kw = dict(
        level=0.8,
        target_share=0.85,
        window=0.5,
        min_points=4,
        features=("progress",),
        coef=(0.0, 0.0),
        edges=(0.0, 1.0),
        half_width=(0.2,),
        width_by="evidence",
    )
    share = share_curve(0.85)
    free = forecast_grok(X[:31], share[:31], np.zeros(31), 2000, ForecastModel(**kw))
    evidence, growth = free.details["evidence"], free.details["growth"]  # 1/3; its log growth
    assert evidence == pytest.approx(1 / 3) and growth > 0
    for guard, value, word in (
        ("min_evidence", evidence, "recently"),
        ("min_growth", growth, "hardly grown"),
    ):
        above = ForecastModel(**kw, **{guard: value * 1.01})
        below = ForecastModel(**kw, **{guard: value * 0.99})
        silent = forecast_grok(X[:31], share[:31], np.zeros(31), 2000, above)
        assert silent.grok_epoch is None and word in silent.reason
        assert forecast_grok(X[:31], share[:31], np.zeros(31), 2000, below) == free
        assert model_from_json(above.to_json()) == above
    assert "min_evidence" not in ForecastModel(**kw).to_json()
    with pytest.raises(ForecastConstantsError, match="min_growth"):
        model_from_json({**ForecastModel(**kw).to_json(), "min_growth": -0.5})


def test_before_memorisation_is_announced_the_forecast_speaks_provisionally() -> None:
    """The same curves, the memorisation end not announced: with the test loss the forecast
    starts from the test loss' peak and says it is provisional; without it, silence."""
    model = shipped_model()
    share = share_curve(model.target_share)
    loss = np.where(X <= 1000, 4.0 + X / 50, 24.0 * np.exp(-(X - 1000) / 2000))  # peak 1,000
    silent = forecast_grok(X, share, np.zeros_like(X), None, model)
    assert silent.grok_epoch is None and "memorisation has not ended" in silent.reason
    early = forecast_grok(X, share, np.zeros_like(X), None, model, loss)
    announced = forecast_grok(X, share, np.zeros_like(X), 1000, model, loss)
    assert early.provisional and not announced.provisional
    assert early.details["start"] == 1000 == announced.details["start"]
    assert (early.grok_epoch, early.low, early.high) == (
        announced.grok_epoch, announced.low, announced.high)  # fmt: skip
    assert "provisional" in early.describe() and "provisional" not in announced.describe()
    not_down_yet = forecast_grok(X[:15], share[:15], np.zeros(15), None, model, loss[:15])
    assert not_down_yet.grok_epoch is None and "memorisation" in not_down_yet.reason


def test_once_the_share_reaches_its_target_the_lag_term_speaks() -> None:
    """Past the target the raw forecast is now; the correction's `reached` term is the lag."""
    model = replace(shipped_model(), features=("progress", "reached"), coef=(0.0, 0.0, 0.2),
                    edges=(0.0, 1.0), half_width=(0.1,))  # fmt: skip
    share = share_curve(model.target_share, cross=5000)
    before = forecast_features(X[:40], share[:40], 1000, model)
    after = forecast_features(X, share, 1000, model)
    assert not isinstance(before, str) and not isinstance(after, str)
    assert before.values["reached"] == 0.0 and after.values["reached"] == 1.0
    fc = forecast_grok(X, share, np.zeros_like(X), 1000, model)
    assert fc.grok_epoch == round(6000 * math.exp(0.2))


def logit_curve(cross: float, rate: float = 1e-3) -> np.ndarray:
    """Test accuracy whose log-odds rise linearly, reaching GROKKED_ACC at `cross`."""
    z = math.log(GROKKED_ACC / (1 - GROKKED_ACC)) + rate * (X - cross)
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("cut", [20, 40, 61])
def test_test_accuracys_own_trend_says_when_it_reaches_99(cut: int) -> None:
    """Log-odds rising on a line reach logit(99%) where the line does, from any cut."""
    acc = logit_curve(cross=8000)
    assert acc_trend(X[:cut], acc[:cut], 1000) == pytest.approx(8000, rel=1e-6)
    # Noise on the recent points: the least-squares line through the window's log-odds.
    rng = np.random.default_rng(cut)
    noisy = 1 / (1 + np.exp(-(np.log(acc / (1 - acc)) + rng.normal(0, 0.1, X.size))))
    x, a = X[:cut], noisy[:cut]
    window = (x >= 1000) & (x >= min(x[-1] - 0.1 * (x[-1] - 1000), x[x >= 1000][-ACC_POINTS]))
    slope, intercept = np.polyfit(x[window], np.log(a[window] / (1 - a[window])), 1)
    by_hand = max((math.log(99) - intercept) / slope, x[-1])
    assert acc_trend(x, a, 1000) == pytest.approx(by_hand, rel=1e-9)


def test_no_trend_without_a_rise_or_enough_checkpoints() -> None:
    assert acc_trend(X, np.full_like(X, 0.3), 1000) is None  # flat
    assert acc_trend(X, logit_curve(8000)[::-1], 1000) is None  # falling
    assert acc_trend(X[:12], logit_curve(8000)[:12], 1000) is None  # two points since 1000
    assert acc_trend(X, None, 1000) is None


def test_the_trend_fall_and_decay_features_by_hand() -> None:
    """trend: accuracy now x log(its trend's epoch / raw), clipped; fall: log(test loss'
    peak since the start / now); decay: log(sum of squared weights at the start / now)."""
    model = shipped_model()
    share = share_curve(model.target_share)
    acc = logit_curve(cross=8000)
    rng = np.random.default_rng(3)
    loss = rng.uniform(0.5, 5.0, X.size)
    weights = np.linspace(900.0, 300.0, X.size)
    f = forecast_features(X, share, 1000, model, acc, loss, weights)
    assert not isinstance(f, str)
    lag = max(-LAG_CLIP, min(LAG_CLIP, math.log(8000 / f.raw)))
    assert f.values["trend"] == pytest.approx(acc[-1] * lag, rel=1e-6)
    after = X >= 1000
    assert f.values["fall"] == pytest.approx(math.log(loss[after].max() / loss[-1]))
    assert f.values["decay"] == pytest.approx(math.log(weights[after][0] / weights[-1]))
    bare = forecast_features(X, share, 1000, model)
    assert not isinstance(bare, str)
    assert bare.values["trend"] == bare.values["fall"] == bare.values["decay"] == 0.0
    assert bare.raw == f.raw  # the raw forecast reads the share alone


def test_the_forecast_passes_every_curve_to_the_correction() -> None:
    """forecast_grok corrects with the features of all its curves: a model on `decay` alone
    moves the forecast by exactly coef x decay."""
    model = replace(shipped_model(), features=("decay",), coef=(0.0, 0.5),
                    edges=(0.0, 1.0), half_width=(0.1,))  # fmt: skip
    share = share_curve(model.target_share)
    weights = np.linspace(900.0, 300.0, X.size)
    plain = forecast_grok(X, share, np.zeros_like(X), 1000, model)
    moved = forecast_grok(X, share, np.zeros_like(X), 1000, model, None, weights)
    decay = math.log(weights[X >= 1000][0] / weights[-1])
    assert moved.grok_epoch == pytest.approx(plain.grok_epoch * math.exp(0.5 * decay), abs=1)
