"""Plain progress lines for a log file: what headless training writes when its output is
not a terminal (`nohup grok-tui train --headless ... > log 2>&1`).

A live bar or table redraws one screen in place; sent to a file it writes nothing until
the end and then one line cut to 80 columns. Here instead: a whole line at a steady
interval (the first at once), never cut, flushed as it is written, so `tail -f log` shows
a run as it goes. Both front ends (one run, a sweep) keep their state here and only say
when something changed, so this module survives a move of the front ends.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

LOG_EVERY_S = 10.0  # seconds between lines; GROK_TUI_LOG_EVERY_S overrides it
ENV_INTERVAL = "GROK_TUI_LOG_EVERY_S"


def log_interval(default: float = LOG_EVERY_S) -> float:
    """The interval, from the environment where it is a number >= 0."""
    text = os.environ.get(ENV_INTERVAL, "")
    try:
        value = float(text)
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def fmt_loss(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3e}"


def fmt_acc(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1%}"


class PlainProgress:
    """One run's progress as plain lines, at most one per `interval` seconds.

    `row(row, total, speed)` with each new metrics row (the newest), `outlook(text)` when
    the phase or forecast is known; a line is written when the interval has passed since
    the last one (the first row writes one at once) and `finish()` writes the last.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        self.write = write
        self.interval = log_interval() if interval is None else interval
        self.clock = clock
        self.name = name
        self.last_row: dict[str, float] = {}
        self.total = 0
        self.speed = math.nan
        self.outlook_text = ""
        self._written_at: float | None = None
        self._written = ""

    def row(self, row: Mapping[str, float], total: int, speed: float = math.nan) -> None:
        self.last_row, self.total, self.speed = dict(row), total, speed
        now = self.clock()
        if self._written_at is None or now - self._written_at >= self.interval:
            self._emit(now)

    def outlook(self, text: str) -> None:
        """The phase and forecast (or why there are none), shown on the next line."""
        self.outlook_text = text

    def finish(self) -> None:
        """The newest row (and outlook), if no line shows it yet."""
        if self.last_row and self.line() != self._written:
            self._emit(self.clock())

    def line(self) -> str:
        r = self.last_row
        epoch = int(r.get("epoch", 0))
        done = f" ({epoch / self.total:.0%})" if self.total > 0 else ""
        parts = [
            f"{self.name}: " if self.name else "",
            f"epoch {epoch:,}/{self.total:,}{done}",
            f"  train loss {fmt_loss(r.get('train_loss', math.nan))}",
            f"  test loss {fmt_loss(r.get('test_loss', math.nan))}",
            f"  train acc {fmt_acc(r.get('train_acc', math.nan))}",
            f"  test acc {fmt_acc(r.get('test_acc', math.nan))}",
        ]
        if math.isfinite(self.speed) and self.speed > 0:  # none yet on the first row
            parts.append(f"  {self.speed:,.0f} epochs/s")
        if self.outlook_text:
            parts.append(f"  {self.outlook_text}")
        return "".join(parts)

    def _emit(self, now: float) -> None:
        self._written = self.line()
        self.write(self._written)
        self._written_at = now


class PlainSweepProgress:
    """A sweep's progress as plain lines: a summary line per interval (the first at once)
    and a line for each member when it ends, with its numbers and outcome."""

    def __init__(
        self,
        write: Callable[[str], None],
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.interval = log_interval() if interval is None else interval
        self.clock = clock
        self._written_at: float | None = None
        self._ended: set[str] = set()

    def update(self, summary: str, members: Mapping[str, Any], force: bool = False) -> None:
        """`summary`: the sweep in one line; `members`: name -> MemberSummary (status,
        epoch, losses, accuracies, outcome), read for the members that have ended."""
        for name, s in members.items():
            if name not in self._ended and s.finished:
                self._ended.add(name)
                self.write(member_line(s))
        now = self.clock()
        if force or self._written_at is None or now - self._written_at >= self.interval:
            self.write(summary)
            self._written_at = now


def member_line(s: Any) -> str:
    """'lr=0.001,wd=1: done at epoch 1,000/1,000  train loss ... outcome grokking'."""
    status = s.shown_status
    text = (
        f"{s.name}: {status} at epoch {max(s.epoch, 0):,}/{s.config.epochs:,}"
        f"  train loss {fmt_loss(s.train_loss)}  test loss {fmt_loss(s.test_loss)}"
        f"  train acc {fmt_acc(s.train_acc)}  test acc {fmt_acc(s.test_acc)}"
        f"  outcome {s.outcome_label}"
    )
    if s.status == "failed" and s.message:
        text += f"  ({s.message})"
    return text


def sweep_line(path: Any, total: int, counts: Mapping[str, int], speed: float) -> str:
    """'sweeps/wd: 12 members, 3 done, 9 running; 4,100 member-epochs/s' (no speed while
    it is NaN: not measured yet)."""
    parts = [f"{counts.get(k, 0)} {k}" for k in ("done", "running", "failed") if counts.get(k)]
    for flag in ("diverged", "damaged"):
        if counts.get(flag):
            parts.append(f"{counts[flag]} {flag}")
    rate = f"; {speed:,.0f} member-epochs/s" if math.isfinite(speed) else ""
    return f"{path}: {total} members, {', '.join(parts) or 'starting'}{rate}"


def console_writer(console: Any) -> Callable[[str], None]:
    """Write whole lines to a rich Console (no markup, never wrapped or cut), flushed."""

    def write(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, crop=False)
        flush = getattr(console.file, "flush", None)
        if flush is not None:
            flush()

    return write
