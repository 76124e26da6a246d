"""The local learning coefficient of every checkpoint, in a background thread with a budget.

An estimate costs a fixed number of SGLD steps (llc_checkpoint.LLC_SETTINGS: chains x
(burn-in + draws) minibatch steps): that is the budget per checkpoint, seconds on a CPU
for this model (bench/RESULTS.md). A poke (new checkpoints) wakes the thread; it estimates
the checkpoints without an estimate one at a time in `order_to_fill` order (the curve's
whole shape first), each row cached at once, and hands each estimate to `on_result`.

While a trainer shares the machine (`share` < 1), the thread works at most that share of the
wall-clock time, in small pieces: after each burst of 8 SGLD steps (llc.STEPS_PER_CHECK)
that kept it busy t seconds it rests t (1 / share - 1) seconds (less if training ends
meanwhile), so no stretch of training competes with it for long. TRAINING_SHARE's effect on
training speed is measured by bench/llc.py (bench/RESULTS.md). With nothing training,
share 1: it works flat out, at analysis priority. Stopping ends the estimate in flight
within 8 steps (it is dropped) and the rest at once.

One service estimates a run at a time, whichever processes have one open (a viewer and a
headless trainer): it holds the run's claim (llc_claim.py) while it has checkpoints to
estimate. Another waits, looking again every `CLAIM_RECHECK_S`, and hands the holder's rows
to `on_result` as they are written; it takes over when the holder is done, stops or dies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.threads import ANALYSIS_NICENESS, WakeableThread, lower_this_thread
from grok_tui.engine.store.runs import Run, RunError

if TYPE_CHECKING:  # torch is loaded by the thread, not by whoever imports this module
    from grok_tui.engine.measures.llc_checkpoint import LLCSummary

TRAINING_SHARE = 0.05  # of wall-clock time, while a trainer runs on this machine
START_AFTER_S = 3.0  # a viewer's first seconds go to its records, snapshot and first paint
CLAIM_RECHECK_S = 2.0  # how often a service waiting on another's claim looks again


class LLCService(WakeableThread):
    """Keeps the LLC estimates of a run's checkpoints up to date, in the background."""

    def __init__(
        self,
        run: Run,
        device: str,
        on_result: Callable[[LLCSummary], None],
        share: float | Callable[[], float] = 1.0,
        start_after_s: float = 0.0,
    ) -> None:
        self.run = run
        self.device = device
        self.on_result = on_result
        # The share of wall-clock time this thread may work (1: no rest), or a function
        # that says it now (the app's: TRAINING_SHARE while a trainer runs, else 1).
        self.share = share
        self.error = ""  # why the last estimate failed ('' once one succeeds)
        self.note = ""  # who estimates instead of this service ('' while it may)
        self.computed: list[int] = []  # epochs estimated, in order (what tests look at)
        self.busy_s = 0.0  # seconds spent estimating
        self._idle = threading.Event()
        self._cache: Any = None  # llc_checkpoint.LLCCache
        self._claim: Any = None  # llc_claim.LLCClaim (None: a read-only run takes none)
        self._handed: dict[int, Any] = {}  # the summaries given to on_result, by epoch
        self.start_after_s = start_after_s
        self._start("grok-llc")

    def drain(self, timeout: float | None = None) -> bool:
        """Poke, then wait until every checkpoint has an estimate (True) or the timeout."""
        self._idle.clear()
        self.poke()
        return self._idle.wait(timeout)

    def share_now(self) -> float:
        share = self.share() if callable(self.share) else self.share
        return min(max(float(share), 1e-3), 1.0)

    def _rest(self, busy: float) -> None:
        """Rest busy (1 / share - 1) seconds, the share looked at again every half second
        (training may end meanwhile)."""
        start = time.monotonic()
        while not self._stopped.is_set():
            share = self.share_now()
            left = busy * (1.0 / share - 1.0) - (time.monotonic() - start)
            if share >= 1.0 or left <= 0:
                return
            self._stopped.wait(min(left, 0.5))

    def _loop(self) -> None:
        lower_this_thread(ANALYSIS_NICENESS)
        wait: float | None = None
        try:
            self._stopped.wait(self.start_after_s)
            while not self._stopped.is_set():
                self._wake.wait(wait)
                self._wake.clear()
                wait = self._pass()
                if wait is None and not self._wake.is_set():
                    self._idle.set()
        finally:
            if self._claim is not None:
                self._claim.release()
            self._idle.set()

    def _hand(self, summary: LLCSummary) -> None:
        self._handed[summary.epoch] = summary
        self.on_result(summary)

    def _hand_theirs(self, afresh: bool = False) -> None:
        """Hand over the estimates another service wrote since the last look (`afresh`: the
        cache read again whatever its size, before estimating)."""
        found = self._cache.rescan() if afresh else self._cache.scan()
        for epoch, summary in sorted(found.items()):
            if not summary.same(self._handed.get(epoch)):
                self._hand(summary)

    def _pass(self) -> float | None:
        """Estimate what is missing; the seconds until the next look (None: all done)."""
        try:
            if self._cache is None:
                from grok_tui.engine.measures.llc_checkpoint import LLCCache
                from grok_tui.engine.measures.llc_claim import LLCClaim

                self._cache = LLCCache(self.run, self.device)
                self._claim = None if self.run.read_only else LLCClaim(self.run)
            if self._claim is not None and not self._claim.take():
                self.note = self._claim.describe()
                self._hand_theirs()
                return CLAIM_RECHECK_S
            self.note = ""
            try:
                self._hand_theirs(afresh=True)  # another may have written since the last look
                return self._estimate()
            finally:
                if self._claim is not None:
                    self._claim.release()
        except RunError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bug must not kill the viewer: say it, keep going
            self.error = f"learning coefficient failed: {type(exc).__name__}: {exc}"
        return None

    def _estimate(self) -> float | None:
        """Estimate the checkpoints without one while holding the claim (None: all done)."""
        stop = self._stopped.is_set
        claim = self._claim
        lost = False
        mark = time.perf_counter()

        def paced() -> bool:
            """Called between bursts of SGLD steps: rest for the time just worked."""
            nonlocal mark, lost
            busy = time.perf_counter() - mark
            self.busy_s += busy
            # What the burst freed goes back to the OS before the rest (most of the time
            # while training): the first full-train forward's ~20 MB otherwise stayed
            # resident through the whole estimate (bench/RESULTS.md, issue 27).
            release_free_memory()
            self._rest(busy)
            mark = time.perf_counter()
            if claim is not None:
                claim.refresh()
                lost = not claim.still_mine()  # taken over: drop the estimate in flight
            return stop() or lost

        while not stop():
            todo = self._cache.todo()
            if not todo:
                return None
            mark = time.perf_counter()
            summary = self._cache.compute(todo[0], paced)
            release_free_memory()
            if lost:
                return CLAIM_RECHECK_S
            if summary is not None:
                self.computed.append(summary.epoch)
                self.error = ""
                self._hand(summary)
            if paced() and lost:
                return CLAIM_RECHECK_S
        return None
