"""Phases that never flip back: a state machine over the raw phase estimates of a live run.

`phases.find_phases` reads the boundaries off every curve seen so far, so each new
checkpoint may move them, and a key-set change (which redraws the excluded loss) or a
sharp change not yet settled can withdraw one: the phase read off the raw estimates flips
back ("cleaned up" at 1,718, "cleaning up" at 1,780, "cleaned up" again at 1,835). The
machine steps once per checkpoint, in order, and keeps what it has announced:

- a boundary is announced once the raw estimate has held it, within `max_move`, at
  `confirm` checkpoints in a row spanning at least `settle` of the epochs from the boundary
  to now (hysteresis on the input), and only after the boundary before it. The span is
  what tells a boundary from an estimate that trails the run: a sharp change still in
  progress has a tangent that keeps moving with it, and an estimate that tracks a fixed
  share of the epochs seen never holds still that long;
- once announced it is never withdrawn, so the phase now (memorising -> circuit forming ->
  cleaning up -> cleaned up) only moves forward;
- it may refine to where the raw estimate now puts it, within `max_move` of the epoch
  first announced (10%: an estimate that refines, never one that jumps), and never past
  its neighbours.

The state is plain numbers, so each checkpoint's state is stored with its records
(engine/measures/asof.py) and the phases at epoch N are a function of the records up to N.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grok_tui.engine.measures.phases import PHASE_NAMES, PHASES

CONFIRM = 2  # checkpoints in a row a raw boundary must hold before it is announced ...
SETTLE = 0.25  # ... spanning this share of the epochs from it to now
MAX_MOVE = 0.10  # an announced boundary stays within this share of its first epoch


@dataclass
class PhaseState:
    """What the machine has announced after some checkpoint."""

    announced: dict[str, int] = field(default_factory=dict)  # boundary -> epoch now
    first: dict[str, int] = field(default_factory=dict)  # boundary -> epoch first announced
    # Not yet announced: the raw value held since `held_since` (epoch), at `shown` checkpoints.
    candidate: dict[str, int] = field(default_factory=dict)
    held_since: dict[str, int] = field(default_factory=dict)
    shown: dict[str, int] = field(default_factory=dict)

    def phases(self) -> dict[str, int | None]:
        return {name: self.announced.get(name) for name in PHASES}

    @property
    def index(self) -> int:
        """How many boundaries are behind the run: 0 memorising .. 3 cleaned up."""
        return len(self.announced)

    def now(self) -> tuple[str, int | None]:
        """(what the run is doing, since which epoch)."""
        if not self.announced:
            return PHASE_NAMES[None], None
        name = PHASES[self.index - 1]
        return PHASE_NAMES[name], self.announced[name]

    def to_json(self) -> dict[str, Any]:
        return {name: dict(getattr(self, name)) for name in STATE_PARTS}

    @classmethod
    def from_json(cls, data: Any) -> PhaseState | None:
        """A state read back from disk (untrusted): None unless it is one this code wrote."""
        if not isinstance(data, dict):
            return None
        parts = []
        for key in STATE_PARTS:
            part = data.get(key)
            if not isinstance(part, dict) or not set(part) <= set(PHASES):
                return None
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in part.values()):
                return None
            parts.append(dict(part))
        state = cls(*parts)
        pending = (set(state.candidate), set(state.held_since), set(state.shown))
        if len({frozenset(x) for x in pending}) != 1:
            return None
        if set(state.announced) != set(state.first) or list(state.announced) != [
            n for n in PHASES[: len(state.announced)]
        ]:
            return None
        return state


STATE_PARTS = ("announced", "first", "candidate", "held_since", "shown")


def _within(epochs: Sequence[int], lo: float, hi: float, want: float) -> int | None:
    """The checkpoint epoch in [lo, hi] nearest `want` (None if there is none)."""
    inside = [e for e in epochs if lo <= e <= hi]
    return min(inside, key=lambda e: (abs(e - want), e)) if inside else None


def step(
    state: PhaseState,
    raw: Mapping[str, int | None],
    epochs: Sequence[int],
    confirm: int = CONFIRM,
    max_move: float = MAX_MOVE,
    settle: float = SETTLE,
) -> PhaseState:
    """The state after one more checkpoint, given the raw boundaries read off the curves up
    to it and the checkpoint epochs so far (ascending). `state` is left as it was."""
    new = PhaseState(dict(state.announced), dict(state.first))
    now = int(epochs[-1]) if len(epochs) else 0
    previous: int | None = 0
    for i, name in enumerate(PHASES):
        value = raw.get(name)
        if name in new.announced:
            if value is not None:
                first = new.first[name]
                lo = max(first / (1 + max_move), previous or 0)
                hi = first * (1 + max_move)
                if i + 1 < len(PHASES) and PHASES[i + 1] in new.announced:
                    hi = min(hi, new.announced[PHASES[i + 1]])
                moved = _within(epochs, lo, hi, value)
                if moved is not None:
                    new.announced[name] = moved
            previous = new.announced[name]
            continue
        if previous is None or value is None:  # the boundary before is not announced yet
            previous = None
            continue
        value = max(int(value), previous)
        held = state.candidate.get(name)
        if held is None or abs(value - held) > max_move * held:
            held, since, shown = value, now, 1  # a new candidate
        else:
            since, shown = state.held_since[name], state.shown[name] + 1
        if shown >= confirm and now - since >= settle * (now - held):
            new.announced[name] = new.first[name] = value
        else:
            new.candidate[name], new.held_since[name], new.shown[name] = held, since, shown
        previous = None
    return new


def replay(
    epochs: Sequence[int],
    raws: Sequence[Mapping[str, int | None]],
    confirm: int = CONFIRM,
    max_move: float = MAX_MOVE,
    settle: float = SETTLE,
) -> list[PhaseState]:
    """The state after each checkpoint, from the raw boundaries seen at each (tests, bench)."""
    state, out = PhaseState(), []
    for i, raw in enumerate(raws):
        state = step(state, raw, epochs[: i + 1], confirm, max_move, settle)
        out.append(state)
    return out
