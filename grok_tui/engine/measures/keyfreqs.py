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
3. Before any clustered set is adopted, a provisional set stands in, so that the excluded
   loss (the paper's signal that memorisation gives way to the circuit) exists from the
   first checkpoint: the frequencies that stand out in W_E and W_L (`provisional_candidate`:
   a frequency enters when its share of the per-frequency norms, averaged over W_E and W_L,
   reaches `ENTER_SHARE` times the uniform share, and leaves when it falls below
   `LEAVE_SHARE` times it, so one near the threshold does not flicker in and out). Until any
   stands out, the `FALLBACK_SIZE` strongest at the first checkpoint. A new provisional set
   replaces the one in use once it has been the candidate of `stable` checkpoints in a row;
   the first clustered set replaces it for good (`KeyHistory.clustered_since`; a change is
   recorded then even if the set is the same), and the set is marked provisional (on
   screen and in the data) until then.
4. With a reference checkpoint (`--key-epoch`, the paper used epoch 40,000 of 50,000), its
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
from grok_tui.engine.measures.record import per_freq_sq

STABLE_CHECKPOINTS = 3
ENTER_SHARE = 2.0  # a frequency joins the provisional set at this many times the uniform share
LEAVE_SHARE = 1.5  # ... and leaves it below this many times
FALLBACK_SIZE = 3  # the provisional set while no frequency stands out: the strongest few
MAX_PROVISIONAL = 8


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
    clustered_since: int | None = None  # the first clustered set's epoch; before: provisional

    @property
    def provisional(self) -> bool:
        """The set in use is a provisional one (from W_E / W_L, before neurons cluster)."""
        return bool(self.changes) and self.clustered_since is None and not self.fixed

    def provisional_at(self, epoch: int) -> bool:
        """The set in use once checkpoint `epoch` had been seen was a provisional one."""
        if self.fixed or not self.at(epoch):
            return False
        return self.clustered_since is None or epoch < self.clustered_since

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
        out: list[dict[str, object]] = []
        for e, s in self.changes:
            entry: dict[str, object] = {"since": e, "key_freqs": list(s)}
            if self.provisional_at(e):
                entry["provisional"] = True
            out.append(entry)
        return out


def live_history(
    epochs: Sequence[int],
    candidates: Sequence[tuple[int, ...]],
    stable: int = STABLE_CHECKPOINTS,
    provisional: Sequence[tuple[int, ...]] | None = None,
) -> KeyHistory:
    """Apply the adoption rule to per-checkpoint candidate sets (epochs ascending), with the
    provisional candidates (`provisional_candidates`) standing in until a clustered set is
    adopted (none when `provisional` is None)."""
    history = KeyHistory()
    run_len = 0
    prov_len = 0
    for i, (epoch, cand) in enumerate(zip(epochs, candidates, strict=True)):
        run_len = run_len + 1 if i > 0 and cand == candidates[i - 1] else 1
        adopting = history.clustered_since is None or cand != history.current
        if cand and run_len >= stable and adopting:
            history.changes.append((int(epoch), cand))
            if history.clustered_since is None:
                history.clustered_since = int(epoch)
            continue
        if provisional is None or history.clustered_since is not None:
            continue
        prov = provisional[i]
        prov_len = prov_len + 1 if i > 0 and prov == provisional[i - 1] else 1
        if prov and prov != history.current and (not history.changes or prov_len >= stable):
            history.changes.append((int(epoch), prov))
    if history.clustered_since is not None:
        current = history.current
        history.reference_epoch = next(
            int(e)
            for e, c in zip(reversed(epochs), reversed(candidates), strict=True)
            if c == current
        )
    return history


def frequency_shares(w_e_sq: np.ndarray, w_l_sq: np.ndarray, basis: str = "fourier") -> np.ndarray:
    """(K,) each frequency's share of the per-frequency norms, averaged over W_E and W_L
    (per-component squares in `basis`: the log basis for multiplicative ops)."""
    shares = []
    for sq in (w_e_sq, w_l_sq):
        norms = np.sqrt(np.clip(per_freq_sq(sq, basis), 0.0, None))
        total = norms.sum()
        shares.append(norms / total if total > 0 else np.zeros_like(norms))
    return (shares[0] + shares[1]) / 2


def provisional_candidates(shares: Sequence[np.ndarray]) -> list[tuple[int, ...]]:
    """Per checkpoint (ascending), from its `frequency_shares`, the frequencies that stand
    out in W_E and W_L: a frequency enters at `ENTER_SHARE` x the uniform share and leaves
    below `LEAVE_SHARE` x (at most `MAX_PROVISIONAL`, the strongest); the first
    checkpoint's `FALLBACK_SIZE` strongest while none stands out."""
    out: list[tuple[int, ...]] = []
    members: set[int] = set()
    fallback: tuple[int, ...] = ()
    for share in shares:
        uniform = 1.0 / max(len(share), 1)
        members = {k for k in members if share[k - 1] >= LEAVE_SHARE * uniform}
        members |= {int(k) + 1 for k in np.flatnonzero(share >= ENTER_SHARE * uniform)}
        if len(members) > MAX_PROVISIONAL:
            members = set(sorted(members, key=lambda k: -share[k - 1])[:MAX_PROVISIONAL])
        if not fallback:
            order = np.argsort(-share, kind="stable")[:FALLBACK_SIZE]
            fallback = tuple(sorted(int(k) + 1 for k in order))
        out.append(tuple(sorted(members)) if members else fallback)
    return out


def fixed_history(epoch: int, keys: tuple[int, ...]) -> KeyHistory:
    return KeyHistory(
        changes=[(0, keys)] if keys else [], reference_epoch=epoch, fixed=True, clustered_since=0
    )


def strongest(component_sq: np.ndarray, n: int, basis: str = "fourier") -> tuple[int, ...]:
    """The n frequencies (1-based, ascending) of largest norm, from per-component squares."""
    per_freq = per_freq_sq(component_sq, basis)
    return tuple(sorted(int(k) + 1 for k in np.argsort(-per_freq, kind="stable")[:n]))


def cross_check(keys: tuple[int, ...], w_l_sq: np.ndarray, basis: str = "fourier") -> str:
    """'' when `keys` are W_L's |keys| strongest frequencies, else a one-line warning."""
    if not keys:
        return ""
    top = strongest(w_l_sq, len(keys), basis)
    if set(top) == set(keys):
        return ""
    missing = sorted(set(keys) - set(top))
    extra = sorted(set(top) - set(keys))
    return (
        f"key frequencies {', '.join(map(str, keys))} disagree with W_L's strongest "
        f"({', '.join(map(str, top))}): {', '.join(map(str, missing))} weak in W_L, "
        f"{', '.join(map(str, extra))} strong in W_L without a neuron cluster"
    )
