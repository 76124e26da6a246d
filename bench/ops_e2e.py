"""Every op end to end on the quick family: train headless, then read what the progress
measures, phases and forecast say, as a table for RESULTS.md.

    OMP_NUM_THREADS=1 .venv/bin/python bench/ops_e2e.py --out /tmp/ops_e2e [--ops add,divide]

Each op trains the quick preset (p = 53 unless --p, 40% train, wd 2.0, lr 3e-3, 3,000 epochs
unless --epochs, a checkpoint every 50) with `grok-tui train --headless` (which records the
measures as it checkpoints), then `analyze --json` reads the run as of its last checkpoint.
From the stored outlook steps (measures.jsonl, one per checkpoint as of itself) the table
lists, per boundary, the epoch announced and the checkpoint at which it was first announced.
Nothing is tuned here: the numbers are what the code says on runs it never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.core.config import OPS
from grok_tui.engine.measures.asof import OutlookHistory
from grok_tui.engine.measures.phases import PHASES
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

GROK_TUI = [sys.executable, "-m", "grok_tui"]


def train(run_dir: Path, op: str, p: int | None, epochs: int) -> None:
    if (run_dir / "run.json").exists() and Run.open(run_dir).meta().status == "done":
        return
    cmd = [*GROK_TUI, "train", "--headless", "--preset", "quick", "--op", op,
           "--run-dir", str(run_dir)]  # fmt: skip
    if p is not None:
        cmd += ["--p", str(p)]
    cmd += ["--epochs", str(epochs)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def first_announced(run: Run) -> dict[str, tuple[int, int] | None]:
    """Per boundary: (its epoch when first announced, the checkpoint it was announced at);
    under "forecast": (the first grok forecast made before the grok, the checkpoint)."""
    tracker = ProgressTracker(run)
    tracker.update()  # reads the records (all there: analyze made the missing ones)
    history = OutlookHistory(tracker)
    history.at()
    out: dict[str, tuple[int, int] | None] = dict.fromkeys([*PHASES, "forecast"])
    for epoch, step in sorted(history.steps.items()):
        for name, value in step.state.announced.items():
            if out[name] is None:
                out[name] = (value, epoch)
        if out["forecast"] is None and step.forecast is not None and not step.observed:
            out["forecast"] = (step.forecast["grok_epoch"], epoch)
    return out


def summarise(run: Run) -> dict[str, Any]:
    report = json.loads(
        subprocess.run(
            [*GROK_TUI, "analyze", str(run.path), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    metrics = run.read_metrics()
    memorised = next((r["epoch"] for r in metrics if r["train_acc"] >= 0.99), None)
    grokked = next((r["epoch"] for r in metrics if r["test_acc"] >= 0.99), None)
    return {
        "op": report["op"],
        "basis": report["basis"],
        "train_acc_99": memorised,
        "test_acc_99": grokked,
        "final_test_acc": metrics[-1]["test_acc"],
        "key_freqs": report["measure_key_freqs"],
        "restricted_loss": report["restricted_loss"],
        "excluded_loss": report["excluded_loss"],
        "phase": report["phase"],
        "phases": report["phases"],
        "first_announced": first_announced(run),
        "forecast": report.get("forecast"),
        "forecast_reason": report.get("forecast_reason", ""),
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):
        return ",".join(map(str, v)) or "none"
    return str(v)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| op | basis | train acc 99% | test acc 99% | key freqs (end) | restricted / "
            "excluded loss (end) | memorisation end (announced at) | circuit formed | "
            "cleanup end | first forecast (made at) | phase at end |")  # fmt: skip
    lines = [head, "|" + "---|" * 11]
    for r in rows:

        def boundary(name: str, r: dict[str, Any] = r) -> str:
            got = r["first_announced"][name]
            return "-" if got is None else f"{got[0]:,} ({got[1]:,})"

        losses = f"{fmt(r['restricted_loss'])} / {fmt(r['excluded_loss'])}"
        lines.append(
            f"| {r['op']} | {r['basis']} | {fmt(r['train_acc_99'])} | {fmt(r['test_acc_99'])} | "
            f"{fmt(r['key_freqs'])} | {losses} | {boundary('memorisation_end')} | "
            f"{boundary('circuit_formation_end')} | {boundary('cleanup_end')} | "
            f"{boundary('forecast')} | {r['phase']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ops_e2e"))
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--p", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = []
    for op in args.ops.split(","):
        run_dir = args.out / op.replace("+", "p")
        train(run_dir, op, args.p, args.epochs)
        row = summarise(Run.open(run_dir))
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "table.md").write_text(table(rows) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
