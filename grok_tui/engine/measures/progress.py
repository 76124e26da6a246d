"""Progress measures over a run's checkpoints (Nanda et al. 2023, section 5), live and cached.

Each checkpoint gets one `Record` (engine/measures/record.py) as soon as it is written: exact,
compact, and enough to rebuild every measure for any key frequency set S without another
forward pass, except the excluded losses (of the whole set, and of each of its
frequencies), which `fill_excluded` recomputes in the background (one train forward per
checkpoint) whenever S changes.

Measures of a `ProgressTable` for the key set S in use (engine/measures/keyfreqs.py says which):

- restricted loss: the logits projected onto cos/sin(w_k(x+y)) for k in S, plus their mean
  over inputs; cross-entropy over all inputs (`restricted_loss`), over the train set
  (`restricted_loss_train`), and the accuracy of those logits (`restricted_acc`). Falls
  during circuit formation: the generalising circuit alone already predicts.
- excluded loss: the logits minus those projections (no mean correction), cross-entropy on
  the train set (`excluded_loss`); per key frequency, removing one k at a time
  (`excluded_per_freq`). It rises when the model starts to rely on the circuit.
- `test_restricted_ratio` = test loss / restricted loss.
- Gini coefficients (Hurley & Rickard) of the Fourier norms of W_E[:p] (norm over d_model)
  and of W_L = W_out W_U[:, :p] over classes (norm over neurons): `gini_W_E`, `gini_W_L` as
  the paper's code computes them, over the norm of each Fourier component (constant, cos k
  and sin k apart); `gini_W_E_freq`, `gini_W_L_freq` over the per-frequency norms
  sqrt(|cos k|^2 + |sin k|^2), k = 1..K, which a turning phase does not move. Both rise as
  the model becomes sparse in frequency.
- sum of squared weights, total and per parameter (classic names).
- trig fractions of the neuron pre-activations, post-activations and logits: for each column
  (neuron, class), the share of its variance (centred over inputs) along the directions
  cos/sin(w_k(x+y)), k in S, averaged over the columns (ARENA 1.5.2 `tensor_trig_ratio`).
  For an ideal ReLU neuron of one frequency this is small (about 0.15 at most: a ReLU of
  cos(w(x+y)) puts most of its variance in harmonics and in x-only / y-only terms); for the
  logits of the final model about 0.9-0.97.
- `neuron_frac_explained`: the paper's neuron measure over time: with the neuron clusters
  frozen at the reference checkpoint, the mean over clustered neurons of the share of their
  variance in their cluster frequency's 3x3 block, at every checkpoint.
- `mlp_out_frac`: the paper's Table 1 averaged over S: the share of the MLP output along
  W_L's cos k (sin k) class direction explained by cos(w_k(x+y)) (sin(w_k(x+y))); per key
  frequency in `mlp_out_frac_per_key` (|S| x 2, cos then sin).
- `xy_share_logits`: the share of the logits' variance that is a function of the label: for
  add the trig fraction of the logits over *every* frequency (cos/sin(w_k(x+y)) for all k
  and the constant span all functions of x + y). Key-set free, exact live, defined for
  every op: the generalising part of the logits against the memorising rest
  (engine/measures/forecast.py extrapolates it).
- average attention from `=` to each key position per head (h x 3), and the spectrograms:
  per-frequency norms of W_E and W_L over epochs (n x K), frequency-free and exact live.
- the numerical view (Prieto et al. 2025; engine/measures/numerics.py): the share of train
  examples whose float32 softmax has collapsed (`softmax_collapse`), whose float32 loss is
  exactly 0 (`zero_loss`), and quantiles of the top-minus-runner-up logit gap
  (`logit_gap_p10`, `_p50`, `_p90`). Key-set free, every op.
- the local learning coefficient (`llc`, and `llc_std` over its chains; Lau et al. 2023;
  engine/measures/llc.py, llc_checkpoint.py): an SGLD estimate, far costlier than a record,
  so made by its own thread (llc_service.py) and cached as rows of kind "llc"; NaN where
  not estimated yet. Key-set free, every op.

Every op in its own basis (engine/measures/record.py): x - y for subtract, log x +- log y
mod p - 1 in the log basis for multiply and divide (the inputs with no log a class of their
own, `CircuitFrame`); the quadratic ops and random have no circuit, so no key set and NaN
for every measure above that needs one, and random has no phases or forecast either.

Storage: RUN/measures.jsonl (one JSON row per record with its scalars, and one per
(checkpoint, set) excluded loss) and RUN/measures/epoch_NNNNNNN.safetensors (the arrays).
A bad row or file is ignored and recomputed; rows of older versions are ignored and
compacted away. In memory a record keeps its small arrays; its neuron shares and logit
coefficients stay in its file (`RecordArrays`), read when a key set or the reference
clusters change, so a long run's tracker grows by a few kB per checkpoint (issue 27).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grok_tui.engine.core import ops
from grok_tui.engine.core.config import OPS, RunConfig
from grok_tui.engine.core.memory import release_free_memory
from grok_tui.engine.core.model import CLASSIC_NAMES
from grok_tui.engine.measures import keyfreqs
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.llc_checkpoint import LLCSummary, parse_llc_row
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS
from grok_tui.engine.measures.record import (
    ON_DISK,
    RECORD_SCALARS,
    RECORD_VERSION,
    Record,
    RecordArrays,
    Recorder,
    RecordGone,
    circuit_sign,
    expected_shapes,
    freq_gini,
    freq_norms,
    gini,
    label_share,
    load_array,
    load_arrays,
    paper_gini,
    record_tag,
    row_is_record,
    save_arrays,
)
from grok_tui.engine.store.atomic import atomic_write_bytes
from grok_tui.engine.store.runs import Run, RunError

MEASURES_VERSION = RECORD_VERSION
# The ops whose progress measures this module computes: every op, each in its own basis
# (engine/measures/record.py says how); those of an op's circuit only where it has one
# (`ops.has_circuit_directions`), NaN otherwise.
MEASURES_OPS = tuple(OPS)
__all__ = ["MEASURES_VERSION", "SCALARS", "ProgressTable", "ProgressTracker", "gini"]

# The scalar measures of a table, in the order a report lists them.
SCALARS = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "restricted_loss",
    "restricted_loss_train",
    "restricted_acc",
    "excluded_loss",
    "test_restricted_ratio",
    "gini_W_E",
    "gini_W_L",
    "gini_W_E_freq",
    "gini_W_L_freq",
    "sum_sq_weights",
    "trig_frac_pre",
    "trig_frac_post",
    "trig_frac_logits",
    "neuron_frac_explained",
    "mlp_out_frac",
    "xy_share_logits",
    *NUMERIC_SCALARS,  # the numerical view: collapse, zero loss, logit gaps (numerics.py)
    "llc",  # the local learning coefficient (llc_checkpoint.py), where estimated
    "llc_std",
)
MAX_LINE = 1 << 20  # a measures.jsonl line longer than this is not one we wrote


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


# -- restricted logits from the record -------------------------------------------------------


@dataclass(frozen=True)
class CircuitFrame:
    """How the restricted logits of an op's circuit map onto its inputs: per coordinate t in
    Z_n (x + y, or log x + log y, ...), the unit directions' values, the label, how many
    inputs (all, train) have it; and the class of inputs with no coordinate (0 in a
    multiplicative op: label 0), whose restricted logits are their own mean."""

    waves: np.ndarray  # (K, 2, n): `ops.circuit_waves`
    labels: np.ndarray  # (n,) the label of the inputs at t
    counts: np.ndarray  # (n,) inputs at t
    train_counts: np.ndarray  # (n,) train inputs at t
    zero_count: int = 0  # inputs with no coordinate
    zero_train: int = 0  # ... in the train set


def additive_frame(p: int, train_counts: np.ndarray) -> CircuitFrame:
    """The frame of add (and subtract): t = x +- y = the label, p inputs at each."""
    return CircuitFrame(ops.circuit_waves("add", p).numpy(), np.arange(p), np.full(p, p),
                        np.asarray(train_counts, dtype=np.float64))  # fmt: skip


def circuit_frame(cfg: RunConfig) -> CircuitFrame | None:
    """The op's frame from its config (None: the op has no circuit)."""
    from grok_tui.engine.core.data import make_dataset

    if not ops.has_circuit_directions(cfg.op):
        return None
    p, n = cfg.p, ops.circuit_modulus(cfg.op, cfg.p)
    t = ops.circuit_coordinate(cfg.op, p).numpy()
    on_inputs = t[ops.input_indices(cfg.op, p)]
    on_train = t[make_dataset(cfg).train_idx.numpy()]
    return CircuitFrame(
        waves=ops.circuit_waves(cfg.op, p).numpy(),
        labels=ops.coordinate_labels(cfg.op, p).numpy(),
        counts=np.bincount(on_inputs[on_inputs >= 0], minlength=n).astype(np.float64),
        train_counts=np.bincount(on_train[on_train >= 0], minlength=n).astype(np.float64),
        zero_count=int((on_inputs < 0).sum()),
        zero_train=int((on_train < 0).sum()),
    )


def _label_losses(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy and correctness (n, rows) of logit rows (n, rows, classes) against one
    label per row, exact when the loss is tiny (engine/core/loss.py)."""
    rows = np.arange(logits.shape[1])
    z = logits - logits.max(axis=2, keepdims=True)
    z_label = z[:, rows, labels]  # (n, rows) <= 0
    ez = np.exp(z)
    ez[:, rows, labels] = 0.0
    rest = ez.sum(axis=2)
    # log(exp(z_label) + rest) - z_label
    return np.log1p(rest + np.expm1(z_label)) - z_label, (z_label == 0).astype(np.float64)


def restricted_losses(
    coeffs: np.ndarray,
    mean: np.ndarray,
    keys: Sequence[int],
    train_counts: np.ndarray,
    frame: CircuitFrame | None = None,
    zero_mean: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restricted loss over all inputs, over the train set, and accuracy, per checkpoint.

    coeffs (n, K, 2, p) and mean (n, p) from records. The restricted logits are
    R[t, c] = mean[c] + sum_{k in S} (coeffs[k, 0, c] W[k, 0, t] + coeffs[k, 1, c] W[k, 1, t])
    with W the unit directions' values at coordinate t (`frame.waves`; for add t = x + y
    mod p and W = sqrt(2)/p cos, sin(w_k t)): a function of t alone, which fixes the label.
    So the losses are means over t of the cross-entropy of row R[t] against its label,
    weighted by the inputs (all, train) at t: O(p^2) per checkpoint. A multiplicative op's
    inputs with no log (`frame.zero_count`) have the restricted logits `zero_mean` (n, p),
    their own mean, against label 0. Without a frame: add's, with `train_counts` per label.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    p = coeffs.shape[-1]
    frame = frame if frame is not None else additive_frame(p, train_counts)
    n_t = frame.labels.shape[0]
    logits = np.repeat(mean[:, None, :], n_t, axis=1)  # (n, t, c)
    if len(keys):
        idx = np.asarray(keys, dtype=np.int64) - 1
        logits = logits + np.einsum("nkdc,kdt->ntc", coeffs[:, idx], frame.waves[idx])
    per_t, correct = _label_losses(logits, frame.labels)
    weights = [frame.counts, np.asarray(frame.train_counts, dtype=np.float64)]
    zero = [float(frame.zero_count), float(frame.zero_train)]
    if frame.zero_count and zero_mean is not None:
        z = np.asarray(zero_mean, dtype=np.float64)[:, None, :]
        z_loss, z_correct = _label_losses(z, np.zeros(1, dtype=np.int64))
        per_t = np.concatenate([per_t, z_loss], axis=1)
        correct = np.concatenate([correct, z_correct], axis=1)
        weights = [np.append(w, extra) for w, extra in zip(weights, zero, strict=True)]
    total, train = ((per_t * w).sum(axis=1) / max(w.sum(), 1.0) for w in weights)
    acc = (correct * weights[0]).sum(axis=1) / max(weights[0].sum(), 1.0)
    return total, train, acc


def spectrum_shares(spectrogram: np.ndarray) -> np.ndarray:
    """Each row (a checkpoint's per-frequency norms) as shares of its sum: emergence of the
    key frequencies shows whatever the overall size of the weights."""
    spec = np.asarray(spectrogram, dtype=np.float64)
    total = spec.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, spec / total, np.nan)


# -- the table -------------------------------------------------------------------------------


@dataclass
class ProgressTable:
    """The measures of a run as columns over checkpoint epochs (NaN where not known yet)."""

    key_freqs: tuple[int, ...]
    epochs: np.ndarray  # (n,) int
    scalars: dict[str, np.ndarray]  # name in SCALARS -> (n,)
    excluded_per_freq: np.ndarray  # (n, |S|)
    mlp_out_frac_per_key: np.ndarray  # (n, |S|, 2)
    avg_attn: np.ndarray  # (n, h, 3)
    sum_sq_per_param: dict[str, np.ndarray]  # classic name -> (n,)
    spectrogram_W_E: np.ndarray  # (n, K) per-frequency norms of W_E
    spectrogram_W_L: np.ndarray  # (n, K) per-frequency norms of W_L
    key_history: keyfreqs.KeyHistory = field(default_factory=keyfreqs.KeyHistory)
    warning: str = ""  # the W_L cross-check, when it disagrees
    excluded_pending: int = 0  # checkpoints whose excluded loss for this set is not in yet

    def __len__(self) -> int:
        return len(self.epochs)

    def spectrum_shares(self, matrix: str) -> np.ndarray:
        """(n, K) W_E's or W_L's per-frequency norms as shares of each checkpoint's total:
        what the spectrogram view draws."""
        return spectrum_shares(self.spectrogram_W_E if matrix == "W_E" else self.spectrogram_W_L)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.scalars[name]

    def llc_band(self) -> tuple[np.ndarray, np.ndarray]:
        """The LLC minus and plus its standard deviation over chains (NaN where none)."""
        llc, sd = self.scalars["llc"], self.scalars["llc_std"]
        return llc - sd, llc + sd

    @property
    def key_since(self) -> int | None:
        return self.key_history.since

    def row(self, epoch: int) -> dict[str, Any] | None:
        """One checkpoint's measures as a JSON-ready dict (None if there is no such row)."""
        hits = np.flatnonzero(self.epochs == epoch)
        if not hits.size:
            return None
        i = int(hits[0])

        def clean(v: float) -> float | None:
            v = float(v)
            return v if math.isfinite(v) else None

        row: dict[str, Any] = {"epoch": int(epoch), "key_freqs": list(self.key_freqs)}
        row.update({name: clean(col[i]) for name, col in self.scalars.items()})
        row["excluded_loss_per_freq"] = {
            str(k): clean(self.excluded_per_freq[i, j]) for j, k in enumerate(self.key_freqs)
        }
        row["mlp_out_frac_per_freq"] = {
            str(k): [clean(v) for v in self.mlp_out_frac_per_key[i, j]]
            for j, k in enumerate(self.key_freqs)
        }
        row["sum_sq_per_param"] = {k: clean(v[i]) for k, v in self.sum_sq_per_param.items()}
        row["avg_attn"] = [[clean(v) for v in r] for r in self.avg_attn[i]]
        return row

    def phases(self) -> dict[str, int | None]:
        from grok_tui.engine.measures.phases import detect_phases

        return detect_phases(self)


def empty_table() -> ProgressTable:
    return ProgressTable(
        key_freqs=(),
        epochs=np.zeros(0, dtype=np.int64),
        scalars={name: np.zeros(0) for name in SCALARS},
        excluded_per_freq=np.zeros((0, 0)),
        mlp_out_frac_per_key=np.zeros((0, 0, 2)),
        avg_attn=np.zeros((0, 0, 3)),
        sum_sq_per_param={name: np.zeros(0) for name in CLASSIC_NAMES.values()},
        spectrogram_W_E=np.zeros((0, 0)),
        spectrogram_W_L=np.zeros((0, 0)),
    )


# -- the cache -------------------------------------------------------------------------------


Excluded = tuple[float, ...]  # (excluded loss, then one per key frequency in order)


def _excluded_row(
    row: dict[str, Any], sign: int = 1, op: str = "add"
) -> tuple[int, tuple[int, ...], Excluded] | None:
    epoch, keys, per_freq = row.get("epoch"), row.get("key_freqs"), row.get("per_freq")
    if (
        row.get("kind") != "excluded"
        or row.get("sign", 1) != sign
        or row.get("op") != record_tag(op)
        or row.get("version") != RECORD_VERSION
        or not isinstance(epoch, int)
        or isinstance(epoch, bool)
        or not isinstance(keys, list)
        or not all(isinstance(k, int) and not isinstance(k, bool) for k in keys)
        or not isinstance(per_freq, list)
        or len(per_freq) != len(keys)
    ):
        return None
    return epoch, tuple(keys), (_num(row.get("excluded_loss")), *map(_num, per_freq))


def excluded_json(
    epoch: int, keys: tuple[int, ...], values: Excluded, sign: int = 1, op: str = "add"
) -> dict[str, Any]:
    clean = [v if math.isfinite(v) else None for v in values]
    row: dict[str, Any] = {
        "epoch": epoch,
        "version": RECORD_VERSION,
        "kind": "excluded",
        "key_freqs": list(keys),
        "excluded_loss": clean[0],
        "per_freq": clean[1:],
    }
    if sign != 1:
        row["sign"] = sign  # x - y directions (subtract), as its records
    if record_tag(op) is not None:
        row["op"] = op  # another basis (multiply, divide), as its records
    return row


class RecordStore:
    """The records of one run on disk (measures.jsonl + measures/), read incrementally."""

    def __init__(self, run: Run, p: int, d_mlp: int) -> None:
        self.run = run
        self.p, self.d_mlp = p, d_mlp
        self.op = run.meta().config.op
        self.sign = circuit_sign(self.op)
        self.dir = run.path / "measures"
        self.shapes = expected_shapes(p, d_mlp, self.op)
        self._lock = threading.Lock()
        self._in_memory: dict[int, dict[str, np.ndarray]] = {}  # a read-only run's arrays
        self.llc: dict[int, LLCSummary] = {}  # the LLC estimates `scan` found

    def array_path(self, epoch: int) -> Path:
        return self.dir / f"epoch_{epoch:07d}.safetensors"

    def scan(
        self,
    ) -> tuple[dict[int, dict[str, Any]], dict[tuple[int, tuple[int, ...]], Excluded], int]:
        """(record rows by epoch, excluded losses by (epoch, set), rows not of this version)."""
        records: dict[int, dict[str, Any]] = {}
        excluded: dict[tuple[int, tuple[int, ...]], Excluded] = {}
        stale = 0
        for row in self.run.read_measures():  # untrusted: bad lines skipped with a warning
            if row_is_record(row, self.sign, self.op):
                if row["epoch"] in records:
                    stale += 1
                records[row["epoch"]] = row  # the last one written wins
                continue
            if row.get("kind") == "outlook":
                continue  # engine/measures/asof.py reads these
            if row.get("kind") == "llc":
                if (summary := parse_llc_row(row)) is not None:
                    self.llc[summary.epoch] = summary  # the last one written wins
                else:
                    stale += 1  # other settings or version: compacted away
                continue
            ex = _excluded_row(row, self.sign, self.op)
            if ex is None:
                stale += 1
            else:
                if (ex[0], ex[1]) in excluded:
                    stale += 1
                excluded[(ex[0], ex[1])] = ex[2]
        return records, excluded, stale

    def load(
        self, row: dict[str, Any], on_gone: Callable[[int], None] | None = None
    ) -> Record | None:
        """The record of a scalar row with its arrays (`lean`); None if the arrays are
        missing or bad."""
        in_memory = self._in_memory.get(row["epoch"])
        arrays = (
            in_memory
            if in_memory is not None
            else load_arrays(self.array_path(row["epoch"]), self.p, self.d_mlp, self.op)
        )
        if arrays is None:
            return None
        params = row.get("sum_sq_per_param")
        params = params if isinstance(params, dict) else {}
        attn_raw = row.get("avg_attn")
        try:
            attn = np.asarray(attn_raw, dtype=np.float64)
        except (TypeError, ValueError):
            attn = np.zeros((0, 3))
        if attn.ndim != 2 or attn.shape[1:] != (3,):
            attn = np.zeros((0, 3))
        record = Record(
            epoch=row["epoch"],
            scalars={k: _num(row.get(k)) for k in RECORD_SCALARS},
            sum_sq_per_param={k: _num(params.get(k)) for k in CLASSIC_NAMES.values()},
            avg_attn=attn,
            arrays=arrays,
            sign=self.sign,
            op=self.op,
        )
        return self.lean(record, on_gone)

    def lean(self, record: Record, on_gone: Callable[[int], None] | None = None) -> Record:
        """`record` (saved) keeping only its small arrays in memory: the `ON_DISK` ones are
        read from its file when used (`on_gone(epoch)` first if the file went bad). A
        read-only run's records keep every array (there is no file to read back)."""
        if self.run.read_only or isinstance(record.arrays, RecordArrays):
            return record
        held = {k: v for k, v in record.arrays.items() if k not in ON_DISK}
        on_disk = tuple(k for k in ON_DISK if k in record.arrays)
        read = functools.partial(self.read_array, record.epoch, on_gone)
        return Record(record.epoch, record.scalars, record.sum_sq_per_param, record.avg_attn,
                      RecordArrays(held, on_disk, read), record.sign, record.op)  # fmt: skip

    def read_array(
        self, epoch: int, on_gone: Callable[[int], None] | None, name: str
    ) -> np.ndarray:
        """One array of a saved record, from its file (`on_gone(epoch)`, then `RecordGone`,
        if the file is missing or bad)."""
        path = self.array_path(epoch)
        array = load_array(path, name, self.shapes[name])
        if array is None:
            if on_gone is not None:
                on_gone(epoch)
            raise RecordGone(epoch, path)
        return array

    def save(self, record: Record) -> None:
        """Arrays first (atomic), then the row: a row never points at missing arrays."""
        with self._lock:
            if self.run.read_only:  # a served viewer writes nothing into the run
                self._in_memory[record.epoch] = record.arrays
            else:
                self.dir.mkdir(exist_ok=True)
                path = self.array_path(record.epoch)
                atomic_write_bytes(path, save_arrays(path, record))
            self.run.append_measures([record.row()])

    def save_excluded(self, rows: list[tuple[int, tuple[int, ...], Excluded]]) -> None:
        self.run.append_measures([excluded_json(e, k, v, self.sign, self.op) for e, k, v in rows])

    def compact(self, keep_keys: tuple[int, ...]) -> None:
        """Rewrite measures.jsonl with the newest record per epoch and the excluded losses
        of the current set only (atomically), the outlook rows and the newest LLC row per
        epoch. Under the cache's writer lock from the read to the rewrite: a row another
        thread or process appends meanwhile waits, and lands in the new file once."""
        with self._lock, self.run.measures_lock():
            records, excluded, _ = self.scan()
            rows = [records[e] for e in sorted(records)]
            rows += [
                excluded_json(e, k, v, self.sign, self.op)
                for (e, k), v in sorted(excluded.items())
                if k == keep_keys
            ]
            rows += [r for r in self.run.read_measures() if r.get("kind") == "outlook"]
            newest_llc = {r["epoch"]: r for r in self.run.read_measures()
                          if parse_llc_row(r) is not None}  # fmt: skip
            rows += [newest_llc[e] for e in sorted(newest_llc)]
            self.run.rewrite_measures(rows)


class ProgressTracker:
    """Keeps the records of a run's checkpoints and builds its `ProgressTable`.

    `update()` records the checkpoints that have none (each saved at once, so a stop or a
    kill keeps the work done); `fill_excluded()` computes the excluded loss of the current
    key set where missing; `table()` rebuilds every other measure from the records.
    Both take `should_stop`, checked between checkpoints. `key_epoch` fixes the key set
    (and the reference clusters) to those of one checkpoint.
    """

    def __init__(
        self,
        run: Run,
        device: str | torch.device = "cpu",
        key_epoch: int | None = None,
    ) -> None:
        self.run = run
        self.cfg = run.meta().config
        self.device = torch.device(device)
        self.key_epoch = key_epoch
        self.store = RecordStore(run, self.cfg.p, self.cfg.d_mlp)
        self._analyzer: Analyzer | None = None
        self._recorder: Recorder | None = None
        self.records: dict[int, Record] = {}  # in memory, by epoch
        self.excluded: dict[tuple[int, tuple[int, ...]], Excluded] = {}
        self.bad: dict[int, str] = {}  # checkpoints that could not be read, and why
        self.computed = 0  # records computed by this tracker (what cache tests count)
        self.excluded_computed = 0
        self._scanned_size = -1
        self._stale = 0
        self._restricted: dict[tuple[int, tuple[int, ...]], tuple[float, float, float]] = {}
        self._candidates: dict[int, tuple[int, ...]] = {}
        self._shares: dict[int, np.ndarray] = {}
        self._explained = ExplainedCache()
        self._frame: CircuitFrame | None = None
        self.llc: dict[int, LLCSummary] = {}  # the LLC estimates by epoch (llc_checkpoint.py)
        self.llc_version = 0  # counts changes to `llc`

    @property
    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            self._analyzer = Analyzer(self.cfg, self.device)
        return self._analyzer

    @property
    def recorder(self) -> Recorder:
        if self._recorder is None:
            self._recorder = Recorder(self.analyzer)
        return self._recorder

    def frame(self) -> CircuitFrame | None:
        """The op's `CircuitFrame` (None: no circuit), built once."""
        if self._frame is None and ops.has_circuit_directions(self.cfg.op):
            self._frame = circuit_frame(self.cfg)
        return self._frame

    # -- reading the cache ---------------------------------------------------------------------
    def _rescan(self) -> None:
        """Load records written by anyone (this tracker, another process) since the last look."""
        try:
            size = self.run.measures_path.stat().st_size
        except OSError:
            size = 0
        if size == self._scanned_size:
            return
        self._scanned_size = size
        rows, excluded, self._stale = self.store.scan()
        for epoch, row in rows.items():
            if epoch not in self.records:
                record = self.store.load(row, self._forget)
                if record is not None:
                    self.records[epoch] = record
        self.excluded.update(excluded)
        self.take_llc(self.store.llc.values())

    def take_llc(self, summaries: Iterable[LLCSummary]) -> bool:
        """Add LLC estimates (from the cache, or handed over by the thread that made them:
        a read-only run keeps its rows in memory); True if any was new."""
        new = False
        for summary in summaries:
            if not summary.same(self.llc.get(summary.epoch)):
                self.llc[summary.epoch] = summary
                new = True
        self.llc_version += new
        return new

    def _forget(self, epoch: int) -> None:
        """Drop a record whose file went bad since it was read (it is recorded again) and
        what was derived from it."""
        self.records.pop(epoch, None)
        self._candidates.pop(epoch, None)
        self._shares.pop(epoch, None)
        self._explained.values.pop(epoch, None)
        for key in [k for k in self._restricted if k[0] == epoch]:
            del self._restricted[key]

    def missing(self) -> list[int]:
        """Checkpoints without a usable record."""
        self._rescan()
        return [e for e in self.run.checkpoint_epochs() if e not in self.records]

    # -- computing -------------------------------------------------------------------------------
    def update(
        self,
        should_stop: Callable[[], bool] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        skip: Callable[[int], bool] | None = None,
    ) -> list[int]:
        """Record the checkpoints that have no record yet; return their epochs."""
        todo = [e for e in self.missing() if e not in self.bad and not (skip and skip(e))]
        if newest_first:
            todo.reverse()
        if limit is not None:
            todo = todo[:limit]
        done = []
        for epoch, weights in self._weights(todo, should_stop):
            record = self.recorder.record(weights, epoch)
            self.store.save(record)
            self.records[epoch] = self.store.lean(record, self._forget)
            del record  # its full arrays: what stays is the lean one
            self.computed += 1
            done.append(epoch)
            release_free_memory()  # what stays per checkpoint is its record (core/memory.py)
        if done:
            with contextlib.suppress(OSError):
                self._scanned_size = self.run.measures_path.stat().st_size
        return done

    def _weights(
        self, epochs: list[int], should_stop: Callable[[], bool] | None
    ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """Each checkpoint's weights in turn until asked to stop; unreadable ones are noted
        in `bad` (with the reason) and skipped."""
        for epoch in epochs:
            if should_stop is not None and should_stop():
                return
            try:
                yield epoch, self.run.load_checkpoint(epoch, self.cfg)
            except RunError as exc:
                self.bad[epoch] = str(exc)

    def fill_excluded(
        self,
        should_stop: Callable[[], bool] | None = None,
        limit: int | None = None,
        keys: tuple[int, ...] | None = None,
        upto: int | None = None,
    ) -> int:
        """Compute the excluded losses of the current key set (or of `keys`) where they are
        missing (at checkpoints up to `upto`), newest first; return how many this tracker
        has computed in all."""
        self._rescan()
        keys = self.key_history().current if keys is None else keys
        if not keys:
            return 0
        todo = [
            e
            for e in reversed(self.epochs())
            if (e, keys) not in self.excluded and e not in self.bad and (upto is None or e <= upto)
        ]
        if limit is not None:
            todo = todo[:limit]
        if todo and self._stale > max(64, len(self.records)):
            self.store.compact(self.key_history().current)  # not an older set asked for
            self._stale = 0
            with contextlib.suppress(OSError):
                self._scanned_size = self.run.measures_path.stat().st_size
        batch: list[tuple[int, tuple[int, ...], Excluded]] = []
        for epoch, weights in self._weights(todo, should_stop):
            try:
                coeffs = self.records[epoch].arrays["logit_coeffs"]
            except RecordGone as gone:
                self._forget(gone.epoch)  # recorded again by the next `update`
                continue
            total, per_freq = self.recorder.excluded_losses(weights, keys, coeffs)
            value = (total, *per_freq)
            self.excluded[(epoch, keys)] = value
            self.excluded_computed += 1
            batch.append((epoch, keys, value))
            release_free_memory()
            if len(batch) >= 16:
                self.store.save_excluded(batch)
                batch = []
        self.store.save_excluded(batch)
        with contextlib.suppress(OSError):
            self._scanned_size = self.run.measures_path.stat().st_size
        return self.excluded_computed

    # -- the key set -------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        """Checkpoints that exist and have a record, ascending."""
        return [e for e in self.run.checkpoint_epochs() if e in self.records]

    def candidate(self, epoch: int) -> tuple[int, ...]:
        if epoch not in self._candidates:
            shares = self.records[epoch].arrays["neuron_shares"]
            self._candidates[epoch] = keyfreqs.candidate_set(shares)
        return self._candidates[epoch]

    def key_history(self, epochs: list[int] | None = None) -> keyfreqs.KeyHistory:
        """The key sets of the recorded checkpoints (or of `epochs`, a prefix of them)."""
        epochs = self.epochs() if epochs is None else epochs
        if not ops.has_circuit_directions(self.cfg.op):
            return keyfreqs.KeyHistory()  # no circuit, no key frequencies
        if self.key_epoch is not None:
            if self.key_epoch not in self.records:
                raise RunError(
                    f"--key-epoch {self.key_epoch}: no measured checkpoint at that epoch in "
                    f"{self.run.path}"
                )
            return keyfreqs.fixed_history(self.key_epoch, self.candidate(self.key_epoch))
        return keyfreqs.live_history(
            epochs,
            [self.candidate(e) for e in epochs],
            provisional=keyfreqs.provisional_candidates([self.shares(e) for e in epochs]),
        )

    def shares(self, epoch: int) -> np.ndarray:
        """(K,) each frequency's share of W_E's and W_L's norms (the provisional key set)."""
        if epoch not in self._shares:
            arrays = self.records[epoch].arrays
            self._shares[epoch] = keyfreqs.frequency_shares(
                arrays["w_e_sq"], arrays["w_l_sq"], ops.basis_kind(self.cfg.op)
            )
        return self._shares[epoch]

    # -- the table ---------------------------------------------------------------------------------
    def table(self, upto: int | None = None) -> ProgressTable:
        """Every measure for the recorded checkpoints (up to epoch `upto`), key set as of then."""
        self._rescan()
        while True:
            epochs = [e for e in self.epochs() if upto is None or e <= upto]
            if not epochs:
                return empty_table()
            try:
                history = self.key_history(epochs)
                return build_table(
                    [self.records[e] for e in epochs],
                    history,
                    self.excluded,
                    None,
                    self._restricted,
                    self.frame(),
                    self.llc,
                    self._explained,
                )
            except RecordGone as gone:
                self._forget(gone.epoch)  # the table without it, until it is recorded again


@dataclass
class ExplainedCache:
    """`neuron_frac_explained` per epoch for one set of reference clusters: a moving
    reference checkpoint with the same clusters reads no record's neuron shares again."""

    clusters: bytes = b""
    values: dict[int, float] = field(default_factory=dict)

    def for_clusters(self, clusters: np.ndarray) -> dict[int, float]:
        key = clusters.tobytes()
        if key != self.clusters:
            self.clusters, self.values = key, {}
        return self.values


def frac_explained(
    records: list[Record], ref: int | None, cache: ExplainedCache | None = None
) -> np.ndarray:
    """Per record, the mean over the neurons clustered at checkpoint `ref` of their share
    in their cluster frequency's block (NaN without a reference or a clustered neuron)."""
    ref_record = next((r for r in records if r.epoch == ref), None)
    if ref_record is None:
        return np.full(len(records), math.nan)
    clusters = keyfreqs.neuron_clusters(ref_record.arrays["neuron_shares"])
    members = np.flatnonzero(clusters > 0)
    if not members.size:
        return np.full(len(records), math.nan)
    values = (cache if cache is not None else ExplainedCache()).for_clusters(clusters)
    todo = [r for r in records if r.epoch not in values]
    if todo:
        rows = clusters[members] - 1
        gathered = np.stack([r.arrays["neuron_shares"][rows, members] for r in todo])
        # Summed neuron by neuron in float32, as numpy reduces the (n, members) gather of
        # every record's shares stacked (a Fortran-ordered array): the same bits as when
        # the table held all the shares at once, whichever records are new.
        total = np.zeros(len(todo), dtype=np.float32)
        for j in range(members.size):
            total += gathered[:, j]
        np.true_divide(total, members.size, out=total, casting="unsafe")
        values.update(zip((r.epoch for r in todo), total, strict=True))
    return np.array([values[r.epoch] for r in records], dtype=np.float32)


def build_table(
    records: list[Record],
    history: keyfreqs.KeyHistory,
    excluded: dict[tuple[int, tuple[int, ...]], Excluded],
    train_counts: np.ndarray | None,
    restricted_cache: dict[tuple[int, tuple[int, ...]], tuple[float, float, float]] | None = None,
    frame: CircuitFrame | None = None,
    llc: Mapping[int, LLCSummary] | None = None,
    explained_cache: ExplainedCache | None = None,
) -> ProgressTable:
    """The table of `records` (ascending epochs) for the current set of `history`: the
    records' op's `frame` (add's from `train_counts`, the train inputs per label, if None
    and the op is additive; an op with no circuit has no restricted losses), with the LLC
    estimates in `llc` (by epoch; NaN where there is none).

    The large arrays (`ON_DISK`) are read only where the caches lack what they give:
    the restricted losses of a (checkpoint, set), the neuron fraction of a checkpoint for
    the reference clusters."""
    keys = history.current
    llc = {} if llc is None else llc
    op, basis = records[0].op, records[0].basis
    circuit = ops.has_circuit_directions(op)
    if frame is None and circuit and train_counts is not None:
        frame = additive_frame(records[0].arrays["logit_mean"].shape[0], train_counts)
    n = len(records)
    epochs = np.array([r.epoch for r in records], dtype=np.int64)
    col = {
        name: np.array([r.scalars.get(name, math.nan) for r in records]) for name in RECORD_SCALARS
    }

    def stacked(name: str, rows: Sequence[int] | None = None) -> np.ndarray:
        return np.stack([records[i].arrays[name] for i in (range(n) if rows is None else rows)])

    cache = restricted_cache if restricted_cache is not None else {}
    todo = [i for i, r in enumerate(records) if (r.epoch, keys) not in cache]
    if not circuit or frame is None:
        for i in todo:
            cache[(records[i].epoch, keys)] = (math.nan, math.nan, math.nan)
        todo = []
    if todo:
        values = restricted_losses(
            stacked("logit_coeffs", todo),
            stacked("logit_mean", todo),
            keys,
            frame.train_counts,
            frame,
            stacked("logit_zero_mean", todo) if "logit_zero_mean" in records[0].arrays else None,
        )
        for j, i in enumerate(todo):
            cache[(records[i].epoch, keys)] = (values[0][j], values[1][j], values[2][j])
    restricted = np.array([cache[(r.epoch, keys)] for r in records]).reshape(n, 3)

    idx = np.asarray(keys, dtype=np.int64) - 1
    trig = {
        name: stacked(name)[:, idx].sum(axis=1) if len(keys) else np.full(n, math.nan)
        for name in ("trig_pre", "trig_post", "trig_logits")
    }
    per_key_mlp = stacked("mlp_out_frac")[:, idx]  # (n, |S|, 2)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: no sine at the log top k
        mlp_out = np.nanmean(per_key_mlp, axis=(1, 2)) if len(keys) else np.full(n, math.nan)

    missing = (math.nan,) * (1 + len(keys))
    excl = np.array([excluded.get((r.epoch, keys), missing) for r in records]).reshape(n, -1)
    if not keys:
        excl[:] = math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = col["test_loss"] / restricted[:, 0]
    scalars = {
        "train_loss": col["train_loss"],
        "test_loss": col["test_loss"],
        "train_acc": col["train_acc"],
        "test_acc": col["test_acc"],
        "restricted_loss": restricted[:, 0],
        "restricted_loss_train": restricted[:, 1],
        "restricted_acc": restricted[:, 2],
        "excluded_loss": excl[:, 0],
        "test_restricted_ratio": np.where(restricted[:, 0] > 0, ratio, math.nan),
        # From the arrays, not the stored scalars: rows of older versions of this code
        # stored the per-frequency Gini under the paper's name.
        "gini_W_E": np.array([paper_gini(r.arrays["w_e_sq"]) for r in records]),
        "gini_W_L": np.array([paper_gini(r.arrays["w_l_sq"]) for r in records]),
        "gini_W_E_freq": np.array([freq_gini(r.arrays["w_e_sq"], basis) for r in records]),
        "gini_W_L_freq": np.array([freq_gini(r.arrays["w_l_sq"], basis) for r in records]),
        "sum_sq_weights": col["sum_sq_weights"],
        "trig_frac_pre": trig["trig_pre"],
        "trig_frac_post": trig["trig_post"],
        "trig_frac_logits": trig["trig_logits"],
        "neuron_frac_explained": frac_explained(records, history.reference_epoch, explained_cache),
        "mlp_out_frac": mlp_out,
        # The share of the logits that is a function of the label (of x + y for add).
        "xy_share_logits": np.array([label_share(r) for r in records]),
        **{name: col[name] for name in NUMERIC_SCALARS},
        "llc": np.array([llc[r.epoch].llc if r.epoch in llc else math.nan for r in records]),
        "llc_std": np.array(
            [llc[r.epoch].llc_std if r.epoch in llc else math.nan for r in records]
        ),
    }
    h = max((r.avg_attn.shape[0] for r in records), default=0)
    avg_attn = np.full((n, h, 3), math.nan)
    for i, r in enumerate(records):
        if r.avg_attn.shape == (h, 3):
            avg_attn[i] = r.avg_attn
    newest = records[-1]
    return ProgressTable(
        key_freqs=keys,
        epochs=epochs,
        scalars=scalars,
        excluded_per_freq=excl[:, 1:],
        mlp_out_frac_per_key=per_key_mlp.astype(np.float64),
        avg_attn=avg_attn,
        sum_sq_per_param={
            name: np.array([r.sum_sq_per_param.get(name, math.nan) for r in records])
            for name in CLASSIC_NAMES.values()
        },
        spectrogram_W_E=freq_norms(stacked("w_e_sq"), basis),
        spectrogram_W_L=freq_norms(stacked("w_l_sq"), basis),
        key_history=history,
        warning=""
        if history.provisional
        else keyfreqs.cross_check(keys, newest.arrays["w_l_sq"], basis),
        excluded_pending=sum(1 for r in records if keys and (r.epoch, keys) not in excluded),
    )


def progress_table(
    run: Run,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
    key_epoch: int | None = None,
) -> ProgressTable:
    """Measures for every checkpoint of a run, computing only what the cache lacks."""
    tracker = ProgressTracker(run, device, key_epoch=key_epoch)
    tracker.update(should_stop)
    tracker.fill_excluded(should_stop)
    return tracker.table()
