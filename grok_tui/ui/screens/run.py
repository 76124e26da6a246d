"""The run screen: a run's panes, its status bar and checkpoint timeline.

Its `RunSession` (ui/sessions/run.py) holds the threads and what they read; the screen
routes their messages to it and to the widgets, and owns what is shown:

- `state` (ui/state.py), the one machine that says whether the run trains here, is
  followed, or is finished; the status bar and the keys offered follow it;
- `head`, `neuron`, `cluster`, `snapshot`: the shared selection every analysis pane binds
  to and redraws from.

Opened over the sweep screen (a member), escape goes back to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from grok_tui.engine.measures.services import SnapshotResult
from grok_tui.engine.store.runs import RunError
from grok_tui.ui.commands import ListedCommands
from grok_tui.ui.messages import (
    AblationReady,
    MeasuresReady,
    RunPolled,
    SnapshotReady,
    TrainerFinished,
)
from grok_tui.ui.panes.ablations import AblationsPane
from grok_tui.ui.panes.attention import AttentionPane
from grok_tui.ui.panes.base import PANE_ACTIONS, AnalysisPane
from grok_tui.ui.panes.circuits import CircuitsPane
from grok_tui.ui.panes.curves import CurvesPane
from grok_tui.ui.panes.fourier import FourierPane
from grok_tui.ui.panes.neurons import NeuronsPane
from grok_tui.ui.screens import being_removed
from grok_tui.ui.screens.goto import GotoEpochScreen
from grok_tui.ui.sessions.run import RunSession
from grok_tui.ui.state import LIVE, TRAINING_HERE, RunState, check_transition, state_on_disk
from grok_tui.ui.widgets.status_bar import StatusBar, StatusInfo
from grok_tui.ui.widgets.timeline import CheckpointTimeline

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

# Tab id, title, pane class: the analysis panes, in the order of the number keys 2..5.
ANALYSIS_PANES: list[tuple[str, str, type[AnalysisPane]]] = [
    ("attention", "Attention", AttentionPane),
    ("neurons", "Neurons", NeuronsPane),
    ("fourier", "Fourier", FourierPane),
    ("circuits", "Circuits", CircuitsPane),
    ("ablate", "Ablate", AblationsPane),
]


def pane_key_description(name: str, step: int) -> str:
    """What `?` lists for a pane key: 'Next neuron' (n), 'Previous neuron' (N)."""
    fixed = {
        "enlarge": "Enlarge",
        "ablate": "Ablate or restore the target",
        "mode": "Ablation mode: zero or mean",
        "clear": "Clear all ablations",
    }
    if name in fixed:
        return fixed[name]
    if name == "target":
        return f"{'Next' if step > 0 else 'Previous'} ablation target kind"
    noun = {"dim": "embedding dim", "component": "basis component"}.get(name, name)
    return f"{'Next' if step > 0 else 'Previous'} {noun}"


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
    # The Ablate pane's (panes/ablations.py).
    "t": ("target", 1),
    "T": ("target", -1),
    "a": ("ablate", 1),
    "o": ("mode", 1),
    "X": ("clear", 1),
}


ABLATE_COMMANDS = [  # palette entries of the Ablate pane's keys: action, words
    ("ablate", "Ablate or restore the target (a)"),
    ("target", "Next ablation target kind (t)"),
    ("mode", "Ablation mode: zero or mean (o)"),
    ("clear", "Clear all ablations (X)"),
]


class RunCommands(ListedCommands):
    """Command palette entries of the run screen (also over its dialogs): jump, follow,
    screenshot, panes."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        screen = self.screen_under_dialogs(RunScreen)
        if screen is None:
            return []
        commands = [
            ("Go to epoch…", screen.action_goto_epoch, "select the checkpoint nearest an epoch"),
            ("Follow newest checkpoint", screen.action_toggle_follow, "toggle live following"),
            ("Save screenshot (SVG)", screen.action_screenshot, "into the run directory"),
            ("Toggle log scale", screen.action_toggle_log, "loss plots"),
        ]
        for pane_id, title, _ in [("curves", "Curves", None), *ANALYSIS_PANES]:
            commands.append((f"Show {title}", lambda p=pane_id: screen.action_pane(p), "pane"))
        for name, words in ABLATE_COMMANDS:
            commands.append((words, lambda n=name: screen.action_ablations(n), "Ablate pane"))
        return commands


class RunScreen(Screen[None]):
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
        Binding("x", "toggle_log_x", "Log epochs", show=False),
        Binding("m", "measures_view(1)", "Measures", show=False),
        Binding("M", "measures_view(-1)", "Previous measures", show=False),
        *[  # each pane's hint line names its keys; the footer keeps room for the global ones
            Binding(
                key, f"pane_key('{name}', {step})", pane_key_description(name, step), show=False
            )
            for key, (name, step) in PANE_KEYS.items()
        ],
        Binding("1", "pane('curves')", "Curves", show=False),
        *[
            Binding(str(i), f"pane('{pane_id}')", title, show=False)
            for i, (pane_id, title, _) in enumerate(ANALYSIS_PANES, start=2)
        ],
        Binding("s", "screenshot", "Screenshot", show=False),
        Binding("question_mark", "app.toggle_help", "Keys"),  # global; shown here
        Binding("escape", "back", "Back to the sweep", show=False),
    ]

    state: reactive[RunState] = reactive(RunState.STARTING, init=False)
    # The shared selection: every analysis pane binds to these (data_bind) and redraws.
    head: reactive[int] = reactive(0, init=False)
    neuron: reactive[int] = reactive(0, init=False)
    cluster: reactive[int | None] = reactive(None, init=False)
    snapshot: reactive[Snapshot | None] = reactive(None, init=False)
    snapshot_note: reactive[str] = reactive("no checkpoint selected", init=False)

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.session = session
        self.reduced_colours = False
        if not session.want_train:
            self.set_reactive(RunScreen.state, state_on_disk(session.meta.status, False))

    # -- state -------------------------------------------------------------------------------
    def go(self, new: RunState) -> None:
        """Move the state machine (an illegal move is a bug and raises)."""
        check_transition(self.state, new)
        self.state = new

    def watch_state(self) -> None:
        self.refresh_status()
        self.refresh_bindings()
        self._update_progress_mode()

    def _app_quitting(self, quitting: bool) -> None:
        """The app quits: nothing new starts here; a trainer is saving (the app waits)."""
        if quitting and self.state != RunState.QUITTING:
            self.go(RunState.QUITTING)

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with TabbedContent(id="panes", initial="curves"):
            with TabPane("Curves", id="curves"):
                yield CurvesPane(self.session.history, id="curves-pane")
            for pane_id, title, pane_class in ANALYSIS_PANES:
                with TabPane(title, id=pane_id):
                    pane = pane_class(id=f"{pane_id}-pane")
                    pane.bound_to_screen = True
                    yield pane.data_bind(
                        RunScreen.head,
                        RunScreen.neuron,
                        RunScreen.cluster,
                        RunScreen.snapshot,
                        note=RunScreen.snapshot_note,
                    )
        yield CheckpointTimeline(id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        # The tab bar would take left/right for itself; panes switch with 1-5 (or a click),
        # and the arrows always scrub checkpoints (an enlarged map, focused, moves its cursor).
        self.query_one(TabbedContent).query_one(Tabs).can_focus = False
        self.reduced_colours = self.app.console.color_system != "truecolor"
        self.watch(self.app, "quitting", self._app_quitting, init=False)
        self.session.start(self.post_message)
        if self.session.want_train:
            self.start_training()
        self.refresh_status()

    def on_screen_resume(self) -> None:
        self.app.title = f"grok-tui: {self.session.run.name}"

    def on_unmount(self) -> None:
        """Closed (escape back to the sweep, or the app ends): its threads stop; the app
        joins them before the process ends."""
        self.session.stop()

    # -- training ----------------------------------------------------------------------------
    def start_training(self) -> None:
        session = self.session
        if self.state in TRAINING_HERE or self.state == RunState.QUITTING:
            return
        if session.viewer:
            self.notify("this is a viewer: it never trains the run")
            return
        if session.writer_alive:
            self.notify("another process is training this run", severity="warning")
            session.want_train = False
            self._settle_from_disk()
            return
        try:
            notice = session.start_training()
        except RunError as exc:
            self.notify(str(exc), severity="error")
            session.want_train = False
            self._settle_from_disk()
            return
        if notice:
            self.notify(notice)
        self.go(RunState.TRAINING)

    def on_trainer_finished(self, message: TrainerFinished) -> None:
        if being_removed(self):
            return
        result = message.result
        if result.status == "failed":
            self.notify(result.message, title="Training stopped", severity="error", timeout=15)
        elif result.status == "done":
            self.notify(f"finished at epoch {result.epoch:,}", title="Training done")
        if self.state == RunState.QUITTING:
            return  # the app exits once every trainer has saved
        final = {"done": RunState.DONE, "failed": RunState.FAILED}
        self.go(final.get(result.status, RunState.STOPPED))
        self.session.poll()

    # -- reading the run (the session's follow thread reads; the screen shows) ---------------
    def on_run_polled(self, message: RunPolled) -> None:
        if being_removed(self):
            return
        update = message.update
        if update.error:
            self.notify(update.error, severity="error")
        for warning in update.warnings[:3]:  # a damaged file: say so, never crash on it
            self.notify(warning, title="Damaged run file", severity="warning", timeout=15)
        writer_gone = self.session.apply(update)
        if update.checkpoints is not None:
            self.query_one(CheckpointTimeline).set_checkpoints(update.checkpoints)
        if writer_gone:
            self.notify(
                "The process training this run is gone. Press r to resume here.",
                title="Writer stopped",
                severity="warning",
                timeout=15,
            )
        if update.meta is not None or update.writer_alive is not None:
            self._settle_from_disk()
        if update.rows or update.reset:
            self.query_one(CurvesPane).mark_dirty()
        self.refresh_status()
        if update.checkpoints is not None:
            self._update_progress_mode()  # new checkpoints to record

    def _settle_from_disk(self) -> None:
        """A run this screen does not train: its state is what the directory says."""
        session = self.session
        if self.state in TRAINING_HERE or self.state == RunState.QUITTING or session.training:
            return
        if self.state == RunState.STARTING and session.want_train:
            return  # the trainer is about to start
        self.go(state_on_disk(session.meta.status, session.writer_alive))

    def _update_progress_mode(self) -> None:
        if self.state != RunState.QUITTING:
            self.session.measure_new_checkpoints()

    def refresh_status(self) -> None:
        if not self.is_mounted:
            return
        session = self.session
        history, cfg, outlook = session.history, session.meta.config, session.outlook
        last = history.last()
        growing = self.state in (RunState.TRAINING, RunState.FOLLOWING)
        info = StatusInfo(
            run=session.run.name,
            device=(session.device if self.state in TRAINING_HERE else session.meta.device)
            + (" 256c" if self.reduced_colours else ""),
            epoch=last.get("epoch"),
            total=cfg.epochs,
            train_loss=last.get("train_loss"),
            test_loss=last.get("test_loss"),
            train_acc=last.get("train_acc"),
            test_acc=last.get("test_acc"),
            epochs_per_s=history.epochs_per_s() if growing else 0,
            eta_s=history.eta_s(cfg.epochs) if growing else None,
            state=str(self.state),
            phase=outlook.describe_phase() if outlook is not None and growing else "",
            forecast=self._forecast_text(),
        )
        self.query_one(StatusBar).show(info)

    def _forecast_text(self) -> str:
        """The forecast, or once the run has grokked the epoch it did (every epoch is known
        here; the measures only see checkpoints)."""
        grokked = self.session.history.first_epoch_at_least("test_acc", 0.99)
        if grokked is not None:
            return f"grokked {int(grokked):,}"
        outlook = self.session.outlook
        return outlook.forecast.short() if outlook is not None else ""

    # -- the selected checkpoint -------------------------------------------------------------
    def active_pane_id(self) -> str:
        return self.query_one(TabbedContent).active

    def active_analysis_pane(self) -> AnalysisPane | None:
        pane_id = self.active_pane_id()
        if pane_id == "curves":
            return None
        return self.query_one(f"#{pane_id}-pane", AnalysisPane)

    def on_checkpoint_timeline_selected(self, message: CheckpointTimeline.Selected) -> None:
        if being_removed(self):
            return
        self.query_one(CurvesPane).set_selected(message.epoch)
        self._request_snapshot()
        self._request_ablation()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.minimize()  # an enlarged map of the pane we left must not stay on top
        self._request_snapshot()
        self._request_ablation()
        self.refresh_bindings()

    def _request_snapshot(self) -> None:
        """Ask for the selected checkpoint's analysis, if an analysis pane is showing."""
        epoch = self.query_one(CheckpointTimeline).selected
        if epoch is None:
            self._show_snapshot(None, "no checkpoints yet")
            return
        if self.state == RunState.QUITTING or self.active_analysis_pane() is None:
            return
        if self.snapshot is not None and self.snapshot.epoch == epoch:
            return
        if self.session.request_snapshot(epoch) and self.snapshot is None:
            self._show_snapshot(None, f"analysing epoch {epoch:,}…")

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if being_removed(self):
            return
        result: SnapshotResult = message.result
        self.session.snapshot_arrived(result)
        timeline = self.query_one(CheckpointTimeline)
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
        if being_removed(self):
            return
        update = message.update
        if update.error:
            self.notify(update.error, title="Progress measures", severity="warning")
            return
        self.query_one(CurvesPane).set_measures(update.table, update.outlook, update.note)
        before, self.session.outlook = self.session.outlook, update.outlook
        self._announce_phase(before, update.outlook)
        self.refresh_status()

    # -- ablations (the Ablate pane; the session's ablation thread computes) -------------------
    def _request_ablation(self) -> None:
        """The Ablate pane's set at the selected checkpoint, while that pane shows."""
        epoch = self.query_one(CheckpointTimeline).selected
        if epoch is None or self.state == RunState.QUITTING or self.active_pane_id() != "ablate":
            return
        self.session.request_ablation(epoch, self.query_one(AblationsPane).ablation())

    def on_ablations_pane_changed(self, message: AblationsPane.Changed) -> None:
        if not being_removed(self):
            self._request_ablation()

    def on_ablation_ready(self, message: AblationReady) -> None:
        if not being_removed(self):
            self.query_one(AblationsPane).show_update(message.update)

    def action_ablations(self, name: str) -> None:
        """An Ablate pane key from the palette: show the pane, then act as the key does."""
        self.action_pane("ablate")
        self.action_pane_key(name, 1)

    def _announce_phase(self, before: Any, after: Any) -> None:
        """A live run that enters a new phase says so (not a viewer filling in a cache)."""
        if before is None or after is None or self.state not in LIVE:
            return
        if after.phase != before.phase and after.since is not None:
            self.notify(after.describe_phase(), title="New phase", timeout=8)

    # -- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show (and allow) a pane key only where the visible pane answers it."""
        if action == "pane_key" and parameters:
            pane = self.active_analysis_pane()
            return pane is not None and parameters[0] in pane.ACTIONS
        if action == "toggle_pause":
            return self.state in TRAINING_HERE
        if action in ("measures_view", "toggle_log"):
            return self.active_pane_id() == "curves"
        if action == "back":  # over the sweep screen; escape first shrinks a map
            return self.app.screen_stack[0] is not self and self.maximized is None
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_pane_key(self, name: str, step: int) -> None:
        pane = self.active_analysis_pane()
        if pane is None or name not in pane.ACTIONS or name not in PANE_ACTIONS:
            return
        status = pane.pane_action(name, step)
        if status:
            self.notify(status, timeout=2)

    def action_step(self, n: int) -> None:
        self.query_one(CheckpointTimeline).step(n)

    def action_first_checkpoint(self) -> None:
        self.query_one(CheckpointTimeline).first()

    def action_last_checkpoint(self) -> None:
        self.query_one(CheckpointTimeline).last()

    def action_toggle_follow(self) -> None:
        following = self.query_one(CheckpointTimeline).toggle_follow()
        self.notify("following the newest checkpoint" if following else "not following")

    def action_goto_epoch(self) -> None:
        if any(isinstance(s, GotoEpochScreen) for s in self.app.screen_stack):
            return  # one is open already (g again, or under the palette): no stack
        timeline = self.query_one(CheckpointTimeline)
        if not timeline.epochs:
            self.notify("no checkpoints yet")
            return

        def jump(epoch: int | None) -> None:
            if epoch is not None:
                got = timeline.jump_to(epoch)
                self.notify(f"epoch {got:,}" + ("" if got == epoch else f" (nearest to {epoch:,})"))

        self.app.push_screen(GotoEpochScreen(timeline.epochs[0], timeline.epochs[-1]), jump)

    def screenshot_target(self) -> tuple[Path | None, str]:
        """Where `s` saves (None: a read-only run) and what the file is called."""
        run = self.session.run
        epoch = self.query_one(CheckpointTimeline).selected
        stem = f"{self.active_pane_id()}-epoch{epoch or 0}"
        return (None if run.read_only else run.path), stem

    def action_screenshot(self) -> None:
        """Save the screen as SVG into the run directory, and say where."""
        self.app.action_save_svg()  # type: ignore[attr-defined]

    def action_measures_view(self, step: int) -> None:
        view = self.query_one(CurvesPane).cycle_view(step)
        self.notify(f"measures: {view}", timeout=2)

    def action_toggle_pause(self) -> None:
        if self.state == RunState.TRAINING:
            self.session.pause()
            self.go(RunState.PAUSED)
        elif self.state == RunState.PAUSED:
            self.session.resume()
            self.go(RunState.TRAINING)
        else:
            self.notify("not training here (r resumes an unfinished run)")

    def action_resume_training(self) -> None:
        if self.state == RunState.PAUSED:
            self.action_toggle_pause()
            return
        if self.state in (RunState.TRAINING, RunState.QUITTING):
            return
        session = self.session
        last_epoch = session.history.last().get("epoch", -1)
        if session.meta.status == "done" or last_epoch >= session.meta.config.epochs:
            self.notify("this run is finished")
            return
        self.start_training()

    def action_toggle_log(self) -> None:
        self.query_one(CurvesPane).toggle_log()

    def action_toggle_log_x(self) -> None:
        curves = self.query_one(CurvesPane)
        curves.toggle_log_x()
        self.notify(f"epochs on a {'log' if curves.log_x else 'linear'} axis", timeout=2)

    def action_pane(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
