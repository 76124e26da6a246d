"""The engine as a library, for notebooks.

    from grok_tui import open_run
    run = open_run("runs/a")
    run.epochs                      # checkpoint epochs, ascending
    m = run.metrics()               # numpy columns: m["epoch"], m["train_loss"], ...
    w = run.weights(10_000)         # classic HookedTransformer names -> torch tensors
    model = run.model(10_000)       # a TransformerLens model holding those weights
    logits, cache = model.run_with_cache(run.tokens())
    snap = run.snapshot(10_000)     # the app's analysis of one checkpoint (numpy arrays)
    table = run.measures()          # progress measures of every checkpoint, and phases
    table["softmax_collapse"]       # ... the numerical view among them (one per checkpoint)
    n = run.numerics(10_000)        # one checkpoint's, with per-example gaps and losses
    c = run.llc()                   # the local learning coefficient per checkpoint (SGLD)
    c["llc"], c["trace"]            # ... and every chain's loss trace, to inspect
    r = run.ablate(10_000, heads=[0], freqs=[14])  # intact and ablated loss and accuracy
    r.as_dict()                     # {"epoch", "base", "ablated", "ablations"}

Every method reads the run directory as it is now, so a run that is still training can be
opened and read again. `epoch=None` means the newest checkpoint. TransformerLens (~3 s to
import) is loaded by `model()` only.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from grok_tui.engine.store.rows import METRIC_KEYS
from grok_tui.engine.store.runs import Run, RunError

if TYPE_CHECKING:
    import torch

    from grok_tui.engine.core.config import RunConfig
    from grok_tui.engine.core.data import Dataset
    from grok_tui.engine.measures.ablate import AblationResult
    from grok_tui.engine.measures.analysis import Analyzer, Snapshot
    from grok_tui.engine.measures.progress import ProgressTable


class GrokRun:
    """One run directory, read for analysis (never written, except the measures cache)."""

    def __init__(self, run: Run, device: str = "cpu") -> None:
        self.run = run
        self.device = device
        self._analyzer: Analyzer | None = None

    def __repr__(self) -> str:
        return f"GrokRun({str(self.run.path)!r}, {len(self.epochs)} checkpoints)"

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def config(self) -> RunConfig:
        return self.run.meta().config

    @property
    def epochs(self) -> list[int]:
        """The epochs that have a checkpoint, ascending."""
        return self.run.checkpoint_epochs()

    def _epoch(self, epoch: int | None) -> int:
        epochs = self.epochs
        if not epochs:
            raise RunError(f"{self.run.path} has no checkpoints yet")
        if epoch is None:
            return epochs[-1]
        try:
            if isinstance(epoch, bool):
                raise TypeError
            epoch = operator.index(epoch)  # ints, numpy ints; not 50.0, not a tensor of 50.
        except TypeError:
            raise RunError(f"an epoch is an integer (or None: the newest), not {epoch!r}") from None
        if epoch not in epochs:
            raise RunError(f"no checkpoint at epoch {epoch} (have {epochs[0]}..{epochs[-1]})")
        return epoch

    def metrics(self) -> dict[str, np.ndarray]:
        """metrics.jsonl as numpy columns (float64; missing values NaN), one row per epoch."""
        rows = self.run.read_metrics()
        return {
            key: np.array([row.get(key, np.nan) for row in rows], dtype=np.float64)
            for key in METRIC_KEYS
        }

    def weights(self, epoch: int | None = None) -> dict[str, torch.Tensor]:
        """The checkpoint's weights under the classic HookedTransformer names."""
        return self.run.load_checkpoint(self._epoch(epoch), self.config)

    def model(self, epoch: int | None = None) -> Any:
        """A TransformerLens model with the checkpoint's weights: hooks, `run_with_cache`."""
        from grok_tui.engine.core.tl import hooked_model

        return hooked_model(self.config, self.weights(epoch), self.device)

    def dataset(self) -> Dataset:
        """Every input [x, y, =] (flat index x * p + y), labels, and the run's train/test split."""
        from grok_tui.engine.core.data import make_dataset

        return make_dataset(self.config)

    def tokens(self) -> torch.Tensor:
        """All p^2 inputs as a (p^2, 3) token tensor, in the order of `dataset()`."""
        return self.dataset().tokens.to(self.device)

    def _analysis(self) -> Analyzer:
        """One Analyzer for this run's config, reused across calls."""
        from grok_tui.engine.measures.analysis import Analyzer

        cfg = self.config
        if self._analyzer is None or self._analyzer.cfg != cfg:
            self._analyzer = Analyzer(cfg, self.device)
        return self._analyzer

    def snapshot(self, epoch: int | None = None) -> Snapshot:
        """The app's analysis of one checkpoint: a Snapshot of numpy arrays."""
        analyzer = self._analysis()
        e = self._epoch(epoch)
        return analyzer.snapshot(self.run.load_checkpoint(e, analyzer.cfg), e)

    def ablate(
        self,
        epoch: int | str | None = None,
        heads: Iterable[int] = (),
        neurons: Iterable[int] = (),
        clusters: Iterable[int] = (),
        freqs: Iterable[int] = (),
        keep_freqs: Iterable[int] | None = None,
        mode: str = "zero",
    ) -> AblationResult | list[AblationResult]:
        """Train/test loss and accuracy of the intact and the ablated model at a checkpoint
        (`epoch="all"`: a list, one per checkpoint). Heads' outputs and neurons' activations
        are zeroed or replaced by their mean (`mode`); clusters are the analysis' (by
        frequency, -1 unclustered); `freqs` are removed from the logits, `keep_freqs` kept
        alone. See grok_tui/engine/measures/ablate.py."""
        from grok_tui.engine.measures.ablate import Ablation, ablate_run, replay

        spec = Ablation.of(heads, neurons, clusters, freqs, keep_freqs, mode)
        if epoch == "all":
            return replay(self.run, spec, self.device, self._analysis())
        if isinstance(epoch, str):
            raise RunError(f"epoch {epoch!r} is neither a checkpoint's epoch nor 'all'")
        return ablate_run(self.run, spec, self._epoch(epoch), self.device, self._analysis())

    def numerics(self, epoch: int | None = None) -> dict[str, Any]:
        """The numerical view of one checkpoint (Prieto et al. 2025), from a forward pass:
        `softmax_collapse`, `zero_loss`, `logit_gap_p10/p50/p90`, and per train example
        `logit_gap`, `collapsed`, `loss` (numpy). See grok_tui/engine/measures/numerics.py;
        over every checkpoint the scalars are columns of `measures()`."""
        from grok_tui.engine.measures.numerics import checkpoint_numerics

        analyzer = self._analysis()
        return checkpoint_numerics(
            analyzer, self.run.load_checkpoint(self._epoch(epoch), analyzer.cfg)
        )

    def llc(self, epochs: Iterable[int] | None = None, compute: bool = True) -> dict[str, Any]:
        """The local learning coefficient (SGLD; grok_tui/engine/measures/llc.py) of the
        checkpoints `epochs` (None: every one), cached in measures.jsonl; those without an
        estimate are estimated now (a few seconds each on a CPU) unless `compute` is False
        (then NaN). Numpy columns `epoch`, `llc`, `llc_std` (over chains), `init_loss`
        (L(w*)), `seconds`, and `trace` (checkpoints x chains x steps: every chain's
        minibatch loss at every step, burn-in first), with the sampler's `settings`."""
        from grok_tui.engine.measures.llc_checkpoint import LLCCache, settings_json

        cache = LLCCache(self.run, self.device)
        if epochs is not None and (
            isinstance(epochs, (str, bytes)) or not isinstance(epochs, Iterable)
        ):
            raise RunError(f"epochs is a list of checkpoint epochs (or None: all), not {epochs!r}")
        chosen = self.epochs if epochs is None else [self._epoch(e) for e in epochs]
        found = cache.scan()
        if compute:
            for epoch in chosen:
                if epoch not in found and cache.compute(epoch) is None:
                    raise RunError(cache.bad.get(epoch, f"no estimate at epoch {epoch}"))
        got = [found.get(e) for e in chosen]
        nan = float("nan")
        shape = next((g.trace.shape for g in got if g is not None), (0, 0))
        traces = [
            g.trace if g is not None and g.trace.shape == shape else np.full(shape, nan)
            for g in got
        ]
        return {
            "epoch": np.array(chosen, dtype=np.int64),
            "llc": np.array([nan if g is None else g.llc for g in got]),
            "llc_std": np.array([nan if g is None else g.llc_std for g in got]),
            "init_loss": np.array([nan if g is None else g.init_loss for g in got]),
            "seconds": np.array([nan if g is None else g.seconds for g in got]),
            "trace": np.stack(traces) if traces else np.zeros((0, *shape)),
            "settings": settings_json(),
        }

    def measures(self) -> ProgressTable:
        """Progress measures of every checkpoint (cached in measures.jsonl), with `.phases()`."""
        from grok_tui.engine.measures.progress import progress_table

        return progress_table(self.run, self.device)


def open_run(path: str | Path, device: str | torch.device = "cpu") -> GrokRun:
    """Open a run directory for analysis on `device` ('cpu', 'cuda', 'auto', ...); raises
    RunError (one line) if it is not one, DeviceError for a device this machine lacks."""
    import torch

    from grok_tui.engine.core.device import DeviceError, resolve_device

    if not isinstance(path, (str, os.PathLike)):
        raise RunError(f"a run is a directory's path, not {path!r}")
    if isinstance(device, torch.device):
        device = str(device)
    try:
        device = resolve_device(device)
    except DeviceError as exc:  # the CLI's words name its flag; a notebook has none
        raise DeviceError(str(exc).removeprefix("--")) from None
    return GrokRun(Run.open_to_read(path), device)
