"""The runs of bench/forecast_corpus.py's features.jsonl, cut at checkpoints as a live viewer
saw them: shared by the refit (bench/forecast_refit.py) and the judge (bench/forecast_judge.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.measures.forecast import (
    Forecast,
    forecast_grok,
    model_start,
    rule_forecast,
)
from grok_tui.engine.measures.forecast_model import ForecastModel


@dataclass
class RunFeatures:
    """One run of a features.jsonl: its curves per checkpoint, as read live."""

    name: str
    config: dict[str, Any]
    budget: int
    grok: int | None  # first epoch with test accuracy >= 99%, or None (not within budget)
    epochs: np.ndarray
    xy_share: np.ndarray
    test_acc: np.ndarray
    memorisation_end: list[int | None]  # as announced at each checkpoint
    test_loss: np.ndarray | None = None  # (the provisional start reads it; None: not kept)
    # The phases shown at each checkpoint (None: a features.jsonl made before they were kept)
    phase_index: list[int] | None = None
    announced: list[dict[str, int]] | None = None
    sum_sq_weights: np.ndarray | None = None  # (the correction's `decay`; None: not kept)
    train_acc: np.ndarray | None = None  # (forecast.memorised_start; None: not kept)

    def cut(self, i: int, model: ForecastModel | None = None) -> Forecast:
        """The calibrated forecast as of checkpoint i (what the app showed then)."""
        return forecast_grok(self.epochs[: i + 1], self.xy_share[: i + 1],
                             self.test_acc[: i + 1], self.memorisation_end[i], model,
                             *self.curves(i), self.train_acc_to(i))  # fmt: skip

    def train_acc_to(self, i: int) -> np.ndarray | None:
        return None if self.train_acc is None else self.train_acc[: i + 1]

    def anchor(self, i: int, model: ForecastModel) -> tuple[int | None, str]:
        """Where the forecast made at checkpoint i with `model`'s start rules starts, and
        which start that is (forecast.model_start)."""
        return model_start(model, self.epochs[: i + 1], self.curves(i)[0],
                           self.memorisation_end[i], self.train_acc_to(i),
                           self.xy_share[: i + 1], self.test_acc[: i + 1])  # fmt: skip

    def curves(self, i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(test loss, sum of squared weights) up to checkpoint i (None where not kept)."""
        loss = None if self.test_loss is None else self.test_loss[: i + 1]
        weights = None if self.sum_sq_weights is None else self.sum_sq_weights[: i + 1]
        return loss, weights

    def rule_cut(self, i: int) -> Forecast:
        """The forecast before issue 19 as of checkpoint i."""
        return rule_forecast(self.epochs[: i + 1], self.xy_share[: i + 1],
                             self.test_acc[: i + 1], self.memorisation_end[i])  # fmt: skip

    def index_at(self, epoch: float) -> int | None:
        """The last checkpoint at or before `epoch`."""
        before = np.flatnonzero(self.epochs <= epoch)
        return int(before[-1]) if before.size else None

    def before_grok(self) -> range:
        """The checkpoints before the run groked (all of them if it never did)."""
        end = len(self.epochs) if self.grok is None else int(np.sum(self.epochs < self.grok))
        return range(end)


def read_runs(path: Path) -> list[RunFeatures]:
    runs = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        runs.append(RunFeatures(
            name=d["run"], config=d["config"], budget=int(d["budget"]), grok=d["grok"],
            epochs=np.asarray(d["epochs"], dtype=np.float64),
            xy_share=np.asarray([math.nan if v is None else v for v in d["xy_share"]]),
            test_acc=np.asarray([math.nan if v is None else v for v in d["test_acc"]]),
            memorisation_end=list(d["memorisation_end"]),
            test_loss=None if "test_loss" not in d else
            np.asarray([math.nan if v is None else v for v in d["test_loss"]]),
            phase_index=d.get("phase_index"), announced=d.get("announced"),
            sum_sq_weights=None if "sum_sq_weights" not in d else
            np.asarray([math.nan if v is None else v for v in d["sum_sq_weights"]]),
            train_acc=None if "train_acc" not in d else
            np.asarray([math.nan if v is None else v for v in d["train_acc"]]),
        ))  # fmt: skip
    return runs


def splits(runs: list[RunFeatures]) -> dict[str, str]:
    """'fit' or 'calibration' per run: within the runs that grokked, and within those that
    did not, in the order of a hash of their names, alternately (half each, the odd one to
    the fit). Fixed by names and outcomes only, before any fit."""
    out: dict[str, str] = {}
    for grokked in (True, False):
        group = sorted((r.name for r in runs if (r.grok is not None) == grokked),
                       key=lambda n: hashlib.sha256(n.encode()).hexdigest())  # fmt: skip
        out.update({n: "fit" if i % 2 == 0 else "calibration" for i, n in enumerate(group)})
    return out
