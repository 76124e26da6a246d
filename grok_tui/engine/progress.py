"""Progress measures over a run's checkpoints (Nanda et al. 2023, section 5), cached.

Per checkpoint, with the run's key frequencies K (from its newest checkpoint):

- restricted loss: the logits (p^2 x p, classes 0..p-1) projected onto the directions
  cos(w_k(x+y)), sin(w_k(x+y)) for k in K, plus the logits' mean over inputs; cross-entropy
  over all inputs (`restricted_loss`) and over the train set (`restricted_loss_train`).
  It falls during circuit formation: the generalising circuit alone already predicts.
- excluded loss: the logits minus those projections (no mean correction), cross-entropy on
  the train set (`excluded_loss`), and the same removing one key frequency at a time
  (`excluded_loss_per_freq`). It rises when the model starts to rely on the circuit.
- train / test loss and accuracy (p classes), `test_restricted_ratio` = test / restricted.
- Gini coefficients (Hurley & Rickard) of the norms of the Fourier components of W_E[:p]
  (per token component, norm over d_model) and of W_L = W_out W_U[:, :p] (per class
  component, norm over neurons): they rise as the model becomes sparse in frequency.
- sum of squared weights, total and per parameter (classic names).
- trig fractions of the neuron pre-activations, post-activations and logits at the last
  position: for a per-input array T (p^2 x n), centred over inputs (Tc = T - mean), the
  per-column share ||D Tc[:, i]||^2 / ||Tc[:, i]||^2 of its variance along the unit
  directions D = {cos(w_k(x+y)), sin(w_k(x+y)) : k in K}, averaged over the columns with
  non-zero variance (ARENA 1.5.2 `tensor_trig_ratio`). D is orthogonal to constants, so
  D Tc = D T.
- average attention from `=` to each key position per head (h x 3), and the embedding's
  squared Fourier norm per frequency (K + 1 values, Const first).

Rows are cached in RUN/measures.jsonl with the key frequency set and `MEASURES_VERSION`
they were computed with; a row whose set differs from the current one is recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from grok_tui.engine import fourier
from grok_tui.engine.analysis import Analyzer
from grok_tui.engine.loss import cross_entropy
from grok_tui.engine.model import CLASSIC_NAMES
from grok_tui.engine.runs import Run

MEASURES_VERSION = 1

# The scalar measures of a row, in the order a report lists them.
SCALARS = (
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "restricted_loss",
    "restricted_loss_train",
    "excluded_loss",
    "test_restricted_ratio",
    "gini_W_E",
    "gini_W_L",
    "sum_sq_weights",
    "trig_frac_pre",
    "trig_frac_post",
    "trig_frac_logits",
)


def gini(values: np.ndarray | Sequence[float]) -> float:
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


class Measurer:
    """Computes one measure row from classic weights, reusing an `Analyzer`'s forward."""

    def __init__(self, analyzer: Analyzer, key_freqs: Sequence[int]) -> None:
        self.analyzer = analyzer
        self.key_freqs = tuple(sorted(int(k) for k in key_freqs))
        cfg = analyzer.cfg
        self.directions = fourier.trig_directions(cfg.p, self.key_freqs, device=analyzer.device)
        self.train_dirs = self.directions[:, analyzer.train_idx]  # (2|K|, n_train)

    def measure(self, weights: Mapping[str, torch.Tensor], epoch: int) -> dict[str, Any]:
        """One JSON-ready row (non-finite numbers as None)."""
        a = self.analyzer
        p = a.cfg.p
        labels, train = a.labels, a.train_idx
        d, d_train = self.directions, self.train_dirs
        with torch.no_grad():
            _, last = a.run(weights)
            logits = last.logits[:, :p].contiguous()
            train_loss, test_loss, train_acc, test_acc = a.split_losses(logits)

            coeffs = d @ logits  # (2|K|, p): the logits along each trig direction
            restricted = d.T @ coeffs + logits.mean(dim=0)
            restricted_loss = cross_entropy(restricted, labels)
            restricted_train = cross_entropy(restricted[train], labels[train])
            train_logits = logits[train]
            excluded = cross_entropy(train_logits - d_train.T @ coeffs, labels[train])
            per_freq = [
                cross_entropy(
                    train_logits - d_train[2 * i : 2 * i + 2].T @ coeffs[2 * i : 2 * i + 2],
                    labels[train],
                )
                for i in range(len(self.key_freqs))
            ]
            trig = [self.trig_fraction(t, coeffs if t is logits else None)
                    for t in (last.pre, last.post, logits)]  # fmt: skip

            m = a.model
            w_e_norms = fourier.fft1d(m.W_E[:p], dim=0).norm(dim=1)  # (p) per component
            w_l = m.W_out @ m.W_U[:, :p]
            w_l_norms = fourier.fft1d(w_l, dim=1).norm(dim=0)  # (p) per class component
            embed_sq = fourier.fft1d(m.W_E[:p], dim=0).square().sum(dim=1)

            scalars = torch.stack(
                [restricted_loss, restricted_train, excluded, *per_freq, *trig]
            ).tolist()
            avg_attn = last.pattern.mean(dim=0).tolist()
            w_e_norms_np = w_e_norms.cpu().numpy()
            w_l_norms_np = w_l_norms.cpu().numpy()
            embed_np = embed_sq.cpu().numpy()

        n_k = len(self.key_freqs)
        restricted_loss, restricted_train, excluded = scalars[:3]
        per_freq_values = scalars[3 : 3 + n_k]
        trig_pre, trig_post, trig_logits = scalars[3 + n_k :]
        sum_sq = {
            name: float(weights[name].detach().to(torch.float64).square().sum())
            for name in CLASSIC_NAMES.values()
        }
        row: dict[str, Any] = {
            "epoch": int(epoch),
            "version": MEASURES_VERSION,
            "key_freqs": list(self.key_freqs),
            "train_loss": train_loss,
            "test_loss": test_loss,
            "train_acc": train_acc,
            "test_acc": test_acc,
            "restricted_loss": restricted_loss,
            "restricted_loss_train": restricted_train,
            "excluded_loss": excluded,
            "excluded_loss_per_freq": {
                str(k): v for k, v in zip(self.key_freqs, per_freq_values, strict=True)
            },
            "test_restricted_ratio": _ratio(test_loss, restricted_loss),
            "gini_W_E": gini(w_e_norms_np),
            "gini_W_L": gini(w_l_norms_np),
            "sum_sq_weights": sum(sum_sq.values()),
            "sum_sq_per_param": sum_sq,
            "trig_frac_pre": trig_pre,
            "trig_frac_post": trig_post,
            "trig_frac_logits": trig_logits,
            "avg_attn": avg_attn,
            "embed_freq_sq": fourier.freq_norms(embed_np).tolist(),
        }
        return _json_clean(row)

    def trig_fraction(self, values: torch.Tensor, coeffs: torch.Tensor | None) -> torch.Tensor:
        """Mean over columns of the share of centred variance along the trig directions."""
        centred = values - values.mean(dim=0)
        var = centred.square_().sum(dim=0)  # (cols) centred sum of squares
        if coeffs is None:
            coeffs = self.directions @ values
        along = coeffs.square().sum(dim=0)
        live = var > 0
        if not bool(live.any()):
            return torch.tensor(math.nan, device=values.device)
        return (along[live] / var[live]).mean()


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def _json_clean(value: Any) -> Any:
    """NaN / inf -> None, recursively (measures.jsonl is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clean(v) for v in value]
    return value


# -- the table -------------------------------------------------------------------------------


def _num(value: Any) -> float:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


@dataclass
class ProgressTable:
    """The measures of a run as columns over checkpoint epochs (NaN where a value is null)."""

    key_freqs: tuple[int, ...]
    epochs: np.ndarray  # (n,) int
    scalars: dict[str, np.ndarray]  # name in SCALARS -> (n,)
    excluded_per_freq: np.ndarray  # (n, len(key_freqs))
    avg_attn: np.ndarray  # (n, h, 3)
    sum_sq_per_param: dict[str, np.ndarray]  # classic name -> (n,)
    embed_freq_sq: np.ndarray  # (n, (p-1)/2 + 1)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.scalars[name]

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]], key_freqs: Sequence[int]) -> ProgressTable:
        rows = sorted(rows, key=lambda r: r["epoch"])
        keys = tuple(int(k) for k in key_freqs)
        n = len(rows)
        scalars = {name: np.array([_num(r.get(name)) for r in rows]) for name in SCALARS}
        per_freq = np.array(
            [
                [_num((r.get("excluded_loss_per_freq") or {}).get(str(k))) for k in keys]
                for r in rows
            ]
        ).reshape(n, len(keys))
        attn = [np.asarray(r.get("avg_attn") or [], dtype=np.float64) for r in rows]
        h = max((a.shape[0] for a in attn if a.ndim == 2), default=0)
        avg_attn = np.full((n, h, 3), np.nan)
        for i, a in enumerate(attn):
            if a.shape == (h, 3):
                avg_attn[i] = a
        params = {
            name: np.array([_num((r.get("sum_sq_per_param") or {}).get(name)) for r in rows])
            for name in CLASSIC_NAMES.values()
        }
        embed = [r.get("embed_freq_sq") or [] for r in rows]
        width = max((len(e) for e in embed), default=0)
        embed_arr = np.full((n, width), np.nan)
        for i, e in enumerate(embed):
            if len(e) == width:
                embed_arr[i] = [_num(v) for v in e]
        return cls(
            key_freqs=keys,
            epochs=np.array([int(r["epoch"]) for r in rows], dtype=np.int64),
            scalars=scalars,
            excluded_per_freq=per_freq,
            avg_attn=avg_attn,
            sum_sq_per_param=params,
            embed_freq_sq=embed_arr,
            rows=list(rows),
        )

    def phases(self) -> dict[str, int | None]:
        return detect_phases(self)


# -- the cache ---------------------------------------------------------------------------------


def _valid_row(row: dict[str, Any]) -> bool:
    epoch = row.get("epoch")
    return (
        isinstance(epoch, int)
        and not isinstance(epoch, bool)
        and row.get("version") == MEASURES_VERSION
        and isinstance(row.get("key_freqs"), list)
    )


class ProgressTracker:
    """Fills RUN/measures.jsonl for every checkpoint, incrementally.

    A background worker calls `update(should_stop)` whenever checkpoints may have appeared:
    it measures only the checkpoints with no cached row for the current key frequencies,
    appends each row as soon as it is computed (so a stop, or a kill, keeps the work done),
    and checks `should_stop` between checkpoints.

    Key frequencies come from the newest checkpoint's neuron clusters (`key_freqs=` fixes
    them instead). While a run trains, the newest checkpoint moves, and before the circuit
    forms its clusters are noise: each change of the set invalidates every row. Callers
    that follow a live run may prefer to update rarely until the run has grokked.
    """

    def __init__(
        self,
        run: Run,
        device: str | torch.device = "cpu",
        key_freqs: Sequence[int] | None = None,
    ) -> None:
        self.run = run
        self.cfg = run.meta().config
        self.device = torch.device(device)
        self._fixed = tuple(sorted(int(k) for k in key_freqs)) if key_freqs is not None else None
        self._analyzer: Analyzer | None = None
        self._measurer: Measurer | None = None
        self._key_cache: tuple[int, tuple[int, ...]] | None = None  # (epoch, key freqs)
        self.computed = 0  # checkpoints measured by this tracker (what a cache test counts)

    @property
    def analyzer(self) -> Analyzer:
        if self._analyzer is None:
            self._analyzer = Analyzer(self.cfg, self.device)
        return self._analyzer

    def key_freqs(self) -> tuple[int, ...]:
        """The key frequency set rows are computed with now (newest checkpoint's clusters)."""
        if self._fixed is not None:
            return self._fixed
        epochs = self.run.checkpoint_epochs()
        if not epochs:
            return ()
        newest = epochs[-1]
        if self._key_cache is None or self._key_cache[0] != newest:
            weights = self.run.load_checkpoint(newest, self.cfg)
            self._key_cache = (newest, self.analyzer.key_freqs(weights))
        return self._key_cache[1]

    def _measurer_for(self, keys: tuple[int, ...]) -> Measurer:
        if self._measurer is None or self._measurer.key_freqs != keys:
            self._measurer = Measurer(self.analyzer, keys)
        return self._measurer

    def cached(self, keys: tuple[int, ...] | None = None) -> dict[int, dict[str, Any]]:
        """Rows on disk computed with `keys` (default: the current set), by epoch."""
        keys = self.key_freqs() if keys is None else keys
        out: dict[int, dict[str, Any]] = {}
        for row in self.run.read_measures():
            if _valid_row(row) and tuple(row["key_freqs"]) == keys:
                out[row["epoch"]] = row  # the last one written wins
        return out

    def missing(self) -> list[int]:
        have = self.cached()
        return [e for e in self.run.checkpoint_epochs() if e not in have]

    def update(
        self,
        should_stop: Callable[[], bool] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Measure the checkpoints that lack a row for the current key set; return new rows."""
        keys = self.key_freqs()
        all_rows = self.run.read_measures()
        have = {r["epoch"] for r in all_rows if _valid_row(r) and tuple(r["key_freqs"]) == keys}
        todo = [e for e in self.run.checkpoint_epochs() if e not in have]
        if newest_first:
            todo.reverse()
        if limit is not None:
            todo = todo[:limit]
        if todo:
            self._compact(all_rows, keys)
        measurer = self._measurer_for(keys)
        new_rows = []
        for epoch in todo:
            if should_stop is not None and should_stop():
                break
            weights = self.run.load_checkpoint(epoch, self.cfg)
            row = measurer.measure(weights, epoch)
            self.computed += 1
            self.run.append_measures([row])
            new_rows.append(row)
        return new_rows

    def _compact(self, rows: list[dict[str, Any]], keys: tuple[int, ...]) -> None:
        """Drop rows of other key sets or versions once they outnumber the useful ones."""
        keep = [r for r in rows if _valid_row(r) and tuple(r["key_freqs"]) == keys]
        stale = len(rows) - len(keep)
        if stale > max(64, len(keep)):
            self.run.rewrite_measures(keep)

    def table(self) -> ProgressTable:
        """The cached rows for the current key set, for the checkpoints that exist."""
        keys = self.key_freqs()
        epochs = set(self.run.checkpoint_epochs())
        rows = [r for e, r in self.cached(keys).items() if e in epochs]
        return ProgressTable.from_rows(rows, keys)


def progress_table(
    run: Run,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
) -> ProgressTable:
    """Measures for every checkpoint of a run, computing only what the cache lacks."""
    tracker = ProgressTracker(run, device)
    tracker.update(should_stop)
    return tracker.table()


# -- phases ------------------------------------------------------------------------------------

PHASES = ("memorisation_end", "circuit_formation_end", "cleanup_end")
MEMORISED_ACC = 0.99  # train accuracy at which the training set counts as memorised
GENERALISED_ACC = 0.99  # test accuracy required at the end of cleanup
EXCLUDED_RISE = 2.0  # the excluded loss must later exceed its minimum by this factor
MIN_DROP_DECADES = 1.0  # the test loss must fall this many decades below its peak
DROP_START = 0.1  # share of the log test-loss fall that marks the start of cleanup
FLOOR_BAND = 0.1  # within this share of the log fall above the floor: cleanup has ended
FLOOR_CONFIRM = 2  # checkpoints after the floor is reached before it counts
FLOOR_CONFIRM_SHARE = 0.25  # ... and epochs after it, as a share of the cleanup so far


def detect_phases(table: ProgressTable) -> dict[str, int | None]:
    """Phase boundaries of a table's curves; see `find_phases`."""
    return find_phases(
        table.epochs,
        train_acc=table["train_acc"],
        test_loss=table["test_loss"],
        test_acc=table["test_acc"],
        excluded_loss=table["excluded_loss"],
    )


def find_phases(
    epochs: np.ndarray | Sequence[int],
    train_acc: np.ndarray | Sequence[float],
    test_loss: np.ndarray | Sequence[float],
    test_acc: np.ndarray | Sequence[float],
    excluded_loss: np.ndarray | Sequence[float],
) -> dict[str, int | None]:
    """The ends of memorisation, circuit formation and cleanup, detected from the curves.

    Following the paper's description of the phases (section 5.1), per checkpoint:

    - memorisation ends where the excluded loss stops falling with the train loss and
      starts to rise (the model begins to use the key frequencies): the epoch of the
      excluded loss' minimum before its later maximum, provided the training set is
      memorised there (train acc >= 0.99) and the rise is real (max >= 2 x min).
    - circuit formation ends (cleanup starts) when the test loss starts its sudden fall:
      the first epoch after max(memorisation end, test-loss peak) at which log10 test
      loss has covered 10% of its fall from the peak to its minimum; only if that fall
      spans at least one decade.
    - cleanup ends when the test loss reaches its floor: the first epoch from there on
      with log10 test loss within 10% of the fall above the minimum and test acc >= 0.99,
      confirmed by at least 2 later checkpoints spanning at least a quarter of the
      cleanup's length (a curve still falling steadily has no floor yet).

    A phase not reached (no rise of the excluded loss, no fall of the test loss, floor not
    yet confirmed) is None. Boundaries come out in order. NaN values are skipped.
    """
    ep = np.asarray(epochs, dtype=np.int64)
    tr_acc = np.asarray(train_acc, dtype=np.float64)
    te_acc = np.asarray(test_acc, dtype=np.float64)
    excl = np.asarray(excluded_loss, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_te = np.log10(np.asarray(test_loss, dtype=np.float64))
    log_te = np.where(np.isfinite(log_te), log_te, np.nan)
    out: dict[str, int | None] = dict.fromkeys(PHASES)
    n = len(ep)
    if n == 0:
        return out

    start = 0
    ex_ok = np.isfinite(excl)
    if ex_ok.any():
        i_max = int(np.nanargmax(np.where(ex_ok, excl, -np.inf)))
        before = np.where(ex_ok[: i_max + 1], excl[: i_max + 1], np.inf)
        i_min = int(np.argmin(before))
        if (
            i_min < i_max
            and excl[i_max] >= EXCLUDED_RISE * excl[i_min]
            and tr_acc[i_min] >= MEMORISED_ACC
        ):
            out["memorisation_end"] = int(ep[i_min])
            start = i_min

    te_ok = np.isfinite(log_te[start:])
    if not te_ok.any():
        return out
    tail = np.where(te_ok, log_te[start:], -np.inf)
    i_peak = start + int(np.argmax(tail))
    after_peak = np.where(np.isfinite(log_te[i_peak:]), log_te[i_peak:], np.inf)
    low = float(after_peak.min())
    fall = float(log_te[i_peak]) - low
    if not fall >= MIN_DROP_DECADES:
        return out
    dropped = np.flatnonzero(after_peak <= log_te[i_peak] - DROP_START * fall)
    i_drop = i_peak + int(dropped[0])
    out["circuit_formation_end"] = int(ep[i_drop])

    floor = (after_peak[i_drop - i_peak :] <= low + FLOOR_BAND * fall) & (
        te_acc[i_drop:] >= GENERALISED_ACC
    )
    hits = np.flatnonzero(floor)
    if hits.size:
        i_end = i_drop + int(hits[0])
        # A curve still falling steadily has no floor yet: the band follows its newest
        # value down. Count the floor only once the run went on past it for a while.
        span = ep[i_end] + FLOOR_CONFIRM_SHARE * (ep[i_end] - ep[i_drop])
        if i_end + FLOOR_CONFIRM <= n - 1 and ep[-1] >= span:
            out["cleanup_end"] = int(ep[i_end])
    return out
