"""Key frequencies of a run as it trains: which set, since which checkpoint, and a cross-check.

The rule (the paper's, made safe for a live run):

1. Candidate set of a checkpoint: the distinct frequencies of its clustered neurons, i.e.
   the neurons whose best frequency's 3x3 block holds >= 0.85 of their centred spectrum
   (Nanda et al. 2023 section 4.3; `analysis.clusters_from`). Before the circuit forms no
   neuron reaches 0.85 and the candidate set is empty.
2. Adoption: a non-empty candidate set is adopted once it is the candidate of
   `STABLE_CHECKPOINTS` consecutive checkpoints (3 by default), and replaces the set in use
   from that checkpoint on. A frequency that flickers across the threshold in one
   checkpoint therefore never makes every cached measure change.
3. With a reference checkpoint (`--key-epoch`, the paper used epoch 40,000 of 50,000), its
   candidate set is used as it is, for the whole run.

Cross-check: the key frequencies carry the logits, so they should be the strongest
frequencies of W_L = W_out W_U over classes. `cross_check` compares the set with the |S|
frequencies of largest W_L norm and says so when they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from grok_tui.engine.measures.analysis import CLUSTER_THRESHOLD

STABLE_CHECKPOINTS = 3


def candidate_set(
    neuron_shares: np.ndarray, threshold: float = CLUSTER_THRESHOLD
) -> tuple[int, ...]:
    """Distinct frequencies (1-based) of the neurons clustered at `threshold`; (K, m) shares."""
    shares = np.asarray(neuron_shares)
    if shares.size == 0:
        return ()
    best = shares.argmax(axis=0) + 1
    frac = shares.max(axis=0)
    return tuple(int(k) for k in np.unique(best[frac >= threshold]))


def neuron_clusters(neuron_shares: np.ndarray, threshold: float = CLUSTER_THRESHOLD) -> np.ndarray:
    """Cluster (frequency, 1-based) of each neuron, -1 when its best share is below threshold."""
    shares = np.asarray(neuron_shares)
    best = shares.argmax(axis=0) + 1
    return np.where(shares.max(axis=0) >= threshold, best, -1).astype(np.int64)


@dataclass
class KeyHistory:
    """The key set in use at each checkpoint: `changes` lists (since epoch, set) in order."""

    changes: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    reference_epoch: int | None = None  # where the current set's clusters come from
    fixed: bool = False  # the set was taken from a reference checkpoint (--key-epoch)

    @property
    def current(self) -> tuple[int, ...]:
        return self.changes[-1][1] if self.changes else ()

    @property
    def since(self) -> int | None:
        return self.changes[-1][0] if self.changes else None

    def at(self, epoch: int) -> tuple[int, ...]:
        """The set in use once checkpoint `epoch` had been seen."""
        keys: tuple[int, ...] = ()
        for since, s in self.changes:
            if since <= epoch:
                keys = s
        return keys

    def to_json(self) -> list[dict[str, object]]:
        return [{"since": e, "key_freqs": list(s)} for e, s in self.changes]


def live_history(
    epochs: Sequence[int],
    candidates: Sequence[tuple[int, ...]],
    stable: int = STABLE_CHECKPOINTS,
) -> KeyHistory:
    """Apply the adoption rule to per-checkpoint candidate sets (epochs ascending)."""
    history = KeyHistory()
    run_len = 0
    for i, (epoch, cand) in enumerate(zip(epochs, candidates, strict=True)):
        run_len = run_len + 1 if i > 0 and cand == candidates[i - 1] else 1
        if cand and run_len >= stable and cand != history.current:
            history.changes.append((int(epoch), cand))
    if history.changes:
        current = history.current
        history.reference_epoch = next(
            int(e)
            for e, c in zip(reversed(epochs), reversed(candidates), strict=True)
            if c == current
        )
    return history


def fixed_history(epoch: int, keys: tuple[int, ...]) -> KeyHistory:
    return KeyHistory(changes=[(0, keys)] if keys else [], reference_epoch=epoch, fixed=True)


def strongest(component_sq: np.ndarray, n: int) -> tuple[int, ...]:
    """The n frequencies (1-based, ascending) of largest norm, from per-component squares."""
    sq = np.asarray(component_sq, dtype=np.float64)
    per_freq = sq[1:].reshape(-1, 2).sum(axis=1)
    return tuple(sorted(int(k) + 1 for k in np.argsort(-per_freq, kind="stable")[:n]))


def cross_check(keys: tuple[int, ...], w_l_sq: np.ndarray) -> str:
    """'' when `keys` are W_L's |keys| strongest frequencies, else a one-line warning."""
    if not keys:
        return ""
    top = strongest(w_l_sq, len(keys))
    if set(top) == set(keys):
        return ""
    missing = sorted(set(keys) - set(top))
    extra = sorted(set(top) - set(keys))
    return (
        f"key frequencies {', '.join(map(str, keys))} disagree with W_L's strongest "
        f"({', '.join(map(str, top))}): {', '.join(map(str, missing))} weak in W_L, "
        f"{', '.join(map(str, extra))} strong in W_L without a neuron cluster"
    )
