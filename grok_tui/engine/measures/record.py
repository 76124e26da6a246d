"""One checkpoint -> a `Record`: a compact, exact, sufficient summary for progress measures.

The paper's measures depend on the key frequencies K, which a live run does not know yet.
A Record keeps, per checkpoint, what every measure needs for *any* key set, so that a new
set costs no forward pass (only the excluded loss of a whole set does; see below):

- frequency-free scalars: train / test loss and accuracy (p classes), the Gini coefficients
  of W_E's and W_L's Fourier norms (`gini_W_E`, `gini_W_L`: the paper's, over the norm of
  each Fourier component, cos and sin apart, the constant included; `gini_W_E_freq`,
  `gini_W_L_freq`: over the phase-invariant per-frequency norms), the sum of squared weights
  (total and per parameter), the average attention from `=` to each key (h x 3);
- `w_e_sq`, `w_l_sq` (p,): the squared norm of each Fourier component of W_E[:p] (over
  d_model) and of W_L = W_out W_U[:, :p] over classes (over neurons): the spectrogram rows;
- `logit_coeffs` (K, 2, p) and `logit_mean` (p,): the logits' coefficients on the unit
  directions cos(w_k(x+y)), sin(w_k(x+y)) of R^(p^2), for every k, and their mean over
  inputs. The restricted logits of any key set are sum_{k in S} coeffs_k . dirs_k + mean,
  a function of s = x + y mod p alone, which is also the label: `restricted_losses` needs
  O(p^2) work and no forward. With every k the restricted logits are the logits averaged
  over each x + y = s: the part of the logits that depends on x + y only;
- `logit_var` (p,): each class's logit variance over inputs (centred), so that the share of
  it that no function of x + y explains (the memorising residual) is exact too;
- `trig_pre`, `trig_post`, `trig_logits` (K,): for each k, the mean over columns (neurons,
  or classes for the logits) of the share of the column's variance along cos/sin(w_k(x+y)).
  The trig fraction of a set S is sum_{k in S}, exactly (shares of orthogonal directions add);
- `neuron_shares` (K, d_mlp): each neuron's share of its centred 2D spectrum in frequency k's
  3x3 block (the clustering of section 4.3, for any checkpoint taken as reference);
- `mlp_out_frac` (K, 2): the paper's Table 1: the MLP output's component along W_L's cos k
  (resp. sin k) class direction, post @ W_L @ F[2k-1] over the p^2 inputs, and the share of
  its variance explained by cos(w_k(x+y)) (resp. sin(w_k(x+y))).

The excluded loss of a set S needs the train logits minus S's projections, which no small
summary holds: `excluded_losses` recomputes it from the weights (one forward over the train
inputs) when the set changes, with the per-frequency excluded losses (one k removed) of S.

Every op in its own basis (`Recorder` says how): for `subtract` every x + y above reads
x - y (the op's circuit directions, engine/core/ops.py; the label is x - y, as it is x + y
for add), and its rows say so (`"sign": -1`); `multiply` and `divide` read log x +- log y
mod p - 1 in the log basis (w_e_sq, w_l_sq and the frequencies too), keep the inputs with
no log apart (`logit_zero_mean`), and their rows name the op, as do those of the ops with
no circuit (NaN circuit arrays): a record made for another op is never read as one.
`label_share_logits` is the share of the logits that is a function of the label, any op.

The coefficient of a per-input column T on cos(w_k(x+y)) needs no (p^2 x 2K) matmul: with
G[s] = sum_{x + y = s} T[x, y], it is fft1d(G)[cos k] / sqrt(p) (likewise for sin), since the
unit direction is sqrt(2) / p cos(w_k s) and F[cos k][s] = sqrt(2 / p) cos(w_k s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grok_tui.engine.core import fastpath, fourier, ops
from grok_tui.engine.core.loss import cross_entropy
from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.model import CLASSIC_NAMES, InputPlan
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS, numerical_measures
from grok_tui.engine.store.errors import RunError
from grok_tui.engine.store.untrusted import what_is_wrong

RECORD_VERSION = 2

# Arrays of a record and their shapes, in terms of p, K = (p - 1) / 2 and m = d_mlp.
ARRAY_SHAPES = {
    "w_e_sq": ("p",),
    "w_l_sq": ("p",),
    "logit_coeffs": ("K", 2, "p"),
    "logit_mean": ("p",),
    "logit_var": ("p",),
    "trig_pre": ("K",),
    "trig_post": ("K",),
    "trig_logits": ("K",),
    "neuron_shares": ("K", "m"),
    "mlp_out_frac": ("K", 2),
}
# The arrays a tracker leaves in the record's file and reads back when a table needs them
# (`RecordArrays`): 115 + 50 of a record's 169 kB at p = 113, d_mlp = 512 (issue 27).
ON_DISK = ("neuron_shares", "logit_coeffs")
# Multiplicative ops: the mean logits of the inputs with no log (x = 0 or y = 0), apart.
ZERO_CLASS_SHAPES = {"logit_zero_mean": ("p",)}
# Frequency-free scalars of a record (JSON numbers; NaN is stored as null).
RECORD_SCALARS = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "gini_W_E",
    "gini_W_L",
    "gini_W_E_freq",
    "gini_W_L_freq",
    "sum_sq_weights",
    "label_share_logits",
    *NUMERIC_SCALARS,  # the numerical view (engine/measures/numerics.py)
)


def gini(values: np.ndarray | Any) -> float:
    """Gini coefficient of non-negative values (Hurley & Rickard 2009): 0 when all are
    equal, 1 - 1/N for a single non-zero value; NaN when all are zero.

        G = 1 - 2 sum_k (c_(k) / ||c||_1) (N - k + 1/2) / N, with c sorted ascending.
    """
    c = np.sort(np.abs(np.asarray(values, dtype=np.float64)).ravel())
    n = c.size
    total = c.sum()
    if n == 0 or total <= 0:
        return math.nan
    k = np.arange(1, n + 1)
    return float(1.0 - 2.0 * np.sum((c / total) * (n - k + 0.5) / n))


def component_norms(component_sq: np.ndarray) -> np.ndarray:
    """The norm of each Fourier component (constant, cos 1, sin 1, ...) from its square: what
    the paper's code takes the Gini coefficient of (`gini_W_E`, `gini_W_L`)."""
    return np.sqrt(np.clip(np.asarray(component_sq, dtype=np.float64), 0.0, None))


def paper_gini(component_sq: np.ndarray) -> float:
    """The paper's Gini of a matrix's Fourier components: of `component_norms`."""
    return gini(component_norms(component_sq))


def freq_gini(component_sq: np.ndarray, basis: str = "fourier") -> float:
    """The phase-invariant variant: the Gini of the per-frequency norms (`freq_norms`)."""
    return gini(freq_norms(component_sq, basis))


def per_freq_sq(component_sq: np.ndarray, basis: str = "fourier") -> np.ndarray:
    """(..., K) per-frequency sums |cos k|^2 + |sin k|^2 of per-component squares (..., p),
    k = 1..K, grouped by `fourier.component_freqs`: in the log basis frequency K is its
    cosine alone, and the "zero" component (token 0) counts with the constant (left out)."""
    sq = np.asarray(component_sq, dtype=np.float64)
    p = sq.shape[-1]
    freqs = fourier.component_freqs(p, basis)
    onehot = (freqs[None, :] == np.arange(1, fourier.n_freqs(p) + 1)[:, None]).astype(np.float64)
    return sq @ onehot.T


def freq_norms(component_sq: np.ndarray, basis: str = "fourier") -> np.ndarray:
    """Per-frequency norms sqrt(|cos k|^2 + |sin k|^2), k = 1..K, from per-component squares.

    Phase-invariant: a circuit at frequency k whose phase turns moves mass between cos k and
    sin k, which changes a per-component Gini but not this one. The constant component is
    left out (the mean embedding, or a shift of every logit, says nothing about sparsity).
    """
    return np.sqrt(np.clip(per_freq_sq(component_sq, basis), 0.0, None))


@dataclass
class Record:
    """The measures of one checkpoint for any key set (see the module docstring)."""

    epoch: int
    scalars: dict[str, float]  # RECORD_SCALARS
    sum_sq_per_param: dict[str, float]  # classic name -> sum of squares
    avg_attn: np.ndarray  # (h, 3)
    arrays: Mapping[str, np.ndarray]  # ARRAY_SHAPES, float32 (a dict, or `RecordArrays`)
    sign: int = 1  # the circuit directions: of x + y (+1) or of x - y (-1, subtract)
    op: str = "add"  # the op it was made for (its basis and directions: `record_tag`)

    @property
    def basis(self) -> str:
        """The basis of w_e_sq, w_l_sq and the frequencies ("log" for multiplicative ops)."""
        return ops.basis_kind(self.op)

    def row(self) -> dict[str, Any]:
        """The JSON line of measures.jsonl (the arrays live in a file beside it)."""
        row: dict[str, Any] = {"epoch": self.epoch, "version": RECORD_VERSION, "kind": "record"}
        if self.sign != 1:
            row["sign"] = self.sign
        if record_tag(self.op) is not None:
            row["op"] = self.op
        row.update({k: _finite(v) for k, v in self.scalars.items()})
        row["sum_sq_per_param"] = {k: _finite(v) for k, v in self.sum_sq_per_param.items()}
        row["avg_attn"] = [[_finite(float(v)) for v in r] for r in self.avg_attn]
        return row


class RecordArrays(Mapping[str, np.ndarray]):
    """A record's arrays with the large ones (`ON_DISK`) left in its file, read on each use.

    A long run keeps one record per checkpoint in memory; its neuron shares and logit
    coefficients are 97% of it at p = 113, and are read only to derive what is cached
    (engine/measures/progress.py: a checkpoint's candidate key set, its restricted losses
    for a key set, its neuron fraction for the reference clusters) or for an excluded
    loss, so what stays in memory per checkpoint is a few kB (bench/RESULTS.md, issue 27).
    `read(name)` returns the array or raises (`RecordGone`)."""

    def __init__(
        self,
        held: dict[str, np.ndarray],
        on_disk: tuple[str, ...],
        read: Callable[[str], np.ndarray],
    ) -> None:
        self.held = held
        self.on_disk = on_disk
        self._read = read

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.held:
            return self.held[name]
        if name in self.on_disk:
            return self._read(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:  # without reading the file
        return name in self.held or name in self.on_disk

    def __iter__(self) -> Iterator[str]:
        yield from self.held
        yield from self.on_disk

    def __len__(self) -> int:
        return len(self.held) + len(self.on_disk)


def held_bytes(record: Record) -> int:
    """The bytes of a record's arrays that are in memory (not those left on disk)."""
    arrays = record.arrays
    held = arrays.held if isinstance(arrays, RecordArrays) else arrays
    return sum(a.nbytes for a in held.values()) + record.avg_attn.nbytes


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# Columns (neurons, classes) analysed per pass: every per-column measure is independent of
# the others, so a record's forward pass and temporaries hold p^2 x 64 floats at a time
# (3 MB at p = 113), not p^2 x d_mlp (26 MB) several times over: the resident peak of
# measuring a checkpoint beside a training run (bench/RESULTS.md, "Memory per checkpoint").
COLUMNS_PER_PASS = 64


# Classes per float64 pass of `Recorder.label_share`.
LABEL_SHARE_COLUMNS = 16


def column_blocks(n: int) -> list[slice]:
    return [slice(i, min(i + COLUMNS_PER_PASS, n)) for i in range(0, n, COLUMNS_PER_PASS)]


class Recorder:
    """Computes Records for one config, reusing an `Analyzer` (its model, split, index maps).

    Per op (engine/core/ops.py): additive ops read cos/sin(w_k(x +- y)) in Z_p's Fourier
    basis; multiplicative ops the same waves of the discrete logs, cos/sin(v_k(log x +-
    log y)), v_k = 2 pi k / (p - 1), in the log basis. 0 has no log: the inputs with x = 0
    or y = 0 (label 0) are a class of their own, on which every circuit direction is 0, so
    the excluded logits keep them as they are and the restricted logits there are their own
    mean (`logit_zero_mean`), as the log basis keeps token 0 as a component of its own.
    Ops with no such structure (the quadratic ones, random) get the measures that need no
    circuit: losses, Gini and spectrogram in Z_p's basis, weights, attention, and the
    share of the logits that is a function of the label; their circuit arrays are NaN.
    """

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        a, p = analyzer, analyzer.cfg.p
        self.op = analyzer.cfg.op
        self.p, self.K = p, fourier.n_freqs(p)
        self.sign = circuit_sign(self.op)
        self.basis = ops.basis_kind(self.op)
        self.circuit = ops.has_circuit_directions(self.op)
        self.rows = analyzer.sum_rows if self.sign == 1 else analyzer.diff_rows
        # The rows of the p x p grid that are inputs (divide has no y = 0): variances and
        # label shares are over these.
        inputs = ops.input_indices(self.op, p)
        self.inputs = None if len(inputs) == p * p else torch.tensor(inputs, device=a.device)
        self.zero_rows = torch.tensor(ops.zero_inputs(self.op, p), dtype=torch.long,
                                      device=a.device)  # fmt: skip
        self.train_labels = a.labels[a.train_idx]
        self._train_plan: InputPlan | None = None
        if not self.circuit:
            return
        # The circuit's coordinate t of every grid input (-1: none) and the unit directions'
        # values per t; at the train inputs (K, 2, n_train), for the excluded losses.
        self.coordinate = ops.circuit_coordinate(self.op, p).to(a.device)
        waves = ops.circuit_waves(self.op, p)  # (K, 2, n)
        self.waves = waves.to(device=a.device, dtype=torch.float32)
        t = self.coordinate[a.train_idx]
        train_dirs = waves.to(a.device)[:, :, t.clamp_min(0)] * (t >= 0)
        self.train_dirs = train_dirs.to(torch.float32)

    # -- sums over each coordinate t --------------------------------------------------------
    def trig_coeffs(self, values: torch.Tensor) -> torch.Tensor:
        """Coefficients of per-input columns (p^2, n) on the circuit directions: (K, 2, n)."""
        p = self.p
        if self.basis == "fourier":  # t = x +- y: a gather, then Z_p's basis
            sums = values.index_select(0, self.rows).reshape(p, p, -1).sum(dim=0)
            return (fourier.fft1d(sums, dim=0)[1:] / math.sqrt(p)).reshape(self.K, 2, -1)
        keep = self.coordinate >= 0
        sums = values.new_zeros(self.waves.shape[-1], values.shape[1])
        sums.index_add_(0, self.coordinate[keep], values[keep])
        return torch.einsum("kdn,nc->kdc", self.waves.to(values.dtype), sums)

    def on_inputs(self, values: torch.Tensor) -> torch.Tensor:
        """The rows of grid values that are the op's inputs."""
        return values if self.inputs is None else values.index_select(0, self.inputs)

    def trig_shares(self, values: torch.Tensor, coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """Per frequency, the mean over live columns of their variance share on k: (K,)."""
        return self.mean_share(
            [
                self.column_variances(values[:, c], None if coeffs is None else coeffs[..., c])
                for c in column_blocks(values.shape[1])
            ]
        )

    def mean_share(
        self, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """`trig_shares` from the `column_variances` of its columns, block by block."""
        along, var, live = (torch.cat(part, dim=-1) for part in zip(*parts, strict=True))
        if not bool(live.any()):
            return torch.full((self.K,), math.nan, device=var.device)
        return (along[:, live] / var[live]).mean(dim=1)

    def column_variances(
        self, values: torch.Tensor, coeffs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per column: variance along each k (K, n), centred variance over the op's inputs
        (n), live (n)."""
        if coeffs is None:
            coeffs = self.trig_coeffs(values)
        values = self.on_inputs(values)
        mean = values.mean(dim=0)
        var = (values - mean).square_().sum(dim=0)
        energy = var + values.shape[0] * mean.square()
        eps = torch.finfo(values.dtype).eps
        live = var > (10 * self.p * eps) ** 2 * energy
        return coeffs.square().sum(dim=1), var, live

    def label_share(self, logits: torch.Tensor) -> float:
        """Mean over live classes of the share of the class logit's variance (over the op's
        inputs) that is a function of the label: the logits averaged over each label's
        inputs. For add it is the x + y share (every frequency's trig fraction summed); for
        any op it is what a generalising answer makes of the logits, whatever its circuit.

        In float64, `LABEL_SHARE_COLUMNS` classes at a time: each class's share is its
        own, and a block's float64 copies are 1.6 MB at p = 113 where the whole logits'
        were 11.5 MB each, three at once (bench/RESULTS.md, issue 27)."""
        labels = self.on_inputs(self.analyzer.labels[:, None])[:, 0]
        counts = torch.bincount(labels, minlength=self.p).to(torch.float64)
        seen = counts > 0
        floor = (10 * self.p * torch.finfo(torch.float32).eps) ** 2
        explained, var, live = [], [], []
        for start in range(0, logits.shape[1], LABEL_SHARE_COLUMNS):
            cols = slice(start, start + LABEL_SHARE_COLUMNS)
            values = self.on_inputs(logits[:, cols]).to(torch.float64, copy=True)
            n_inputs, mean = values.shape[0], values.mean(dim=0)
            centred = values.sub_(mean)  # the float64 copy, centred in place
            sums = centred.new_zeros(self.p, centred.shape[1]).index_add_(0, labels, centred)
            explained.append((sums[seen].square() / counts[seen, None]).sum(dim=0))
            block_var = centred.square_().sum(dim=0)
            del values, centred
            energy = block_var + n_inputs * mean.square()
            var.append(block_var)
            live.append(block_var > floor * energy)
        explained_all, var_all, live_all = torch.cat(explained), torch.cat(var), torch.cat(live)
        if not bool(live_all.any()):
            return math.nan
        return float((explained_all[live_all] / var_all[live_all]).mean())

    # -- the record ---------------------------------------------------------------------------
    def record(self, weights: Mapping[str, torch.Tensor], epoch: int) -> Record:
        a, p, k = self.analyzer, self.p, self.K
        nan = math.nan
        with torch.no_grad():
            a.model.load_classic(weights)
            tables = a.model.tables()
            m = a.model
            w_l = m.W_out @ m.W_U[:, :p]
            # The neurons a block at a time (COLUMNS_PER_PASS): their measures, and the
            # MLP's share of the logits, post @ W_L, summed over the blocks.
            pre_parts, post_parts, share_parts = [], [], []
            mlp_logits = torch.zeros(a.plan.batch, p, device=a.device)
            for cols, pre in fastpath.neuron_blocks(tables, a.plan, COLUMNS_PER_PASS):
                if self.circuit:
                    pre_parts.append(self.column_variances(pre))
                post = pre.relu_()  # the pre-activations are read: the ReLU in place
                if self.circuit:
                    post_parts.append(self.column_variances(post))
                    share_parts.append(a.neuron_shares(post))
                mlp_logits.addmm_(post, w_l[cols])
                del pre, post
                # The block's temporaries back to the OS: the small per-block results
                # allocated among them can split freed blocks, and the next block's
                # temporaries then take new pages (seen: 75-85 MB where 25 are live).
                release_free_memory()
            # Table 1 reads the MLP's logits alone; then they become the logits in place
            # (the direct part added to them: the same sums, one p^2 x p tensor fewer).
            mlp_out = self.mlp_out_fraction(mlp_logits) if self.circuit else None
            logits = mlp_logits.add_(fastpath.direct_logits(tables, a.plan)[:, :p])
            del mlp_logits
            train_loss, test_loss, train_acc, test_acc = a.split_losses(logits)
            on_inputs = self.on_inputs(logits)
            numerics = numerical_measures(logits[a.train_idx], a.labels[a.train_idx])

            w_e_sq = fourier.fft1d(m.W_E[:p], dim=0, basis=self.basis).square().sum(dim=1)
            w_l_sq = fourier.fft1d(w_l, dim=1, basis=self.basis).square().sum(dim=0)
            avg_attn = fastpath.attention_pattern(tables, a.plan).mean(dim=0)
            tensors = {
                "w_e_sq": w_e_sq,
                "w_l_sq": w_l_sq,
                "logit_var": (on_inputs - on_inputs.mean(dim=0)).square_().sum(dim=0),
            }
            if self.circuit:
                coeffs = self.trig_coeffs(logits)  # (K, 2, p)
                structured = logits if not self.zero_rows.numel() else logits[self.coordinate >= 0]
                tensors.update({
                    "logit_coeffs": coeffs,
                    "logit_mean": structured.mean(dim=0),
                    "trig_pre": self.mean_share(pre_parts),
                    "trig_post": self.mean_share(post_parts),
                    "trig_logits": self.trig_shares(logits, coeffs),
                    "neuron_shares": torch.cat(share_parts, dim=1),  # (K, m)
                    "mlp_out_frac": mlp_out,
                })  # fmt: skip
                if self.zero_rows.numel():
                    tensors["logit_zero_mean"] = logits[self.zero_rows].mean(dim=0)
            else:
                tensors["logit_mean"] = on_inputs.mean(dim=0)
            label_share = self.label_share(logits)
            # Copies that own their memory: a record keeps its bytes alive, not torch's.
            arrays = {n: own_numpy(t, torch.float32) for n, t in tensors.items()}
            for name, shape in expected_shapes(p, a.cfg.d_mlp, self.op).items():
                if name not in arrays:  # no circuit: NaN, never a number for another op
                    arrays[name] = np.full(shape, nan, dtype=np.float32)
            attn = own_numpy(avg_attn, torch.float64)
        assert arrays["logit_coeffs"].shape == (k, 2, p)
        sum_sq = {
            name: float(weights[name].detach().to(torch.float64).square().sum())
            for name in CLASSIC_NAMES.values()
        }
        scalars = {
            "train_loss": train_loss,
            "test_loss": test_loss,
            "train_acc": train_acc,
            "test_acc": test_acc,
            "gini_W_E": paper_gini(arrays["w_e_sq"]),
            "gini_W_L": paper_gini(arrays["w_l_sq"]),
            "gini_W_E_freq": freq_gini(arrays["w_e_sq"], self.basis),
            "gini_W_L_freq": freq_gini(arrays["w_l_sq"], self.basis),
            "sum_sq_weights": sum(sum_sq.values()),
            "label_share_logits": label_share,
            **numerics,
        }
        return Record(int(epoch), scalars, sum_sq, attn, arrays, self.sign, self.op)

    def mlp_out_fraction(self, mlp_logits: torch.Tensor) -> torch.Tensor:
        """Table 1 of the paper for every k: (K, 2) shares, cos then sin.

        `mlp_logits` is the MLP output read by the classes, post @ W_L (p^2, p). Column
        cos k of M = post @ W_L @ F.T is the MLP output read along W_L's cos k direction;
        its share of variance on cos(w_k(x+y)) is coef^2 / centred variance. (Log basis:
        the top frequency has no sine, so its sine share is NaN.)
        """
        m = fourier.fft1d(mlp_logits, dim=1, basis=self.basis)  # (p^2, p): class components
        k = self.K
        cols = m[:, 1:]  # (p^2, 2K): cos 1, sin 1, ...
        on = self.on_inputs(cols)
        var = (on - on.mean(dim=0)).square_().sum(dim=0).reshape(k, 2)
        coeffs = self.trig_coeffs(cols)  # (K, 2, 2K): [freq of x+y, cos/sin, class component]
        idx = torch.arange(k, device=mlp_logits.device)
        own = coeffs.reshape(k, 2, k, 2)[idx, :, idx, :]  # (K, 2 dir, 2 comp)
        matched = torch.stack([own[:, 0, 0], own[:, 1, 1]], dim=1)  # cos-cos, sin-sin
        out = torch.where(var > 0, matched.square() / var.clamp_min(1e-30), torch.nan)
        if self.basis == "log":
            out[-1, 1] = torch.nan
        return out

    def excluded_losses(
        self, weights: Mapping[str, torch.Tensor], keys: tuple[int, ...], coeffs: np.ndarray
    ) -> tuple[float, list[float]]:
        """Train loss of the logits minus their projections on every k in `keys`, and on
        each k alone (the excluded loss and the per-frequency excluded losses).

        `coeffs` is the checkpoint's record (`logit_coeffs`, over all p^2 inputs), so only
        the train inputs need a forward pass.
        """
        a, p = self.analyzer, self.p
        if not self.circuit:
            raise ValueError(f"op {self.op!r} has no circuit directions to exclude")
        if self._train_plan is None:
            x, y = a.plan.x[a.train_idx], a.plan.y[a.train_idx]
            self._train_plan = InputPlan(x, y, p, a.cfg.n_heads)
        labels = self.train_labels
        with torch.no_grad():
            a.model.load_classic(weights)
            logits = a.model.plan_logits(a.model.tables(), self._train_plan)[:, :p]
            c = torch.as_tensor(coeffs, device=logits.device)
            # One projection (n_train, p) at a time, summed as it comes: not all |keys|.
            summed: torch.Tensor | None = None
            per_freq = []
            for k in keys:
                proj = self.train_dirs[k - 1].T @ c[k - 1]
                per_freq.append(cross_entropy(logits - proj, labels))
                summed = proj if summed is None else summed.add_(proj)
                del proj
            total = cross_entropy(logits if summed is None else logits - summed, labels)
            values = torch.stack([total, *per_freq]).tolist()
        return values[0], values[1:]


def circuit_sign(op: str) -> int:
    """+1 where the circuit reads u + v (x + y, or log x + log y), -1 for u - v (subtract,
    divide); ops without a circuit are read as +1."""
    return ops.INFO[op].sign if ops.has_circuit_directions(op) else 1


def record_tag(op: str) -> str | None:
    """What a record's row says it was made for beyond its sign: nothing for the additive
    ops (rows written before the other ops had records say nothing), else the op."""
    return None if ops.structure(op) == "additive" else op


def label_share(record: Record) -> float:
    """The share of the logits that is a function of the label (`Recorder.label_share`);
    for records written before it was stored, the trig fractions of every frequency summed
    (the same number for the additive ops, the only ones recorded then)."""
    value = record.scalars.get("label_share_logits", math.nan)
    if value is not None and math.isfinite(value):
        return float(value)
    return float(np.sum(record.arrays["trig_logits"]))


def own_numpy(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """`t` as a numpy array that owns its data (no torch tensor or storage behind it)."""
    return t.detach().to("cpu", dtype).numpy().copy()


# -- storage ---------------------------------------------------------------------------------


def expected_shapes(p: int, d_mlp: int, op: str = "add") -> dict[str, tuple[int, ...]]:
    sizes = {"p": p, "K": fourier.n_freqs(p), "m": d_mlp}
    shapes = dict(ARRAY_SHAPES)
    if ops.zero_inputs(op, p):
        shapes.update(ZERO_CLASS_SHAPES)
    return {
        name: tuple(sizes[d] if isinstance(d, str) else d for d in dims)
        for name, dims in shapes.items()
    }


def save_arrays(path: Path, record: Record) -> bytes:
    """The safetensors bytes of a record's arrays (the caller writes them atomically)."""
    from safetensors.numpy import save

    meta = {"format": "grok-tui/record", "version": str(RECORD_VERSION), "epoch": str(record.epoch)}
    return save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in record.arrays.items()},
                metadata=meta)  # fmt: skip


def load_arrays(path: Path, p: int, d_mlp: int, op: str = "add") -> dict[str, np.ndarray] | None:
    """A record's arrays, or None if the file is missing, damaged or of another shape."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if what_is_wrong(path):  # missing, or not a file (opening a FIFO would block forever)
        return None
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    want = expected_shapes(p, d_mlp, op)
    if set(arrays) != set(want):
        return None
    for name, shape in want.items():
        a = arrays[name]
        if a.shape != shape or a.dtype != np.float32:
            return None
    return arrays


class RecordGone(RunError):
    """A record's file went missing or changed shape after the record was read."""

    def __init__(self, epoch: int, path: Path) -> None:
        super().__init__(
            f"{path.name}: missing or damaged since it was read; that checkpoint is measured again"
        )
        self.epoch = epoch


def load_array(path: Path, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """One array of a record's file (float32, of `shape`), or None if it is missing or bad."""
    from safetensors import SafetensorError, safe_open

    if what_is_wrong(path):
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            if name not in f.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                return None
            array = f.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    if array.shape != shape or array.dtype != np.float32:
        return None
    return array


def row_is_record(row: Any, sign: int = 1, op: str = "add") -> bool:
    """A measures.jsonl row that is a (scalar half of a) version-2 record, made for the
    circuit directions of `sign` (rows without one were made for x + y) and for `op`'s
    basis (`record_tag`: rows of the additive ops name none)."""
    return (
        isinstance(row, dict)
        and row.get("kind") == "record"
        and row.get("version") == RECORD_VERSION
        and isinstance(row.get("epoch"), int)
        and not isinstance(row.get("epoch"), bool)
        and row.get("sign", 1) == sign
        and row.get("op") == record_tag(op)
        and all(name in row for name in NUMERIC_SCALARS)  # made before they were: redo
    )


def dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"), allow_nan=False)
