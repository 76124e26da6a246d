"""A sweep without the UI: a rich live table of members on stderr, a summary at the end."""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from grok_tui.console.plain_log import PlainSweepProgress, console_writer, sweep_line
from grok_tui.console.training import stop_on_signals
from grok_tui.engine.lab.backends import GroupsFailed, said_in_short, train_sweep
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.lab.sweep_status import MemberSummary, SweepWatcher
from grok_tui.engine.training.train import Finished, Progress, TrainControl

REFRESH_S = 0.5
NAN = math.nan
OUTCOME_STYLE = {
    "comprehension": "green",
    "grokking": "bold magenta",
    "memorisation": "yellow",
    "confusion": "red",
    "undecided": "cyan",
}


def fmt_epoch(e: int | None) -> str:
    return "-" if e is None else str(e)


def fmt_acc(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.0%}"


def fmt_short(x: float) -> str:
    """A loss in 7 characters: 1.2e-05."""
    return "-" if not math.isfinite(x) else f"{x:.1e}"


COLUMNS = ("member", "epoch", "tr loss", "te loss", "tr acc", "te acc", "mem@", "grok@",
           "outcome", "status")  # fmt: skip
WIDE = 112  # below this many columns the status shows as the row's style only


def member_table(watcher: SweepWatcher, max_rows: int, speed: float, width: int = 200) -> Group:
    """The members (training ones first when they do not all fit) and a summary line.

    tr/te: train and test; mem@ and grok@: the first epochs with train and test accuracy
    >= 99%. At narrow widths member names are cut, never the numbers."""
    members = list(watcher.members.values())
    if len(members) > max_rows:
        order = {"running": 0, "paused": 1, "created": 2, "failed": 3, "done": 4}
        members = sorted(members, key=lambda s: order.get(s.status, 5))[:max_rows]
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    columns = COLUMNS if width >= WIDE else COLUMNS[:-1]
    for name in columns:
        left = name in ("member", "outcome", "status")
        table.add_column(
            name,
            justify="left" if left else "right",
            no_wrap=True,
            overflow="ellipsis" if name == "member" else "crop",
            min_width=len(name) if name != "member" else 8,
        )
    for s in members:
        style = "red" if s.diverged or s.status == "failed" else ""
        style = style or (
            "bold" if s.status == "running" else "dim" if s.status == "created" else ""
        )
        table.add_row(*row_cells(s)[: len(columns)], style=style)
    counts = watcher.counts()
    total = len(watcher.members)
    parts = [f"{counts.get(k, 0)} {k}" for k in ("done", "running", "failed") if counts.get(k)]
    for flag in ("diverged", "damaged"):
        if counts.get(flag):
            parts.append(f"{counts[flag]} {flag}")
    hidden = total - len(members)
    more = f" ({hidden} more not shown)" if hidden > 0 else ""
    rate = f"; {speed:,.0f} member-epochs/s" if math.isfinite(speed) else ""
    summary = Text(
        f"{watcher.sweep.path}: {total} members, {', '.join(parts) or 'starting'}{rate}{more}",
        style="dim",
    )
    return Group(table, summary)


def row_cells(s: MemberSummary) -> list[str | Text]:
    outcome = s.outcome
    style = OUTCOME_STYLE.get(outcome.name, "") if outcome.final else "dim"
    status = s.shown_status
    return [
        s.name,
        f"{max(s.epoch, 0)}/{s.config.epochs}",
        fmt_short(s.train_loss),
        fmt_short(s.test_loss),
        fmt_acc(s.train_acc),
        fmt_acc(s.test_acc),
        fmt_epoch(s.memorised_at),
        fmt_epoch(s.grokked_at),
        Text(s.outcome_label, style=style),
        Text(status, style="red" if status in ("failed", "diverged", "damaged") else ""),
    ]


RATE_WINDOW_S = 30.0  # the live speed counts member-epochs over about this much recent time
RATE_AFTER_S = 2.0  # no speed is shown before the samples span this long


class RecentRate:
    """Member-epochs per second over the last `window` seconds of samples.

    Why not the average since the start: a sweep runs for tens of minutes beside other
    work, and an average since the start lags a change of load (another job starting or
    ending) by as long as the sweep has run. The summary at the end keeps the average."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, count: float) -> float:
        """Record `count` (a running total) at `now`; the rate over the newest window (NaN
        until the samples span RATE_AFTER_S: the first lines said "0 member-epochs/s"
        while the workers started)."""
        self.samples.append((now, count))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()  # the oldest kept is the last one at least a window old
        then, before = self.samples[0]
        # never below 0: a resumed member's rows are cut back to its checkpoint
        return max(count - before, 0.0) / (now - then) if now - then >= RATE_AFTER_S else NAN


Runner = Callable[[Callable[[object], None], TrainControl, Callable[[str], None]], list[Finished]]


def train_sweep_headless(
    sweep: Sweep, device: str, console: Console | None = None, runner: Runner | None = None
) -> int:
    """Train a sweep to the end (or a signal); return the process exit code.

    `runner(on_event, control, say)` trains it (default: every group in this process); a
    runner whose workers live in other processes sends no Progress, so the speed comes
    from the member directories the table reads anyway."""
    console = console or Console(stderr=True)
    watcher = SweepWatcher(sweep)
    watcher.poll()
    control = TrainControl()
    results: list[Finished] = []
    started = time.perf_counter()
    state = {"last": 0.0, "member_epochs": 0, "speed": NAN, "events": 0}
    rate = RecentRate()
    rate.add(started, 0)
    epochs0 = sum(max(m.epoch, 0) for m in watcher.members.values())
    max_rows = max(console.height - 4, 5)
    # Not a terminal (a log file): plain lines at a steady interval instead of the table.
    plain = None if console.is_terminal else PlainSweepProgress(console_writer(console))
    live_or_not = contextlib.nullcontext(None) if plain is not None else Live(
        console=console, auto_refresh=False, transient=False
    )  # fmt: skip

    with live_or_not as live:

        def refresh(force: bool = False) -> None:
            now = time.perf_counter()
            if not force and now - state["last"] < REFRESH_S:
                return
            state["last"] = now
            watcher.poll()
            if not state["events"]:  # workers elsewhere: count what the directory shows
                moved = sum(max(m.epoch, 0) for m in watcher.members.values()) - epochs0
                state["member_epochs"] = max(moved, 0)
            state["speed"] = rate.add(now, state["member_epochs"])
            if plain is not None:
                line = sweep_line(watcher.sweep.path, len(watcher.members), watcher.counts(),
                                  state["speed"])  # fmt: skip
                plain.update(line, watcher.members, force=force)
                return
            assert live is not None
            table = member_table(watcher, max_rows, state["speed"], console.width)
            live.update(table, refresh=True)

        def on_event(event: object) -> None:
            if isinstance(event, Progress):
                state["events"] = 1
                state["member_epochs"] += len(event.rows)
                refresh()
            elif isinstance(event, Finished):
                refresh(force=True)
            else:  # a worker waiting, or a tick from workers elsewhere
                refresh()

        def say(text: str) -> None:
            console.print(f"grok-tui: {text}", highlight=False, soft_wrap=True)

        def train_here(on_event: Callable[[object], None], control: TrainControl,
                       say: Callable[[str], None]) -> list[Finished]:  # fmt: skip
            return train_sweep(sweep, device, on_event, control, say=say)

        refresh(force=True)
        failures: list[str] = []
        with stop_on_signals(control) as received:
            try:
                results = (runner or train_here)(on_event, control, say)
            except GroupsFailed as exc:  # members that could not train; the rest did
                results, failures = exc.results, exc.failures
        refresh(force=True)

    if not console.is_terminal:
        console.line()
    elapsed = time.perf_counter() - started
    counts = watcher.counts()
    crashed = [r for r in results if r.status == "failed" and "non-finite" not in r.message]
    summary = (
        f"sweep {sweep.path}: {counts.get('done', 0)}/{len(watcher.members)} members done, "
        f"{counts.get('diverged', 0)} diverged, in {elapsed:.0f} s "
        f"({state['member_epochs'] / max(elapsed, 1e-9):,.0f} member-epochs/s on {device})"
    )
    console.print(summary, highlight=False, soft_wrap=True)
    for r in crashed:
        console.print(f"[red]{r.member}: {r.message}[/]", highlight=False, soft_wrap=True)
    if failures:
        console.print(f"grok-tui: error: {said_in_short(failures)}", markup=False,
                      highlight=False, soft_wrap=True)  # fmt: skip
    if received:
        console.print(
            f"stopped by signal; continue with: grok-tui sweep --resume {sweep.path}",
            highlight=False,
            soft_wrap=True,
        )
        return 130
    return 2 if failures else 1 if crashed else 0
