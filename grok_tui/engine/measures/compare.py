"""Several runs side by side: their histories, what differs between them, how to align them.

`grok-tui compare` overlays runs trained with different settings; a legend names each by
the config fields in which the runs differ (their config diff), and the x axis is either
the epoch or the epoch relative to each run's grok epoch (first test accuracy >= 99%), so
runs that grok at different times can be compared around the transition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.follow import MetricsHistory
from grok_tui.engine.store.runs import Run, RunError

GROK_ACC = 0.99
SHORT = {
    "weight_decay": "wd",
    "frac_train": "frac",
    "data_seed": "data seed",
    "checkpoint_every": "ckpt",
    "warmup_steps": "warm-up",
}
# Fields that never change what a run computes, left out of its legend.
NOT_DIFFS = ("preset", "checkpoint_every")


def config_diff(configs: Sequence[RunConfig]) -> list[str]:
    """The config fields (in declaration order) whose values differ between the runs."""
    if len(configs) < 2:
        return []
    dicts = [c.to_dict() for c in configs]
    return [k for k in dicts[0] if k not in NOT_DIFFS and len({d[k] for d in dicts}) > 1]


def legend(cfg: RunConfig, fields: Sequence[str]) -> str:
    """'wd=0.3 frac=0.5' for the differing fields (or '' when there are none)."""
    values = cfg.to_dict()
    return " ".join(f"{SHORT.get(k, k)}={_fmt(values[k])}" for k in fields)


def _fmt(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class ComparedRun:
    """One run of a comparison: its name, its legend, its metrics and its grok epoch."""

    run: Run
    name: str
    config: RunConfig
    label: str
    history: MetricsHistory

    @property
    def grok_epoch(self) -> int | None:
        return self.history.first_epoch_at_least("test_acc", GROK_ACC)

    def x(self, align: str) -> np.ndarray | None:
        """Epochs, or epochs minus the grok epoch (None if aligning by grok and it has not)."""
        epochs = self.history.epoch.astype(np.float64)
        if align == "epoch":
            return epochs
        grok = self.grok_epoch
        return None if grok is None else epochs - grok


def load_runs(runs: Sequence[Run]) -> list[ComparedRun]:
    """Read each run's metrics; label them by their config diff (or their names)."""
    configs = [r.meta().config for r in runs]
    fields = config_diff(configs)
    out = []
    for run, cfg in zip(runs, configs, strict=True):
        history = MetricsHistory()
        history.extend(run.read_metrics())
        label = legend(cfg, fields) or run.name
        out.append(ComparedRun(run, run.name, cfg, label, history))
    return out


def measure_runs(
    runs: Sequence[Run],
    device: str,
    should_stop: Callable[[], bool],
    on_start: Callable[[int], None],
    on_table: Callable[[int, Any, str], None],
) -> None:
    """Progress measures of each run in turn (cached rows reused, missing ones computed and
    cached); `on_table(i, ProgressTable | None, error line)` after each."""
    from grok_tui.engine.measures.progress import ProgressTracker

    for i, run in enumerate(runs):
        if should_stop():
            return
        on_start(i)
        try:
            tracker = ProgressTracker(run, device)
            tracker.update(should_stop)
            on_table(i, tracker.table(), "")
        except (RunError, ValueError, RuntimeError) as exc:
            on_table(i, None, f"{run.name}: {exc}")
