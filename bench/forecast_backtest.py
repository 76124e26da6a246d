"""Backtest of the grok forecast (engine/measures/forecast.py) on finished runs, cut at every
checkpoint.

    .venv/bin/python bench/forecast_backtest.py                 # the table for RESULTS.md
    .venv/bin/python bench/forecast_backtest.py --tune          # grid search, tuning runs only
    .venv/bin/python bench/forecast_backtest.py --rule          # the forecast before issue 19

(Issue 19's calibrated forecast is judged by bench/forecast_judge.py, which also reports
these definitions; this script's runs are the ones issue 9 planned.)

The runs live under --runs (default /work/runs/backtest), listed in its plan.tsv with a role
decided before any of them was trained: `tune` runs are the only ones the forecast's
thresholds were chosen on (`--tune` refuses to look at the others); `held` runs were never
used for tuning and are what the forecast is judged on.

For each run and each checkpoint t before it groks, the forecast sees only what a live run
would have seen at t: the checkpoints up to t, the key set adopted by t (and that set's
excluded losses, for the memorisation end), nothing later. The truth is the first epoch of
metrics.jsonl with test accuracy >= 99%. Per run we report the first forecast issued: when
(epochs before the grok, as a share of the grok epoch), its error, and whether its interval
covers the truth; and the same for a baseline that extrapolates the test loss alone.
Goals (issue 9): lead >= 30% of the grok epoch, median |error| <= 20%, coverage >= 80%.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.measures.forecast import (
    DEFAULT,
    BaselineParams,
    Forecast,
    ForecastParams,
    baseline_forecast,
    forecast_grok,
    rule_forecast,
)
from grok_tui.engine.measures.phases import find_phases
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

GROK_ACC = 0.99
FREE_CURVES = ("train_loss", "test_loss", "sum_sq_weights", "gini_W_E_freq", "xy_share_logits",
               "test_acc")  # fmt: skip


@dataclass
class RunCurves:
    """Everything the backtest needs from one run, computed once."""

    name: str
    role: str
    config: dict[str, Any]
    grok: int | None  # first epoch with test acc >= 99% (metrics.jsonl)
    epochs: np.ndarray
    curves: dict[str, np.ndarray]
    key_at: list[tuple[int, ...]]  # the key set in use once each checkpoint was seen
    excluded: dict[tuple[int, tuple[int, ...]], float]

    def excluded_curve(self, i: int) -> np.ndarray:
        """The excluded loss of the set in use at cut i, over checkpoints 0..i."""
        keys = self.key_at[i]
        return np.array(
            [self.excluded.get((int(e), keys), math.nan) if keys else math.nan
             for e in self.epochs[: i + 1]]
        )  # fmt: skip


def load_run(path: Path, role: str, device: str) -> RunCurves:
    run = Run.open(path)
    cfg = run.meta().config
    tracker = ProgressTracker(run, device)
    tracker.update()
    history = tracker.key_history()
    for _, keys in history.changes:  # every set a live run would have used, on every checkpoint
        tracker.fill_excluded(keys=keys)
    table = tracker.table()
    grok = next((int(r["epoch"]) for r in run.read_metrics() if r["test_acc"] >= GROK_ACC), None)
    return RunCurves(
        name=path.name,
        role=role,
        config={k: getattr(cfg, k) for k in ("p", "frac_train", "weight_decay", "lr", "seed",
                                             "data_seed", "epochs", "checkpoint_every")},
        grok=grok,
        epochs=table.epochs.copy(),
        curves={name: table[name].copy() for name in FREE_CURVES},
        key_at=[history.at(int(e)) for e in table.epochs],
        excluded={k: v[0] for k, v in tracker.excluded.items()},
    )  # fmt: skip


def memorisation_ends(rc: RunCurves) -> list[tuple[int, int, int | None]]:
    """(index, cut epoch, memorisation end seen then) at every checkpoint before the grok."""
    out = []
    for i, epoch in enumerate(rc.epochs):
        if rc.grok is not None and epoch >= rc.grok:
            break
        if i < 3:
            continue
        c = {name: v[: i + 1] for name, v in rc.curves.items()}
        phases = find_phases(
            rc.epochs[: i + 1],
            {"train_loss": c["train_loss"], "test_loss": c["test_loss"],
             "sum_sq_weights": c["sum_sq_weights"], "gini_W_E_freq": c["gini_W_E_freq"],
             "excluded_loss": rc.excluded_curve(i)},
        )  # fmt: skip
        out.append((i, int(epoch), phases["memorisation_end"]))
    return out


def cut_forecasts(
    rc: RunCurves,
    params: ForecastParams | None,
    baseline: BaselineParams,
    cuts: list[tuple[int, int, int | None]] | None = None,
) -> list[tuple[int, Forecast, Forecast]]:
    """(cut epoch, forecast, baseline) at every checkpoint before the run groks. The
    calibrated forecast (issue 19) with params None, else the rule before it with these."""
    out = []
    for i, epoch, memorised in cuts if cuts is not None else memorisation_ends(rc):
        c = {name: v[: i + 1] for name, v in rc.curves.items()}
        x = rc.epochs[: i + 1]
        if params is None:
            fc = forecast_grok(x, c["xy_share_logits"], c["test_acc"], memorised)
        else:
            fc = rule_forecast(x, c["xy_share_logits"], c["test_acc"], memorised, params)
        base = baseline_forecast(x, c["test_loss"], c["test_acc"], memorised, baseline)
        out.append((epoch, fc, base))
    return out


@dataclass
class FirstForecast:
    issued: int | None = None  # cut epoch of the first forecast
    value: int | None = None
    low: int | None = None
    high: int | None = None
    lead: float | None = None  # (grok - issued) / grok
    error: float | None = None  # (value - grok) / grok
    covered: bool | None = None
    all_errors: list[float] = field(default_factory=list)  # every forecast issued, |error|
    all_covered: list[bool] = field(default_factory=list)


def score(rc: RunCurves, forecasts: list[tuple[int, Forecast]]) -> FirstForecast:
    first = FirstForecast()
    for epoch, fc in forecasts:
        if fc.grok_epoch is None or fc.observed:
            continue
        if rc.grok is None:  # a forecast for a run that never groks here: a false alarm
            if first.issued is None:
                first.issued, first.value, first.low, first.high = (
                    epoch,
                    fc.grok_epoch,
                    fc.low,
                    fc.high,
                )
            continue
        err = (fc.grok_epoch - rc.grok) / rc.grok
        cov = fc.low <= rc.grok <= fc.high
        first.all_errors.append(abs(err))
        first.all_covered.append(cov)
        if first.issued is None:
            first.issued, first.value, first.low, first.high = epoch, fc.grok_epoch, fc.low, fc.high
            first.lead = (rc.grok - epoch) / rc.grok
            first.error, first.covered = err, cov
    return first


def evaluate(
    runs: list[RunCurves],
    params: ForecastParams | None,
    baseline: BaselineParams,
    memorised: dict[str, list[tuple[int, int, int | None]]] | None = None,
):
    results = []
    for rc in runs:
        known = memorised[rc.name] if memorised is not None else None
        cuts = cut_forecasts(rc, params, baseline, known)
        results.append((rc, score(rc, [(e, f) for e, f, _ in cuts]),
                        score(rc, [(e, b) for e, _, b in cuts])))  # fmt: skip
    return results


def summary(results: list[tuple[RunCurves, FirstForecast, FirstForecast]], which: int) -> dict:
    grokked = [(rc, r[which - 1]) for rc, *r in results if rc.grok is not None]
    firsts = [f for _, f in grokked if f.issued is not None]
    leads = [f.lead for f in firsts]
    errors = [abs(f.error) for f in firsts]
    every_err = [e for _, f in grokked for e in f.all_errors]
    every_cov = [c for _, f in grokked for c in f.all_covered]
    return {
        "runs": len(results),
        "grokked": len(grokked),
        "issued": len(firsts),
        "lead_ge_30pct": sum(1 for v in leads if v >= 0.3),
        "median_lead": float(np.median(leads)) if leads else None,
        "median_abs_error": float(np.median(errors)) if errors else None,
        "covered": sum(1 for f in firsts if f.covered),
        "all_forecasts": len(every_err),
        "all_median_abs_error": float(np.median(every_err)) if every_err else None,
        "all_coverage": float(np.mean(every_cov)) if every_cov else None,
        "false_alarms": sum(1 for rc, *r in results if rc.grok is None and r[which - 1].issued),
    }


def meets_goals(f: FirstForecast) -> bool:
    return bool(f.issued is not None and f.lead >= 0.3 and abs(f.error) <= 0.2 and f.covered)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.0f}%"


def table_lines(results) -> list[str]:
    lines = [
        "| run | p | frac | wd | grok | first forecast at | lead | forecast (interval) | error "
        "| covered | baseline: at, lead, error, covered |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rc, f, b in results:
        cfg = rc.config
        grok = f"{rc.grok:,}" if rc.grok is not None else "never"
        if f.issued is None:
            mine = "none | - | - | - | -"
        else:
            mine = (f"{f.issued:,} | {pct(f.lead)} | {f.value:,} ({f.low:,}-{f.high:,}) | "
                    f"{pct(f.error)} | {'yes' if f.covered else 'no'}")  # fmt: skip
        base = "none"
        if b.issued is not None:
            base = f"{b.issued:,}, {pct(b.lead)}, {pct(b.error)}, {'yes' if b.covered else 'no'}"
        lines.append(f"| {rc.name} | {cfg['p']} | {cfg['frac_train']} | {cfg['weight_decay']} "
                     f"| {grok} | {mine} | {base} |")  # fmt: skip
    return lines


def read_plan(root: Path) -> list[tuple[str, str]]:
    with open(root / "plan.tsv") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and not r[0].startswith("#")]
    return [(r[0], r[1]) for r in rows if (root / r[0] / "run.json").is_file()]


def tune(runs: list[RunCurves]) -> None:
    """Grid search on the tuning runs: most runs meeting every goal, then median error."""
    assert all(rc.role == "tune" for rc in runs), "tuning sees tuning runs only"
    grid = {
        "target_share": [0.8, 0.85, 0.9],
        "window": [0.3, 0.5],
        "min_growth": [1.0, 2.0],
        "stable_window": [0.05, 0.1, 0.2],
        "stable_tol": [0.03, 0.05, 0.1],
        "margin": [0.1],
    }
    memorised = {rc.name: memorisation_ends(rc) for rc in runs}
    scored = []
    for values in itertools.product(*grid.values()):
        params = replace(DEFAULT, **dict(zip(grid, values, strict=True)))
        results = evaluate(runs, params, BaselineParams(), memorised)
        firsts = [f for _, f, _ in results]
        good = sum(meets_goals(f) for f in firsts)
        errs = [abs(f.error) for f in firsts if f.error is not None]
        scored.append((good, -float(np.median(errs)) if errs else -9.0, params))
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    for good, neg_err, params in scored[:10]:
        print(f"{good}/{len(runs)} meet all goals, median |error| {-neg_err:.3f}: {params}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/backtest"))
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--rule", action="store_true", help="the forecast before issue 19")
    parser.add_argument("--json", type=Path, help="write per-run results here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*", help="run names (default: the whole plan)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plan = read_plan(args.runs)
    if args.only:
        plan = [(n, r) for n, r in plan if n in args.only]
    if args.tune:
        plan = [(n, r) for n, r in plan if r == "tune"]
    started = time.perf_counter()
    runs = []
    for name, role in plan:
        t0 = time.perf_counter()
        runs.append(load_run(args.runs / name, role, args.device))
        print(f"loaded {name} ({role}) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.tune:
        tune(runs)
        return 0
    print(f"forecast: {'the rule before issue 19, ' + str(DEFAULT) if args.rule else 'calibrated'}")
    for role in ("held", "tune"):
        group = [rc for rc in runs if rc.role == role]
        if not group:
            continue
        results = evaluate(group, DEFAULT if args.rule else None, BaselineParams())
        print(f"\n### {'held-out runs (never tuned on)' if role == 'held' else 'tuning runs'}\n")
        print("\n".join(table_lines(results)))
        for which, label in ((1, "forecast"), (2, "baseline (test loss)")):
            print(f"\n{label}: {json.dumps(summary(results, which))}")
        if args.json:
            out = args.json.with_name(f"{args.json.stem}-{role}{args.json.suffix}")
            out.write_text(json.dumps(
                [{"run": rc.name, "role": rc.role, "config": rc.config, "grok": rc.grok,
                  "forecast": asdict(f), "baseline": asdict(b)} for rc, f, b in results],
                indent=1))  # fmt: skip
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
