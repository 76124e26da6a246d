"""Ablations on the exact last-position forward: what the model loses without a part.

One `Ablation` names what is removed, and every ablation combines:

- heads: a head's output at the last position (its attention-weighted values through W_O,
  `hook_result[:, -1, h]` in TransformerLens) is zeroed, or replaced by its mean over all
  inputs (mode "mean");
- neurons: their post-ReLU activations at the last position (`mlp.hook_post[:, -1]`),
  zeroed or replaced by their mean over inputs;
- clusters: every neuron of a cluster as the analysis defines them (engine/measures/
  analysis.py: a key frequency, or -1 for the unclustered), taken at the checkpoint
  ablated (for a replay, at the newest checkpoint);
- freqs: the logits' components along the op's circuit directions cos/sin(w_k(x+y)) of
  each frequency k removed (the paper's excluded logits, over all inputs);
- keep_freqs: the logits replaced by their mean over inputs plus their components along
  those frequencies only (the paper's restricted logits); with `freqs` too, the frequencies
  kept are keep_freqs less freqs.

Means are over all inputs of the intact model (mean ablation as TransformerLens users
write it: from a clean cache). Head and neuron ablations act on the forward itself (the
per-token tables of engine/core/fastpath.py); frequency ablations then act on its logits
over the p number classes, whose losses and accuracies are the analysis' (`Analyzer`).
tests/test_ablate.py pins heads and neurons to TransformerLens `run_with_hooks`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grok_tui.engine.core import fourier, ops
from grok_tui.engine.core.fastpath import Tables, attention_pattern
from grok_tui.engine.measures.analysis import UNCLUSTERED, Analyzer, clusters_from
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.errors import UserError

MODES = ("zero", "mean")
SCORES = ("train_loss", "test_loss", "train_acc", "test_acc")


class AblationError(UserError, ValueError):
    """An ablation that names a head, neuron, cluster or frequency the model lacks."""


@dataclass(frozen=True)
class Ablation:
    """What to ablate (see the module docstring); the empty spec ablates nothing."""

    heads: tuple[int, ...] = ()
    neurons: tuple[int, ...] = ()
    clusters: tuple[int, ...] = ()
    freqs: tuple[int, ...] = ()
    keep_freqs: tuple[int, ...] | None = None
    mode: str = "zero"

    @classmethod
    def of(
        cls,
        heads: Iterable[int] = (),
        neurons: Iterable[int] = (),
        clusters: Iterable[int] = (),
        freqs: Iterable[int] = (),
        keep_freqs: Iterable[int] | None = None,
        mode: str = "zero",
    ) -> Ablation:
        """A spec from any iterables of integers (sorted, duplicates dropped); AblationError
        for anything else. Before, a notebook's `neurons='123'` ablated neurons 1, 2 and 3
        and `heads=[0.9]` head 0, without a word."""

        def norm(name: str, values: Iterable[int]) -> tuple[int, ...]:
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise AblationError(f"{name} must be a list of integers, not {values!r}")
            out = set()
            for v in values:
                try:
                    if isinstance(v, bool):
                        raise TypeError
                    out.add(operator.index(v))  # ints, numpy ints; not floats, not arrays
                except TypeError:
                    raise AblationError(f"{name} must be integers, got {v!r}") from None
            return tuple(sorted(out))

        keep = None if keep_freqs is None else norm("keep_freqs", keep_freqs)
        if not isinstance(mode, str):
            raise AblationError(f"unknown ablation mode {mode!r} (choose zero or mean)")
        return cls(norm("heads", heads), norm("neurons", neurons), norm("clusters", clusters),
                   norm("freqs", freqs), keep, mode)  # fmt: skip

    def check(self, cfg: Any) -> None:
        """Raise AblationError (one line) for anything this config's model lacks."""
        if self.mode not in MODES:
            raise AblationError(f"unknown ablation mode {self.mode!r} (choose zero or mean)")
        _check_range("head", self.heads, cfg.n_heads)
        _check_range("neuron", self.neurons, cfg.d_mlp)
        n_freqs = fourier.n_freqs(cfg.p)
        for k in (*self.freqs, *(self.keep_freqs or ())):
            if not 1 <= k <= n_freqs:
                raise AblationError(f"no frequency {k} (p = {cfg.p} has frequencies 1..{n_freqs})")
        if (self.freqs or self.keep_freqs is not None) and not ops.has_circuit_directions(cfg.op):
            raise AblationError(f"op {cfg.op!r} has no Fourier circuit: no frequency ablations")

    def as_dict(self, cluster_neurons: Mapping[int, list[int]] | None = None) -> dict[str, Any]:
        """JSON form; `cluster_neurons` (cluster -> neurons it resolved to) when known."""
        out: dict[str, Any] = {
            "heads": list(self.heads),
            "neurons": list(self.neurons),
            "clusters": list(self.clusters),
            "freqs": list(self.freqs),
            "keep_freqs": None if self.keep_freqs is None else list(self.keep_freqs),
            "mode": self.mode,
        }
        if cluster_neurons is not None:
            out["cluster_neurons"] = {str(c): list(n) for c, n in cluster_neurons.items()}
        return out


def _check_range(what: str, values: tuple[int, ...], size: int) -> None:
    for v in values:
        if not 0 <= v < size:
            raise AblationError(f"no {what} {v} (the model has {what}s 0..{size - 1})")


@dataclass
class AblationResult:
    """The four scores of the intact and the ablated model at one checkpoint."""

    epoch: int
    base: dict[str, float]
    ablated: dict[str, float]
    ablation: Ablation
    cluster_neurons: dict[int, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "base": dict(self.base),
            "ablated": dict(self.ablated),
            "ablations": self.ablation.as_dict(self.cluster_neurons),
        }


class Ablator:
    """Runs ablations for one config, reusing an `Analyzer` (its model, inputs and split)."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        a, cfg = analyzer, analyzer.cfg
        self.p = cfg.p
        # The dataset's inputs as indices of the p^2 grid the circuit directions live on.
        self.grid_rows = (a.plan.x * cfg.p + a.plan.y).long()

    def clusters(self, weights: Mapping[str, torch.Tensor]) -> dict[int, np.ndarray]:
        """The analysis' clusters of a checkpoint: frequency (or -1) -> neuron indices."""
        a = self.analyzer
        with torch.no_grad():
            _, last = a.run(weights)
            frac, freq_idx = a.neuron_shares(last.post).max(dim=0)
        freq = freq_idx.cpu().numpy().astype(np.int64) + 1
        return clusters_from(freq, frac.cpu().numpy())[1]

    def cluster_neurons(
        self, spec: Ablation, weights: Mapping[str, torch.Tensor], epoch: int
    ) -> dict[int, list[int]]:
        """The neurons of each cluster the spec names, as the analysis defines them at
        these weights; AblationError for a cluster that does not exist there."""
        if not spec.clusters:
            return {}
        clusters = self.clusters(weights)
        out = {}
        for c in spec.clusters:
            members = clusters.get(c)
            if members is None or (c != UNCLUSTERED and not len(members)):
                have = ", ".join(str(k) for k in clusters if k != UNCLUSTERED) or "none"
                raise AblationError(
                    f"no cluster {c} at epoch {epoch} (its clusters: {have}; -1: unclustered)"
                )
            out[c] = [int(n) for n in members]
        return out

    def ablate(
        self,
        weights: Mapping[str, torch.Tensor],
        spec: Ablation,
        epoch: int = 0,
        cluster_neurons: dict[int, list[int]] | None = None,
    ) -> AblationResult:
        """Scores of the intact and the ablated model for one checkpoint's weights."""
        spec.check(self.analyzer.cfg)
        if cluster_neurons is None:
            cluster_neurons = self.cluster_neurons(spec, weights, epoch)
        a = self.analyzer
        base_logits, ablated_logits = self.logits(weights, spec, cluster_neurons)
        base = dict(zip(SCORES, a.split_losses(base_logits), strict=True))
        ablated = dict(zip(SCORES, a.split_losses(ablated_logits), strict=True))
        return AblationResult(int(epoch), base, ablated, spec, cluster_neurons)

    def logits(
        self,
        weights: Mapping[str, torch.Tensor],
        spec: Ablation,
        cluster_neurons: Mapping[int, list[int]] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(intact, ablated) logits over the p number classes for every input, (n, p)."""
        a, p = self.analyzer, self.p
        neurons = set(spec.neurons)
        for members in (cluster_neurons or {}).values():
            neurons.update(members)
        with torch.no_grad():
            tables, last = a.run(weights)
            base = last.logits[:, :p]
            if not spec.heads and not neurons:
                logits = base
            else:
                logits = self._forward(tables, spec.heads, sorted(neurons), spec.mode)[:, :p]
            logits = self._frequencies(logits, spec)
        return base.clone(), logits

    def _forward(
        self, tables: Tables, heads: tuple[int, ...], neurons: list[int], mode: str
    ) -> torch.Tensor:
        """The last-position forward with heads' outputs and neurons' activations ablated.

        Each table row holds a key's value through W_O and on through W_in (or W_U) plus a
        constant share: a head's output as read by the MLP is its pattern-weighted rows less
        that constant; it is linear in the output, so its mean reads the same way.
        """
        plan = self.analyzer.plan
        h = plan.n_heads
        pattern = attention_pattern(tables, plan)  # (B, h, 3)
        flat = pattern.reshape(plan.batch, -1)
        pre = _bag(flat, tables.to_mlp, plan.idx)
        direct = _bag(flat, tables.to_logits, plan.idx)
        for head in heads:
            only = torch.zeros_like(pattern)
            only[:, head] = pattern[:, head]
            only = only.reshape(plan.batch, -1)
            # The head's rows with the constant share removed: pattern-weighted rows of
            # this head minus (const / h); const / h is any one row's constant part, so
            # read it as the head's output at the mean (linear in the output).
            for out, table in ((pre, tables.to_mlp), (direct, tables.to_logits)):
                head_part = _bag(only, table, plan.idx) - self._head_constant(tables, table, h)
                if mode == "mean":
                    out -= head_part - head_part.mean(dim=0)
                else:
                    out -= head_part
        post = torch.relu(pre)
        if neurons:
            idx = torch.as_tensor(neurons, device=post.device)
            if mode == "mean":
                intact = torch.relu(_bag(flat, tables.to_mlp, plan.idx))
                post[:, idx] = intact[:, idx].mean(dim=0)
            else:
                post[:, idx] = 0.0
        return direct + post @ tables.w_l[0]

    def _head_constant(self, tables: Tables, table: torch.Tensor, n_heads: int) -> torch.Tensor:
        """const / h of a table (see fastpath.member_tables), from the model's weights."""
        m = self.analyzer.model
        eq_resid = m.W_E[self.p] + m.W_pos[2] + m.b_O
        if table is tables.to_mlp:
            const = eq_resid @ m.W_in + m.b_in
        else:
            const = eq_resid @ m.W_U + m.b_out @ m.W_U + m.b_U
        return const / n_heads

    def _frequencies(self, logits: torch.Tensor, spec: Ablation) -> torch.Tensor:
        """Logits less the removed frequencies' components, or the mean plus the kept ones'."""
        if not spec.freqs and spec.keep_freqs is None:
            return logits
        if spec.keep_freqs is not None:
            keep = [k for k in spec.keep_freqs if k not in spec.freqs]
            mean = logits.mean(dim=0, keepdim=True)
            return mean + self._projection(logits, keep)
        return logits - self._projection(logits, list(spec.freqs))

    def _projection(self, logits: torch.Tensor, freqs: list[int]) -> torch.Tensor:
        """The logits' components along the op's circuit directions of these frequencies."""
        if not freqs:
            return torch.zeros_like(logits)
        cfg = self.analyzer.cfg
        dirs = ops.circuit_directions(
            cfg.op, cfg.p, freqs, device=logits.device, dtype=torch.float64
        )
        dirs = dirs[:, self.grid_rows]  # (2|S|, n): the dataset's inputs
        proj = dirs.T @ (dirs @ logits.to(torch.float64))
        return proj.to(logits.dtype)


def _bag(weights: torch.Tensor, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Each example's rows of a (1, R, k) table weighted by its pattern: (B, k)."""
    flat = table.reshape(-1, table.shape[2])
    return F.embedding_bag(idx, flat, per_sample_weights=weights, mode="sum")


# -- runs ------------------------------------------------------------------------------------


def ablate_run(
    run: Run,
    spec: Ablation,
    epoch: int | None = None,
    device: str | torch.device = "cpu",
    analyzer: Analyzer | None = None,
) -> AblationResult:
    """One checkpoint of a run (the newest if `epoch` is None), intact and ablated."""
    cfg = run.meta().config
    spec.check(cfg)
    epoch = _checkpoint(run, epoch)
    ablator = Ablator(analyzer or Analyzer(cfg, device))
    return ablator.ablate(run.load_checkpoint(epoch, cfg), spec, epoch)


def replay(
    run: Run,
    spec: Ablation,
    device: str | torch.device = "cpu",
    analyzer: Analyzer | None = None,
) -> list[AblationResult]:
    """Every checkpoint, intact and ablated, ascending. Clusters are those of the newest
    checkpoint (the trained model's), the same neurons ablated at every epoch."""
    cfg = run.meta().config
    spec.check(cfg)
    epochs = run.checkpoint_epochs()
    if not epochs:
        raise RunError(f"{run.path} has no checkpoints yet")
    ablator = Ablator(analyzer or Analyzer(cfg, device))
    clusters = ablator.cluster_neurons(spec, run.load_checkpoint(epochs[-1], cfg), epochs[-1])
    return [ablator.ablate(run.load_checkpoint(e, cfg), spec, e, clusters) for e in epochs]


def _checkpoint(run: Run, epoch: int | None) -> int:
    epochs = run.checkpoint_epochs()
    if not epochs:
        raise RunError(f"{run.path} has no checkpoints yet")
    if epoch is None:
        return epochs[-1]
    if epoch not in epochs:
        raise RunError(f"no checkpoint at epoch {epoch} (have {epochs[0]}..{epochs[-1]})")
    return epoch
