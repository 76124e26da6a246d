"""The local learning coefficient of a run's checkpoints (engine/measures/llc.py has the
maths), with its settings for this model, and its rows in the measures cache.

The loss is the train set's mean cross-entropy over the p + 1 classes of the trainer's
softmax (the negative log-likelihood SLT is about, whatever loss the run trained on), over
the parameters training moves (not the frozen biases). Minibatches are drawn with
replacement from the train set by the chain's generator. L(w*) is the full train loss. Every
op has one: no circuit is needed.

Settings (`LLC_SETTINGS`), calibrated on quick-preset checkpoints (p = 53; bench/llc.py
and bench/RESULTS.md, "The local learning coefficient", say how):

- nbeta = m / log m for the minibatch size m = 256 (devinterp's default): 46.2,
- gamma = 100: the weakest localisation of a grid (100, 1,000, 10,000) that keeps every
  chain bounded; 1,000 and more made the estimate the localisation's (after memorisation
  1.7 and 0.07 where gamma 100 gives 156),
- epsilon = 3e-4: the smaller step of the plateau where the chains are flat after burn-in
  and the estimate stops moving with the step (3e-4 and 1e-3 within 3-13%; 1e-4 and less
  still drifting after 100 + 150 steps),
- 4 chains x (100 burn-in + 200 draws) = 1,200 steps: the per-checkpoint budget.

Stored as one row per checkpoint in RUN/measures.jsonl (kind "llc"): the estimate, its
spread over chains, L(w*), the settings, the seconds it took, and every chain's loss trace
(rounded to 6 significant digits) to inspect. A row made with other settings is ignored
(and made again).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import cross_entropy
from grok_tui.engine.core.model import GrokModel
from grok_tui.engine.measures.llc import LLCEstimate, SGLDSettings, default_nbeta, estimate_llc
from grok_tui.engine.store.runs import Run, RunError

LLC_VERSION = 1
BATCH_SIZE = 256
LLC_SETTINGS = SGLDSettings(
    epsilon=3e-4,
    gamma=100.0,
    nbeta=default_nbeta(BATCH_SIZE),
    chains=4,
    draws=200,
    burn_in=100,
    seed=0,
)


@dataclass(frozen=True, eq=False)
class LLCSummary:
    """One checkpoint's stored estimate (what the progress table shows)."""

    epoch: int
    llc: float
    llc_std: float
    init_loss: float
    seconds: float
    trace: np.ndarray  # (chains, burn_in + draws)

    def same(self, other: LLCSummary | None) -> bool:
        """The same estimate (NaN equal to NaN)."""
        if other is None:
            return False
        mine = (self.epoch, self.llc, self.llc_std, self.init_loss, self.seconds)
        theirs = (other.epoch, other.llc, other.llc_std, other.init_loss, other.seconds)
        return all(a == b or (a != a and b != b) for a, b in zip(mine, theirs, strict=True))


def checkpoint_llc(
    cfg: RunConfig,
    weights: Mapping[str, torch.Tensor],
    settings: SGLDSettings | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> LLCEstimate | None:
    """The LLC of one checkpoint's weights on its run's train set (None: asked to stop),
    with LLC_SETTINGS and BATCH_SIZE unless given."""
    settings = LLC_SETTINGS if settings is None else settings
    batch_size = BATCH_SIZE if batch_size is None else batch_size
    device = torch.device(device)
    model = GrokModel.from_classic(cfg, weights).to(device)
    data = make_dataset(cfg).to(device)
    idx = data.train_idx
    x, y, labels = data.x[idx], data.y[idx], data.labels[idx]
    n = len(idx)
    if n == 0:
        raise ValueError("the run has no train examples: no learning coefficient")
    with torch.no_grad():
        init_loss = float(cross_entropy(model.last_logits(x, y), labels))

    def batch_loss(generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(n, (min(batch_size, n),), generator=generator, device=device)
        return cross_entropy(model.last_logits(x[rows], y[rows]), labels[rows])

    params = [w for w in model.parameters() if w.requires_grad]
    return estimate_llc(params, batch_loss, init_loss, settings, should_stop, device)


# -- rows ------------------------------------------------------------------------------------


def settings_json(settings: SGLDSettings | None = None, batch_size: int | None = None) -> dict:
    """The settings as a row stores them (default: those in use)."""
    settings = LLC_SETTINGS if settings is None else settings
    return {**settings.to_dict(), "batch_size": BATCH_SIZE if batch_size is None else batch_size}


def _round(values: np.ndarray) -> list:
    return [[float(f"{v:.6g}") if math.isfinite(v) else None for v in row] for row in values]


def llc_row(epoch: int, estimate: LLCEstimate, batch_size: int | None = None) -> dict[str, Any]:
    """The cache row of one checkpoint's estimate (JSON-ready; NaN as null)."""

    def clean(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return {
        "epoch": int(epoch),
        "kind": "llc",
        "version": LLC_VERSION,
        "llc": clean(estimate.llc),
        "llc_std": clean(estimate.llc_std),
        "init_loss": clean(estimate.init_loss),
        "diverged": estimate.diverged,
        "seconds": round(estimate.seconds, 3),
        "settings": settings_json(estimate.settings, batch_size),
        "chain_llc": [clean(v) for v in estimate.chain_llc],
        "trace": _round(estimate.trace),
    }


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def parse_llc_row(row: Mapping[str, Any], settings: dict | None = None) -> LLCSummary | None:
    """A cache row made with these settings (default: LLC_SETTINGS) as a summary; None if
    it is not one (another kind, version or settings, a malformed trace)."""
    settings = settings_json() if settings is None else settings
    epoch = row.get("epoch")
    if (
        row.get("kind") != "llc"
        or row.get("version") != LLC_VERSION
        or row.get("settings") != settings
        or not isinstance(epoch, int)
        or isinstance(epoch, bool)
    ):
        return None
    try:
        trace = np.asarray(
            [[math.nan if v is None else v for v in r] for r in row.get("trace", [])],
            dtype=np.float64,
        )
    except (TypeError, ValueError):
        return None
    if trace.ndim != 2:
        trace = np.zeros((0, 0))
    return LLCSummary(
        epoch=epoch,
        llc=_num(row.get("llc")),
        llc_std=_num(row.get("llc_std")),
        init_loss=_num(row.get("init_loss")),
        seconds=_num(row.get("seconds")),
        trace=trace,
    )


# -- a run's estimates -----------------------------------------------------------------------


def order_to_fill(epochs: list[int], done: set[int]) -> list[int]:
    """The checkpoints without an estimate, in the order to estimate them: each next one the
    farthest (in checkpoints) from any estimated one, the newest first among equals. The
    curve takes its whole shape early and sharpens as estimates come, rather than filling
    from one end while the other stays empty."""
    todo = [e for e in epochs if e not in done]
    index = {e: i for i, e in enumerate(epochs)}
    have = [index[e] for e in epochs if e in done]
    order: list[int] = []
    while todo:

        def gap(e: int) -> tuple[float, int]:
            i = index[e]
            return (min((abs(i - j) for j in have), default=math.inf), e)

        best = max(todo, key=gap)
        order.append(best)
        todo.remove(best)
        have.append(index[best])
    return order


class LLCCache:
    """The LLC estimates of one run's checkpoints (rows of kind "llc" in its measures cache),
    and the computing of those missing. A read-only run keeps the rows it makes in memory."""

    def __init__(self, run: Run, device: str | torch.device = "cpu") -> None:
        self.run = run
        self.cfg = run.meta().config
        self.device = device
        self.estimates: dict[int, LLCSummary] = {}
        self.bad: dict[int, str] = {}  # checkpoints that could not be read, and why
        self._scanned = -1

    def scan(self) -> dict[int, LLCSummary]:
        """The estimates cached so far (re-read when the cache file changed)."""
        try:
            size = self.run.measures_path.stat().st_size
        except OSError:
            size = 0
        if size != self._scanned:
            self._scanned = size
            for row in self.run.read_measures():
                if (summary := parse_llc_row(row)) is not None:
                    self.estimates[summary.epoch] = summary
        return self.estimates

    def rescan(self) -> dict[int, LLCSummary]:
        """The estimates cached so far, the file read again whatever its size (a
        compaction may leave it the size it had)."""
        self._scanned = -1
        return self.scan()

    def todo(self) -> list[int]:
        """Checkpoints without an estimate, in `order_to_fill`."""
        epochs = [e for e in self.run.checkpoint_epochs() if e not in self.bad]
        return order_to_fill(epochs, set(self.scan()))

    def compute(
        self, epoch: int, should_stop: Callable[[], bool] | None = None
    ) -> LLCSummary | None:
        """Estimate one checkpoint and cache the row (None: stopped, or unreadable)."""
        try:
            weights = self.run.load_checkpoint(epoch, self.cfg)
        except RunError as exc:
            self.bad[epoch] = str(exc)
            return None
        estimate = checkpoint_llc(self.cfg, weights, device=self.device, should_stop=should_stop)
        if estimate is None:
            return None
        row = llc_row(epoch, estimate)
        self.run.append_measures([row])
        summary = parse_llc_row(row)
        assert summary is not None  # a row just made with the settings in use
        self.estimates[epoch] = summary
        return summary
