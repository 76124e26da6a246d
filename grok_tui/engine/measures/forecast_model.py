"""The forecast's fitted correction and conformal half-widths: constants shipped as JSON.

The raw forecast extrapolates the x + y share of the logits (engine/measures/forecast.py);
its error is systematic (early on it comes too soon), so the calibrated forecast is

    log(grok epoch) = log(raw) + coef . (1, features)

with the features below, fitted by least squares on the fit split of a corpus of runs made
with the project's lab, and the 80% interval is log(forecast) +- q, q the split-conformal
half-width (engine/measures/conformal.py) of the calibration split's |residuals|, one q per
bin of a feature (`width_by`), so the interval narrows as evidence comes in. That feature
was `progress` up to the sixth fit; it is `evidence` since: `progress` divides by the raw
forecast itself, so a forecast that comes too soon reads as far along and got the narrowest
interval exactly when it was wrong (held-out runs at p = 113 and 137: 9 of 17 covered),
while `evidence` reads only the epochs.
bench/forecast_refit.py rebuilds forecast_constants.json (and says how); the file is read
as untrusted JSON: any value missing or of the wrong kind is a clear one-line error.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from grok_tui.errors import UserError

CONSTANTS_PATH = Path(__file__).with_name("forecast_constants.json")
CONSTANTS_VERSION = 1
# The features the correction may use (all in [0, 1] or small, computed from the cut only):
FEATURES = (
    "progress",  # (now - memorisation end) / (raw forecast - memorisation end)
    "spread",  # log(late / early): how much the two extrapolations disagree
    "share",  # the x + y share now / the share at which runs grok
    "growth",  # log(share now / share at memorisation end)
    "reached",  # 1 once the share has reached the target (test accuracy lags), else 0
    "acc",  # test accuracy now
    "trend",  # acc x log(test accuracy's own trend's epoch of 99% / raw), clipped: the lag
    "fall",  # log(test loss' peak since memorisation / test loss now)
    "decay",  # log(sum of squared weights at memorisation end / now)
    "evidence",  # (now - memorisation end) / now: how much of the run the curves since cover
    "memo",  # 1 when the forecast starts early: where the train set was memorised
    # (memorised_start) or where test accuracy rose before it was (generalising_start)
)


# Constants a fit may leave at their default: (default, low, high). to_json writes one only
# when it differs from its default, so the fits made before it keep their fingerprint.
OPTIONAL: dict[str, tuple[float | None, float, float]] = {
    "memo_half_width": (None, 1e-9, 100.0),
    "share_rise": (None, 0.0, 100.0),
    "memo_min_acc": (0.0, 0.0, 1.0),
    "generalising_acc": (None, 0.0, 1.0),
    "min_evidence": (0.0, 0.0, 100.0),
    "min_growth": (0.0, 0.0, 100.0),
}


class ForecastConstantsError(UserError):
    """The forecast's constants file cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class ForecastModel:
    """The calibrated forecast's constants (see the module docstring)."""

    level: float  # the intervals' coverage, e.g. 0.8
    target_share: float  # the extrapolations' settings, as fitted with
    window: float
    min_points: int
    features: tuple[str, ...]
    coef: tuple[float, ...]  # intercept, then one per feature
    edges: tuple[float, ...]  # bins of `width_by`: [edges[i], edges[i + 1])
    half_width: tuple[float, ...]  # the conformal half-width of log(forecast) per bin
    fitted_on: dict[str, Any] = field(default_factory=dict)  # provenance, for people
    width_by: str = "progress"  # the feature (FEATURES) the half-widths' bins are of
    # The half-width of a forecast that starts where the train set was memorised (`memo`),
    # calibrated on those cases alone: an early start reads as much evidence, so the bins
    # of `evidence` would give it too narrow an interval (None: the bins, as before).
    memo_half_width: float | None = None
    # The rise of the x + y share's log-odds since the train set was memorised at which the
    # forecast may start there (forecast.memorised_start; None: it never does). The
    # correction and the intervals were fitted with this start, so it travels with them.
    share_rise: float | None = None
    # ... and the test accuracy it needs there too (0: none), at the same checkpoints: runs
    # whose share rises and stalls keep test accuracy near chance.
    memo_min_acc: float = 0.0
    # The test accuracy at which the forecast may start before the train set is memorised
    # (forecast.generalising_start: runs that generalise while they memorise; None: never).
    # Its forecasts carry `memo` and take `memo_half_width`, as the memorised start's.
    generalising_acc: float | None = None
    # Abstain while the curves since the start cover less than `min_evidence` of the run
    # (a start found late: the memorisation end is recent news) or the share has grown less
    # than `min_growth` in log since the start (no circuit to extrapolate yet): where runs
    # that never grok drew forecasts within their budget. Chosen on the corpus
    # (bench/forecast_guards.py); 0: no guard.
    min_evidence: float = 0.0
    min_growth: float = 0.0

    @property
    def fingerprint(self) -> int:
        """A hash of the constants (provenance aside), as a number (measures.jsonl rows hold
        numbers): which forecaster made a row."""
        data = {k: v for k, v in self.to_json().items() if k != "fitted_on"}
        text = json.dumps(data, sort_keys=True)
        return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)

    def correction(self, values: dict[str, float]) -> float:
        """The log-ratio correction for these feature values."""
        return self.coef[0] + sum(
            c * values[name] for c, name in zip(self.coef[1:], self.features, strict=True)
        )

    def width(self, value: float, memo: bool = False) -> float:
        """The conformal half-width (in log epochs) for this value of `width_by` (`memo`:
        a forecast from the memorised start, which has its own)."""
        if memo and self.memo_half_width is not None:
            return self.memo_half_width
        for i in range(len(self.half_width)):
            if value < self.edges[i + 1] or i == len(self.half_width) - 1:
                return self.half_width[i]
        raise AssertionError("unreachable")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": CONSTANTS_VERSION,
            "level": self.level,
            "target_share": self.target_share,
            "window": self.window,
            "min_points": self.min_points,
            "features": list(self.features),
            "coef": list(self.coef),
            "edges": list(self.edges),
            "half_width": list(self.half_width),
            # (absent: progress, so that the fits before `evidence` keep their fingerprint)
            **({} if self.width_by == "progress" else {"width_by": self.width_by}),
            **{
                k: getattr(self, k)
                for k, (default, _, _) in OPTIONAL.items()
                if getattr(self, k) != default
            },
            "fitted_on": self.fitted_on,
        }


def _number(data: dict[str, Any], key: str, low: float, high: float) -> float:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
        raise ForecastConstantsError(f"forecast constants: {key} must be a number in [{low}, "
                                     f"{high}], got {v!r}")  # fmt: skip
    return float(v)


def _numbers(data: dict[str, Any], key: str, n: int | None = None) -> tuple[float, ...]:
    v = data.get(key)
    ok = isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
    )
    if not ok or (n is not None and len(v) != n):
        want = f"{n} finite numbers" if n is not None else "a list of finite numbers"
        raise ForecastConstantsError(f"forecast constants: {key} must be {want}")
    return tuple(float(x) for x in v)


def model_from_json(data: Any) -> ForecastModel:
    """A model from untrusted JSON data; ForecastConstantsError on anything off."""
    if not isinstance(data, dict) or data.get("version") != CONSTANTS_VERSION:
        raise ForecastConstantsError(f"forecast constants: not version {CONSTANTS_VERSION}")
    features = data.get("features")
    if not isinstance(features, list) or not all(f in FEATURES for f in features):
        raise ForecastConstantsError(f"forecast constants: features must be among {FEATURES}")
    edges = _numbers(data, "edges")
    if len(edges) < 2 or list(edges) != sorted(edges):
        raise ForecastConstantsError("forecast constants: edges must ascend, two at least")
    half = _numbers(data, "half_width", len(edges) - 1)
    if any(h <= 0 for h in half):
        raise ForecastConstantsError("forecast constants: half_width must be positive")
    width_by = data.get("width_by", "progress")
    if width_by not in FEATURES:
        raise ForecastConstantsError(f"forecast constants: width_by must be among {FEATURES}")
    optional = {k: _number(data, k, lo, hi) for k, (_, lo, hi) in OPTIONAL.items() if k in data}
    fitted_on = data.get("fitted_on", {})
    return ForecastModel(
        level=_number(data, "level", 0.01, 0.99),
        target_share=_number(data, "target_share", 0.01, 0.99),
        window=_number(data, "window", 0.01, 1.0),
        min_points=int(_number(data, "min_points", 2, 1000)),
        features=tuple(features),
        coef=_numbers(data, "coef", len(features) + 1),
        edges=edges,
        half_width=half,
        fitted_on=fitted_on if isinstance(fitted_on, dict) else {},
        width_by=width_by,
        **optional,
    )


def load_model(path: Path | str) -> ForecastModel:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ForecastConstantsError(f"forecast constants {path}: cannot read ({exc})") from None
    return model_from_json(data)


@lru_cache(maxsize=1)
def shipped_model() -> ForecastModel:
    """The constants that ship with the package (bench/forecast_refit.py writes them)."""
    return load_model(CONSTANTS_PATH)
