"""Resident memory of measuring every member of a sweep in one process (Linux: VmRSS, VmHWM).

A headless sweep records no progress measures (its members are measured when opened,
analysed or compared). This measures them afterwards, two ways, from a sweep directory:

- `compare` (default): as `grok-tui compare` does (`compare.measure_runs`): one member's
  tracker at a time, every member's table kept;
- `--live`: as a sweep that measured its members while they train would: one tracker per
  member alive at once, each recording its next checkpoint in turn, a table every 8.

Delete the members' measures first (`rm -r SWEEP/members/*/measures*`) to measure the
recording rather than the reading of the cache. Prints one JSON line.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_sweep_measures.py SWEEP [--live]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from grok_tui.engine.measures.compare import measure_runs
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.measures.record import held_bytes
from grok_tui.engine.store.runs import Run


def status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(field))
    return round(kb / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--live", action="store_true", help="one tracker per member at once")
    args = parser.parse_args()
    runs = [Run.open(p) for p in sorted((args.sweep / "members").iterdir()) if p.is_dir()]
    before = status_mb("VmRSS")
    started = time.perf_counter()
    out: dict[str, Any] = {"members": len(runs), "rss_before_mb": before}
    tables: list[Any] = [None] * len(runs)
    if args.live:
        trackers = [ProgressTracker(run, "cpu") for run in runs]
        rounds = 0
        while any([t.update(limit=1) for t in trackers]):  # every member, each round
            rounds += 1
            if rounds % 8 == 0:
                for t in trackers:
                    t.table()
        tables = [t.table() for t in trackers]
        out["records"] = sum(len(t.records) for t in trackers)
        out["records_mb"] = round(sum(held_bytes(r) for t in trackers
                                      for r in t.records.values()) / 2**20, 2)  # fmt: skip
    else:

        def keep(i: int, table: Any, error: str) -> None:
            if error:
                raise SystemExit(error)
            tables[i] = table

        measure_runs(runs, "cpu", lambda: False, lambda i: None, keep)
    out["checkpoints"] = sum(len(t) for t in tables)
    out["rss_after_mb"] = status_mb("VmRSS")
    out["peak_mb"] = status_mb("VmHWM")
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
