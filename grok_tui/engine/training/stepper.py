"""Stepping M models of one shape as one batched model: pure tensors, no files.

Every trained weight of every member lives in one (M, P) tensor, a row per member, so the
forward takes views of it with a leading member axis, and the gradient of all members is
one preallocated (M, P) tensor, written in place each epoch by the closed-form step
(engine/core/closed_form.py: the forward and backward by hand, no autograd graph). Each
member's loss is the mean over its own train set and the step minimises their sum, whose
gradient with respect to a member's row is that member's own gradient: members never mix.
`gradient="autograd"` computes the same gradient with autograd through `fastpath` (the
reference the tests compare with; tests/test_closed_form.py).

AdamW is torch's own (the functional `adamw`, fused where the device has it), called once
per set of members that share hyperparameters this step, on their rows: a member's update
is bit-for-bit the one `torch.optim.AdamW` makes for a single run with its settings, with
its own step count (bias correction) and its own warm-up.

Row e of a member's metrics and its weights W_e: `measure()` evaluates the current weights
(train and test metrics, and the train loss's gradient), `step()` then makes optimiser step
e. Members are processed in chunks (`default_chunk_size`): all at once on a GPU, where
batching pays; on a CPU, as many as fit CPU_CHUNK_BYTES of per-example buffers (a
small model's fixed per-op cost shared: quick preset 5 -> 16 members as 4 chunks of 4;
paper 1, where batching saves nothing), and `default_workers` chunks stepped at once, one
per torch thread of the caller (`chunk_pool.py`): a small model's epoch does not scale to
two intra-op threads, two chunks side by side do. Members in a chunk share batched GEMMs,
which sum in another order than a single run's: float32 rounding apart
(tests/test_stepper.py bounds it). Chunks of one (the paper preset's default, or
`chunk_size=1`, a sweep's `--chunk-size 1`) are the exact path, each bit for bit its single
run: a small model's one member at a time in the caller's threads, a large model's side by
side (a member's examples then split in two shards, `example_shards`, stepped one after
the other on its worker's thread, where a single run steps them side by side). A member's
numbers depend on its chunk, and the chunks on the model and the members only, not on the
cores; never on which thread ran a chunk or when: the same settings give the same numbers
run after run. Across thread counts (a worker runs a chunk with fewer torch threads than
the caller would) they are equal as far as torch's kernels are: bit for bit on the Intel
Xeon of bench/RESULTS.md (1 against 2 threads, quick and paper preset), not promised
elsewhere.
"""

from __future__ import annotations

import itertools
import math
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.optim.adamw import adamw

from grok_tui.engine.core import ops
from grok_tui.engine.core.closed_form import ClosedFormStep
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import split_indices
from grok_tui.engine.core.fastpath import InputPlan, last_logits, member_tables
from grok_tui.engine.core.grokfast import make_filter
from grok_tui.engine.core.loss import member_training_loss
from grok_tui.engine.core.model import CLASSIC_NAMES, PAPER_TRAINED, check_weights, param_shapes
from grok_tui.engine.core.orthograd import Orthogonaliser
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.training.chunk_pool import ChunkPool

ADAM_EPS = 1e-8  # torch's default, the paper's
SHAPE_FIELDS = ("p", "d_model", "n_heads", "d_head", "d_mlp")
GRADIENTS = ("closed-form", "autograd")
CPU_CHUNK_BYTES = 32 << 20  # per-example buffers per chunk on a CPU (`default_chunk_size`)


def lr_at(cfg: RunConfig, step: int) -> float:
    """Linear warm-up over warmup_steps (the paper's LambdaLR(min(step / 10, 1)))."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(step / cfg.warmup_steps, 1.0)


@dataclass
class MemberState:
    """Where a member stands: weights W_epoch (classic names) and AdamW's moments after
    `epoch` steps (short trained names; None for a fresh start, which needs epoch 0), and
    the training time it took (the stepper keeps no clock; the trainer does)."""

    epoch: int
    weights: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor] | None = None
    exp_avg_sq: dict[str, torch.Tensor] | None = None
    wall_s: float = 0.0
    grokfast: dict[str, Any] | None = None  # the Grokfast filter's state (`GradientFilter`)


class Layout:
    """Where each trained weight sits in a member's row, and the untrained (zero) biases."""

    def __init__(self, cfg: RunConfig) -> None:
        shapes = param_shapes(cfg)
        self.trained = list(PAPER_TRAINED)
        self.untrained = [s for s in CLASSIC_NAMES if s not in PAPER_TRAINED]
        self.shapes = shapes
        self.sizes = [int(torch.Size(shapes[s]).numel()) for s in self.trained]
        self.width = sum(self.sizes)

    def split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views (M, *shape) of (M, P) rows under short names."""
        lead = rows.shape[0]
        parts = rows.split(self.sizes, dim=1)
        return {s: t.view(lead, *self.shapes[s]) for s, t in zip(self.trained, parts, strict=True)}

    def join(
        self, tensors: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """One member's row (P,) from its trained tensors under short names."""
        return torch.cat([tensors[s].reshape(-1).to(dtype) for s in self.trained])


def same_shape(cfgs: Sequence[RunConfig]) -> bool:
    """Whether configs can train as one batched model (one p, one architecture)."""
    return all(getattr(c, f) == getattr(cfgs[0], f) for c in cfgs for f in SHAPE_FIELDS)


def member_split(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (x * p + y) train and test indices of a member, the paper's split for its seed."""
    train, test = split_indices(cfg.p, cfg.frac_train, cfg.data_seed, cfg.op)
    return torch.tensor(train), torch.tensor(test)


def default_workers(device: torch.device) -> int:
    """Chunks stepped at once: one per torch thread of the caller on a CPU (each worker
    then runs one thread); one on a GPU. Chunks of one member of a small model
    (`chunk_size=1`, the one-by-one path) are stepped one at a time in the caller's
    threads (`Stepper`); those of a large model side by side too: 4 paper-preset members
    ran 1.05-1.08x one by one (itself two shards a member, side by side), a small gain
    within the noise of some runs (bench/RESULTS.md, "Two shards of one member's
    examples")."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


def member_bytes(cfg: RunConfig) -> int:
    """One member's (inputs x (d_mlp + d_vocab)) float32 buffer: the size of an epoch's
    per-example passes (the bags, ReLU, logits, loss, [G | dpre]), a few such per step."""
    return cfg.p**2 * (cfg.d_mlp + cfg.d_vocab) * 4


# Below this many bytes of per-example buffers (`member_bytes`: the quick preset's 6.4 MB,
# p = 71's 11.8 MB; the paper's 32 MB is above), a chunk stepped in the caller's threads
# runs on one torch thread where OpenMP's threads sleep between parallel regions.
ONE_THREAD_BYTES = 16 * 2**20


def caller_threads(cfgs: Sequence[RunConfig], device: torch.device) -> int | None:
    """Torch threads for the chunks stepped in the caller's threads: 1 for a small model on
    a CPU whose OpenMP threads sleep between parallel regions (OMP_WAIT_POLICY=PASSIVE, the
    CLI's default), None (the caller's own count) otherwise.

    Why: an epoch is a few hundred short ops, and a sleeping OpenMP thread takes tens of
    microseconds to wake for each; below ~15 MB of per-example work a second thread costs
    more than it brings. Measured on an Intel Xeon (2 vCPUs, KVM), an epoch at 1 and 2
    threads alternating in one process (bench/RESULTS.md): the quick preset 10.3 against
    14.2 ms, p = 71 15.4 against 17.4; p = 89 28.8 against 25.3 and the paper preset 46.6
    against 34.9, where the second thread pays. With spinning threads it pays sooner (from
    p = 71 with ACTIVE, from the quick preset with libgomp's default spin), so a spinning
    policy keeps the caller's count."""
    if device.type != "cpu" or os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        return None
    return 1 if sum(member_bytes(c) for c in cfgs) < ONE_THREAD_BYTES else None


def large(cfg: RunConfig) -> bool:
    """A model that trains on more than one thread on a CPU: at least ONE_THREAD_BYTES of
    per-example buffers (the paper preset; p >= ~81)."""
    return member_bytes(cfg) >= ONE_THREAD_BYTES


def example_shards(cfgs: Sequence[RunConfig], device: torch.device) -> int:
    """Shards of a chunk's examples (`ClosedFormStep`): two for one member of a `large`
    model on a CPU, one otherwise. From the chunk alone, never from the cores, so that a
    run's numbers do not depend on whether its shards ran side by side.

    Why: on two cores the paper preset's epoch ran 1.34x faster on two intra-op threads
    than on one; two halves of its examples on a thread each, 1.61x (bench/RESULTS.md,
    "Two shards of one member's examples")."""
    return 2 if device.type == "cpu" and len(cfgs) == 1 and large(cfgs[0]) else 1


def default_chunk_size(cfg: RunConfig, device: torch.device) -> int:
    """Members per forward/backward pass: all of them on a GPU; on a CPU, as many as fit
    CPU_CHUNK_BYTES of per-example buffers (quick preset: 5, paper: 1).

    From the model alone, never from the cores, so that a member's numbers (which depend
    on the chunk it shares) are the same in any process that trains its group.
    """
    if device.type != "cpu":
        return 1 << 30
    return max(1, CPU_CHUNK_BYTES // member_bytes(cfg))


def chunk_bounds(n_members: int, most: int, even: bool = False) -> list[tuple[int, int]]:
    """(start, end) of each chunk of at most `most` members: `most` at a time, or (`even`)
    as few chunks as that takes with sizes as equal as they can be (16 by 5: 4, 4, 4, 4)."""
    n_chunks = math.ceil(n_members / most)
    if not even:
        return [(s, min(s + most, n_members)) for s in range(0, n_members, most)]
    size, extra = divmod(n_members, n_chunks)
    ends = list(itertools.accumulate(size + (c < extra) for c in range(n_chunks)))
    return list(zip([0, *ends[:-1]], ends, strict=True))


def default_chunks(n_members: int, most: int) -> list[tuple[int, int]]:
    """The default chunks: as few as `most` a pass takes, sizes as equal as they can be,
    and two at least where there are two members to split, so that a sweep whose members
    fit one pass (4 quick members) still steps two chunks side by side. From the members
    alone, never from the cores (`default_chunk_size`): 4 quick members ran 1.28x (1.21-
    1.46x) one by one as two chunks of two, 1.05x as one chunk of four (bench/RESULTS.md)."""
    n_chunks = max(math.ceil(n_members / most), min(2, n_members))
    return chunk_bounds(n_members, math.ceil(n_members / n_chunks), even=True)


@dataclass
class _Chunk:
    """Members start..end-1 and their inputs, concatenated member after member."""

    start: int
    end: int
    train_plan: InputPlan
    train_labels: torch.Tensor
    test_plan: InputPlan
    test_labels: torch.Tensor
    closed_form: ClosedFormStep


def _measure_chunk(
    ch: _Chunk,
    weights: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    stablemax: list[bool],
    shard_pool: ChunkPool | None = None,
) -> torch.Tensor:
    """One chunk's metrics; its members' gradient rows written in place (on whichever thread
    runs it: a chunk is only ever on one at a time); its shards on `shard_pool`, if any."""
    run = None if shard_pool is None else shard_pool.run
    with torch.no_grad():  # grad mode is per thread: set here
        return ch.closed_form.measure(weights, stablemax, grads, run)


class Stepper:
    """M members of one shape: their weights, AdamW state, data, and one step of all."""

    def __init__(
        self,
        cfgs: Sequence[RunConfig],
        device: str,
        states: Sequence[MemberState],
        chunk_size: int = 0,
        dtype: torch.dtype = torch.float32,
        gradient: str = "closed-form",
        workers: int = 0,
    ) -> None:
        """`dtype` is float32 for training; float64 lets tests compare code paths whose
        float32 rounding differs (batched against single GEMMs) without Adam amplifying it.
        `gradient`: "closed-form" (engine/core/closed_form.py, what training uses) or
        "autograd" (torch's autograd through `fastpath`: the reference tests compare with).
        """
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.gradient = gradient
        if not cfgs or len(cfgs) != len(states):
            raise ValueError("a stepper needs one state per config, and at least one")
        if not same_shape(cfgs):
            raise ValueError("members of one stepper must share p and the architecture")
        self.device = torch.device(device)
        self.cfgs = list(cfgs)
        self.layout = Layout(cfgs[0])
        self.fused = self.device.type in ("cpu", "cuda")
        rows, avg, avg_sq, buffers = [], [], [], {s: [] for s in self.layout.untrained}
        for cfg, state in zip(cfgs, states, strict=True):
            check_weights(cfg, state.weights)
            short = {s: state.weights[CLASSIC_NAMES[s]] for s in CLASSIC_NAMES}
            rows.append(self.layout.join(short, dtype))
            for s in self.layout.untrained:
                buffers[s].append(short[s].to(dtype))
            if state.exp_avg is None or state.exp_avg_sq is None:
                if state.epoch != 0:
                    raise ValueError("a member past epoch 0 needs its optimiser state")
                avg.append(torch.zeros_like(rows[-1]))
                avg_sq.append(torch.zeros_like(rows[-1]))
            else:
                avg.append(self.layout.join(state.exp_avg, dtype))
                avg_sq.append(self.layout.join(state.exp_avg_sq, dtype))
        self.flat = torch.stack(rows).to(self.device)
        self.dtype = dtype
        self.grads: list[torch.Tensor] = []  # each member's gradient row, set by measure()
        self.exp_avg = torch.stack(avg).to(self.device)
        self.exp_avg_sq = torch.stack(avg_sq).to(self.device)
        self.buffers = {s: torch.stack(b).to(self.device) for s, b in buffers.items()}
        self.epochs = [s.epoch for s in states]
        step_device = self.device if self.fused else torch.device("cpu")
        self.steps = [
            torch.tensor(float(s.epoch), dtype=torch.float32, device=step_device) for s in states
        ]
        self.filters = [make_filter(c, self.layout.width, self.device) for c in cfgs]
        for f, state in zip(self.filters, states, strict=True):
            if f is not None and state.epoch > 0:
                if not state.grokfast:
                    raise ValueError("a Grokfast member past epoch 0 needs its filter state")
                f.load(state.grokfast)
        self.orthogonaliser = Orthogonaliser(self.layout.sizes)
        self._chunk_request, self._workers_request = chunk_size, workers
        self.pool: ChunkPool | None = None
        self.shard_pool: ChunkPool | None = None
        self._build_data()

    @property
    def n_members(self) -> int:
        return len(self.cfgs)

    # -- data ----------------------------------------------------------------------------------
    def _build_data(self) -> None:
        """Each chunk's train and test inputs and labels, concatenated member after member.

        Members may differ in op (labels, input set) as well as in split: only p is shared.
        """
        p, h = self.cfgs[0].p, self.cfgs[0].n_heads
        splits: dict[tuple[float, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        tables: dict[tuple[str, int], torch.Tensor] = {}
        for cfg in self.cfgs:
            key = (cfg.frac_train, cfg.data_seed, cfg.op)
            if key not in splits:
                splits[key] = member_split(cfg)
            if (cfg.op, cfg.data_seed) not in tables:
                tables[cfg.op, cfg.data_seed] = ops.labels(cfg.op, p, cfg.data_seed)
        most = self._chunk_request or default_chunk_size(self.cfgs[0], self.device)
        # one member at a time in the caller's threads: chunks of one member of a small
        # model (a large one's go side by side, `default_workers`)
        alone = most == 1 and not large(self.cfgs[0])
        self.workers = self._workers_request or (1 if alone else default_workers(self.device))
        if self._chunk_request:
            bounds = chunk_bounds(self.n_members, most)
        else:
            bounds = default_chunks(self.n_members, most)
        self.chunk_size = max(end - start for start, end in bounds)
        self._pool_for(min(self.workers, len(bounds)))
        # the chunks the caller steps (none with a pool), and the AdamW step's, on these
        start, end = max(bounds, key=lambda b: b[1] - b[0])
        threads = caller_threads(self.cfgs[start:end], self.device)
        self.caller_threads = threads if self.pool is None else None
        self.chunks = []
        for start, end in bounds:
            cfgs = self.cfgs[start:end]
            keys = [(c.frac_train, c.data_seed, c.op) for c in cfgs]
            label_tables = [tables[c.op, c.data_seed] for c in cfgs]
            train = self._plan([splits[k][0] for k in keys], label_tables, p, h)
            test = self._plan([splits[k][1] for k in keys], label_tables, p, h)
            shards = example_shards(cfgs, self.device)
            closed = ClosedFormStep(*train, *test, self.dtype, shards)
            self.chunks.append(_Chunk(start, end, *train, *test, closed))
        self._shard_pool_for(max(len(ch.closed_form.shards) for ch in self.chunks))
        # Every member's gradient row, written in place by the closed-form step each epoch;
        # the views each epoch reads and writes, made once (the rows stay where they are
        # until `keep` rebuilds all of this).
        self.grad_rows = torch.empty_like(self.flat)
        self._grad_list = list(self.grad_rows.unbind(0))
        self._views = [
            (
                self.weights(self.flat[ch.start : ch.end], ch.start),
                self.layout.split(self.grad_rows[ch.start : ch.end]),
                [c.loss == "stablemax" for c in self.cfgs[ch.start : ch.end]],
            )
            for ch in self.chunks
        ]

    def _pool_of(self, pool: ChunkPool | None, workers: int) -> ChunkPool | None:
        """`pool` if it has `workers` workers; else it closed and a new pool of that many
        sharing the caller's torch threads (none below two: the caller runs the jobs)."""
        if pool is not None and pool.workers == workers:
            return pool
        if pool is not None:
            pool.close()
        if workers < 2:
            return None
        pool = ChunkPool(workers, max(1, torch.get_num_threads() // workers))
        weakref.finalize(self, pool.close)
        return pool

    def _pool_for(self, active: int) -> None:
        """Threads for `active` chunks at once (none for one: the caller steps them)."""
        self.pool = self._pool_of(self.pool, active)

    def _shard_pool_for(self, shards: int) -> None:
        """Threads for a chunk's shards side by side, where the caller steps the chunks
        (no chunk pool) and has two torch threads or more to share among them."""
        want = shards if self.pool is None and torch.get_num_threads() >= shards > 1 else 0
        self.shard_pool = self._pool_of(self.shard_pool, want)

    def close(self) -> None:
        """Stop and join the chunk and shard threads, if any (a stepper stays usable: they
        restart)."""
        if self.pool is not None:
            self.pool.close()
        if self.shard_pool is not None:
            self.shard_pool.close()

    def _plan(
        self, idx: list[torch.Tensor], label_tables: list[torch.Tensor], p: int, h: int
    ) -> tuple[InputPlan, torch.Tensor]:
        flat = torch.cat(idx).to(self.device)
        labels = torch.cat([t[i] for t, i in zip(label_tables, idx, strict=True)])
        x, y = flat // p, flat % p
        return InputPlan(x, y, p, h, counts=[len(i) for i in idx]), labels.to(self.device)

    # -- the step ------------------------------------------------------------------------------
    def weights(self, rows: torch.Tensor, start: int = 0) -> dict[str, torch.Tensor]:
        """Every weight under its short name, (members, *shape), for the members whose rows
        these are (from `start`); trained ones are views of `rows`."""
        end = start + rows.shape[0]
        return {**self.layout.split(rows), **{s: b[start:end] for s, b in self.buffers.items()}}

    def measure(self) -> torch.Tensor:
        """Metrics (M, 4) of each member's current weights W_e: train loss, test loss, train
        accuracy, test accuracy; and, kept for `step`, the gradient of each train loss.

        The losses are cross-entropy for every member; a StableMax member (`cfg.loss`) keeps
        the gradient of its StableMax train loss (engine/core/loss.py).

        Chunk by chunk: a chunk's forward and backward run before the next chunk's, so its
        activations are freed (and, on a CPU, stay in cache) before the next one starts.
        """
        if self.gradient == "autograd":
            return self._measure_autograd()
        jobs = [
            partial(_measure_chunk, ch, *views, self.shard_pool)
            for ch, views in zip(self.chunks, self._views, strict=True)
        ]
        if self.pool is not None:
            out = self.pool.run(jobs)
        else:
            with torch_threads(self.caller_threads):
                out = [job() for job in jobs]
        self.grads = list(self._grad_list)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _measure_autograd(self) -> torch.Tensor:
        """`measure` with the gradient from autograd through `fastpath` (the reference)."""
        p = self.cfgs[0].p
        out, grads = [], []
        for ch in self.chunks:
            leaf = self.flat[ch.start : ch.end].detach().requires_grad_(True)
            tables = member_tables(self.weights(leaf, ch.start), p)
            segments = ch.train_plan.segments
            logits = last_logits(tables, ch.train_plan)
            stablemax = [c.loss == "stablemax" for c in self.cfgs[ch.start : ch.end]]
            objective, train_loss, train_acc = member_training_loss(
                logits, ch.train_labels, segments, stablemax
            )
            with torch.no_grad():
                _, test_loss, test_acc = member_training_loss(
                    last_logits(tables, ch.test_plan),
                    ch.test_labels,
                    ch.test_plan.segments,
                    [False] * (ch.end - ch.start),
                )
            out.append(torch.stack([train_loss, test_loss, train_acc, test_acc], dim=1))
            objective.backward()
            grads.extend(leaf.grad.unbind(0))
        self.grads = grads
        return out[0] if len(out) == 1 else torch.cat(out)

    def lrs(self) -> list[float]:
        """The learning rate of each member's next step (its warm-up at its own epoch)."""
        return [lr_at(cfg, e) for cfg, e in zip(self.cfgs, self.epochs, strict=True)]

    def step(self) -> None:
        """One AdamW step of every member along the gradients `measure` kept (through the
        member's Grokfast filter, if it has one, then its orthogonal gradient, if it has
        one: Prieto et al.'s ⊥Grad wraps the optimiser, so it sees the filtered gradient);
        epochs advance."""
        if len(self.grads) != self.n_members:
            raise RuntimeError("step() needs a measure() first")
        grad = [
            g if f is None else f.apply(g) for f, g in zip(self.filters, self.grads, strict=True)
        ]
        with torch.no_grad():
            grad = [
                self.orthogonaliser.apply(g, self.flat[m]) if cfg.orthogonal_grad else g
                for m, (cfg, g) in enumerate(zip(self.cfgs, grad, strict=True))
            ]
        groups: dict[tuple[float, float, float, float], list[int]] = {}
        for m, (cfg, lr) in enumerate(zip(self.cfgs, self.lrs(), strict=True)):
            groups.setdefault((lr, cfg.weight_decay, cfg.beta1, cfg.beta2), []).append(m)
        with torch.no_grad(), torch_threads(self.caller_threads):
            for (lr, wd, beta1, beta2), members in groups.items():
                adamw(
                    [self.flat[m] for m in members],
                    [grad[m] for m in members],
                    [self.exp_avg[m] for m in members],
                    [self.exp_avg_sq[m] for m in members],
                    [],
                    [self.steps[m] for m in members],
                    fused=self.fused or None,
                    amsgrad=False,
                    beta1=beta1,
                    beta2=beta2,
                    lr=lr,
                    weight_decay=wd,
                    eps=ADAM_EPS,
                    maximize=False,
                )
        self.grads = []
        self.epochs = [e + 1 for e in self.epochs]

    # -- members in and out ----------------------------------------------------------------------
    def export(self, members: Sequence[int]) -> list[MemberState]:
        """CPU copies of some members' weights and AdamW moments (one transfer for all)."""
        index = torch.tensor(list(members), device=self.device)
        with torch.no_grad():
            rows = self.flat.index_select(0, index).cpu()
            avg = self.exp_avg.index_select(0, index).cpu()
            avg_sq = self.exp_avg_sq.index_select(0, index).cpu()
            buffers = {s: b.index_select(0, index).cpu() for s, b in self.buffers.items()}
        out = []
        for i, m in enumerate(members):
            short = {s: t[0].clone() for s, t in self.layout.split(rows[i : i + 1]).items()}
            short.update({s: b[i].clone() for s, b in buffers.items()})
            weights = {CLASSIC_NAMES[s]: short[s].contiguous() for s in CLASSIC_NAMES}
            moments = [
                {s: t[0].clone() for s, t in self.layout.split(a[i : i + 1]).items()}
                for a in (avg, avg_sq)
            ]
            f = self.filters[m]
            out.append(
                MemberState(
                    self.epochs[m],
                    weights,
                    moments[0],
                    moments[1],
                    grokfast=None if f is None else f.state(),
                )
            )
        return out

    def keep(self, members: Sequence[int]) -> None:
        """Go on with these members only (finished or diverged ones leave the batch)."""
        members = list(members)
        if members == list(range(self.n_members)):
            return
        index = torch.tensor(members, device=self.device)
        with torch.no_grad():
            self.flat = self.flat.index_select(0, index)
            self.exp_avg = self.exp_avg.index_select(0, index)
            self.exp_avg_sq = self.exp_avg_sq.index_select(0, index)
            self.buffers = {s: b.index_select(0, index) for s, b in self.buffers.items()}
        self.cfgs = [self.cfgs[m] for m in members]
        self.epochs = [self.epochs[m] for m in members]
        self.steps = [self.steps[m] for m in members]
        self.filters = [self.filters[m] for m in members]
        self.grads = []
        self._build_data()
