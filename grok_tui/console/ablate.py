"""`grok-tui ablate` on the console: the intact and ablated scores as a rich table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# The scores of `AblationResult.as_dict()`'s "base" and "ablated", in table order.
SCORES = ("train_loss", "test_loss", "train_acc", "test_acc")


def print_ablation(results: Sequence[dict[str, Any]]) -> None:
    """Results as `AblationResult.as_dict()` gives them. One checkpoint: a row per score
    (intact, ablated, change); a replay: a row per epoch."""
    Console().print(render_ablation(results))


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def render_ablation(results: Sequence[dict[str, Any]]) -> Table:
    what = describe(results[0]["ablations"]) if results else "nothing"
    if len(results) == 1:
        r = results[0]
        table = Table(title=f"epoch {r['epoch']:,}  ablated: {what}")
        for name, justify in (("score", "left"), ("intact", "right"), ("ablated", "right"),
                              ("change", "right")):  # fmt: skip
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for name in SCORES:
            base, ablated = r["base"][name], r["ablated"][name]
            table.add_row(name, _num(base), _num(ablated), f"{ablated - base:+.4g}")
        return table
    table = Table(title=f"replay  ablated: {what}  (intact → ablated)")
    table.add_column("epoch", justify="right")
    for name in SCORES:
        table.add_column(name, justify="right")
    for r in results:
        cells = [f"{r['epoch']:,}"]
        for name in SCORES:
            short = _pct if name.endswith("_acc") else _short
            cells.append(f"{short(r['base'][name])} → {short(r['ablated'][name])}")
        table.add_row(*cells)
    return table


def _short(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "-"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "-"


def describe(ablations: dict[str, Any]) -> str:
    """'heads 0,2; remove freqs 14; mode mean' from the JSON's "ablations"."""
    parts = []
    for key, name in (("heads", "heads"), ("neurons", "neurons"), ("clusters", "clusters"),
                      ("freqs", "remove freqs")):  # fmt: skip
        if ablations.get(key):
            parts.append(f"{name} {','.join(map(str, ablations[key]))}")
    keep = ablations.get("keep_freqs")
    if keep is not None:
        parts.append(f"keep freqs {','.join(map(str, keep)) or '(none)'}")
    if not parts:
        return "nothing"
    if ablations.get("heads") or ablations.get("neurons") or ablations.get("clusters"):
        parts.append(f"mode {ablations.get('mode', 'zero')}")
    return "; ".join(parts)
