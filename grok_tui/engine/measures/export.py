"""A run's curves as one CSV, for a spreadsheet, pandas or a paper's plotting script.

Columns, in order:

    epoch, train_loss, test_loss, train_acc, test_acc, lr, wall_s
        one row per epoch of metrics.jsonl (empty cell = not measured: a NaN, a null,
        a test loss the imported file did not record)
    then one column per progress measure, filled on the checkpoint epochs that have been
    measured (the cache in the run directory: `grok-tui analyze RUN` fills it)
        nested dicts flatten to `name.key` (`excluded_loss_per_freq.14`), lists to
        `name.0`, `name.1`, ...; booleans are written true/false

The measures are the rows of the run's progress table (engine/measures/progress.py) with the key
set the run uses at its newest checkpoint; an epoch measured, or checkpointed, but absent
from the metrics still gets a row (after a stop, the newest checkpoint's metrics row is
written when training resumes); a measure named like a metric column is left out (the
metrics win).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from grok_tui.engine.store.atomic import atomic_write_bytes
from grok_tui.engine.store.rows import METRIC_KEYS
from grok_tui.engine.store.runs import Run


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists to dotted keys: {"a": {"b": [1, 2]}} -> {"a.b.0": 1, "a.b.1": 2}."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out.update(flatten({str(i): v for i, v in enumerate(value)}, f"{name}."))
        else:
            out[name] = value
    return out


def cell(value: Any) -> str:
    """A CSV cell: floats in full precision (repr round-trips), missing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def csv_rows(run: Run) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows by epoch) as `export_csv` writes them."""
    rows: dict[int, dict[str, Any]] = {}
    for metric in run.read_metrics(whole=True):  # rows missing are named, not skipped past
        rows[int(metric["epoch"])] = dict(metric)
    for epoch in run.checkpoint_epochs():  # a stopped run's newest has no metrics row yet
        rows.setdefault(epoch, {"epoch": epoch})
    measure_columns: dict[str, None] = {}  # ordered set
    for raw in measure_rows(run):
        epoch = raw["epoch"]
        flat = flatten({k: v for k, v in raw.items() if k != "epoch"})
        for key in flat:
            if key not in METRIC_KEYS:
                measure_columns.setdefault(key)
        target = rows.setdefault(epoch, {"epoch": epoch})
        target.update({k: v for k, v in flat.items() if k not in METRIC_KEYS})
    columns = [*METRIC_KEYS, *measure_columns]
    return columns, [rows[e] for e in sorted(rows)]


def measure_rows(run: Run) -> list[dict[str, Any]]:
    """The cached progress measures of every measured checkpoint (nothing is computed)."""
    from grok_tui.engine.measures.progress import ProgressTracker

    table = ProgressTracker(run).table()
    return [row for e in table.epochs if (row := table.row(int(e))) is not None]


def export_csv(run: Run, out_path: Path | str) -> Path:
    """Write the run's metrics and cached progress measures as CSV (columns: module doc).

    Written whole to a temp file and renamed, so a reader never sees half a file.
    """
    out = run.export_target(out_path)
    columns, rows = csv_rows(run)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    atomic_write_bytes(out, buf.getvalue().encode())
    return out
