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

Additive ops alike: for `subtract` every x + y above reads x - y (the op's circuit
directions, engine/core/ops.py; the label is x - y, as it is x + y for add), and its rows
say so (`"sign": -1`), so a record made for the other direction is never read as one.

The coefficient of a per-input column T on cos(w_k(x+y)) needs no (p^2 x 2K) matmul: with
G[s] = sum_{x + y = s} T[x, y], it is fft1d(G)[cos k] / sqrt(p) (likewise for sin), since the
unit direction is sqrt(2) / p cos(w_k s) and F[cos k][s] = sqrt(2 / p) cos(w_k s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grok_tui.engine.core import fastpath, fourier, ops
from grok_tui.engine.core.loss import cross_entropy
from grok_tui.engine.core.model import CLASSIC_NAMES, InputPlan
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS, numerical_measures
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


def freq_gini(component_sq: np.ndarray) -> float:
    """The phase-invariant variant: the Gini of the per-frequency norms (`freq_norms`)."""
    return gini(freq_norms(component_sq))


def freq_norms(component_sq: np.ndarray) -> np.ndarray:
    """Per-frequency norms sqrt(|cos k|^2 + |sin k|^2), k = 1..K, from per-component squares.

    Phase-invariant: a circuit at frequency k whose phase turns moves mass between cos k and
    sin k, which changes a per-component Gini but not this one. The constant component is
    left out (the mean embedding, or a shift of every logit, says nothing about sparsity).
    """
    sq = np.asarray(component_sq, dtype=np.float64)
    return np.sqrt(sq[..., 1:].reshape(*sq.shape[:-1], -1, 2).sum(-1))


@dataclass
class Record:
    """The measures of one checkpoint for any key set (see the module docstring)."""

    epoch: int
    scalars: dict[str, float]  # RECORD_SCALARS
    sum_sq_per_param: dict[str, float]  # classic name -> sum of squares
    avg_attn: np.ndarray  # (h, 3)
    arrays: dict[str, np.ndarray]  # ARRAY_SHAPES, float32
    sign: int = 1  # the circuit directions: of x + y (+1) or of x - y (-1, subtract)

    def row(self) -> dict[str, Any]:
        """The JSON line of measures.jsonl (the arrays live in a file beside it)."""
        row: dict[str, Any] = {"epoch": self.epoch, "version": RECORD_VERSION, "kind": "record"}
        if self.sign != 1:
            row["sign"] = self.sign
        row.update({k: _finite(v) for k, v in self.scalars.items()})
        row["sum_sq_per_param"] = {k: _finite(v) for k, v in self.sum_sq_per_param.items()}
        row["avg_attn"] = [[_finite(float(v)) for v in r] for r in self.avg_attn]
        return row


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# Columns (neurons, classes) analysed per pass: every per-column measure is independent of
# the others, so a record's forward pass and temporaries hold p^2 x 64 floats at a time
# (3 MB at p = 113), not p^2 x d_mlp (26 MB) several times over: the resident peak of
# measuring a checkpoint beside a training run (bench/RESULTS.md, "Memory per checkpoint").
COLUMNS_PER_PASS = 64


def column_blocks(n: int) -> list[slice]:
    return [slice(i, min(i + COLUMNS_PER_PASS, n)) for i in range(0, n, COLUMNS_PER_PASS)]


class Recorder:
    """Computes Records for one config, reusing an `Analyzer` (its model, split, index maps)."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        a, p = analyzer, analyzer.cfg.p
        self.p, self.K = p, fourier.n_freqs(p)
        self.sign = circuit_sign(analyzer.cfg.op)
        self.rows = analyzer.sum_rows if self.sign == 1 else analyzer.diff_rows
        # Unit directions cos/sin(w_k(x+y)) at the train inputs, (K, 2, n_train): for the
        # per-frequency excluded loss and the excluded loss of a set.
        s = ((a.plan.x + self.sign * a.plan.y) % p)[a.train_idx].to(torch.float64)
        w = 2 * math.pi * torch.arange(1, self.K + 1, dtype=torch.float64)[:, None] / p
        scale = math.sqrt(2) / p
        self.train_dirs = (torch.stack([torch.cos(w * s), torch.sin(w * s)], dim=1) * scale).to(
            device=a.device, dtype=torch.float32
        )
        self.train_labels = a.labels[a.train_idx]
        self._train_plan: InputPlan | None = None

    # -- sums over x + y = s ----------------------------------------------------------------
    def trig_coeffs(self, values: torch.Tensor) -> torch.Tensor:
        """Coefficients of per-input columns (p^2, n) on cos/sin(w_k(x+y)): (K, 2, n)."""
        p = self.p
        sums = values.index_select(0, self.rows).reshape(p, p, -1).sum(dim=0)
        return (fourier.fft1d(sums, dim=0)[1:] / math.sqrt(p)).reshape(self.K, 2, -1)

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
        """Per column: variance along each k (K, n), centred variance (n), live (n)."""
        if coeffs is None:
            coeffs = self.trig_coeffs(values)
        mean = values.mean(dim=0)
        var = (values - mean).square().sum(dim=0)
        energy = var + values.shape[0] * mean.square()
        eps = torch.finfo(values.dtype).eps
        live = var > (10 * self.p * eps) ** 2 * energy
        return coeffs.square().sum(dim=1), var, live

    # -- the record ---------------------------------------------------------------------------
    def record(self, weights: Mapping[str, torch.Tensor], epoch: int) -> Record:
        a, p, k = self.analyzer, self.p, self.K
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
                post = torch.relu(pre)
                pre_parts.append(self.column_variances(pre))
                post_parts.append(self.column_variances(post))
                share_parts.append(a.neuron_shares(post))
                mlp_logits.addmm_(post, w_l[cols])
                del pre, post
            logits = fastpath.direct_logits(tables, a.plan)[:, :p] + mlp_logits
            train_loss, test_loss, train_acc, test_acc = a.split_losses(logits)
            numerics = numerical_measures(logits[a.train_idx], a.labels[a.train_idx])

            coeffs = self.trig_coeffs(logits)  # (K, 2, p)
            trig_logits = self.trig_shares(logits, coeffs)
            shares = torch.cat(share_parts, dim=1)  # (K, m)
            w_e_sq = fourier.fft1d(m.W_E[:p], dim=0).square().sum(dim=1)  # (p)
            w_l_sq = fourier.fft1d(w_l, dim=1).square().sum(dim=0)  # (p)
            avg_attn = fastpath.attention_pattern(tables, a.plan).mean(dim=0)

            tensors = {
                "w_e_sq": w_e_sq,
                "w_l_sq": w_l_sq,
                "logit_coeffs": coeffs,
                "logit_mean": logits.mean(dim=0),
                "logit_var": (logits - logits.mean(dim=0)).square().sum(dim=0),
                "trig_pre": self.mean_share(pre_parts),
                "trig_post": self.mean_share(post_parts),
                "trig_logits": trig_logits,
                "neuron_shares": shares,
                "mlp_out_frac": self.mlp_out_fraction(mlp_logits),
            }
            # Copies that own their memory: a record keeps its bytes alive, not torch's.
            arrays = {n: own_numpy(t, torch.float32) for n, t in tensors.items()}
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
            "gini_W_E_freq": freq_gini(arrays["w_e_sq"]),
            "gini_W_L_freq": freq_gini(arrays["w_l_sq"]),
            "sum_sq_weights": sum(sum_sq.values()),
            **numerics,
        }
        return Record(int(epoch), scalars, sum_sq, attn, arrays, self.sign)

    def mlp_out_fraction(self, mlp_logits: torch.Tensor) -> torch.Tensor:
        """Table 1 of the paper for every k: (K, 2) shares, cos then sin.

        `mlp_logits` is the MLP output read by the classes, post @ W_L (p^2, p). Column
        cos k of M = post @ W_L @ F.T is the MLP output read along W_L's cos k direction;
        its share of variance on cos(w_k(x+y)) is coef^2 / centred variance.
        """
        m = fourier.fft1d(mlp_logits, dim=1)  # (p^2, p): class components
        k = self.K
        cols = m[:, 1:]  # (p^2, 2K): cos 1, sin 1, ...
        var = (cols - cols.mean(dim=0)).square().sum(dim=0).reshape(k, 2)
        coeffs = self.trig_coeffs(cols)  # (K, 2, 2K): [freq of x+y, cos/sin, class component]
        idx = torch.arange(k, device=mlp_logits.device)
        own = coeffs.reshape(k, 2, k, 2)[idx, :, idx, :]  # (K, 2 dir, 2 comp)
        matched = torch.stack([own[:, 0, 0], own[:, 1, 1]], dim=1)  # cos-cos, sin-sin
        return torch.where(var > 0, matched.square() / var.clamp_min(1e-30), torch.nan)

    def excluded_losses(
        self, weights: Mapping[str, torch.Tensor], keys: tuple[int, ...], coeffs: np.ndarray
    ) -> tuple[float, list[float]]:
        """Train loss of the logits minus their projections on every k in `keys`, and on
        each k alone (the excluded loss and the per-frequency excluded losses).

        `coeffs` is the checkpoint's record (`logit_coeffs`, over all p^2 inputs), so only
        the train inputs need a forward pass.
        """
        a, p = self.analyzer, self.p
        if self._train_plan is None:
            x, y = a.plan.x[a.train_idx], a.plan.y[a.train_idx]
            self._train_plan = InputPlan(x, y, p, a.cfg.n_heads)
        labels = self.train_labels
        with torch.no_grad():
            a.model.load_classic(weights)
            logits = a.model.plan_logits(a.model.tables(), self._train_plan)[:, :p]
            c = torch.as_tensor(coeffs, device=logits.device)
            projs = [self.train_dirs[k - 1].T @ c[k - 1] for k in keys]  # (n_train, p) each
            total = cross_entropy(logits - sum(projs), labels) if projs else None
            per_freq = [cross_entropy(logits - proj, labels) for proj in projs]
            if total is None:
                total = cross_entropy(logits, labels)
            values = torch.stack([total, *per_freq]).tolist()
        return values[0], values[1:]


def circuit_sign(op: str) -> int:
    """+1 where the records read x + y, -1 for x - y (subtract); the other ops have no
    records (`progress.MEASURES_OPS`), and are read as x + y if asked."""
    return ops.INFO[op].sign if ops.structure(op) == "additive" else 1


def own_numpy(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    """`t` as a numpy array that owns its data (no torch tensor or storage behind it)."""
    return t.detach().to("cpu", dtype).numpy().copy()


# -- storage ---------------------------------------------------------------------------------


def expected_shapes(p: int, d_mlp: int) -> dict[str, tuple[int, ...]]:
    sizes = {"p": p, "K": fourier.n_freqs(p), "m": d_mlp}
    return {
        name: tuple(sizes[d] if isinstance(d, str) else d for d in dims)
        for name, dims in ARRAY_SHAPES.items()
    }


def save_arrays(path: Path, record: Record) -> bytes:
    """The safetensors bytes of a record's arrays (the caller writes them atomically)."""
    from safetensors.numpy import save

    meta = {"format": "grok-tui/record", "version": str(RECORD_VERSION), "epoch": str(record.epoch)}
    return save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in record.arrays.items()},
                metadata=meta)  # fmt: skip


def load_arrays(path: Path, p: int, d_mlp: int) -> dict[str, np.ndarray] | None:
    """A record's arrays, or None if the file is missing, damaged or of another shape."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if what_is_wrong(path):  # missing, or not a file (opening a FIFO would block forever)
        return None
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    want = expected_shapes(p, d_mlp)
    if set(arrays) != set(want):
        return None
    for name, shape in want.items():
        a = arrays[name]
        if a.shape != shape or a.dtype != np.float32:
            return None
    return arrays


def row_is_record(row: Any, sign: int = 1) -> bool:
    """A measures.jsonl row that is a (scalar half of a) version-2 record, made for the
    circuit directions of `sign` (rows without one were made for x + y)."""
    return (
        isinstance(row, dict)
        and row.get("kind") == "record"
        and row.get("version") == RECORD_VERSION
        and isinstance(row.get("epoch"), int)
        and not isinstance(row.get("epoch"), bool)
        and row.get("sign", 1) == sign
        and all(name in row for name in NUMERIC_SCALARS)  # made before they were: redo
    )


def dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"), allow_nan=False)
