"""The rows of the run's two JSON-lines files: metrics.jsonl and the measures.jsonl cache.

JSON has no NaN or inf: metrics are written as null and read back as NaN. A row read from
disk is checked field by field (`RowProblem` names what is wrong; the reader skips it).
"""

from __future__ import annotations

import json
import math
from typing import Any

from grok_tui.engine.core.config import MAX_EPOCHS, OPS
from grok_tui.engine.store.untrusted import (
    RowProblem,
    check_epoch,
    check_numeric_tree,
    finite_or_none,
    is_number,
)

METRIC_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc", "lr", "wall_s")
# Row kinds of measures.jsonl: records and excluded losses (engine/measures/progress.py), and
# the outlook as of each checkpoint (engine/measures/asof.py).
MEASURES_ROW_KINDS = ("record", "excluded", "outlook", "llc")


def format_metric_row(row: dict[str, float]) -> str:
    """One metrics line. JSON has no NaN or inf: they are written as null, read as NaN."""
    clean: dict[str, float | int | None] = {}
    for key in METRIC_KEYS:
        if key in row:
            value = row[key]
            if key == "epoch":
                clean[key] = int(value)
            else:
                clean[key] = float(value) if math.isfinite(value) else None
    return json.dumps(clean, separators=(",", ":")) + "\n"


def clean_metric_row(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row with float values (null -> NaN); RowProblem if it is not one."""
    out: dict[str, float] = {"epoch": check_epoch(row, MAX_EPOCHS)}
    for key in METRIC_KEYS[1:]:
        value = row.get(key)
        if value is not None and not is_number(value):
            raise RowProblem(f"has {key} {str(value)[:30]!r}, not a number")
        out[key] = finite_or_none(value)
    return out


def check_measures_row(row: dict[str, Any]) -> dict[str, Any]:
    """A cached progress-measures row: an epoch, and numbers in dicts and rectangular lists
    (and the op a record was made for, when it is not an additive one)."""
    check_epoch(row, MAX_EPOCHS)
    if row.get("kind", "record") not in MEASURES_ROW_KINDS:
        raise RowProblem(f"has kind {str(row.get('kind'))[:30]!r}, not one of ours")
    if "op" in row and row["op"] not in OPS:
        raise RowProblem(f"has op {str(row['op'])[:30]!r}, not one of ours")
    for key, value in row.items():
        if key not in ("kind", "op"):
            check_numeric_tree(value, key)
    freqs = row.get("key_freqs")
    if freqs is not None and not (
        isinstance(freqs, list) and all(isinstance(k, int) and k >= 0 for k in freqs)
    ):
        raise RowProblem("has key_freqs that are not whole numbers")
    return row
