"""GrokApp: the run's panes, its status bar and timeline, and the threads behind them.

The app shows a run directory. If asked to train, it runs the engine's Trainer in a thread
worker that writes to that directory and pokes the UI with a coalescing message; either
way the UI learns what changed from the directory, read in a thread (FollowService), so a
run trained by another process looks and updates the same. Two engine threads analyse:
one computes the selected checkpoint's Snapshot (newest request only), one the progress
measures.

State: `state` (ui/state.py) is the one machine that says whether the run trains here, is
followed, or is finished; `head`, `neuron`, `cluster`, `snapshot` are the shared selection
every analysis pane binds to and redraws from.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from grok_tui.engine.core.threads import TRAINER_NICENESS, lower_this_thread
from grok_tui.engine.measures.services import (
    ProgressService,
    ServiceGroup,
    SnapshotResult,
    SnapshotService,
)
from grok_tui.engine.store.follow import FollowService, MetricsHistory, RunUpdate
from grok_tui.engine.store.run_meta import RunMeta
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.train import Event, Finished, TrainControl, Trainer
from grok_tui.ui.commands import ListedCommands
from grok_tui.ui.messages import (
    MeasuresReady,
    RunChanged,
    RunPolled,
    SnapshotReady,
    TrainerFinished,
)
from grok_tui.ui.palette import PaletteGuard
from grok_tui.ui.panes.attention import AttentionPane
from grok_tui.ui.panes.base import PANE_ACTIONS, AnalysisPane
from grok_tui.ui.panes.circuits import CircuitsPane
from grok_tui.ui.panes.curves import CurvesPane
from grok_tui.ui.panes.fourier import FourierPane
from grok_tui.ui.panes.neurons import NeuronsPane
from grok_tui.ui.screens import GotoEpochScreen
from grok_tui.ui.state import LIVE, TRAINING_HERE, RunState, check_transition, state_on_disk
from grok_tui.ui.widgets.status_bar import StatusBar, StatusInfo
from grok_tui.ui.widgets.timeline import CheckpointTimeline

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

W = TypeVar("W", bound=Widget)

POLL_SECONDS = 0.5
EXIT_GRACE_S = 3.0  # after a signal, how long Textual may take to restore the terminal

# Tab id, title, pane class: the analysis panes, in the order of the number keys 2..5.
ANALYSIS_PANES: list[tuple[str, str, type[AnalysisPane]]] = [
    ("attention", "Attention", AttentionPane),
    ("neurons", "Neurons", NeuronsPane),
    ("fourier", "Fourier", FourierPane),
    ("circuits", "Circuits", CircuitsPane),
]
PANE_KEYS = {  # key -> (pane action, step)
    "h": ("head", 1),
    "H": ("head", -1),
    "n": ("neuron", 1),
    "N": ("neuron", -1),
    "c": ("cluster", 1),
    "C": ("cluster", -1),
    "b": ("component", 1),
    "B": ("component", -1),
    "v": ("view", 1),
    "V": ("view", -1),
    "d": ("dim", 1),
    "D": ("dim", -1),
    "z": ("enlarge", 1),
}


class GrokCommands(ListedCommands):
    """Command palette entries: jump, follow, screenshot, panes."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        app: GrokApp = self.app  # type: ignore[assignment]
        commands = [
            ("Go to epoch…", app.action_goto_epoch, "select the checkpoint nearest an epoch"),
            ("Follow newest checkpoint", app.action_toggle_follow, "toggle live following"),
            ("Save screenshot (SVG)", app.action_screenshot, "into the run directory"),
            ("Toggle log scale", app.action_toggle_log, "loss plots"),
        ]
        for pane_id, title, _ in [("curves", "Curves", None), *ANALYSIS_PANES]:
            commands.append((f"Show {title}", lambda p=pane_id: app.action_pane(p), "pane"))
        return commands


class GrokApp(PaletteGuard, App[int]):  # PaletteGuard: Textual's palette crashes, worked around
    CSS_PATH = "app.tcss"
    TITLE = "grok-tui"
    COMMANDS = App.COMMANDS | {GrokCommands}
    AUTO_FOCUS = None  # nothing takes the arrows from the checkpoint timeline at start-up

    BINDINGS = [
        Binding("space", "toggle_pause", "Pause"),
        Binding("left", "step(-1)", "Checkpoint", key_display="←→"),
        Binding("right", "step(1)", "Next checkpoint", show=False),
        Binding("shift+left", "step(-10)", "Back 10 checkpoints", show=False),
        Binding("shift+right", "step(10)", "Forward 10 checkpoints", show=False),
        Binding("home", "first_checkpoint", "First checkpoint", show=False),
        Binding("end", "last_checkpoint", "Last checkpoint", show=False),
        Binding("f", "toggle_follow", "Follow"),
        Binding("g", "goto_epoch", "Go to epoch", show=False),
        Binding("r", "resume_training", "Resume", show=False),
        Binding("l", "toggle_log", "Log y", show=False),
        Binding("m", "measures_view(1)", "Measures", show=False),
        Binding("M", "measures_view(-1)", "Previous measures", show=False),
        *[
            Binding(key, f"pane_key('{name}', {step})", name.capitalize(), show=step > 0)
            for key, (name, step) in PANE_KEYS.items()
        ],
        Binding("1", "pane('curves')", "Curves", show=False),
        *[
            Binding(str(i), f"pane('{pane_id}')", title, show=False)
            for i, (pane_id, title, _) in enumerate(ANALYSIS_PANES, start=2)
        ],
        Binding("s", "screenshot", "Screenshot", show=False),
        Binding("question_mark", "toggle_help", "Keys"),
        Binding("q", "quit", "Quit"),
        Binding("escape", "back", "Back to the sweep", show=False),
    ]

    state: reactive[RunState] = reactive(RunState.STARTING, init=False)
    # The shared selection: every analysis pane binds to these (data_bind) and redraws.
    head: reactive[int] = reactive(0, init=False)
    neuron: reactive[int] = reactive(0, init=False)
    cluster: reactive[int | None] = reactive(None, init=False)
    snapshot: reactive[Snapshot | None] = reactive(None, init=False)
    snapshot_note: reactive[str] = reactive("no checkpoint selected", init=False)

    def __init__(
        self,
        run: Run,
        train: bool = False,
        device: str = "cpu",
        viewer: bool = False,
        back: bool = False,
        key_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.key_epoch = key_epoch  # progress measures use this checkpoint's key frequencies
        self.viewer = viewer  # served to a browser: shows the run, never trains it
        self.back = back  # opened from the sweep screen: escape returns to it
        self.run_dir = run
        self.device = device
        self.want_train = train and not viewer
        self.outlook: Any = None  # engine.outlook.Outlook from the newest progress measures
        self.control = TrainControl()
        self.trainer_done = threading.Event()
        self.trainer_done.set()  # no trainer yet
        self.trainer_failure = ""  # why training last failed: the exit status and last line
        self.history = MetricsHistory()
        self.meta: RunMeta = run.meta()
        self.writer_alive = False  # another process trains the run
        self.checkpoints: list[int] = []
        self.reduced_colours = False
        self.requested_epoch: int | None = None
        self.snapshots: SnapshotService | None = None
        self.progress: ProgressService | None = None
        self.follow: FollowService | None = None
        self.services = ServiceGroup()  # stopped and joined before the process ends
        if not self.want_train:
            self.set_reactive(GrokApp.state, state_on_disk(self.meta.status, False))

    def widget(self, selector: type[W] | str, expect_type: type[W] | None = None) -> W:
        """One of the main screen's widgets, whatever screen is on top (the palette, go to)."""
        return self.screen_stack[0].query_one(selector, expect_type)  # type: ignore[arg-type,return-value]

    # -- state -------------------------------------------------------------------------------
    def go(self, new: RunState) -> None:
        """Move the state machine (an illegal move is a bug and raises)."""
        check_transition(self.state, new)
        self.state = new

    def watch_state(self) -> None:
        self.refresh_status()
        self.refresh_bindings()
        self._update_progress_mode()

    @property
    def training(self) -> bool:
        """The trainer thread of this app is running (also while it saves to quit)."""
        return not self.trainer_done.is_set()

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with TabbedContent(id="panes", initial="curves"):
            with TabPane("Curves", id="curves"):
                yield CurvesPane(self.history, id="curves-pane")
            for pane_id, title, pane_class in ANALYSIS_PANES:
                with TabPane(title, id=pane_id):
                    pane = pane_class(id=f"{pane_id}-pane")
                    pane.bound_to_app = True
                    yield pane.data_bind(GrokApp.head, GrokApp.neuron, GrokApp.cluster,
                                         GrokApp.snapshot, note=GrokApp.snapshot_note)  # fmt: skip
        yield CheckpointTimeline(id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"grok-tui: {self.run_dir.name}"
        # The tab bar would take left/right for itself; panes switch with 1-5 (or a click),
        # and the arrows always scrub checkpoints (an enlarged map, focused, moves its cursor).
        self.widget(TabbedContent).query_one(Tabs).can_focus = False
        self.reduced_colours = self.console.color_system != "truecolor"
        if self.reduced_colours:
            self.notify(
                f"{self.console.color_system or 'no'} colours: heatmaps are approximate. "
                "Over SSH, run with COLORTERM=truecolor if your terminal has true colour.",
                title="Reduced colours",
                timeout=8,
            )
        self._install_signal_handlers()
        self.snapshots = self.services.add(
            SnapshotService(
                self.run_dir, self.device, lambda r: self.post_message(SnapshotReady(r))
            )
        )
        self.progress = self.services.add(
            ProgressService(
                self.run_dir,
                self.device,
                lambda update: self.post_message(MeasuresReady(update)),
                key_epoch=self.key_epoch,
            )
        )
        self.follow = self.services.add(
            FollowService(
                self.run_dir, lambda u: self.post_message(RunPolled(u)), interval=POLL_SECONDS
            )
        )
        if self.want_train:
            self.start_training()
        self.refresh_status()

    def on_unmount(self) -> None:
        """However the app ends (q, a signal, a crash, a test), the trainer saves and stops."""
        self.stop_threads()

    def stop_threads(self) -> None:
        """Stop the trainer (it saves first) and the analysis threads, and wait for all.

        Called again by whoever runs the app (idempotent): no thread of ours may still be
        inside a torch op when the interpreter finalises, or the process aborts.
        """
        self.control.request_stop()
        self.services.stop()  # no new analysis while the trainer saves
        self.trainer_done.wait(timeout=600)
        self.services.stop_and_join()

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP (the SSH link dropped) save a checkpoint, then quit."""
        loop = asyncio.get_running_loop()
        for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
            if sig is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._on_terminate_signal)

    def _on_terminate_signal(self) -> None:
        self.action_quit()
        # With the terminal gone, Textual can block forever writing to it. Once the
        # trainer has saved, nothing is left to lose: make sure the process ends.
        threading.Thread(target=self._exit_once_saved, daemon=True).start()

    def _exit_once_saved(self) -> None:
        self.trainer_done.wait()
        self.services.stop_and_join()
        time.sleep(EXIT_GRACE_S)
        os._exit(0)

    # -- training thread ------------------------------------------------------------------
    def start_training(self) -> None:
        if self.state in TRAINING_HERE or self.state == RunState.QUITTING:
            return
        if self.viewer:
            self.notify("this is a viewer: it never trains the run")
            return
        if self.writer_alive:
            self.notify("another process is training this run", severity="warning")
            self.want_train = False
            self._settle_from_disk()
            return
        try:
            self.run_dir.ensure_resumable()
            notice = self.run_dir.acquire_lock()
        except RunError as exc:
            self.notify(str(exc), severity="error")
            self.want_train = False
            self._settle_from_disk()
            return
        if notice:
            self.notify(notice)
        self.control = TrainControl()
        self.trainer_done.clear()
        self.go(RunState.TRAINING)
        self.train_worker()

    @work(thread=True, exclusive=True, group="trainer", exit_on_error=False)
    def train_worker(self) -> None:
        result = Finished("failed", 0, "trainer did not start")
        lower_this_thread(TRAINER_NICENESS)  # below the UI thread: keys stay responsive
        try:
            trainer = Trainer(self.run_dir, self.device, on_event=self._on_train_event)
            result = trainer.train(self.control)
        except RunError as exc:
            result = Finished("failed", 0, str(exc))
        except Exception as exc:  # a bug: say it rather than "did not start"
            result = Finished("failed", 0, f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            self.run_dir.release_lock()
            self.trainer_done.set()
            self.post_message(TrainerFinished(result))

    def _on_train_event(self, event: Event) -> None:
        # Called on the trainer thread: never block it, just ask the UI to look.
        self.post_message(RunChanged())

    def on_run_changed(self, message: RunChanged) -> None:
        self.poll_run()

    def on_trainer_finished(self, message: TrainerFinished) -> None:
        result = message.result
        self.trainer_failure = result.message if result.status == "failed" else ""
        if result.status == "failed":
            self.notify(result.message, title="Training stopped", severity="error", timeout=15)
        elif result.status == "done":
            self.notify(f"finished at epoch {result.epoch:,}", title="Training done")
        if self.state == RunState.QUITTING:
            self.exit(0)
            return
        final = {"done": RunState.DONE, "failed": RunState.FAILED}
        self.go(final.get(result.status, RunState.STOPPED))
        self.poll_run()

    # -- reading the run (the FollowService thread reads; the UI applies) --------------------
    def poll_run(self) -> None:
        """Ask for a look at the run directory now (the answer comes as RunPolled)."""
        if self.follow is not None:
            self.follow.poke()

    def on_run_polled(self, message: RunPolled) -> None:
        self.apply_update(message.update)

    def apply_update(self, update: RunUpdate) -> None:
        if update.error:
            self.notify(update.error, severity="error")
        for warning in update.warnings[:3]:  # a damaged file: say so, never crash on it
            self.notify(warning, title="Damaged run file", severity="warning", timeout=15)
        if update.reset:
            self.history.clear()
        if update.rows:
            self.history.extend(update.rows)
        if update.meta is not None:
            self.meta = update.meta
        if update.checkpoints is not None:
            self.checkpoints = update.checkpoints
            self.widget(CheckpointTimeline).set_checkpoints(update.checkpoints)
        if update.writer_alive is not None:
            if self.writer_alive and not update.writer_alive and self.meta.status == "running":
                self.notify(
                    "The process training this run is gone. Press r to resume here.",
                    title="Writer stopped",
                    severity="warning",
                    timeout=15,
                )
            self.writer_alive = update.writer_alive
        if update.meta is not None or update.writer_alive is not None:
            self._settle_from_disk()
        if update.rows or update.reset:
            self.widget(CurvesPane).mark_dirty()
        self.refresh_status()
        if update.checkpoints is not None:
            self._update_progress_mode()  # new checkpoints to record

    def _settle_from_disk(self) -> None:
        """A run this app does not train: its state is what the directory says."""
        if self.state in TRAINING_HERE or self.state == RunState.QUITTING or self.training:
            return
        if self.state == RunState.STARTING and self.want_train:
            return  # the trainer is about to start
        self.go(state_on_disk(self.meta.status, self.writer_alive))

    def _update_progress_mode(self) -> None:
        """Ask for the progress measures of new checkpoints, from the first one on.

        Each checkpoint is recorded once (engine/measures/record.py); a change of key frequencies
        costs the service one train forward per checkpoint, in its low-priority thread.
        A run trained by another process that measures its own checkpoints (headless
        training does) is left to do so.
        """
        if self.progress is None or self.state == RunState.QUITTING:
            return
        self.progress.writer_measures = self.writer_alive and not self.training
        self.progress.poke()

    def refresh_status(self) -> None:
        if not self.is_mounted:
            return
        last = self.history.last()
        cfg = self.meta.config
        growing = self.state in (RunState.TRAINING, RunState.FOLLOWING)
        outlook = self.outlook
        info = StatusInfo(
            run=self.run_dir.name,
            device=(self.device if self.state in TRAINING_HERE else self.meta.device)
            + (" 256c" if self.reduced_colours else ""),
            epoch=last.get("epoch"),
            total=cfg.epochs,
            train_loss=last.get("train_loss"),
            test_loss=last.get("test_loss"),
            train_acc=last.get("train_acc"),
            test_acc=last.get("test_acc"),
            epochs_per_s=self.history.epochs_per_s() if growing else 0,
            eta_s=self.history.eta_s(cfg.epochs) if growing else None,
            state=str(self.state),
            phase=outlook.describe_phase() if outlook is not None and growing else "",
            forecast=self._forecast_text(),
        )
        self.widget(StatusBar).show(info)

    def _forecast_text(self) -> str:
        """The forecast, or once the run has grokked the epoch it did (every epoch is known
        here; the measures only see checkpoints)."""
        grokked = self.history.first_epoch_at_least("test_acc", 0.99)
        if grokked is not None:
            return f"grokked {int(grokked):,}"
        return self.outlook.forecast.short() if self.outlook is not None else ""

    # -- the selected checkpoint ----------------------------------------------------------
    def active_pane_id(self) -> str:
        return self.widget(TabbedContent).active

    def active_analysis_pane(self) -> AnalysisPane | None:
        pane_id = self.active_pane_id()
        if pane_id == "curves":
            return None
        return self.widget(f"#{pane_id}-pane", AnalysisPane)

    def on_checkpoint_timeline_selected(self, message: CheckpointTimeline.Selected) -> None:
        self.widget(CurvesPane).set_selected(message.epoch)
        self._request_snapshot()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.screen.minimize()  # an enlarged map of the pane we left must not stay on top
        self._request_snapshot()
        self.refresh_bindings()

    def _request_snapshot(self) -> None:
        """Ask for the selected checkpoint's analysis, if an analysis pane is showing."""
        epoch = self.widget(CheckpointTimeline).selected
        if epoch is None:
            self._show_snapshot(None, "no checkpoints yet")
            return
        if self.state == RunState.QUITTING or self.snapshots is None:
            return
        if self.active_analysis_pane() is None:
            return
        if self.snapshot is not None and self.snapshot.epoch == epoch:
            return
        if self.requested_epoch == epoch:
            return
        self.requested_epoch = epoch
        if self.snapshot is None:
            self._show_snapshot(None, f"analysing epoch {epoch:,}…")
        self.snapshots.request(epoch)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        result: SnapshotResult = message.result
        if result.epoch == self.requested_epoch:
            self.requested_epoch = None
        timeline = self.widget(CheckpointTimeline)
        if result.epoch != timeline.selected:
            self._request_snapshot()  # the selection moved on while this was computed
            return
        if result.snapshot is None:
            timeline.note = result.error
            self._show_snapshot(None, result.error)
        else:
            timeline.note = ""
            self._show_snapshot(result.snapshot, "")
        timeline.refresh()

    def _show_snapshot(self, snapshot: Snapshot | None, note: str) -> None:
        self.snapshot, self.snapshot_note = snapshot, note

    def on_measures_ready(self, message: MeasuresReady) -> None:
        update = message.update
        if update.error:
            self.notify(update.error, title="Progress measures", severity="warning")
            return
        self.widget(CurvesPane).set_measures(update.table, update.outlook, update.note)
        before, self.outlook = self.outlook, update.outlook
        self._announce_phase(before, update.outlook)
        self.refresh_status()

    def _announce_phase(self, before: Any, after: Any) -> None:
        """A live run that enters a new phase says so (not a viewer filling in a cache)."""
        if before is None or after is None or self.state not in LIVE:
            return
        if after.phase != before.phase and after.since is not None:
            self.notify(after.describe_phase(), title="New phase", timeout=8)

    # -- actions --------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show (and allow) a pane key only where the visible pane answers it."""
        if action == "pane_key" and parameters:
            pane = self.active_analysis_pane()
            return pane is not None and parameters[0] in pane.ACTIONS
        if action == "toggle_pause":
            return self.state in TRAINING_HERE
        if action in ("measures_view", "toggle_log"):
            return self.active_pane_id() == "curves"
        if action == "back":
            return self.back and self.screen.maximized is None  # escape first shrinks a map
        return True

    def action_back(self) -> None:
        from grok_tui.ui.compare_app import BACK

        self.exit(BACK)

    def action_pane_key(self, name: str, step: int) -> None:
        pane = self.active_analysis_pane()
        if pane is None or name not in pane.ACTIONS or name not in PANE_ACTIONS:
            return
        status = pane.pane_action(name, step)
        if status:
            self.notify(status, timeout=2)

    def action_step(self, n: int) -> None:
        self.widget(CheckpointTimeline).step(n)

    def action_first_checkpoint(self) -> None:
        self.widget(CheckpointTimeline).first()

    def action_last_checkpoint(self) -> None:
        self.widget(CheckpointTimeline).last()

    def action_toggle_follow(self) -> None:
        following = self.widget(CheckpointTimeline).toggle_follow()
        self.notify("following the newest checkpoint" if following else "not following")

    def action_goto_epoch(self) -> None:
        if isinstance(self.screen, GotoEpochScreen):
            return  # one is open already (g again, or the palette on top of it): no stack
        timeline = self.widget(CheckpointTimeline)
        if not timeline.epochs:
            self.notify("no checkpoints yet")
            return

        def jump(epoch: int | None) -> None:
            if epoch is not None:
                got = timeline.jump_to(epoch)
                self.notify(f"epoch {got:,}" + ("" if got == epoch else f" (nearest to {epoch:,})"))

        self.push_screen(GotoEpochScreen(timeline.epochs[0], timeline.epochs[-1]), jump)

    def action_screenshot(self) -> None:
        """Save the screen as SVG into the run directory, and say where."""
        epoch = self.widget(CheckpointTimeline).selected
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"screenshot-{self.active_pane_id()}-epoch{epoch or 0}-{stamp}.svg"
        if self.run_dir.read_only:  # a served viewer: to the browser, not the run directory
            if self.is_web:
                self.deliver_text(io.StringIO(self.export_screenshot()), save_filename=name)
            else:
                self.notify("the run is open read-only: no screenshot saved", timeout=4)
            return
        try:
            path = self.save_screenshot(filename=name, path=str(self.run_dir.path))
        except OSError as exc:
            self.notify(f"cannot save a screenshot: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {path}", title="Screenshot", timeout=6)

    def action_measures_view(self, step: int) -> None:
        view = self.widget(CurvesPane).cycle_view(step)
        self.notify(f"measures: {view}", timeout=2)

    def action_toggle_pause(self) -> None:
        if self.state == RunState.TRAINING:
            self.control.request_pause()
            self.go(RunState.PAUSED)
        elif self.state == RunState.PAUSED:
            self.control.request_resume()
            self.go(RunState.TRAINING)
        else:
            self.notify("not training here (r resumes an unfinished run)")

    def action_resume_training(self) -> None:
        if self.state == RunState.PAUSED:
            self.action_toggle_pause()
            return
        if self.state in (RunState.TRAINING, RunState.QUITTING):
            return
        last_epoch = self.history.last().get("epoch", -1)
        if self.meta.status == "done" or last_epoch >= self.meta.config.epochs:
            self.notify("this run is finished")
            return
        self.start_training()

    def action_toggle_log(self) -> None:
        self.widget(CurvesPane).toggle_log()

    def action_pane(self, pane: str) -> None:
        self.widget(TabbedContent).active = pane

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_quit(self) -> None:  # type: ignore[override]  (sync: also a signal handler)
        """Quit; a training run first saves a checkpoint (the trainer thread does it)."""
        if self.state == RunState.QUITTING:
            return
        if self.training:
            self.go(RunState.QUITTING)
            self.notify("saving a checkpoint before quitting…", timeout=30)
            self.control.request_stop()
            self.services.stop()  # the trainer's finish must not start new analysis
            return
        self.exit(0)
