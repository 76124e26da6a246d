"""The sweep screen: the phase diagram and the member table of a sweep directory, live.

Behind `grok-tui sweep` and `grok-tui open SWEEPDIR`. Its `SweepSession` owns the training
thread (if this process trains the sweep) for the whole visit. Enter on a member asks the
app to open it on a run screen (as a viewer: the session trains it), `c` to compare the
marked members; either is pushed over this screen, and escape pops it back here, where the
view (axes, slice, sort, marks, cursor) is as it was left.

Everything on screen is read from the sweep directory (`SweepWatcher`), so a sweep that
another process (or machine) trains looks and updates the same.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from grok_tui.console.sweep import OUTCOME_STYLE
from grok_tui.engine.lab.phase_grid import display_axes, phase_grid, pin_choices
from grok_tui.engine.lab.sweep import AXES, fmt_value
from grok_tui.engine.lab.sweep_status import MemberSummary, SweepWatcher
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.ui.commands import ListedCommands
from grok_tui.ui.screens import being_removed
from grok_tui.ui.sessions.sweep import SweepSession
from grok_tui.ui.widgets.phase_diagram import PhaseDiagram
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, sampled_series

POLL_SECONDS = 1.0
WIDE_COLUMNS = 150  # from this width the selected cell's curves are drawn beside the diagram


# The columns that matter most first: at 80 columns the rest scroll into view.
COLUMNS = ("", "member", "outcome", "grok@", "mem@", "epoch", "train loss", "test loss", "status")


@dataclass
class SweepView:
    """What the sweep screen shows: its axes, slice, sort, marks and table filter."""

    x_axis: str = ""
    y_axis: str = ""
    pin: int = 0  # index into pin_choices
    sort: str = "member"
    reverse: bool = False
    marked: set[str] = field(default_factory=set)
    cell: set[str] | None = None  # members of the selected diagram cell (table filter)
    cursor_member: str = ""


def sort_key(column: str, s: MemberSummary) -> Any:
    """Members sort by any column; missing values (-, NaN) last."""
    missing = (1, 0.0)

    def num(x: float | int | None) -> tuple[int, float]:
        return missing if x is None or (isinstance(x, float) and math.isnan(x)) else (0, x)

    if column in AXES:
        return (0, s.values.get(column, 0))
    return {
        "member": (0, s.name),
        "status": (0, s.status),
        "epoch": num(s.epoch),
        "train loss": num(s.train_loss),
        "test loss": num(s.test_loss),
        "mem@": num(s.memorised_at),
        "grok@": num(s.grokked_at),
        "outcome": (0, s.outcome_label),
    }.get(column, (0, s.name))


def fmt_num(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1e}"


class SweepCommands(ListedCommands):
    """Command palette entries of the sweep screen."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        screen = self.screen_under_dialogs(SweepScreen)
        if screen is None:
            return []
        return [
            ("Next x axis", lambda: screen.action_axis("x", 1), "the diagram's columns"),
            ("Next y axis", lambda: screen.action_axis("y", 1), "the diagram's rows"),
            ("Next slice", lambda: screen.action_pin(1), "pin the axes not shown, or pool them"),
            ("Sort by the next column", lambda: screen.action_sort(1), "the member table"),
            ("Reverse the sort", screen.action_reverse, "the member table"),
            ("Compare marked members", screen.action_compare, "space marks a member"),
            ("Resume training", screen.action_resume, "an unfinished sweep nobody trains"),
        ]


class SweepScreen(Screen[None]):
    BINDINGS = [
        Binding("x", "axis('x', 1)", "X axis"),
        Binding("y", "axis('y', 1)", "Y axis"),
        Binding("f", "pin(1)", "Slice"),
        Binding("o", "sort(1)", "Order", show=False),  # the footer fits 80 columns with q
        Binding("O", "reverse", "Reverse order", show=False),
        Binding("s", "app.save_svg", "Screenshot", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("d", "focus_diagram", "Diagram", show=False),
        Binding("escape", "clear_cell", "All members", show=False),
        Binding("r", "resume", "Resume", show=False),
    ]

    class OpenMember(Message):
        """Enter on a member: open its run on a run screen."""

        def __init__(self, run: Run) -> None:
            super().__init__()
            self.run = run

    class CompareMembers(Message):
        """`c`: compare the marked members' runs."""

        def __init__(self, runs: list[Run]) -> None:
            super().__init__()
            self.runs = runs

    def __init__(self, session: SweepSession, view: SweepView | None = None) -> None:
        super().__init__()
        self.session = session
        self.sweep = session.sweep
        self.view = view or SweepView()
        self.watcher = SweepWatcher(self.sweep)
        self.meta = self.watcher.meta
        self.axes = self.meta.axes
        shown = display_axes(self.axes) if self.axes else []
        if not self.view.x_axis and shown:
            self.view.x_axis = shown[0]
            self.view.y_axis = shown[1] if len(shown) > 1 else ""
        self._speed = (time.perf_counter(), self._member_epochs())
        self.member_epochs_per_s = math.nan  # not measured yet: not shown
        self._poller: Timer | None = None
        self._notes_said = len(session.notes)

    def compose(self) -> ComposeResult:
        yield Static("", id="sweep-status")
        with Horizontal(id="sweep-top"):
            yield PhaseDiagram(id="diagram")
            yield Plot(id="cell-curves")
        yield Static("", id="sweep-axes")
        yield DataTable(id="members", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in self.table_columns():
            table.add_column(name, key=name)
        if self.session.want_train:
            self.session.start()
        self.watcher.poll()
        self.refresh_all()
        table.focus()
        self._poller = self.set_interval(POLL_SECONDS, self.poll)

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE_COLUMNS
        if wide != self.has_class("-wide"):
            self.set_class(wide, "-wide")
            self.refresh_cell_curves()

    def on_screen_suspend(self) -> None:
        if self._poller is not None:
            self._poller.pause()  # a member or a comparison is on top: nobody sees the table

    def on_screen_resume(self) -> None:
        self.app.title = f"grok-tui sweep: {self.sweep.path.name}"
        if self._poller is not None:  # back from a member or a comparison
            self.poll()
            self._poller.resume()

    def on_unmount(self) -> None:
        self.session.stop()  # the app joins it before the process ends

    def screenshot_target(self) -> tuple[Path | None, str]:
        """`s` saves into the sweep directory."""
        return self.sweep.path, "sweep"

    # -- data --------------------------------------------------------------------------------
    def _member_epochs(self) -> int:
        return sum(max(s.epoch, 0) for s in self.watcher.members.values())

    def poll(self) -> None:
        if being_removed(self):
            return
        notes = self.session.notes  # toasts: the status line is cut at 80 columns
        for severity, text in notes[self._notes_said :]:
            error = severity == "error"
            title = "Sweep training stopped" if error else "Sweep"
            self.notify(text, title=title, severity=severity, timeout=20 if error else 10)
        self._notes_said = len(notes)
        if self.watcher.poll():
            now, total = time.perf_counter(), self._member_epochs()
            t0, e0 = self._speed
            if now > t0 and total >= e0:
                self.member_epochs_per_s = (total - e0) / (now - t0)
            self._speed = (now, total)
            self.refresh_all()
        else:
            self.refresh_status()

    def table_columns(self) -> list[str]:
        return [*COLUMNS, *(AXES[a] for a in self.axes)]

    def state(self) -> str:
        if self.session.training:
            return "saving to quit" if self.session.stopping else "training"
        if any(self.watcher.run(n).writer_alive() for n in self.watcher.members):
            return "following"
        counts = self.watcher.counts()
        if counts.get("done", 0) + counts.get("failed", 0) == len(self.watcher.members):
            return "done"
        return "stopped (r: resume)"

    # -- drawing -----------------------------------------------------------------------------
    def refresh_all(self) -> None:
        self.refresh_diagram()
        self.refresh_table()
        self.refresh_status()
        self.refresh_cell_curves()

    def refresh_cell_curves(self) -> None:
        """Beside the diagram (wide screens): test accuracy per epoch of the members of the
        cell under the diagram's cursor, one curve each, so a cell's outcome can be read."""
        if not self.has_class("-wide"):
            return
        plot = self.query_one("#cell-curves", Plot)
        cell = self.query_one(PhaseDiagram).selected()
        names = sorted(cell.members) if cell is not None else []
        width = max(plot.size.width, 20)
        series = []
        for i, name in enumerate(names[: len(PALETTE)]):
            try:
                rows = self.watcher.run(name).read_metrics()
            except RunError:
                continue
            epochs = np.array([r["epoch"] for r in rows], dtype=np.float64)
            accs = np.array([r["test_acc"] for r in rows], dtype=np.float64)
            series.append(sampled_series(name, epochs, accs, PALETTE[i], width))
        where = ""
        if cell is not None:
            v = self.view
            where = f" ({AXES.get(v.x_axis, v.x_axis)} {fmt_value(cell.x)}"
            where += f", {AXES.get(v.y_axis, v.y_axis)} {fmt_value(cell.y)})" if v.y_axis else ")"
        plot.show(Figure(f"test accuracy of the cell's members{where}", series, "epoch"))

    def refresh_status(self) -> None:
        counts = self.watcher.counts()
        n = len(self.watcher.members)
        parts = [f"{counts[k]} {k}" for k in ("done", "running", "failed") if counts.get(k)]
        for flag in ("diverged", "damaged"):
            if counts.get(flag):
                parts.append(f"{counts[flag]} {flag}")
        state = self.state()
        rate = self.member_epochs_per_s
        speed = f", {rate:,.0f} member-epochs/s" if state != "done" and math.isfinite(rate) else ""
        text = Text()
        text.append(f"{self.sweep.path.name}", style="bold")
        # Separators, not spaces alone: an SVG screenshot drops a segment's leading spaces.
        text.append(f" · {n} members: {', '.join(parts) or 'none started'}{speed} · ")
        style = {"training": "green", "following": "cyan", "done": "bold"}.get(state, "yellow")
        text.append(state, style=style)
        if self.session.failure:
            text.append(f"  {self.session.failure}", style="red")
        self.query_one("#sweep-status", Static).update(text)

    def pins(self) -> list[dict[str, Any]]:
        return pin_choices(self.axes, [self.view.x_axis, self.view.y_axis])

    def refresh_diagram(self) -> None:
        diagram = self.query_one(PhaseDiagram)
        if not self.view.x_axis:
            diagram.show(None, "a sweep of one configuration: no axes to draw")
        else:
            pins = self.pins()
            pin = pins[self.view.pin % len(pins)]
            grid = phase_grid(self.axes, self.watcher.members.values(), self.view.x_axis,
                              self.view.y_axis or None, pin)  # fmt: skip
            diagram.show(grid)
        self.query_one("#sweep-axes", Static).update(self.axes_line())

    def axes_line(self) -> Text:
        v = self.view
        pins = self.pins()
        pin = pins[v.pin % len(pins)] if pins else {}
        sliced = ", ".join(f"{AXES[k]}={fmt_value(x)}" for k, x in pin.items()) or "all pooled"
        seeds = " (seeds pooled: spread of grok epochs)" if "seed" in self.axes else ""
        cell = f"  table: {len(v.cell)} members of a cell (esc: all)" if v.cell is not None else ""
        return (
            f"x: {v.x_axis or '-'} [x]  y: {v.y_axis or '-'} [y]  slice: {sliced} [f]{seeds}{cell}"
        )

    def rows(self) -> list[MemberSummary]:
        members = list(self.watcher.members.values())
        if self.view.cell is not None:
            members = [m for m in members if m.name in self.view.cell]
        members.sort(key=lambda s: sort_key(self.view.sort, s), reverse=self.view.reverse)
        return members

    def refresh_table(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_member() or self.view.cursor_member
        table.clear()
        for s in self.rows():
            outcome = s.outcome
            style = OUTCOME_STYLE.get(outcome.name, "") if outcome.final else "dim"
            status = s.shown_status
            table.add_row(
                "●" if s.name in self.view.marked else " ",
                s.name,
                Text(s.outcome_label, style=style),
                "-" if s.grokked_at is None else f"{s.grokked_at:,}",
                "-" if s.memorised_at is None else f"{s.memorised_at:,}",
                f"{max(s.epoch, 0)}/{s.config.epochs}",
                fmt_num(s.train_loss),
                fmt_num(s.test_loss),
                Text(status, style="red" if status in ("failed", "diverged", "damaged") else ""),
                *[fmt_value(s.values.get(a)) for a in self.axes],
                key=s.name,
            )
        if current:
            with contextlib.suppress(Exception):
                table.move_cursor(row=table.get_row_index(current), animate=False)

    def current_member(self) -> str:
        table = self.query_one(DataTable)
        if not table.row_count:
            return ""
        with contextlib.suppress(Exception):
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return ""

    # -- actions -----------------------------------------------------------------------------
    def action_axis(self, which: str, step: int) -> None:
        shown = display_axes(self.axes)
        if len(shown) < 2 and which == "y":
            self.notify("only one axis to show")
            return
        attr = f"{which}_axis"
        other = self.view.y_axis if which == "x" else self.view.x_axis
        choices = [a for a in shown if a != other] or shown
        current = getattr(self.view, attr)
        index = choices.index(current) if current in choices else -1
        setattr(self.view, attr, choices[(index + step) % len(choices)])
        self.view.pin = 0
        self.view.cell = None
        self.refresh_diagram()
        self.refresh_table()

    def action_pin(self, step: int) -> None:
        pins = self.pins()
        if len(pins) <= 1:
            self.notify("every other axis is shown or pooled by seed already")
            return
        self.view.pin = (self.view.pin + step) % len(pins)
        self.refresh_diagram()

    def action_sort(self, step: int) -> None:
        columns = [c for c in self.table_columns() if c]
        names = [next((a for a, s in AXES.items() if s == c), c) for c in columns]
        index = names.index(self.view.sort) if self.view.sort in names else 0
        self.view.sort = names[(index + step) % len(names)]
        self.notify(f"sorted by {columns[names.index(self.view.sort)]}", timeout=2)
        self.refresh_table()

    def action_reverse(self) -> None:
        self.view.reverse = not self.view.reverse
        self.refresh_table()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        label = str(event.label)
        name = next((a for a, s in AXES.items() if s == label), label)
        if name:
            self.view.reverse = (not self.view.reverse) if self.view.sort == name else False
            self.view.sort = name
            self.refresh_table()

    def action_mark(self) -> None:
        name = self.current_member()
        if not name:
            return
        self.view.marked ^= {name}
        self.refresh_table()

    def action_compare(self) -> None:
        marked = [n for n in self.watcher.members if n in self.view.marked]
        if len(marked) < 2:
            self.notify("mark two or more members with space, then press c")
            return
        self.view.cursor_member = self.current_member()
        self.post_message(self.CompareMembers([self.sweep.member_run(n) for n in marked]))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        self.view.cursor_member = name
        try:
            self.watcher.run(name).meta()  # a member that cannot open must not end the sweep
        except RunError as exc:
            summary = self.watcher.members[name]
            summary.status, summary.message = "damaged", str(exc)
            self.notify(f"{name} cannot be opened: {exc}", severity="error", timeout=10)
            self.refresh_table()
            return
        self.post_message(self.OpenMember(self.sweep.member_run(name)))

    def on_phase_diagram_cell_selected(self, message: PhaseDiagram.CellSelected) -> None:
        cell = message.cell
        self.view.cell = set(cell.members) if cell is not None else None
        self.refresh_table()
        self.refresh_cell_curves()
        self.query_one("#sweep-axes", Static).update(self.axes_line())

    def action_focus_diagram(self) -> None:
        self.query_one(PhaseDiagram).focus()

    def action_clear_cell(self) -> None:
        if self.view.cell is not None:
            self.view.cell = None
            self.refresh_table()
            self.query_one("#sweep-axes", Static).update(self.axes_line())
        self.query_one(DataTable).focus()

    def action_resume(self) -> None:
        state = self.state()
        if state in ("training", "saving to quit", "following", "done"):
            self.notify(f"the sweep is {state}: nothing to resume")
            return
        self.session.start()
        self.notify("training the unfinished members")
        self.refresh_status()
