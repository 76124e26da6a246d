"""`grok-tui analyze`: the report (engine/measures/report.py) as a two-column table."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table


def print_report(report: dict[str, Any]) -> None:
    """The table of a report from `analysis_report`, on stdout."""
    Console().print(render_report(report))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.4g}"
    return str(value)


def render_report(report: dict[str, Any]) -> Table:
    """A two-column rich Table of a report from `analysis_report`."""
    table = Table(title=f"{report['run']}  epoch {report['epoch']}", show_header=True)
    table.add_column("measure", style="bold")
    table.add_column("value", justify="right")

    def add(label: str, value: Any) -> None:
        table.add_row(label, value if isinstance(value, str) else _fmt(value))

    add("p", report["p"])
    add("op", f"{report['op']}: {report['op_formula']}")
    if report["basis"] == "log":
        add("basis", "log (discrete log of a generator, Z_(p-1) frequencies)")
    add("checkpoints", report["checkpoints"])
    add("train loss", report["train_loss"])
    add("test loss", report["test_loss"])
    add("train / test acc", f"{_fmt(report['train_acc'])} / {_fmt(report['test_acc'])}")
    add("key frequencies", ", ".join(map(str, report["key_freqs"])) or "none")
    sizes = report["cluster_sizes"]
    add(
        "neurons per cluster",
        ", ".join(f"{k if k != '-1' else 'none'}: {n}" for k, n in sizes.items()),
    )
    add("circuit reads", report["circuit"])
    freqs = report["measure_key_freqs"]
    provisional = " (provisional: strongest in W_E / W_L)"
    add(
        "measured with freqs",
        freqs
        if isinstance(freqs, str)
        else (", ".join(map(str, freqs)) or "none")
        + (provisional if report.get("measure_key_provisional") is True else ""),
    )
    add("restricted loss", report["restricted_loss"])
    add("excluded loss", report["excluded_loss"])
    per_freq = report["excluded_loss_per_freq"]
    for k, v in per_freq.items() if isinstance(per_freq, dict) else ():
        add(f"  excluding freq {k}", v)
    add("test / restricted", report["test_restricted_ratio"])
    gini = (report["gini_W_E"], report["gini_W_L"])
    add("Gini W_E / W_L", gini[0] if isinstance(gini[0], str) else " / ".join(map(_fmt, gini)))
    gini = (report["gini_W_E_freq"], report["gini_W_L_freq"])
    add(
        "Gini per frequency W_E / W_L",
        gini[0] if isinstance(gini[0], str) else " / ".join(map(_fmt, gini)),
    )
    add("sum of squared weights", report["sum_sq_weights"])
    if "softmax_collapse" in report:  # the numerical view (Prieto et al. 2025)
        shares = [_fmt(report[k]) for k in ("softmax_collapse", "zero_loss")]
        add("float32 softmax collapsed / zero loss", " / ".join(shares))
        gaps = [_fmt(report[k]) for k in ("logit_gap_p10", "logit_gap_p50", "logit_gap_p90")]
        add("logit gap p10 / p50 / p90", " / ".join(gaps))
    if report.get("llc") is not None:  # the local learning coefficient, where estimated
        add(
            "learning coefficient (SGLD) +- sd",
            f"{_fmt(report['llc'])} +- {_fmt(report.get('llc_std'))}",
        )
    trig = [report[k] for k in ("trig_frac_pre", "trig_frac_post", "trig_frac_logits")]
    add(
        "trig frac pre / post / logits",
        trig[0] if isinstance(trig[0], str) else " / ".join(map(_fmt, trig)),
    )
    phases = report["phases"]
    if isinstance(phases, str):
        add("phases", phases)
    else:
        for name, value in phases.items():
            add(name.replace("_", " "), "not reached" if value is None else str(value))
    add("phase now", report["phase"])
    fc = report["forecast"]
    if isinstance(fc, str):
        add("grok forecast", fc)
    elif isinstance(report.get("grokked_at"), int):
        add("grok forecast", f"grokked at {report['grokked_at']:,}")
    elif fc is None:
        add("grok forecast", f"none: {report.get('forecast_reason', '')}")
    else:
        level = f"{fc['level']:.0%}: " if isinstance(fc.get("level"), float) else ""
        mark = ", provisional" if fc.get("provisional") else ""
        add("grok forecast", f"{fc['grok_epoch']:,} ({level}{fc['low']:,}-{fc['high']:,}{mark})")
    keys = report["key_history"]
    history = (
        keys
        if isinstance(keys, str)
        else ", ".join(
            "/".join(map(str, h["key_freqs"]))
            + (" (provisional)" if h.get("provisional") else "")
            + f" since {h['since']:,}"
            for h in keys
        )
    )
    add("key set history", history or "none")
    if report["key_warning"]:
        add("key set check", report["key_warning"])
    return table
