"""The resident peak of each step of measuring a paper checkpoint (Linux: VmHWM, reset per step).

A live run measures each checkpoint in a background thread beside training: a record, the
excluded losses of the key set, a table, the outlook (engine/measures/services.py), and the
LLC estimate (llc_service.py); a viewer also makes a Snapshot. Each step's transient is what
it adds on top of training's own memory while it runs, so the process's maximum resident
size is training's plus the largest of them. This writes N synthetic paper checkpoints (as
bench/memory_per_checkpoint.py does), measures them one at a time, and per step prints the
resident size before it, its peak above that (VmHWM after `/proc/self/clear_refs` = 5 reset
the high-water mark before it) and what it kept, in MB, one JSON line per step.

`--lines` also prints, for one record after a warm-up, the peak above the record's start
resident size at each line of the record's code (the high-water mark reset at every line
event of the functions traced): which intermediate tensors make the peak.

    OMP_NUM_THREADS=1 .venv/bin/python bench/memory_measure_steps.py --checkpoints 6 [--lines]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.asof import OutlookHistory
from grok_tui.engine.measures.llc_checkpoint import checkpoint_llc
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def probe(name: str, epoch: int, step: Callable[[], Any]) -> Any:
    """Run `step`; print its resident peak above the start and what it kept (MB)."""
    rss0 = status_kb("VmRSS")
    reset_peak()
    out = step()
    peak, rss1 = status_kb("VmHWM"), status_kb("VmRSS")
    print(json.dumps({"step": name, "epoch": epoch, "rss_mb": round(rss0 / 1024, 1),
                      "peak_above_mb": round((peak - rss0) / 1024, 1),
                      "kept_mb": round((rss1 - rss0) / 1024, 1)}), flush=True)  # fmt: skip
    return out


class LineProbe:
    """Where the resident size grows during a call: per line of the traced files' code, the
    peak during the line above the resident size when the line began (the lines that had
    to take new pages from the OS), and the peak above the call's start."""

    def __init__(self, files: tuple[str, ...]) -> None:
        self.files = files
        self.start = 0
        self.line_start = 0
        self.growth: dict[tuple[str, int], tuple[int, int]] = {}  # (grew, level) in kB
        self.last: tuple[str, int] | None = None

    def _note(self) -> None:
        if self.last is not None:
            peak = status_kb("VmHWM")
            grew, level = self.growth.get(self.last, (0, 0))
            self.growth[self.last] = (
                max(grew, peak - self.line_start),
                max(level, peak - self.start),
            )
        self.line_start = status_kb("VmRSS")
        reset_peak()

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        name = frame.f_code.co_filename
        if not name.endswith(self.files):
            return None
        if event in ("line", "return"):
            self._note()
            self.last = (name, frame.f_lineno) if event == "line" else None
        return self._trace

    def run(self, step: Callable[[], Any]) -> Any:
        self.start = status_kb("VmRSS")
        reset_peak()
        sys.settrace(self._trace)
        try:
            return step()
        finally:
            sys.settrace(None)
            self._note()

    def report(self, top: int) -> None:
        best = sorted(self.growth.items(), key=lambda kv: -kv[1][0])[:top]
        for (file, line), (grew, level) in best:
            text = Path(file).read_text().splitlines()[line - 1].strip()
            print(json.dumps({"line": f"{Path(file).name}:{line}",
                              "grew_mb": round(grew / 1024, 1),
                              "level_mb": round(level / 1024, 1), "code": text[:80]}),
                  flush=True)  # fmt: skip


def probe_lines(
    kind: str, tracker: ProgressTracker, w: dict[str, torch.Tensor], epoch: int, top: int
) -> None:
    """Per-line growth of one step (`LineProbe`) at `epoch` (after the first)."""
    lines = LineProbe(("record.py", "analysis.py", "fastpath.py", "numerics.py", "loss.py",
                       "fourier.py", "model.py", "llc.py", "llc_checkpoint.py"))  # fmt: skip
    rec = tracker.recorder
    coeffs = tracker.records[max(tracker.records)].arrays["logit_coeffs"]
    keys = tracker.key_history().current or (1, 2, 3, 4, 5)
    step = {
        "record": lambda: rec.record(w, epoch),
        "excluded": lambda: rec.excluded_losses(w, keys, coeffs),
        "llc": lambda: checkpoint_llc(tracker.cfg, w),
    }[kind]
    lines.run(step)
    release_free_memory()
    lines.report(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--lines", choices=("record", "excluded", "llc"),
                        help="per-line growth of one step, at the last checkpoint")  # fmt: skip
    parser.add_argument("--no-llc", action="store_true", help="leave out the LLC estimate")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--from-run", type=Path, metavar="RUN",
                        help="a trained run's checkpoints, not synthetic")  # fmt: skip
    parser.add_argument("--no-snapshot", action="store_true", help="leave out the Snapshot")
    args = parser.parse_args()
    source = Run.open(args.from_run) if args.from_run else None
    if source is not None:
        cfg = source.meta().config
        epochs = source.checkpoint_epochs()[: args.checkpoints]
    else:
        cfg = RunConfig(epochs=args.checkpoints, checkpoint_every=1)
        epochs = list(range(args.checkpoints))
    n = len(epochs)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(Path(tmp) / "run", cfg, "cpu")
        weights = paper_init(cfg)
        gen = torch.Generator().manual_seed(0)
        tracker = ProgressTracker(run, "cpu")
        outlooks = OutlookHistory(tracker)
        for i, epoch in enumerate(epochs):
            if source is not None:
                written = source.load_checkpoint(epoch, cfg)
            else:
                written = {k: v + 1e-3 * torch.randn(v.shape, generator=gen)
                           for k, v in weights.items()}  # fmt: skip
            run.save_checkpoint(epoch, written)
            del written
            w = probe("load", epoch, lambda e=epoch: run.load_checkpoint(e, cfg))
            if args.lines and i == n - 1:
                probe_lines(args.lines, tracker, w, epoch, args.top)
            probe("update (record, save)", epoch, lambda: tracker.update(limit=1))
            probe("fill_excluded", epoch, lambda: tracker.fill_excluded(limit=8))
            probe("table", epoch, tracker.table)
            probe("outlook", epoch, outlooks.at)
            if not args.no_snapshot:
                probe("snapshot", epoch, lambda w=w, e=epoch: tracker.analyzer.snapshot(w, e))
                release_free_memory()
            if not args.no_llc:
                probe("llc", epoch, lambda w=w: checkpoint_llc(cfg, w))
            del w
            release_free_memory()


if __name__ == "__main__":
    main()
