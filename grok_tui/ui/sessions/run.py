"""RunSession: one run's threads and what they have read, beside the screen that shows it.

If asked to train, the session runs the engine's Trainer in a thread that writes the run
directory (holding the run's lock); either way what changed is learnt from the directory,
read in a thread (FollowService), so a run trained by another process looks and updates the
same. Four engine threads analyse: one computes the selected checkpoint's Snapshot (newest
request only), one the progress measures, one the Ablate pane's ablations and their replay
over training, one the local learning coefficient of each checkpoint (not in a viewer: a
served page or a sweep's member). Every thread reports through `post`, a screen's
`post_message`: small messages, the ones that supersede each other coalescing
(ui/messages.py). The screen decides what to show and which state the run is in; the session
holds no widget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from textual.message import Message

from grok_tui.engine.core.threads import TRAINER_NICENESS, lower_this_thread, torch_thread
from grok_tui.engine.measures.ablate_service import Ablation, AblationService
from grok_tui.engine.measures.llc_service import START_AFTER_S, TRAINING_SHARE, LLCService
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
from grok_tui.ui.messages import (
    AblationReady,
    MeasuresReady,
    RunPolled,
    SnapshotReady,
    TrainerFinished,
)

POLL_SECONDS = 0.5
TRAINER_JOIN_S = 600.0  # the longest a trainer may take to save before the process ends


class RunSession:
    """The trainer thread and its lock, following the directory, and analysis requests."""

    FAILURE_EXIT: ClassVar[int] = 1

    def __init__(
        self,
        run: Run,
        device: str = "cpu",
        train: bool = False,
        viewer: bool = False,
        key_epoch: int | None = None,
    ) -> None:
        self.run = run
        self.device = device
        self.viewer = viewer  # served to a browser, or a sweep's member: never trains here
        self.want_train = train and not viewer
        self.key_epoch = key_epoch  # progress measures use this checkpoint's key frequencies
        self.control = TrainControl()
        self.trainer_done = threading.Event()
        self.trainer_done.set()  # no trainer yet
        self.failure = ""  # why training last failed: the exit status and last line
        self.history = MetricsHistory()
        self.meta: RunMeta = run.meta()
        self.writer_alive = False  # another process trains the run
        self.checkpoints: list[int] = []
        self.outlook: Any = None  # engine.measures.outlook.Outlook of the newest measures
        self.requested_epoch: int | None = None
        self.snapshots: SnapshotService | None = None
        self.progress: ProgressService | None = None
        self.follow: FollowService | None = None
        self.ablations: AblationService | None = None
        self.llc: LLCService | None = None
        self.services = ServiceGroup()  # stopped and joined before the process ends
        self._trainer: threading.Thread | None = None
        self._post: Callable[[Message], Any] = lambda message: None

    @property
    def training(self) -> bool:
        """The trainer thread is running (also while it saves to quit)."""
        return not self.trainer_done.is_set()

    def start(self, post: Callable[[Message], Any]) -> None:
        """Start reading and analysing the run; every thread reports through `post`."""
        self._post = post
        self.snapshots = self.services.add(
            SnapshotService(self.run, self.device, lambda r: post(SnapshotReady(r)))
        )
        self.progress = self.services.add(
            ProgressService(
                self.run,
                self.device,
                lambda update: post(MeasuresReady(update)),
                key_epoch=self.key_epoch,
            )
        )
        self.follow = self.services.add(
            FollowService(self.run, lambda u: post(RunPolled(u)), interval=POLL_SECONDS)
        )
        self.ablations = self.services.add(
            AblationService(self.run, self.device, lambda u: post(AblationReady(u)))
        )
        if not self.viewer:  # a served page or a sweep's member shows the estimates on disk
            self.llc = self.services.add(
                LLCService(
                    self.run,
                    self.device,
                    self.progress.add_llc,
                    share=self._llc_share,
                    start_after_s=START_AFTER_S,
                )
            )

    # -- the trainer ---------------------------------------------------------------------------
    def start_training(self) -> str:
        """Take the run's lock and start the trainer thread; return the lock's notice.

        Raises RunError: the run cannot be resumed, or another process holds its lock.
        """
        self.run.ensure_resumable()
        notice = self.run.acquire_lock()
        self.control = TrainControl()
        self.trainer_done.clear()
        self._trainer = torch_thread(self._train, "grok-trainer")
        self._trainer.start()
        return notice or ""

    def _train(self) -> None:
        result = Finished("failed", 0, "trainer did not start")
        lower_this_thread(TRAINER_NICENESS)  # below the UI thread: keys stay responsive
        try:
            trainer = Trainer(self.run, self.device, on_event=self._on_train_event)
            result = trainer.train(self.control)
        except RunError as exc:
            result = Finished("failed", 0, str(exc))
        except Exception as exc:  # a bug: say it rather than "did not start"
            result = Finished("failed", 0, f"{type(exc).__name__}: {exc}".splitlines()[0])
        finally:
            self.run.release_lock()
            self.failure = result.message if result.status == "failed" else ""
            self.trainer_done.set()
            self._post(TrainerFinished(result))

    def _on_train_event(self, event: Event) -> None:
        # Called on the trainer thread: never block it, just have the follow thread look.
        self.poll()

    def pause(self) -> None:
        self.control.request_pause()

    def resume(self) -> None:
        self.control.request_resume()

    # -- reading the run -----------------------------------------------------------------------
    def poll(self) -> None:
        """Ask for a look at the run directory now (the answer comes as RunPolled)."""
        if self.follow is not None:
            self.follow.poke()

    def apply(self, update: RunUpdate) -> bool:
        """Take in what the follow thread read. True if the process that trained the run
        has gone while the run says it is running (it can be resumed here)."""
        if update.reset:
            self.history.clear()
        if update.rows:
            self.history.extend(update.rows)
        if update.meta is not None:
            self.meta = update.meta
        if update.checkpoints is not None:
            self.checkpoints = update.checkpoints
        writer_gone = False
        if update.writer_alive is not None:
            writer_gone = self.writer_alive and not update.writer_alive
            writer_gone = writer_gone and self.meta.status == "running"
            self.writer_alive = update.writer_alive
        return writer_gone

    def measure_new_checkpoints(self) -> None:
        """Ask for the progress measures of new checkpoints, from the first one on.

        Each checkpoint is recorded once (engine/measures/record.py); a change of key
        frequencies costs the service one train forward per checkpoint, in its low-priority
        thread. A run trained by another process that measures its own checkpoints
        (headless training does) is left to do so.
        """
        if self.progress is None:
            return
        self.progress.writer_measures = self.writer_alive and not self.training
        self.progress.poke()
        if self.llc is not None:
            self.llc.poke()

    def _llc_share(self) -> float:
        """The share of time the LLC thread may take: small while a trainer (here, or another
        process on this machine) runs (engine/measures/llc_service.py)."""
        return TRAINING_SHARE if self.training or self.writer_alive else 1.0

    # -- the selected checkpoint ---------------------------------------------------------------
    def request_snapshot(self, epoch: int) -> bool:
        """Ask for a checkpoint's Snapshot unless it is the one asked for; True if asked.
        A request replaces any not yet started: scrubbing analyses where it stops."""
        if self.snapshots is None or self.requested_epoch == epoch:
            return False
        self.requested_epoch = epoch
        self.snapshots.request(epoch)
        return True

    def snapshot_arrived(self, result: SnapshotResult) -> None:
        if result.epoch == self.requested_epoch:
            self.requested_epoch = None

    def request_ablation(self, epoch: int, ablation: Ablation) -> None:
        """Ask for an ablation set at a checkpoint, then its replay (newest request only;
        another set cancels the replay in flight)."""
        if self.ablations is not None:
            self.ablations.request(epoch, ablation)

    # -- the end -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the trainer to save and stop, and the analysis threads to start nothing new."""
        self.control.request_stop()
        self.services.stop()

    def join(self) -> None:
        """Wait for the trainer (it saves first), then for the analysis in flight."""
        self.trainer_done.wait(timeout=TRAINER_JOIN_S)
        if self._trainer is not None:
            self._trainer.join(timeout=TRAINER_JOIN_S)
        self.services.stop_and_join()
