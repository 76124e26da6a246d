"""GrokApp: the one Textual app; it wires the screens and their sessions and routes between them.

The CLI and the tests build it the same way, with a factory: `make_run_app` (a run's panes:
`grok-tui`, `train`, `open RUN`, the served viewer), `make_sweep_app` (the sweep screen:
`sweep`, `open SWEEPDIR`), `make_compare_app` (`compare`); `launch` runs it to its end.

- Screens (ui/screens/): run, sweep, compare, and the go-to-epoch dialog. The first is the
  app's default screen; the sweep screen asks (by message) to open a member on a run screen
  or to compare the marked ones, pushed over it; escape pops back.
- Sessions (ui/sessions/): the threads behind a screen (a trainer, the analysis and follow
  threads, a comparison's measures). The app keeps every session it opened and, however
  it ends, stops and joins them all before the process goes: the interpreter finalising
  while a thread is inside a torch op aborts the process.
- Global keys: `?` the key help of the screen on top (Textual's help panel, which lists
  that screen's keys as they are enabled), `q` quit (a trainer saves a checkpoint first,
  the app waiting for it), ctrl+p the command palette (guarded: ui/palette.py). SIGTERM
  and SIGHUP quit the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.runs import Run
from grok_tui.ui.palette import PaletteGuard
from grok_tui.ui.screens.compare import CompareScreen
from grok_tui.ui.screens.run import RunCommands, RunScreen
from grok_tui.ui.screens.sweep import SweepCommands, SweepScreen, SweepView
from grok_tui.ui.sessions.base import Session
from grok_tui.ui.sessions.compare import CompareSession
from grok_tui.ui.sessions.run import RunSession
from grok_tui.ui.sessions.sweep import SweepSession

EXIT_GRACE_S = 3.0  # after a signal, how long Textual may take to restore the terminal
QUIT_POLL_S = 0.1  # while quitting, how often the app looks whether every trainer has saved


class GrokApp(PaletteGuard, App[int]):  # PaletteGuard: Textual's palette crashes, worked around
    CSS_PATH = "app.tcss"
    TITLE = "grok-tui"
    # Each screen's palette entries, offered while it is under the palette or a dialog.
    COMMANDS = App.COMMANDS | {RunCommands, SweepCommands}
    AUTO_FOCUS = None  # nothing takes the arrows from the checkpoint timeline at start-up
    COMMAND_PALETTE_DISPLAY = "ctrl+p"  # "^p" ran into "palette" in SVG screenshots

    BINDINGS = [  # `?` shows in the run screen's footer (the sweep's has no room at 80 columns)
        Binding("question_mark", "toggle_help", "Keys", show=False),
        Binding("q", "quit", "Quit"),
    ]

    quitting: reactive[bool] = reactive(False, init=False)  # screens start no new work

    def __init__(
        self, first_screen: Callable[[], Screen[None]], sessions: Sequence[Session], device: str
    ) -> None:
        super().__init__()
        self._first_screen = first_screen
        self.sessions = list(sessions)  # every session opened, stopped and joined at the end
        self.device = device  # of the members and comparisons the sweep screen opens
        self._terminate = threading.Event()  # SIGTERM/SIGHUP seen, or the app has ended
        self._app_ended = False
        self._old_handlers: dict[int, Any] = {}  # signal handlers to put back at the end

    def get_default_screen(self) -> Screen[None]:
        return self._first_screen()

    def on_mount(self) -> None:
        if self.console.color_system != "truecolor":
            self.notify(
                f"{self.console.color_system or 'no'} colours: heatmaps are approximate. "
                "Over SSH, run with COLORTERM=truecolor if your terminal has true colour.",
                title="Reduced colours",
                timeout=8,
            )
        self._install_signal_handlers()

    def on_unmount(self) -> None:
        """However the app ends (q, a signal, a crash, a test), trainers save and stop."""
        self._restore_signal_handlers()
        self.stop_threads()

    # -- sessions ----------------------------------------------------------------------------
    def adopt(self, session: Session) -> None:
        """Keep a session opened after start-up: it is stopped and joined with the rest."""
        self.sessions.append(session)

    @property
    def training(self) -> bool:
        return any(session.training for session in self.sessions)

    def stop_threads(self) -> None:
        """Stop every session's threads (trainers save first) and wait for them all.

        Called again by `launch` (idempotent): no thread of ours may still be inside a torch
        op when the interpreter finalises, or the process aborts.
        """
        sessions = list(self.sessions)
        for session in sessions:
            session.stop()  # all at once: no new analysis starts while a trainer saves
        for session in sessions:
            session.join()

    # -- routing -----------------------------------------------------------------------------
    def on_sweep_screen_open_member(self, message: SweepScreen.OpenMember) -> None:
        if isinstance(self.screen, SweepScreen):  # not twice for a double Enter
            session = RunSession(message.run, self.device, viewer=True)  # the sweep trains it
            self.adopt(session)
            self.push_screen(RunScreen(session))

    def on_sweep_screen_compare_members(self, message: SweepScreen.CompareMembers) -> None:
        if isinstance(self.screen, SweepScreen):
            session = CompareSession(message.runs, self.device)
            self.adopt(session)
            self.push_screen(CompareScreen(session))

    # -- screenshots -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's, with its Screenshot (an SVG into a downloads folder, or nowhere) made
        ours: the same as `s`, saved where the screen keeps its files."""
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":
                command = SystemCommand(
                    "Screenshot",
                    "Save an SVG of the screen (s), beside the run or sweep it shows",
                    lambda: self.set_timer(0.1, self.action_save_svg),
                )
            yield command

    def action_save_svg(self) -> None:
        """`s` on every screen: the screen on top (below any dialog) names the directory
        and the file (`screenshot_target`); a served viewer sends it to the browser."""
        screen = next(
            (s for s in reversed(self.screen_stack) if hasattr(s, "screenshot_target")), None
        )
        if screen is None:
            return
        directory, stem = screen.screenshot_target()
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"screenshot-{stem}-{stamp}.svg"
        if self.is_web:  # a served viewer: to the browser, not the server's disk
            self.deliver_text(io.StringIO(self.export_screenshot()), save_filename=name)
            return
        if directory is None:
            self.notify("this view is open read-only: no screenshot saved", timeout=4)
            return
        try:
            path = self.save_screenshot(filename=name, path=str(directory))
        except OSError as exc:
            self.notify(f"cannot save a screenshot: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {path}", title="Screenshot", timeout=6)

    # -- keys --------------------------------------------------------------------------------
    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_quit(self) -> None:  # type: ignore[override]  (sync: also a signal handler)
        """Quit; a training run first saves a checkpoint (its thread does it)."""
        if self.quitting:
            return
        self.quitting = True
        training = self.training
        for session in self.sessions:
            session.stop()  # the trainers' finish must not start new analysis
        if not training:
            self.exit(0)
            return
        self.notify("saving a checkpoint before quitting…", timeout=30)
        self.set_interval(QUIT_POLL_S, self._exit_once_saved)

    def _exit_once_saved(self) -> None:
        if not self.training:
            self.exit(0)

    # -- signals -----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP (the SSH link dropped) save a checkpoint, then quit.

        Not through the event loop (`loop.add_signal_handler`): with the terminal gone,
        Textual's writer thread dies on the first failed write and the main thread then
        blocks for good putting frames in its full queue, so a loop callback never ran and
        `kill` left the process training (measured: still running 90 s after SIGTERM, the
        terminal closed 60 s before). A plain handler runs in the main thread even there
        (a blocked lock wait is interrupted for it); it only sets an event, and a thread of
        ours does the rest.
        """
        for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None:
                with contextlib.suppress(ValueError, OSError):  # not the main thread
                    self._old_handlers[sig] = signal.signal(sig, self._on_terminate_signal)
        if self._old_handlers:
            self._loop = asyncio.get_running_loop()
            threading.Thread(target=self._end_on_signal, name="grok-signals", daemon=True).start()

    def _restore_signal_handlers(self) -> None:
        """The handlers from before the app, and its signal thread let go (a test process
        runs hundreds of apps)."""
        for sig, handler in self._old_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._old_handlers = {}
        self._app_ended = True
        self._terminate.set()

    def _on_terminate_signal(self, signum: int, frame: object) -> None:
        self._terminate.set()  # nothing more in a signal handler: it may interrupt anything

    def _end_on_signal(self) -> None:
        """Quit as `q` does where the UI still runs; with the terminal gone, make sure the
        process ends once the trainers have saved (Textual can block forever on it)."""
        self._terminate.wait()
        if self._app_ended:  # woken by the app's end, not by a signal
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the app is ending
            self._loop.call_soon_threadsafe(self.action_quit)
        sessions = list(self.sessions)
        for session in sessions:
            session.stop()
        for session in sessions:
            session.join()
        time.sleep(EXIT_GRACE_S)
        os._exit(0)


# -- factories: what the CLI and the tests call ---------------------------------------------
def make_run_app(
    run: Run,
    train: bool = False,
    device: str = "cpu",
    viewer: bool = False,
    key_epoch: int | None = None,
) -> GrokApp:
    """A run's panes; `train` trains it here, `viewer` (served to a browser) never does."""
    session = RunSession(run, device, train=train, viewer=viewer, key_epoch=key_epoch)
    return GrokApp(lambda: RunScreen(session), [session], device)


def make_sweep_app(
    sweep: Sweep, device: str, train: bool = False, view: SweepView | None = None
) -> GrokApp:
    """The sweep screen; `train` trains the sweep's unfinished members here."""
    session = SweepSession(sweep, device, train=train)
    return GrokApp(lambda: SweepScreen(session, view), [session], device)


def make_compare_app(runs: list[Run], device: str = "cpu") -> GrokApp:
    """Several runs' curves overlaid."""
    session = CompareSession(runs, device)
    return GrokApp(lambda: CompareScreen(session), [session], device)


def launch(app: GrokApp) -> int:
    """Run the app until it ends, then stop and join every thread, say a training failure
    once more where it stays (the screen is gone), and return the exit status."""
    try:
        app.run()
    finally:
        if app.training:  # it ended without quitting (a crash): the trainers save now
            print("grok-tui: saving checkpoints…", file=sys.stderr, flush=True)
        app.stop_threads()
    for session in app.sessions:
        if session.failure:
            print(f"grok-tui: error: {session.failure}", file=sys.stderr)
            return session.FAILURE_EXIT
    return app.return_code or 0
