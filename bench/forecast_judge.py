"""Judge the grok forecast on held-out runs against issue 19's goals (and issue 9's, as
bench/forecast_backtest.py defines them, so the numbers stay comparable).

    .venv/bin/python bench/forecast_corpus.py unpack   # the shipped features, or train:
    OMP_NUM_THREADS=1 .venv/bin/python bench/forecast_corpus.py all --set held
    .venv/bin/python bench/forecast_judge.py [--root /work/corpus-forecast] [--set held]

Reads ROOT/SET/features.jsonl (runs never used to fit or choose anything: other p, seeds,
data seeds; bench/forecast_corpus.py plans them). Each forecast is what the app showed at a
checkpoint: the curves up to it, the memorisation end announced then.

Issue 19's goals, per run that grokked at T (first epoch with test accuracy >= 99%), with
the forecast made at the last checkpoint at or before 50%, 65% and 80% of T:
- issued (a forecast epoch, not a reason) on >= 90% of runs at 65% and at 80%;
- median |forecast - T| / T <= 15% at 50% and <= 8% at 80% (over the forecasts issued);
- the 80% interval contains T on 75-90% of them (pooled over the three cut points);
and per run that never grokked within its budget: a forecast of grokking within the
budget at any checkpoint on <= 5% of them, read two ways: the forecast epoch <= budget, and
(a claim the interval makes) the whole 80% interval <= budget.
And the phases (when features.jsonl has them): flips back of the phase now over every
checkpoint (goal 0), and how far an announced boundary moves from its first epoch (<= 10%).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.forecast_backtest import score, summary
from bench.forecast_cuts import RunFeatures, read_runs
from grok_tui.engine.measures.forecast import Forecast
from grok_tui.engine.measures.forecast_model import load_model

CUTS = (0.5, 0.65, 0.8)


def at_cuts(rf: RunFeatures, make) -> dict[float, Forecast | None]:
    """The forecast made at the last checkpoint at or before each share of the grok epoch."""
    out: dict[float, Forecast | None] = {}
    for share in CUTS:
        i = rf.index_at(share * rf.grok)
        out[share] = None if i is None else make(rf, i)
    return out


def issued(fc: Forecast | None) -> bool:
    return fc is not None and fc.grok_epoch is not None and not fc.observed


def false_grok(rf: RunFeatures, make, bound: str = "grok_epoch") -> int | None:
    """The first checkpoint of a run that never grokked with a forecast within its budget:
    the forecast epoch (`bound` "grok_epoch"), or its whole interval ("high"), <= budget."""
    for i in range(len(rf.epochs)):
        fc = make(rf, i)
        if issued(fc) and getattr(fc, bound) <= rf.budget:
            return int(rf.epochs[i])
    return None


def judge(runs: list[RunFeatures], make) -> dict[str, Any]:
    grokked = [rf for rf in runs if rf.grok is not None]
    never = [rf for rf in runs if rf.grok is None]
    rows, errors, covered = [], {s: [] for s in CUTS}, []
    covered_at: dict[float, list[bool]] = {s: [] for s in CUTS}
    for rf in grokked:
        cuts = at_cuts(rf, make)
        row = {"run": rf.name, "p": rf.config["p"], "op": rf.config["op"], "grok": rf.grok}
        for share, fc in cuts.items():
            if issued(fc):
                err = (fc.grok_epoch - rf.grok) / rf.grok
                cov = fc.low <= rf.grok <= fc.high
                errors[share].append(abs(err))
                covered.append(cov)
                covered_at[share].append(cov)
                row[share] = (fc.grok_epoch, fc.low, fc.high, err, cov)
            else:
                row[share] = None if fc is None else fc.reason
        rows.append(row)
    n = len(grokked)
    falses = {rf.name: false_grok(rf, make) for rf in never}
    confident = {rf.name: false_grok(rf, make, "high") for rf in never}
    return {
        "rows": rows,
        "runs_grokked": n,
        "runs_never": len(never),
        "issued": {s: sum(isinstance(r[s], tuple) for r in rows) for s in CUTS},
        "median_abs_error": {s: float(np.median(e)) if e else None for s, e in errors.items()},
        "coverage": float(np.mean(covered)) if covered else None,
        "covered": sum(covered),
        "forecasts": len(covered),
        # the pooled goal's parts: is the interval honest at half way too, or only late?
        "covered_at": {s: [sum(c), len(c)] for s, c in covered_at.items()},
        "false_grok": {k: v for k, v in falses.items() if v is not None},
        "false_grok_interval": {k: v for k, v in confident.items() if v is not None},
        "never_final_test_acc": {rf.name: float(rf.test_acc[-1]) for rf in never},
    }


def old_definitions(runs: list[RunFeatures], make) -> dict[str, Any]:
    """bench/forecast_backtest.py's summary (issue 9: the first forecast's lead, error and
    coverage; every forecast's error and coverage; false alarms) on these runs."""
    results = []
    for rf in runs:
        cuts = [(int(rf.epochs[i]), make(rf, i)) for i in rf.before_grok() if i >= 3]
        first = score(SimpleNamespace(grok=rf.grok), cuts)
        results.append((SimpleNamespace(grok=rf.grok), first, first))
    return summary(results, 1)


def phase_moves(rf: RunFeatures) -> dict[str, Any] | None:
    """The phases as shown at every checkpoint of a run: how often the phase now moved back
    (or an announced boundary was withdrawn), and per boundary its first announced epoch
    (and where), its last, and how far it ever moved from the first (a share of it)."""
    if rf.phase_index is None or rf.announced is None:
        return None
    flips = sum(b < a for a, b in zip(rf.phase_index, rf.phase_index[1:], strict=False))
    withdrawn = sum(
        bool(set(a) - set(b)) for a, b in zip(rf.announced, rf.announced[1:], strict=False)
    )
    bounds: dict[str, Any] = {}
    for i, shown in enumerate(rf.announced):
        for name, value in shown.items():
            b = bounds.setdefault(name, {"first": value, "at": int(rf.epochs[i]), "move": 0.0})
            b["last"] = value
            b["move"] = max(b["move"], abs(value - b["first"]) / max(b["first"], 1))
    return {"checkpoints": len(rf.phase_index), "flips_back": flips, "withdrawn": withdrawn,
            "boundaries": bounds}  # fmt: skip


def phase_report(runs: list[RunFeatures]) -> dict[str, Any]:
    """Issue 19's phase goal: 0 flips back over every checkpoint, boundaries move <= 10%."""
    res = {rf.name: got for rf in runs if (got := phase_moves(rf)) is not None}
    print("\n### phases as shown at every checkpoint\n")
    print("| run | p | op | checkpoints | flips back | memorisation ends | circuit formed | "
          "cleanup ends | largest move |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    config = {rf.name: rf.config for rf in runs}
    for name, r in res.items():
        cells = []
        for key in ("memorisation_end", "circuit_formation_end", "cleanup_end"):
            b = r["boundaries"].get(key)
            cells.append("-" if b is None else f"{b['first']:,} (at {b['at']:,})"
                         + (f" -> {b['last']:,}" if b["last"] != b["first"] else ""))  # fmt: skip
        move = max((b["move"] for b in r["boundaries"].values()), default=0.0)
        flips = r["flips_back"] + r["withdrawn"]
        print(f"| {name} | {config[name]['p']} | {config[name]['op']} | {r['checkpoints']} | "
              f"{flips} | {' | '.join(cells)} | {pct(move)} |")  # fmt: skip
    flips = sum(r["flips_back"] + r["withdrawn"] for r in res.values())
    moves = [b["move"] for r in res.values() for b in r["boundaries"].values()]
    print(f"\n{len(res)} runs, {sum(r['checkpoints'] for r in res.values())} checkpoints: "
          f"{flips} flips back (goal 0); largest move of an announced boundary "
          f"{pct(max(moves, default=0.0))} (goal <= 10%)")  # fmt: skip
    return res


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def cell(v: Any) -> str:
    if isinstance(v, tuple):
        value, low, high, err, cov = v
        return f"{value:,} ({low:,}-{high:,}) {100 * err:+.0f}% {'in' if cov else 'OUT'}"
    return "none" if v is None else f"none: {v}"


def report(name: str, res: dict[str, Any]) -> None:
    print(f"\n### {name}\n")
    print("| run | p | op | grok | at 50% | at 65% | at 80% |")
    print("|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        cells = " | ".join(cell(r[s]) for s in CUTS)
        print(f"| {r['run']} | {r['p']} | {r['op']} | {r['grok']:,} | {cells} |")
    n = res["runs_grokked"]
    iss, med = res["issued"], res["median_abs_error"]
    print(f"\nissued: 50% {iss[0.5]}/{n}, 65% {iss[0.65]}/{n} (goal >= 90%), "
          f"80% {iss[0.8]}/{n} (goal >= 90%)")  # fmt: skip
    print(f"median |error|: 50% {pct(med[0.5])} (goal <= 15%), 65% {pct(med[0.65])}, "
          f"80% {pct(med[0.8])} (goal <= 8%)")  # fmt: skip
    print(f"80% interval contains the truth: {res['covered']}/{res['forecasts']} = "
          f"{pct(res['coverage'])} (goal 75-90%); by cut: "
          + ", ".join(f"{s:.0%} {k}/{n}" for s, (k, n) in res["covered_at"].items()))  # fmt: skip
    print(f"runs that never grokked: {res['runs_never']} (test accuracy at the end: "
          f"{res['never_final_test_acc']}); with a forecast epoch within the budget at some "
          f"checkpoint: {len(res['false_grok'])} {res['false_grok']} (goal <= 5%); with the "
          f"whole 80% interval within the budget: {len(res['false_grok_interval'])} "
          f"{res['false_grok_interval']}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/work/corpus-forecast"))
    parser.add_argument("--set", dest="which", default="held")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="SWEEP",
        help="judge only these sweeps' runs (e.g. the fresh ones: h10)",
    )
    parser.add_argument(
        "--constants",
        type=Path,
        help="the forecast with these constants, not the shipped ones (an earlier fit's)",
    )
    args = parser.parse_args()
    model = None if args.constants is None else load_model(args.constants)
    runs = read_runs(args.root / args.which / "features.jsonl")
    if args.only:
        runs = [rf for rf in runs if rf.name.split("/", 1)[0] in args.only]
    print(f"{len(runs)} runs of {args.root / args.which}")
    out = {}
    for label, make in (
        ("calibrated forecast (issue 19)", lambda rf, i: rf.cut(i, model)),
        ("the rule before issue 19", lambda rf, i: rf.rule_cut(i)),
    ):
        res = judge(runs, make)
        report(label, res)
        old = old_definitions(runs, make)
        print(f"\nbench/forecast_backtest.py's definitions: {json.dumps(old)}")
        out[label] = {**res, "backtest_definitions": old}
    out["phases"] = phase_report(runs)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
