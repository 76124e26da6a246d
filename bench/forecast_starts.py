"""Where may the forecast start? Its start rules compared on the corpus only (issue 19).

    .venv/bin/python bench/forecast_starts.py [--root /work/corpus-forecast] [--json F]

The forecast starts at the announced memorisation end, else at its provisional start (the
test loss' peak, once it is down to `forecast.PEAK_FALL` of it). On runs whose test loss
rises again after its first peak it stays silent until late (held-out h15/opdivide, h15b/
opadd: nothing at 65% of the way). `forecast.memorised_start` is a third start: the epoch the
train set was memorised, once the x + y share's log-odds have risen by a given amount since
(the constants' `share_rise`; bench/forecast_refit.py's `SHARE_RISE` is the one kept).

Since 2026-12-04 evening, a forecast from that start carries the feature `memo` (the refit
may correct it apart: its feature sets include it) and its own conformal half-width
(`ForecastModel.memo_half_width`): without them the early start read as much evidence and
got the narrow intervals of late forecasts (corpus calibration split, rise 0.5: 3 of 6
covered at the cuts).

For each candidate (a rise, None: the rule off, and a gate), the constants are refitted by
bench/forecast_refit.py's procedure on the corpus (ROOT/corpus/features.jsonl; the held-out
set is never read), then, with them, over the corpus:
- grokked runs: a forecast issued at 50% and at 65% of the way to the grok epoch; the
  median |error| at 50/65/80% on the calibration split (runs the correction was not fitted
  on), over the forecasts issued;
- runs that never grokked: a forecast epoch within the budget at some checkpoint (a false
  alarm; these runs play no part in the fit).

Since 2026-12-04 night the start may also ask for test accuracy at a level (`memo_min_acc`,
the constants carry it): on the corpus the rises added false alarms on runs whose share
rises and then stalls (c14, c14b: test accuracy 0.01-0.06 throughout), while the runs the
start is for, fast ones, are well above chance by 65% of their way (corpus: 0.1-0.9, but
subtract at large p). So the candidates are each rise without a gate, and the rises 0.25,
0.5 and 1.0 with each gate of `GATES`.

Since 2026-12-04 night, later, a last start may speak before the train set is memorised:
where test accuracy reached a level (`generalising_acc`; forecast.generalising_start), for
runs that generalise while they memorise (held-out h20, p = 167 at fraction 0.45; corpus
c15 and c15b were added for them). Its candidates are each level of `LEVELS`, alone and
with the tenth fit's memorised start (rise 0.25, gate 0.05).

The rule kept (stated before any candidate's figures were seen; the gated candidates and
the last two tie-breaks were added before any gated candidate's figures were seen, the
levels and the last tie-break before any level's): the most forecasts issued at 65%, then
at 50%, among the candidates with no more false alarms than the rule off and a
calibration-split median error at 50% and at 80% at most 2 points above the rule off's; on
a tie the fewer false alarms, then the larger gate, then the larger rise (the later start),
then the larger level (None, off, largest).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.forecast_cuts import RunFeatures, read_runs, splits
from bench.forecast_judge import false_grok, issued
from bench.forecast_refit import CORPUS_NAME, refit
from grok_tui.engine.measures.forecast_model import ForecastModel

RISES: tuple[float | None, ...] = (None, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
GATES = (0.05, 0.1, 0.2)  # test accuracy the memorised start needs (memo_min_acc)
GATED_RISES = (0.25, 0.5, 1.0)
LEVELS = (0.05, 0.1, 0.2, 0.3)  # test accuracy the generalising start needs
Candidate = tuple[float | None, float, float | None]  # share_rise, memo_min_acc, its level
CANDIDATES: tuple[Candidate, ...] = (
    *((rise, 0.0, None) for rise in RISES),
    *((rise, gate, None) for gate in GATES for rise in GATED_RISES),
    *((None, 0.0, level) for level in LEVELS),
    *((0.25, 0.05, level) for level in LEVELS),
)
OFF: Candidate = (None, 0.0, None)
CUTS = (0.5, 0.65, 0.8)
SLACK = 0.02  # the error may rise this much (absolute) against the rule off


def make(model: ForecastModel):
    return lambda rf, i: rf.cut(i, model)


def judge_rule(runs: list[RunFeatures], model: ForecastModel) -> dict[str, Any]:
    split = splits(runs)
    grokked = [rf for rf in runs if rf.grok is not None]
    issued_at = {c: 0 for c in CUTS}
    by_run: dict[float, dict[str, float]] = {c: {} for c in CUTS}  # calibration split
    silent: dict[float, list[str]] = {c: [] for c in CUTS}
    for rf in grokked:
        for c in CUTS:
            i = rf.index_at(c * rf.grok)
            fc = None if i is None else rf.cut(i, model)
            if issued(fc):
                issued_at[c] += 1
                if split[rf.name] == "calibration":
                    by_run[c][rf.name] = abs(fc.grok_epoch - rf.grok) / rf.grok
            else:
                silent[c].append(rf.name)
    never = [rf for rf in runs if rf.grok is None]
    alarms = {rf.name: e for rf in never if (e := false_grok(rf, make(model))) is not None}
    return {
        "grokked": len(grokked),
        "never": len(never),
        "issued": issued_at,
        "silent": silent,
        "calibration_median_error": {
            c: float(np.median(list(e.values()))) if e else math.inf for c, e in by_run.items()
        },
        "false_alarms": alarms,
        "calibration_errors": by_run,
    }


def corpus_from_args(doc: str) -> tuple[list[RunFeatures], Path | None]:
    """The corpus runs (ROOT/corpus/features.jsonl) and where to write the results, from the
    command line of a script that compares rules on the corpus."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/corpus-forecast"))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    return read_runs(args.root / "corpus" / "features.jsonl"), args.json


def table_row(cells: list[str], r: dict[str, Any]) -> str:
    """A row of the comparison's table: the candidate's cells, then `judge_rule`'s figures."""
    med = " / ".join(f"{100 * r['calibration_median_error'][c]:.1f}%" for c in CUTS)
    n, alarms = r["grokked"], r["false_alarms"]
    return (f"| {' | '.join(cells)} | {r['issued'][0.5]}/{n} | {r['issued'][0.65]}/{n} | {med} "
            f"| {len(alarms)}/{r['never']} {alarms} |")  # fmt: skip


TABLE_TAIL = "issued 50% | issued 65% | median error 50/65/80% (calibration split) | false alarms |"


def chosen(results: dict[Candidate, dict[str, Any]]) -> Candidate:
    off = results[OFF]
    med_off = off["calibration_median_error"]

    def allowed(r: dict[str, Any]) -> bool:
        med = r["calibration_median_error"]
        return (
            len(r["false_alarms"]) <= len(off["false_alarms"])
            and med[0.5] <= med_off[0.5] + SLACK
            and med[0.8] <= med_off[0.8] + SLACK
        )

    ok = [key for key, r in results.items() if allowed(r)]

    def rank(key: Candidate) -> tuple[int, int, int, float, float, float]:
        r, (rise, gate, level) = results[key], key
        return (r["issued"][0.65], r["issued"][0.5], -len(r["false_alarms"]), gate,
                math.inf if rise is None else rise,
                math.inf if level is None else level)  # fmt: skip

    return max(ok, key=rank)


def main() -> int:
    runs, json_path = corpus_from_args(__doc__)
    if any(rf.train_acc is None for rf in runs):
        raise SystemExit("the corpus' features lack the train accuracy: extract it again")
    results: dict[Candidate, dict[str, Any]] = {}
    print(f"| share_rise | memo_min_acc | generalising_acc | target, features | {TABLE_TAIL}")
    print("|---|---|---|---|---|---|---|---|")
    for rise, gate, level in CANDIDATES:
        model = refit(runs, CORPUS_NAME, verbose=False, share_rise=rise, memo_min_acc=gate,
                      generalising_acc=level)  # fmt: skip
        r = judge_rule(runs, model)
        r["model"] = model.to_json()
        results[rise, gate, level] = r
        target = f"{model.target_share}, {'+'.join(model.features)}"
        print(table_row([str(rise), str(gate), str(level), target], r), flush=True)
    print(
        "\nOn the calibration runs the rule off issues at each cut too (a diagnostic: the "
        "medians above are over different runs), median error 50 / 65 / 80%:"
    )
    off = results[OFF]["calibration_errors"]
    for key, r in results.items():
        common = []
        for c in CUTS:
            mine = r["calibration_errors"][c]
            both = [n for n in off[c] if n in mine]
            pair = (np.median([mine[n] for n in both]), np.median([off[c][n] for n in both]))
            common.append(pair)
        print(f"  {key}: " + " / ".join(f"{100 * a:.1f}% (off {100 * b:.1f}%)" for a, b in common))
    pick = chosen(results)
    print(f"\nkept: share_rise = {pick[0]}, memo_min_acc = {pick[1]}, "
          f"generalising_acc = {pick[2]}")  # fmt: skip
    print(f"silent at 65% with it: {results[pick]['silent'][0.65]}")
    if json_path:
        out = {",".join(map(str, key)): r for key, r in results.items()}
        json_path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
