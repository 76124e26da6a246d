"""When should the forecast hold its tongue? Guards against false alarms, chosen on the corpus.

    .venv/bin/python bench/forecast_guards.py [--root /work/corpus-forecast] [--json F]

Runs that never grok within their budget draw forecasts within it (issue 19's goal: on at
most 5% of them). On the corpus (68 runs, 28 never grokked; 2026-12-04 evening) the
forecast did so on 6: four at the first forecasts (epochs 120-340, the x + y share grown
by 0.11-0.22 in log since the start, where grokking runs' forecasts at half way mostly read
0.3 and more), two late (epochs 1,020-1,220 of 1,500, from a start found a few checkpoints
before: 6% of the run's epochs since it). So two guards (`ForecastModel.min_evidence`,
`min_growth`): no forecast while the curves since the start cover less than a share of the
run, or while the share's log growth since the start is below a floor.

Each candidate pair is the shipped constants with those guards (a guard only silences; the
correction and the intervals are unchanged), judged over the corpus as
bench/forecast_starts.py judges a start (its `judge_rule`): forecasts issued at 50% and
65% of the grokked runs' way, the calibration split's median errors, the false alarms.
The held-out set is never read.

The rule kept (stated before any candidate's figures were seen): among the candidates that
issue at 65% on as many grokked runs as no guard, at 50% on at most 2 fewer, with
calibration-split median errors at 50% and at 80% at most 2 points above no guard's, the one
with the fewest false alarms; on a tie the most issued at 50%, then the smaller
`min_growth`, then the smaller `min_evidence`.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.forecast_starts import SLACK, TABLE_TAIL, corpus_from_args, judge_rule, table_row
from grok_tui.engine.measures.forecast_model import ForecastModel, shipped_model

MIN_EVIDENCE = (0.0, 0.1, 0.2, 0.3)
MIN_GROWTH = (0.0, 0.1, 0.2, 0.3)
FEWER_AT_HALF = 2  # forecasts at 50% a guard may cost


def chosen(results: dict[tuple[float, float], dict[str, Any]]) -> tuple[float, float]:
    none = results[0.0, 0.0]

    def allowed(r: dict[str, Any]) -> bool:
        med, med0 = r["calibration_median_error"], none["calibration_median_error"]
        return (
            r["issued"][0.65] >= none["issued"][0.65]
            and r["issued"][0.5] >= none["issued"][0.5] - FEWER_AT_HALF
            and med[0.5] <= med0[0.5] + SLACK
            and med[0.8] <= med0[0.8] + SLACK
        )

    def rank(key: tuple[float, float]) -> tuple[int, int, float, float]:
        r = results[key]
        return (len(r["false_alarms"]), -r["issued"][0.5], key[1], key[0])

    return min((k for k, r in results.items() if allowed(r)), key=rank)


def guarded(model: ForecastModel, evidence: float, growth: float) -> ForecastModel:
    return replace(model, min_evidence=evidence, min_growth=growth)


def main() -> int:
    runs, json_path = corpus_from_args(__doc__)
    results: dict[tuple[float, float], dict[str, Any]] = {}
    print(f"| min_evidence | min_growth | {TABLE_TAIL}\n|---|---|---|---|---|---|")
    for evidence, growth in itertools.product(MIN_EVIDENCE, MIN_GROWTH):
        r = judge_rule(runs, guarded(shipped_model(), evidence, growth))
        results[evidence, growth] = r
        print(table_row([str(evidence), str(growth)], r), flush=True)
    pick = chosen(results)
    print(f"\nkept: min_evidence = {pick[0]}, min_growth = {pick[1]}")
    print(f"silent at 50% with it: {results[pick]['silent'][0.5]}")
    if json_path:
        out = {f"{e},{g}": r for (e, g), r in results.items()}
        json_path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
