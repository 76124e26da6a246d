"""One checkpoint -> a `Snapshot`: everything the panes draw, as numpy arrays.

The analysis of Nanda et al. 2023 runs the model on all p^2 inputs with the cache. Here the
exact fast path of `model.py` does that work instead (the query is always `=`, so before the
MLP everything is a per-token table), which is several times faster than a TransformerLens
`run_with_cache` and agrees with it to float tolerance (tests/test_analysis.py).

Every analysis reads logits[..., :p]: the `=` token is a class in the training softmax but
never a label, so losses here are over the p number classes (metrics.jsonl, written by the
trainer, keeps all p + 1; the two agree once the model puts ~0 mass on `=`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from grok_tui.engine.core import fourier, ops
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import loss_and_accuracy
from grok_tui.engine.core.model import GrokModel, InputPlan, LastPosition, Tables

if TYPE_CHECKING:
    from grok_tui.engine.measures.demos import PlantedDemo

# A neuron belongs to its frequency's cluster when that frequency's 3x3 block holds at least
# this share of its centred 2D spectrum (Nanda et al. 2023; ARENA 1.5.2).
CLUSTER_THRESHOLD = 0.85
UNCLUSTERED = -1


@dataclass(eq=False)
class Snapshot:
    """The analysis of one checkpoint. Arrays are float32 numpy unless noted; h = n_heads,
    K = (p - 1) / 2 frequencies, m = d_mlp, d = d_model. Maps over inputs are indexed [x, y]."""

    epoch: int
    p: int
    train_loss: float  # cross-entropy over the p number classes, paper split
    test_loss: float
    train_acc: float
    test_acc: float
    avg_attn: np.ndarray  # (h, 3) attention from `=` to keys x, y, =, averaged over inputs
    attn_key0: np.ndarray  # (h, p, p) attention from `=` to x, per input (x, y)
    attn_key0_fourier: np.ndarray  # (h, p, p) fft2d of attn_key0
    neuron_acts: np.ndarray  # (p, p, m) post-ReLU MLP activations at the last position
    neuron_shares: np.ndarray  # (K, m) share of each neuron's centred spectrum in freq k's block
    neuron_freq: np.ndarray  # (m,) int: argmax frequency (1..K) of neuron_shares
    neuron_frac: np.ndarray  # (m,) its share: the fraction explained
    neuron_cluster: np.ndarray  # (m,) int: neuron_freq, or -1 when neuron_frac < 0.85
    clusters: dict[int, np.ndarray]  # frequency -> neuron indices (key freqs ascending, -1 last)
    key_freqs: tuple[int, ...]  # distinct frequencies of clustered neurons, ascending
    neuron_order: np.ndarray  # (m,) int: neurons grouped by cluster, in `clusters` order
    W_E: np.ndarray  # (p, d) number-token embeddings
    W_E_fourier: np.ndarray  # (p, d) F @ W_E[:p]
    embed_fourier_sq: np.ndarray  # (p,) squared norm of each Fourier component of W_E
    embed_freq_sq: np.ndarray  # (K + 1,) the same summed per frequency: [Const, 1, ..., K]
    W_neur: np.ndarray  # (h, p, m) OV circuit W_E W_V W_O W_in per head
    W_attn: np.ndarray  # (h, p) QK circuit (W_E[=] + W_pos[2]) W_Q W_K^T W_E^T / sqrt(d_head)
    W_attn_fourier: np.ndarray  # (h, p) fft1d of W_attn over the token
    W_L_fourier: np.ndarray  # (m, p) W_L = W_out W_U[:, :p] with classes in the Fourier basis
    logits_fourier_sq: np.ndarray  # (p, p) sum over classes of the squared fft2d of the logits
    basis_names: tuple[str, ...] = field(default=())  # names of the p Fourier components
    op: str = "add"  # the run's operation (ops.OPS)
    # The basis every "_fourier" array is in: "fourier" (Z_p), or "log" for multiplicative
    # ops (Z_(p-1) over tokens in discrete-log order, and the token 0 apart; fourier.py).
    basis: str = "fourier"
    UNCLUSTERED: ClassVar[int] = UNCLUSTERED  # the cluster of neurons in none (-1)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_heads(self) -> int:
        return self.avg_attn.shape[0]

    @property
    def d_mlp(self) -> int:
        return self.neuron_acts.shape[2]

    @property
    def d_model(self) -> int:
        return self.W_E.shape[1]

    # -- the op --------------------------------------------------------------------------------
    @property
    def basis_label(self) -> str:
        """How the panes name the basis of the "_fourier" arrays."""
        return "log-basis" if self.basis == "log" else "Fourier"

    @property
    def op_note(self) -> str:
        """One line on the op and what its analysis assumes ("" for the paper's addition)."""
        return ops.describe(self.op, self.p)

    # -- clusters ------------------------------------------------------------------------------
    @property
    def cluster_sizes(self) -> dict[int, int]:
        return {freq: len(idx) for freq, idx in self.clusters.items()}

    def cluster_choices(self) -> list[int | None]:
        """What a "cluster" key cycles through: all neurons (None), each key frequency
        ascending, the unclustered."""
        return [None, *(int(k) for k in self.key_freqs), UNCLUSTERED]

    def neurons_in(self, cluster: int | None) -> np.ndarray:
        """All neurons by index (None), or one cluster's by fraction explained, best first."""
        if cluster is None:
            return np.arange(self.d_mlp, dtype=np.int64)
        members = np.asarray(self.clusters.get(cluster, ()), dtype=np.int64)
        frac = np.asarray(self.neuron_frac)[members]
        return members[np.lexsort((members, -frac))]

    def cluster_spans(self) -> list[tuple[int, int, int]]:
        """(frequency, first row, last row) of each non-empty cluster in `neuron_order`."""
        spans, start = [], 0
        for freq, members in self.clusters.items():
            if len(members):
                spans.append((int(freq), start, start + len(members) - 1))
            start += len(members)
        return spans

    def neuron_top_freqs(self, neuron: int, count: int = 3) -> list[tuple[int, float]]:
        """The neuron's strongest frequencies with their shares of its centred spectrum."""
        shares = np.asarray(self.neuron_shares)[:, neuron]
        best = np.argsort(-shares, kind="stable")[:count]
        return [(int(k) + 1, float(shares[k])) for k in best]

    def describe_cluster(self, cluster: int | None) -> str:
        """'cluster 9 (33 neurons)', 'unclustered (< 85%; 40 such)' or 'all 512 neurons'."""
        if cluster is None:
            return f"all {self.d_mlp} neurons"
        size = len(self.clusters.get(cluster, ()))
        if cluster == UNCLUSTERED:
            return f"unclustered (< {CLUSTER_THRESHOLD:.0%}; {size} such)"
        return f"cluster {cluster} ({size} neurons)"

    def describe_neuron(self, neuron: int) -> str:
        """One neuron in words: 'neuron 17: freq 9, 93% explained, cluster 9 (33 neurons)'."""
        freq, frac = int(self.neuron_freq[neuron]), float(self.neuron_frac[neuron])
        where = self.describe_cluster(int(self.neuron_cluster[neuron]))
        return f"neuron {neuron}: freq {freq}, {frac:.0%} explained, {where}"

    # -- derived arrays: computed once (the analysis thread asks for them all, see `derive`) ----
    @functools.cached_property
    def attn_pair_norms(self) -> np.ndarray:
        """(h, K + 1, K + 1) amplitude of attn_key0_fourier per frequency pair (kx, ky)."""
        return fourier.freq_pair_amplitudes(self.attn_key0_fourier, self.basis).astype(np.float32)

    @functools.cached_property
    def W_attn_freq(self) -> np.ndarray:
        """(h, K + 1) amplitude of the QK circuit W_attn per frequency [Const, 1, ..., K]."""
        return fourier.freq_amplitudes(self.W_attn_fourier, self.basis).astype(np.float32)

    @functools.cached_property
    def W_neur_freq(self) -> np.ndarray:
        """(h, K + 1, m) amplitude per frequency of each head's OV curve W_neur[h, :, n]."""
        coeffs = fourier.fft1d(np.asarray(self.W_neur, dtype=np.float64), dim=1, basis=self.basis)
        amps = fourier.freq_amplitudes(np.moveaxis(coeffs, 1, 2), self.basis)
        return np.moveaxis(amps, 2, 1).astype(np.float32)

    @functools.cached_property
    def W_L_by_cluster(self) -> np.ndarray:
        """(m, p) |W_L| in the Fourier basis, rows in `neuron_order` (grouped by cluster)."""
        return np.abs(np.asarray(self.W_L_fourier)[np.asarray(self.neuron_order)])

    @functools.cached_property
    def fourier_basis(self) -> np.ndarray:
        """(p, p) the basis F itself (the log basis for multiplicative ops), rows named by
        `basis_names`."""
        return fourier.basis_matrix(self.basis, self.p).astype(np.float32)

    @functools.cached_property
    def planted(self) -> PlantedDemo:
        """A planted function of (x, y) for this p and its exact 2D spectrum (fft2d demo)."""
        from grok_tui.engine.measures.demos import planted_demo

        return planted_demo(self.p)

    def derive(self) -> Snapshot:
        """Compute every derived array now (on the analysis thread, not the UI's)."""
        for name in ("attn_pair_norms", "W_attn_freq", "W_neur_freq", "W_L_by_cluster",
                     "fourier_basis", "planted"):  # fmt: skip
            getattr(self, name)
        return self

    # -- small derived numbers -----------------------------------------------------------------
    def top_attn_pairs(self, head: int, count: int = 3) -> list[tuple[int, int, float]]:
        """The strongest (kx, ky, amplitude) of one head's attention spectrum, the constant
        pair (0, 0) left out."""
        flat = np.asarray(self.attn_pair_norms[head], dtype=np.float64).copy()
        flat[0, 0] = -np.inf
        order = np.argsort(flat, axis=None)[::-1][:count]
        rows, cols = np.unravel_index(order, flat.shape)
        return [(int(r), int(c), float(flat[r, c])) for r, c in zip(rows, cols, strict=True)]

    def ov_freq_shares(self, neuron: int) -> np.ndarray:
        """(h,) share of each head's OV curve energy (to one neuron) in the neuron's frequency."""
        amps = np.asarray(self.W_neur_freq[:, :, neuron], dtype=np.float64)
        energy = np.square(amps).sum(axis=1)
        freq = int(self.neuron_freq[neuron])
        return np.square(amps[:, freq]) / np.where(energy > 0, energy, 1.0)

    def key_components(self) -> np.ndarray:
        """Indices of the Fourier components (rows of F) at the key frequencies."""
        freqs = fourier.component_freqs(self.p, self.basis)
        return np.flatnonzero(np.isin(freqs, self.key_freqs))

    def embed_key_share(self) -> float:
        """Share of |W_E|^2 (in the Fourier basis) held by the key frequencies."""
        total = float(np.sum(self.embed_fourier_sq))
        keys = float(np.sum(np.asarray(self.embed_fourier_sq)[self.key_components()]))
        return keys / total if total > 0 else 0.0

    def embed_dim_power(self, dim: int) -> np.ndarray:
        """(K + 1,) one embedding dimension's squared Fourier coefficients per frequency."""
        coeffs = np.asarray(self.W_E_fourier, dtype=np.float64)[:, dim] ** 2
        return fourier.freq_norms(coeffs, self.basis)

    def attn_spectrum(self, head: int) -> np.ndarray:
        """(p, p) |fft2d| of one head's attention to x."""
        return np.abs(np.asarray(self.attn_key0_fourier[head], dtype=np.float64))

    def ov_fourier(self, neuron: int) -> np.ndarray:
        """fft1d over the input token of each head's OV contribution to a neuron, (h, p)."""
        ov = self.W_neur[:, :, neuron].astype(np.float64)
        return fourier.fft1d(ov, basis=self.basis).astype(np.float32)

    def neuron_spectrum(
        self, neuron: int, centred: bool = False, magnitude: bool = False
    ) -> np.ndarray:
        """fft2d of one neuron's (x, y) map, (p, p) (|fft2d| with `magnitude`); cheap (two
        p x p matmuls), so computed on demand."""
        acts = self.neuron_acts[:, :, neuron].astype(np.float64)
        if centred:
            acts = acts - acts.mean()
        spectrum = fourier.fft2d(acts, basis=self.basis).astype(np.float32)
        return np.abs(spectrum) if magnitude else spectrum


class Analyzer:
    """Computes snapshots for one config; keeps what is the same for every checkpoint.

    Reuse one Analyzer while scrubbing a run: the all-inputs plan, the split and the index
    maps are built once, the weights are copied into the same model.
    """

    def __init__(self, cfg: RunConfig, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        p = cfg.p
        data = make_dataset(cfg).to(self.device)
        self.labels = data.labels
        self.train_idx = data.train_idx
        self.test_idx = data.test_idx
        self.plan = InputPlan(data.x, data.y, p, cfg.n_heads)
        self.model = GrokModel(cfg, train_biases=True).to(self.device)
        self.model.requires_grad_(False)
        self.basis = ops.basis_kind(cfg.op)
        self.basis_names = tuple(fourier.basis_names(p, self.basis))
        # Rows of the flat (x * p + y) input list grouped by x + y and by x - y (mod p).
        x = torch.arange(p, device=self.device)[:, None]
        s = torch.arange(p, device=self.device)[None, :]
        self.sum_rows = (x * p + (s - x) % p).flatten()  # [x, s]: y = s - x
        self.diff_rows = (x * p + (x - s) % p).flatten()  # [x, s]: y = x - s

    # -- the forward ---------------------------------------------------------------------------
    def run(self, weights: Mapping[str, torch.Tensor]) -> tuple[Tables, LastPosition]:
        """Load classic weights and run all p^2 inputs; last-position values, inputs flat."""
        with torch.no_grad():
            self.model.load_classic(weights)
            tables = self.model.tables()
            return tables, self.model.plan_activations(tables, self.plan)

    def split_losses(self, logits_p: torch.Tensor) -> tuple[float, float, float, float]:
        """Train loss, test loss, train acc, test acc over the p number classes."""
        train = loss_and_accuracy(logits_p[self.train_idx], self.labels[self.train_idx])
        test = loss_and_accuracy(logits_p[self.test_idx], self.labels[self.test_idx])
        values = torch.stack([train[0], test[0], train[1], test[1]]).tolist()
        return values[0], values[1], values[2], values[3]

    # -- neurons -------------------------------------------------------------------------------
    def neuron_shares(self, acts: torch.Tensor) -> torch.Tensor:
        """`fourier.block_shares(fft2d(acts))` for flat acts (p^2, n), without the fft2d.

        The 3x3 block of frequency k in a centred 2D spectrum holds
          - the x-only terms (cos k, Const), (sin k, Const): the 1D transform of the means
            over y, times sqrt(p); likewise the y-only terms;
          - the 2x2 block {cos k, sin k}^2, whose squared sum is
            (|G+_k|^2 + |G-_k|^2) / p, with G+- the 1D transforms of the sums of acts over
            x + y = s and over x - y = s (cos a cos b = (cos(a+b) + cos(a-b)) / 2, ...).
        So the shares cost a few passes over acts instead of a (p, p, n) transform.
        """
        p = self.cfg.p
        if self.basis != "fourier":  # the 2D spectrum in that basis, grouped by frequency
            spectrum = fourier.fft2d(acts.reshape(p, p, -1), basis=self.basis)
            return fourier.block_shares(spectrum, self.basis)
        k = fourier.n_freqs(p)
        mean = acts.mean(dim=0)
        centred = acts - mean
        total = centred.square().sum(dim=0)  # (n): Parseval, the spectrum minus its [0, 0]
        grid = centred.reshape(p, p, -1)
        by_x = fourier.fft1d(grid.sum(dim=1), dim=0) / math.sqrt(p)  # (p, n)
        by_y = fourier.fft1d(grid.sum(dim=0), dim=0) / math.sqrt(p)
        sums = centred.index_select(0, self.sum_rows).reshape(p, p, -1).sum(dim=0)  # (p, n)
        diffs = centred.index_select(0, self.diff_rows).reshape(p, p, -1).sum(dim=0)
        g_sum = fourier.fft1d(sums, dim=0)
        g_diff = fourier.fft1d(diffs, dim=0)

        def per_freq(coeffs: torch.Tensor) -> torch.Tensor:  # (p, n) -> (K, n), Const dropped
            return coeffs[1:].square().reshape(k, 2, -1).sum(dim=1)

        block = per_freq(by_x) + per_freq(by_y) + (per_freq(g_sum) + per_freq(g_diff)) / p
        energy = total + acts.shape[0] * mean.square()  # sum of squares, uncentred
        return fourier.shares_of(block, total, energy, p)

    # -- the snapshot --------------------------------------------------------------------------
    def snapshot(self, weights: Mapping[str, torch.Tensor], epoch: int = 0) -> Snapshot:
        """Everything the panes draw for one checkpoint's classic weights."""
        cfg, p, h = self.cfg, self.cfg.p, self.cfg.n_heads
        with torch.no_grad():
            _, last = self.run(weights)
            logits_p = last.logits[:, :p]
            train_loss, test_loss, train_acc, test_acc = self.split_losses(logits_p)

            attn_key0 = last.pattern[:, :, 0].T.reshape(h, p, p)
            shares = self.neuron_shares(last.post)
            frac, freq_idx = shares.max(dim=0)
            grid = logits_p.reshape(p, p, p)
            logits_fourier_sq = fourier.fft2d(grid, basis=self.basis).square().sum(dim=2)

            m = self.model
            w_e = m.W_E[:p]
            w_e_fourier = fourier.fft1d(w_e, dim=0, basis=self.basis)
            embed_sq = w_e_fourier.square().sum(dim=1)
            ov = torch.einsum("hde,hef->hdf", m.W_V, m.W_O)  # (h, d, d)
            w_neur = torch.einsum("xd,hdf,fm->hxm", w_e, ov, m.W_in)
            q_eq = torch.einsum("d,hde->he", m.W_E[p] + m.W_pos[2], m.W_Q)
            w_attn = torch.einsum("he,hde,xd->hx", q_eq, m.W_K, w_e) / math.sqrt(cfg.d_head)
            w_l = m.W_out @ m.W_U[:, :p]

            out = {
                "avg_attn": last.pattern.mean(dim=0),
                "attn_key0": attn_key0,
                "attn_key0_fourier": fourier.fft2d(attn_key0, dims=(1, 2), basis=self.basis),
                "neuron_acts": last.post.reshape(p, p, -1),
                "neuron_shares": shares,
                "neuron_frac": frac,
                "W_E": w_e.clone(),  # a view of the model's weights, which the next load overwrites
                "W_E_fourier": w_e_fourier,
                "embed_fourier_sq": embed_sq,
                "W_neur": w_neur,
                "W_attn": w_attn,
                "W_attn_fourier": fourier.fft1d(w_attn, dim=1, basis=self.basis),
                "W_L_fourier": fourier.fft1d(w_l, dim=1, basis=self.basis),
                "logits_fourier_sq": logits_fourier_sq,
            }
            arrays = {k: v.detach().to("cpu", torch.float32).numpy() for k, v in out.items()}
        neuron_freq = freq_idx.cpu().numpy().astype(np.int64) + 1
        cluster, clusters, key_freqs = clusters_from(neuron_freq, arrays["neuron_frac"])
        return Snapshot(
            epoch=int(epoch),
            p=p,
            train_loss=train_loss,
            test_loss=test_loss,
            train_acc=train_acc,
            test_acc=test_acc,
            neuron_freq=neuron_freq,
            neuron_cluster=cluster,
            clusters=clusters,
            key_freqs=key_freqs,
            neuron_order=np.concatenate(list(clusters.values())).astype(np.int64),
            embed_freq_sq=fourier.freq_norms(arrays["embed_fourier_sq"], self.basis).astype(
                np.float32
            ),
            basis_names=self.basis_names,
            op=cfg.op,
            basis=self.basis,
            **arrays,
        ).derive()

    def key_freqs(self, weights: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
        """Key frequencies of one checkpoint (the neuron clustering only)."""
        with torch.no_grad():
            _, last = self.run(weights)
            frac, freq_idx = self.neuron_shares(last.post).max(dim=0)
        freq = freq_idx.cpu().numpy().astype(np.int64) + 1
        return clusters_from(freq, frac.cpu().numpy())[2]


def clusters_from(
    neuron_freq: np.ndarray, neuron_frac: np.ndarray, threshold: float = CLUSTER_THRESHOLD
) -> tuple[np.ndarray, dict[int, np.ndarray], tuple[int, ...]]:
    """(cluster per neuron, frequency -> neuron indices, key frequencies).

    A neuron whose best frequency explains less than `threshold` of its variance is
    unclustered (-1). Key frequencies are the distinct frequencies of clustered neurons.
    """
    clustered = neuron_frac >= threshold
    cluster = np.where(clustered, neuron_freq, UNCLUSTERED).astype(np.int64)
    key_freqs = tuple(int(k) for k in np.unique(neuron_freq[clustered]))
    clusters = {k: np.flatnonzero(cluster == k) for k in key_freqs}
    clusters[UNCLUSTERED] = np.flatnonzero(cluster == UNCLUSTERED)
    return cluster, clusters, key_freqs


def snapshot(
    cfg: RunConfig,
    weights: Mapping[str, torch.Tensor],
    epoch: int = 0,
    device: str | torch.device = "cpu",
) -> Snapshot:
    """One-off `Analyzer(cfg, device).snapshot(weights, epoch)`."""
    return Analyzer(cfg, device).snapshot(weights, epoch)
