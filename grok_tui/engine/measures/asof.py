"""The outlook of a run as of each checkpoint: what the app showed then, kept as data.

At every checkpoint N, in order, this reads the phases off the curves up to N (with the
key set in use at N, engine/measures/keyfreqs.py), steps the forward-only phase machine
(engine/measures/phase_machine.py), and makes the grok forecast from the curves up to N
and the memorisation end announced then. Each step is appended to RUN/measures.jsonl as a
row of kind "outlook" the moment it is made: the machine's state (so the next step, in
this process or another, starts from it), the key set, and the forecast. So:

- `analyze RUN --epoch N` shows exactly what a viewer showed at N, and equals the analysis
  of a copy of the run cut at N (nothing after N is read);
- the history of forecasts is data, not a recomputation with hindsight.

A stored step is used only if it continues the chain: its previous checkpoint is the
checkpoint before it, its key set is the one the records give at it, and no step before
it had to be made again; otherwise it is made again (and stored again). Rows are
untrusted: a bad one is a missing one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grok_tui.engine.measures.forecast import Forecast, forecast_grok
from grok_tui.engine.measures.forecast_model import shipped_model
from grok_tui.engine.measures.phase_machine import PhaseState, step
from grok_tui.engine.measures.phases import PHASES, find_phases, not_applicable
from grok_tui.engine.measures.record import freq_gini, label_share

# 2: the memorisation end waits for the train-loss floor (phases.py);
# 3: the calibrated forecast, with its interval's level
# 4: the forecast speaks, provisionally, before memorisation's end is announced
# 5: the forecast's correction reads test accuracy's own trend, the test loss' fall and the
#    weights' decay (forecast_model.FEATURES): a step stored before may differ
OUTLOOK_VERSION = 5


def forecaster_id() -> int:
    """Which forecast constants made a step: a step made with others (before a refit) is
    made again, so the outlook as of N stays what analysing the run cut at N gives."""
    return shipped_model().fingerprint


def _fraction(v: Any) -> bool:
    return isinstance(v, float) and 0 < v < 1


@dataclass
class Step:
    """One checkpoint's outlook as stored."""

    epoch: int
    previous: int | None  # the checkpoint before it (None for the first)
    key_freqs: tuple[int, ...]
    provisional: bool
    raw: dict[str, int | None]
    state: PhaseState
    forecast: dict[str, Any] | None  # grok_epoch, low, high (ints), level, provisional; or None
    observed: bool

    def row(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "version": OUTLOOK_VERSION,
            "forecaster": forecaster_id(),
            "kind": "outlook",
            "previous": self.previous,
            "key_freqs": list(self.key_freqs),
            "provisional": self.provisional,
            "raw": dict(self.raw),
            "state": self.state.to_json(),
            "phase_index": self.state.index,
            "forecast": self.forecast,
            "observed": self.observed,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Step | None:
        """A stored step (untrusted): None unless it is one this code wrote."""
        epoch, previous, keys = row.get("epoch"), row.get("previous"), row.get("key_freqs")
        raw, forecast = row.get("raw"), row.get("forecast")
        state = PhaseState.from_json(row.get("state"))
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        ok = (
            row.get("kind") == "outlook"
            and row.get("version") == OUTLOOK_VERSION
            and row.get("forecaster") == forecaster_id()
            and state is not None
            and whole(epoch)
            and (previous is None or whole(previous))
            and isinstance(keys, list)
            and all(whole(k) for k in keys)
            and isinstance(raw, dict)
            and set(raw) == set(PHASES)
            and all(v is None or whole(v) for v in raw.values())
            and (
                forecast is None
                or (
                    isinstance(forecast, dict)
                    and set(forecast) == {"grok_epoch", "low", "high", "level", "provisional"}
                    and all(
                        v is None or whole(v)
                        for k, v in forecast.items()
                        if k not in ("level", "provisional")
                    )
                    and (forecast["level"] is None or _fraction(forecast["level"]))
                    and isinstance(forecast["provisional"], bool)
                )
            )
            and isinstance(row.get("provisional"), bool)
            and isinstance(row.get("observed"), bool)
        )
        if not ok:
            return None
        assert state is not None
        return cls(epoch, previous, tuple(keys), row["provisional"], dict(raw), state,
                   forecast, row["observed"])  # fmt: skip


@dataclass
class Outlook:
    """What a run is doing and what comes next, as of checkpoint `as_of`."""

    phases: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(PHASES))
    phase: str = "memorising"  # what the run is doing now
    since: int | None = None  # ... since which epoch
    forecast: Forecast = field(default_factory=lambda: Forecast(None, reason="no checkpoints"))
    as_of: int | None = None
    key_freqs: tuple[int, ...] = ()  # the key set the phases read the excluded loss with
    provisional: bool = False  # ... a provisional one (W_E / W_L), before neurons cluster
    raw_phases: dict[str, int | None] = field(default_factory=dict)  # this step's raw reading
    # The forecasts as they were made, one per checkpoint up to `as_of`: (epoch, forecast,
    # low, high), None where there was none (the Curves pane plots them against epoch).
    forecasts: tuple[tuple[int, int | None, int | None, int | None], ...] = ()

    def describe_phase(self) -> str:
        """'circuit forming since 1,400'."""
        return self.phase if self.since is None else f"{self.phase} since {self.since:,}"


class OutlookHistory:
    """Steps a run's outlook checkpoint by checkpoint, storing each step as it is made.

    `tracker` is the run's `progress.ProgressTracker` (records, excluded losses, key sets).
    A tracker with a reference checkpoint (`key_epoch`) reads every checkpoint with a set
    from elsewhere in the run: hindsight, so its steps are neither stored nor read back.
    """

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.store = tracker.key_epoch is None
        self.steps: dict[int, Step] = {}
        self._columns: dict[int, tuple[float, ...]] = {}
        self._loaded = False
        self.na = not_applicable(tracker.cfg.op)  # a reason: no phases, no forecast

    def _load(self) -> None:
        if self._loaded or not self.store:
            return
        self._loaded = True
        for row in self.tracker.run.read_measures():
            if row.get("kind") == "outlook":
                got = Step.from_row(row)
                if got is not None:
                    self.steps[got.epoch] = got  # the last one written wins

    def _column_row(self, epoch: int) -> tuple[float, ...]:
        """(train loss, test loss, test acc, sum sq weights, per-frequency Gini of W_E,
        x + y share of the logits, train acc) of one record."""
        if epoch not in self._columns:
            r = self.tracker.records[epoch]
            self._columns[epoch] = (
                r.scalars.get("train_loss", math.nan),
                r.scalars.get("test_loss", math.nan),
                r.scalars.get("test_acc", math.nan),
                r.scalars.get("sum_sq_weights", math.nan),
                freq_gini(r.arrays["w_e_sq"], r.basis),
                label_share(r),
                r.scalars.get("train_acc", math.nan),
            )
        return self._columns[epoch]

    def at(
        self,
        epoch: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        budget_s: float | None = None,
    ) -> Outlook:
        """The outlook as of checkpoint `epoch` (default: the newest recorded), stepping and
        storing every checkpoint up to it that has no step yet. If stopped, or once steps
        made here have taken `budget_s` seconds (at least one is made), the outlook as of
        the last checkpoint stepped (`as_of` says which)."""
        self._load()
        tracker = self.tracker
        epochs = [e for e in tracker.epochs() if epoch is None or e <= epoch]
        if not epochs:
            return Outlook()
        history = tracker.key_history(epochs)  # causal: its set at e is the set as of e
        state = PhaseState()
        new_rows: list[dict[str, Any]] = []
        done = 0
        remade = False  # once a step is made again, every later one is too
        started, made = time.monotonic(), 0
        try:
            for i, e in enumerate(epochs):
                keys = history.at(e)
                previous = epochs[i - 1] if i else None
                stored = self.steps.get(e)
                chained = stored is not None and stored.previous == previous and not remade
                if chained and stored is not None and stored.key_freqs == keys:
                    state, done = stored.state, i + 1
                    continue
                remade = True
                if should_stop is not None and should_stop():
                    break
                if made and budget_s is not None and time.monotonic() - started > budget_s:
                    break
                prefix = epochs[: i + 1]
                if keys and any((x, keys) not in tracker.excluded for x in prefix):
                    tracker.fill_excluded(should_stop, keys=keys, upto=e)
                    if should_stop is not None and should_stop():
                        break
                curves = self._curves(prefix, keys)
                raw = dict.fromkeys(PHASES) if self.na else find_phases(prefix, curves)
                state = step(state, raw, prefix)
                fc = self._forecast(prefix, curves, state)
                step_made = Step(e, previous, keys, history.provisional_at(e), raw, state,
                                 fc.to_json(), fc.observed)  # fmt: skip
                self.steps[e] = step_made
                new_rows.append(step_made.row())
                made += 1
                done = i + 1
                if len(new_rows) >= 16:
                    self._save(new_rows)
                    new_rows = []
        finally:
            self._save(new_rows)
        if not done:
            return Outlook(as_of=None)
        prefix = epochs[:done]
        last = prefix[-1]
        keys = history.at(last)
        curves = self._curves(prefix, keys)
        name, since = state.now()
        if self.na:
            name = "phases n/a"
        return Outlook(
            phases=state.phases(),
            phase=name,
            since=since,
            forecast=self._forecast(prefix, curves, state),
            as_of=last,
            key_freqs=keys,
            provisional=history.provisional_at(last),
            raw_phases=dict(self.steps[last].raw),
            forecasts=tuple(self._made(e) for e in prefix),
        )

    def _made(self, epoch: int) -> tuple[int, int | None, int | None, int | None]:
        fc = self.steps[epoch].forecast
        if fc is None or self.steps[epoch].observed:
            return (epoch, None, None, None)
        return (epoch, fc["grok_epoch"], fc["low"], fc["high"])

    def _save(self, rows: list[dict[str, Any]]) -> None:
        if self.store and rows:
            self.tracker.run.append_measures(rows)

    def _curves(self, epochs: list[int], keys: tuple[int, ...]) -> dict[str, np.ndarray]:
        cols = np.array([self._column_row(e) for e in epochs], dtype=np.float64).reshape(-1, 7)
        nan = (math.nan,)
        excluded = self.tracker.excluded
        return {
            "train_loss": cols[:, 0],
            "test_loss": cols[:, 1],
            "test_acc": cols[:, 2],
            "sum_sq_weights": cols[:, 3],
            "gini_W_E_freq": cols[:, 4],
            "xy_share_logits": cols[:, 5],
            "train_acc": cols[:, 6],
            "excluded_loss": np.array(
                [excluded.get((e, keys), nan)[0] if keys else math.nan for e in epochs],
                dtype=np.float64,
            ),
        }

    def _forecast(
        self, epochs: list[int], curves: dict[str, np.ndarray], state: PhaseState
    ) -> Forecast:
        if self.na:
            return Forecast(None, reason=self.na, as_of=int(epochs[-1]))
        return forecast_grok(
            np.asarray(epochs),
            curves["xy_share_logits"],
            curves["test_acc"],
            state.announced.get("memorisation_end"),
            test_loss=curves["test_loss"],
            sum_sq_weights=curves["sum_sq_weights"],
            train_acc=curves["train_acc"],
        )

    def forecasts(self) -> list[dict[str, Any]]:
        """The forecasts as they were made, one per stepped checkpoint (ascending)."""
        self._load()
        return [
            {"epoch": e, "forecast": s.forecast, "observed": s.observed, "phase": s.state.index}
            for e, s in sorted(self.steps.items())
        ]
