"""Every checkpoint of the recorded runs (tests/data) analysed as of itself: when each phase
boundary is first announced, where it ends up, and how many times the phase flips back.

    PYTHONPATH=. .venv/bin/python bench/phase_replay.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.measures import phase_machine as pm
from grok_tui.engine.measures.phases import PHASES, find_phases
from tests.test_phases import FIXTURES, as_of_each_checkpoint, load


def main() -> int:
    for fixture in FIXTURES:
        x, curves, data = load(fixture)
        states = pm.replay([int(e) for e in x], as_of_each_checkpoint(x, curves))
        whole = find_phases(x, curves)
        flips = sum(1 for a, b in itertools.pairwise(states) if b.index < a.index)
        print(f"{fixture} (groks at {data['grok_epoch']:,}), flips back: {flips}")
        for key in PHASES:
            first = next(
                ((int(e), s.announced[key]) for e, s in zip(x, states, strict=True)
                 if key in s.announced),
                None,
            )  # fmt: skip
            shown = "-" if first is None else f"{first[1]:,} announced at {first[0]:,}"
            print(f"  {key}: {shown}; at the end {states[-1].announced.get(key)}; "
                  f"whole run {whole[key]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
