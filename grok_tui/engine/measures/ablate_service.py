"""Live ablations for a viewer: the selected checkpoint at once, then the replay over training.

The app asks for one ablation set (an `Ablation`, ablate.py) at one checkpoint. This thread
answers in two steps: the intact and ablated scores at that checkpoint (one forward), then
the replay, every checkpoint oldest first, posted as it grows (about every POST_EVERY_S) so
the app can draw the curve and its progress. As the snapshot service does, it computes only
the newest request: a new checkpoint is answered between two replay steps and the replay
goes on; a new ablation set abandons the replay in flight (nothing stale is posted) and
starts the new one. A finished replay is kept: new checkpoints of a growing run only add
theirs, unless the clusters it ablates (the newest checkpoint's, as `ablate.replay` takes
them) have changed.

Numbers are those of `ablate.ablate_run` (at the checkpoint: its own clusters) and
`ablate.replay` (over training: the newest checkpoint's clusters); tests/test_ablate_live.py
compares them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.threads import ANALYSIS_NICENESS, WakeableThread, lower_this_thread
from grok_tui.engine.measures.ablate import Ablation, AblationResult, Ablator
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.errors import UserError

__all__ = ["Ablation", "AblationService", "AblationUpdate"]


@dataclass
class AblationUpdate:
    """What the service knows of one ablation set: the scores at the requested checkpoint
    and the replay so far (ascending; `total` checkpoints in all)."""

    ablation: Ablation
    epoch: int | None = None  # the checkpoint of `point`
    point: AblationResult | None = None
    replay: list[AblationResult] = field(default_factory=list)
    total: int = 0  # checkpoints the replay covers once done (0: no replay, empty set)
    error: str = ""  # why the scores at the checkpoint could not be computed
    replay_error: str = ""  # why the replay stopped

    @property
    def replay_done(self) -> bool:
        return len(self.replay) >= self.total and not self.replay_error


class AblationService(WakeableThread):
    """Computes the newest requested ablation at a checkpoint, then replays it over training."""

    POST_EVERY_S = 0.25

    def __init__(self, run: Run, device: str, on_update: Callable[[AblationUpdate], None]) -> None:
        self.run = run
        self.device = device
        self.on_update = on_update
        self._lock = threading.Lock()
        self._request: tuple[int, Ablation] | None = None  # the newest, not yet answered
        self._ablator: Any = None
        self._replayed: dict[int, AblationResult] = {}  # epoch -> result, for `_replay_of`
        self._replay_of: Ablation | None = None
        self._replay_clusters: dict[int, list[int]] | None = None
        self.log: list[tuple[str, Ablation, int]] = []  # ("point"|"replay", set, epoch) done
        self._start("grok-ablations")

    def request(self, epoch: int, ablation: Ablation) -> None:
        """Answer this set at this checkpoint; replaces any request not yet answered."""
        with self._lock:
            self._request = (int(epoch), ablation)
        self.poke()

    def _take(self) -> tuple[int, Ablation] | None:
        with self._lock:
            request, self._request = self._request, None
            return request

    def _take_if_same(self, ablation: Ablation) -> tuple[bool, int | None]:
        """(cancelled, epoch): a pending request for another set cancels the replay; one for
        this set is taken here (its checkpoint answered between two replay steps)."""
        with self._lock:
            if self._request is None:
                return False, None
            epoch, wanted = self._request
            if wanted != ablation:
                return True, None
            self._request = None
            return False, epoch

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        lower_this_thread(ANALYSIS_NICENESS)
        while not self._stopped.is_set():
            self._wake.wait()
            self._wake.clear()
            while (request := self._take()) is not None and not self._stopped.is_set():
                self._answer(*request)
            release_free_memory()

    def _answer(self, epoch: int, ablation: Ablation) -> None:
        update = AblationUpdate(ablation)
        self._point(update, epoch)
        if self._stopped.is_set():
            return
        if replace(ablation, mode="zero") == Ablation():
            self.on_update(update)  # nothing ablated (in either mode): the intact scores only
            return
        # Replayed even when the checkpoint failed: a cluster the selected checkpoint lacks
        # may exist at the newest one, whose clusters the replay takes.
        update.total = len(self.run.checkpoint_epochs())
        self.on_update(_copy(update))  # the checkpoint at once, before the replay
        self._replay(update)

    def _point(self, update: AblationUpdate, epoch: int) -> None:
        update.epoch, update.point, update.error = epoch, None, ""
        try:
            cfg = self.run.meta().config
            update.ablation.check(cfg)
            ablator = self._ablator_for(cfg)
            weights = self.run.load_checkpoint(epoch, cfg)
            update.point = ablator.ablate(weights, update.ablation, epoch)
            self.log.append(("point", update.ablation, epoch))
        except (UserError, RunError) as exc:
            update.error = str(exc)
        except Exception as exc:  # a bug must not kill the viewer: say it, keep going
            update.error = f"ablation failed: {type(exc).__name__}: {exc}"

    def _replay(self, update: AblationUpdate) -> None:
        """Every checkpoint oldest first, posting as it goes; returns early (posting nothing
        more) when stopped or when a request for another set arrives."""
        ablation = update.ablation
        last_post = -1.0
        try:
            cfg = self.run.meta().config
            ablator = self._ablator_for(cfg)
            epochs = self.run.checkpoint_epochs()
            if not epochs:
                raise RunError(f"{self.run.path} has no checkpoints yet")
            clusters = ablator.cluster_neurons(
                ablation, self.run.load_checkpoint(epochs[-1], cfg), epochs[-1]
            )
            if self._replay_of != ablation or self._replay_clusters != clusters:
                self._replayed = {}
            self._replay_of, self._replay_clusters = ablation, clusters
            update.total = len(epochs)
            for epoch in epochs:
                if self._stopped.is_set():
                    return
                cancelled, moved_to = self._take_if_same(ablation)
                if cancelled:
                    return  # the loop answers the new set
                if moved_to is not None:
                    self._point(update, moved_to)
                    last_post = -1.0  # the new checkpoint's scores at once
                if epoch not in self._replayed:
                    weights = self.run.load_checkpoint(epoch, cfg)
                    self._replayed[epoch] = ablator.ablate(weights, ablation, epoch, clusters)
                    self.log.append(("replay", ablation, epoch))
                update.replay = [self._replayed[e] for e in epochs if e in self._replayed]
                if time.monotonic() - last_post >= self.POST_EVERY_S:
                    last_post = time.monotonic()
                    self.on_update(_copy(update))
        except (UserError, RunError) as exc:
            update.replay_error = str(exc)
        except Exception as exc:  # a bug must not kill the viewer: say it, keep going
            update.replay_error = f"replay failed: {type(exc).__name__}: {exc}"
        if not self._stopped.is_set():
            self.on_update(_copy(update))

    def _ablator_for(self, cfg: Any) -> Ablator:
        if self._ablator is None or self._ablator.analyzer.cfg != cfg:
            from grok_tui.engine.measures.analysis import Analyzer

            self._ablator = Ablator(Analyzer(cfg, self.device))
            self._replayed, self._replay_of = {}, None
        return self._ablator


def _copy(update: AblationUpdate) -> AblationUpdate:
    """A snapshot of the update for another thread (the replay list grows after posting)."""
    return AblationUpdate(
        update.ablation,
        update.epoch,
        update.point,
        list(update.replay),
        update.total,
        update.error,
        update.replay_error,
    )
