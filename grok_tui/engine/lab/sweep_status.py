"""Where every member of a sweep stands, read from the sweep directory and followed live.

The headless table, the sweep screen and `open SWEEPDIR` all read the same files, so they
show a sweep the same way whichever process (or machine) trains it. Each poll reads only
what was appended to each member's metrics.jsonl since the last one, and re-reads a
run.json only when it changed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.lab.outcomes import Outcome, OutcomeRule, outcome_of, still_improving
from grok_tui.engine.lab.sweep import Member, Sweep, SweepMeta
from grok_tui.engine.store.metrics_reader import MetricsReader
from grok_tui.engine.store.runs import Run, RunError

NAN = math.nan


@dataclass
class MemberSummary:
    """One member now: its last row, when it memorised and grokked, its status."""

    name: str
    values: dict[str, Any]
    config: RunConfig
    status: str = "created"
    message: str = ""
    epoch: int = -1  # of the last metrics row; -1 before the first
    train_loss: float = NAN
    test_loss: float = NAN
    train_acc: float = NAN
    test_acc: float = NAN
    memorised_at: int | None = None
    grokked_at: int | None = None
    diverged: bool = False
    damaged: str = ""  # what its metrics reader found wrong (its outcome is then not final)
    rule: OutcomeRule = field(default_factory=OutcomeRule)
    recent: list[tuple[int, float]] = field(default_factory=list)  # (epoch, test acc), last
    # rule.trend_window epochs: whether a member its budget stopped was still improving

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed") or self.diverged

    @property
    def shown_status(self) -> str:
        """The status a table shows: diverged and damaged before run.json's."""
        return "diverged" if self.diverged else "damaged" if self.damaged else self.status

    @property
    def outcome_label(self) -> str:
        """The outcome a table shows; '?' where damaged metrics leave it unknown."""
        return "? (damaged metrics)" if self.damaged else self.outcome.label

    @property
    def outcome(self) -> Outcome:
        """From its rows; never final while its metrics are damaged (an emptied file
        read as 'confusion': never fits the train set)."""
        epochs, accs = [e for e, _ in self.recent], [a for _, a in self.recent]
        improving = (
            self.status == "done" and not self.diverged and still_improving(epochs, accs, self.rule)
        )
        at = self.epoch if improving else None
        finished = self.finished and not self.damaged
        return outcome_of(self.memorised_at, self.grokked_at, finished, self.rule, at)

    def reset(self) -> None:
        self.epoch, self.memorised_at, self.grokked_at, self.diverged = -1, None, None, False
        self.damaged = ""
        self.recent = []
        self.train_loss = self.test_loss = self.train_acc = self.test_acc = NAN

    def add(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            epoch = int(row["epoch"])
            if self.memorised_at is None and row["train_acc"] >= self.rule.acc:
                self.memorised_at = epoch
            if self.grokked_at is None and row["test_acc"] >= self.rule.acc:
                self.grokked_at = epoch
            if not (math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])):
                self.diverged = True
            self.recent.append((epoch, row["test_acc"]))
        if rows:
            start = self.recent[-1][0] - self.rule.trend_window
            self.recent = [(e, v) for e, v in self.recent if e >= start]
            last = rows[-1]
            self.epoch = int(last["epoch"])
            self.train_loss, self.test_loss = last["train_loss"], last["test_loss"]
            self.train_acc, self.test_acc = last["train_acc"], last["test_acc"]


class SweepWatcher:
    """Follows a sweep directory; `poll()` brings every `MemberSummary` up to date."""

    def __init__(self, sweep: Sweep, meta: SweepMeta | None = None) -> None:
        self.sweep = sweep
        self.meta = meta or sweep.meta()
        self.members: dict[str, MemberSummary] = {}
        self._readers: dict[str, MetricsReader] = {}
        self._meta_mtime: dict[str, float] = {}
        for m in self.meta.members:
            self._add(m)

    def _add(self, member: Member) -> None:
        run = self.sweep.member_run(member.name)
        self.members[member.name] = MemberSummary(member.name, member.values, member.config)
        self._readers[member.name] = MetricsReader(run)

    def run(self, name: str) -> Run:
        return self.sweep.member_run(name)

    def poll(self) -> bool:
        """Read what changed; True if any member moved or changed status."""
        changed = False
        for name, summary in self.members.items():
            run = self.sweep.member_run(name)
            try:
                mtime = os.stat(run.meta_path).st_mtime
            except OSError:
                continue  # not written yet (a sweep being made)
            if self._meta_mtime.get(name) != mtime:
                self._meta_mtime[name] = mtime
                try:
                    meta = run.meta()
                except RunError:
                    continue  # mid-rewrite on a filesystem without atomic replace
                summary.status, summary.message = meta.status, meta.message
                summary.config = meta.config
                changed = True
            reader = self._readers[name]
            rows, reset = reader.poll()
            if reset:
                summary.reset()
                changed = True
            if reader.problems:
                summary.damaged, reader.problems = reader.problems[-1], []
                changed = True
            if rows:
                summary.add(rows)
                changed = True
        return changed

    def counts(self) -> dict[str, int]:
        """Members per status, and per final outcome."""
        out: dict[str, int] = {}
        for s in self.members.values():
            out[s.status] = out.get(s.status, 0) + 1
            if s.diverged:
                out["diverged"] = out.get("diverged", 0) + 1
            if s.damaged:
                out["damaged"] = out.get("damaged", 0) + 1
        return out


def extend_undecided(sweep: Sweep, epochs: int) -> list[str]:
    """Give every undecided member (its budget ran out while its test accuracy still rose)
    `epochs` more: its run.json's epoch budget raised and its status set resumable, so the
    next training of the sweep continues it from its last checkpoint. Returns their names.
    A member that is training now (its lock held by a live writer) is left alone."""
    watcher = SweepWatcher(sweep)
    watcher.poll()
    extended = []
    for name, summary in watcher.members.items():
        if summary.outcome.name != "undecided":
            continue
        run = sweep.member_run(name)
        try:
            run.extend(epochs, f"undecided at {summary.config.epochs:,}")
        except RunError:  # being trained now, or past the largest budget: left as it is
            continue
        extended.append(name)
    return extended
