"""Progress measures over a run: records cached and filled incrementally, the live key set,
key-set changes without forward passes, and bad cache files ignored and recomputed."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_tui.engine.measures import keyfreqs, progress
from grok_tui.engine.measures.progress import ProgressTracker, progress_table
from grok_tui.engine.measures.record import ON_DISK, RecordArrays, held_bytes, load_arrays
from grok_tui.engine.store.runs import Run, RunError
from tests.devices import TEST_DEVICE
from tests.planted import PLANTED, planted_weights


def write_checkpoint(run: Run, epoch: int, freqs: tuple[int, ...], seed: int) -> None:
    weights, _ = planted_weights(PLANTED, freqs, per_freq=6, n_mixed=2, seed=seed)
    g = torch.Generator().manual_seed(seed)
    noisy = {k: v + 1e-3 * torch.randn(v.shape, generator=g) for k, v in weights.items()}
    run.save_checkpoint(epoch, noisy)


@pytest.fixture
def planted_run(tmp_path: Path) -> Run:
    """Three checkpoints of a model using frequencies 3 and 7."""
    run = Run.create(tmp_path / "run", PLANTED, device="cpu")
    for i, epoch in enumerate((0, 10, 20)):
        write_checkpoint(run, epoch, (3, 7), seed=i)
    return run


# -- the live key set ------------------------------------------------------------------------


def test_a_key_set_is_adopted_once_stable_for_three_checkpoints() -> None:
    epochs = list(range(0, 100, 10))
    cands = [(), (4,), (4, 9), (4,), (4, 9), (4, 9), (4, 9), (4, 9, 11), (4, 9), (4, 9)]
    history = keyfreqs.live_history(epochs, cands)
    assert history.changes == [(60, (4, 9))]  # (4, 9) at 40, 50, 60; flickers never count
    assert history.current == (4, 9) and history.since == 60
    assert history.reference_epoch == 90  # the newest checkpoint that supports the set
    assert history.at(55) == () and history.at(60) == (4, 9)
    later = keyfreqs.live_history([*epochs, 100, 110, 120], [*cands, *[(4, 9, 11)] * 3])
    assert later.changes == [(60, (4, 9)), (120, (4, 9, 11))]
    assert later.to_json() == [
        {"since": 60, "key_freqs": [4, 9]},
        {"since": 120, "key_freqs": [4, 9, 11]},
    ]
    assert keyfreqs.live_history(epochs[:3], cands[:3]).current == ()


def test_a_provisional_set_stands_in_until_neurons_cluster() -> None:
    """From the first checkpoint, the frequencies that stand out in W_E and W_L (or the
    strongest few), marked provisional; replaced once stable, and for good by the first
    clustered set."""
    k = 10
    flat = np.ones(k) / k

    def peaked(*freqs: int, height: float = 3.0) -> np.ndarray:
        share = np.ones(k)
        share[[f - 1 for f in freqs]] = height
        return share / share.sum()

    shares = [flat + np.arange(k) * 1e-4, flat, *[peaked(4)] * 3, *[peaked(4, 6)] * 3]
    cands = keyfreqs.provisional_candidates(shares)
    assert cands[0] == (8, 9, 10) == cands[1]  # none stands out: the first's strongest
    assert cands[2:5] == [(4,)] * 3 and cands[5:] == [(4, 6)] * 3
    # Schmitt trigger: a frequency stays in down to 1.5x the uniform share, joins at 2x.
    low = peaked(4, 6, height=1.75)  # 1.52x the uniform share
    assert keyfreqs.provisional_candidates([*shares[:6], low])[-1] == (4, 6)
    assert keyfreqs.provisional_candidates([shares[0], low])[-1] == (8, 9, 10)

    epochs = list(range(0, 80, 10))
    clustered = [(), (), (), (), (), (4, 6), (4, 6), (4, 6)]
    history = keyfreqs.live_history(epochs, clustered, provisional=cands)
    assert history.changes == [(0, (8, 9, 10)), (40, (4,)), (70, (4, 6))]
    assert history.clustered_since == 70 and not history.provisional
    assert history.provisional_at(60) and not history.provisional_at(70)
    assert history.to_json()[0] == {"since": 0, "key_freqs": [8, 9, 10], "provisional": True}
    early = keyfreqs.live_history(epochs[:6], clustered[:6], provisional=cands[:6])
    assert early.provisional and early.current == (4,) and early.reference_epoch is None
    assert early.changes == history.changes[:2]  # the rule never looks ahead
    # (4,) stood out from 20 on: adopted at 40, its third checkpoint; (4, 6) would have been
    # at 70, but the neurons clustered then.


def test_candidate_sets_and_clusters_follow_the_paper_threshold() -> None:
    shares = np.zeros((5, 4))
    shares[1, 0] = 0.9  # neuron 0: frequency 2, clustered
    shares[3, 1] = 0.84  # neuron 1: frequency 4, below 0.85
    shares[3, 2] = 0.95  # neuron 2: frequency 4
    shares[0, 3] = 0.5
    assert keyfreqs.candidate_set(shares) == (2, 4)
    assert keyfreqs.neuron_clusters(shares).tolist() == [2, -1, 4, -1]


def test_the_w_l_cross_check_names_what_disagrees() -> None:
    p = 11  # K = 5; components: Const, cos 1, sin 1, ..., cos 5, sin 5
    sq = np.full(p, 0.01)
    sq[3] = sq[4] = 1.0  # frequency 2
    sq[9] = 2.0  # frequency 5 (cos only: phase does not matter)
    assert keyfreqs.strongest(sq, 2) == (2, 5)
    assert keyfreqs.cross_check((2, 5), sq) == ""
    warning = keyfreqs.cross_check((2, 3), sq)
    assert "3 weak in W_L" in warning and "5 strong in W_L" in warning
    assert keyfreqs.cross_check((), sq) == ""


# -- the cache ---------------------------------------------------------------------------------


def test_records_are_cached_and_filled_incrementally(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    assert tracker.missing() == [0, 10, 20]
    assert tracker.update() == [0, 10, 20] and tracker.computed == 3
    # Provisional from the first checkpoint (3 and 7 stand out in W_E and W_L), clustered
    # once three checkpoints agree on the neurons' frequencies.
    history = tracker.key_history()
    assert history.changes == [(0, (3, 7)), (20, (3, 7))] and history.clustered_since == 20
    assert history.provisional_at(10) and not history.provisional_at(20)
    tracker.fill_excluded()
    assert tracker.excluded_computed == 3

    again = ProgressTracker(planted_run, TEST_DEVICE)  # a reopened run
    assert again.update() == [] and again.computed == 0
    again.fill_excluded()
    assert again.excluded_computed == 0
    table = again.table()
    assert table.epochs.tolist() == [0, 10, 20] and table.key_freqs == (3, 7)
    assert table.key_since == 20 and table.excluded_pending == 0
    assert table.excluded_per_freq.shape == (3, 2)
    assert table.avg_attn.shape == (3, PLANTED.n_heads, 3)
    assert table.spectrogram_W_E.shape == table.spectrogram_W_L.shape == (3, 11)
    assert np.isfinite(table["excluded_loss"]).all()
    # The planted neurons are pure frequency-k neurons: their clusters explain ~all.
    assert table["neuron_frac_explained"][-1] > 0.99

    write_checkpoint(planted_run, 30, (3, 7), seed=5)  # a new checkpoint, same circuit
    assert again.update() == [30] and again.computed == 1
    assert len(progress_table(planted_run)) == 4


def test_a_key_set_change_needs_no_forward_pass_but_the_excluded_loss(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update()
    tracker.fill_excluded()
    before = tracker.table()
    for i, epoch in enumerate((30, 40, 50)):  # the circuit moves to frequencies 2, 5, 9
        write_checkpoint(planted_run, epoch, (2, 5, 9), seed=10 + i)
    tracker.update()
    assert tracker.computed == 6  # one record per checkpoint, none recomputed
    history = tracker.key_history()
    assert history.changes == [(0, (3, 7)), (20, (3, 7)), (50, (2, 5, 9))]
    table = tracker.table()
    assert table.key_freqs == (2, 5, 9) and table.key_since == 50
    # Everything but the excluded loss is there at once, for the old checkpoints too.
    assert np.isfinite(table["restricted_loss"]).all()
    assert np.isfinite(table["trig_frac_logits"]).all()
    assert np.isnan(table["excluded_loss"]).all() and table.excluded_pending == 6
    tracker.fill_excluded()
    assert tracker.excluded_computed == 3 + 6
    assert np.isfinite(tracker.table()["excluded_loss"]).all()
    # The old set's values are still on disk: a tracker fixed on epoch 20 (set 3, 7) only
    # needs them for the three new checkpoints.
    old = ProgressTracker(planted_run, key_epoch=20)
    old.update()
    old.fill_excluded()
    assert old.computed == 0 and old.excluded_computed == 3
    np.testing.assert_allclose(old.table()["excluded_loss"][:3], before["excluded_loss"])
    assert old.table().key_history.fixed


def test_a_table_cut_at_an_epoch_uses_only_what_was_known_then(planted_run: Run) -> None:
    for i, epoch in enumerate((30, 40, 50)):
        write_checkpoint(planted_run, epoch, (2, 5, 9), seed=10 + i)
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update()
    cut = tracker.table(upto=40)
    assert cut.epochs.tolist() == [0, 10, 20, 30, 40] and cut.key_freqs == (3, 7)
    assert tracker.table().key_freqs == (2, 5, 9)


def test_key_epoch_must_name_a_checkpoint(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, key_epoch=15)
    tracker.update()
    with pytest.raises(RunError, match="--key-epoch 15"):
        tracker.table()


def test_bad_cache_rows_and_files_are_ignored_and_recomputed(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update()
    good = tracker.table()
    path = planted_run.measures_path
    hostile = [
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,  # nested too deep for the json module
        b'{"epoch": "ten", "version": 2, "kind": "record"}',
        b'{"epoch": 10, "version": 1, "key_freqs": [3, 7], "train_loss": 1.0}',  # version 1
        b'{"epoch": true, "version": 2, "kind": "excluded", "key_freqs": [3]}',
        b'{"epoch": 10, "version": 2, "kind": "excluded", "key_freqs": ["a"]}',
        b"x" * (progress.MAX_LINE + 10),
        b"\xff\xfe binary",
    ]
    with open(path, "ab") as f:
        f.write(b"\n".join(hostile) + b"\n")
    # Damaged arrays: one truncated, one of the wrong shape, one missing.
    arrays = planted_run.path / "measures"
    (arrays / "epoch_0000000.safetensors").write_bytes(b"\x00" * 10)
    from safetensors.numpy import save_file

    save_file({"w_e_sq": np.zeros(3, np.float32)}, str(arrays / "epoch_0000010.safetensors"))
    (arrays / "epoch_0000020.safetensors").unlink()

    fresh = ProgressTracker(planted_run, TEST_DEVICE)
    assert fresh.missing() == [0, 10, 20]
    assert fresh.update() == [0, 10, 20]
    table = fresh.table()
    np.testing.assert_allclose(table["restricted_loss"], good["restricted_loss"], rtol=1e-6)
    # The hostile rows and stale records are compacted away once they outnumber good ones.
    for _ in range(70):
        with open(path, "ab") as f:
            f.write(b'{"epoch": 1, "version": 1, "key_freqs": [1]}\n')
    fresh.fill_excluded()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["version"] == progress.MEASURES_VERSION for r in rows)
    assert sorted(r["epoch"] for r in rows if r["kind"] == "record") == [0, 10, 20]


def test_a_torn_last_line_does_not_swallow_the_next_row(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update(limit=1)
    with open(planted_run.measures_path, "ab") as f:
        f.write(b'{"epoch": 10, "vers')  # a kill mid-append
    tracker.update()
    assert ProgressTracker(planted_run, TEST_DEVICE).missing() == []


def test_a_damaged_checkpoint_is_skipped_with_its_reason(planted_run: Run) -> None:
    planted_run.checkpoint_path(10).write_bytes(b"garbage")
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    assert tracker.update() == [0, 20]
    assert "damaged" in tracker.bad[10]
    assert tracker.table().epochs.tolist() == [0, 20]


def test_update_stops_between_checkpoints(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    assert len(tracker.update(stop)) == 2
    assert tracker.missing() == [20]
    assert tracker.update(limit=5) == [20] and tracker.missing() == []


def test_records_keep_their_large_arrays_in_their_files(planted_run: Run) -> None:
    """Issue 27: a record in memory holds its small arrays; its neuron shares and logit
    coefficients are read from its file when used, and the table is the same to the bit
    as one built from records holding every array."""
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update()
    tracker.fill_excluded()
    store = tracker.store
    full = [
        dataclasses.replace(r, arrays=load_arrays(store.array_path(e), store.p, store.d_mlp))
        for e, r in sorted(tracker.records.items())
    ]
    for lean, whole in zip(
        sorted(tracker.records.values(), key=lambda r: r.epoch), full, strict=True
    ):
        assert isinstance(lean.arrays, RecordArrays) and set(lean.arrays) == set(whole.arrays)
        assert not set(ON_DISK) & set(lean.arrays.held)
        for name in whole.arrays:
            np.testing.assert_array_equal(lean.arrays[name], whole.arrays[name])
        assert held_bytes(lean) < store.array_path(lean.epoch).stat().st_size / 4
    table = tracker.table()
    history = tracker.key_history()
    want = progress.build_table(full, history, tracker.excluded, None, None, tracker.frame())
    assert table.key_freqs == want.key_freqs == (3, 7)
    for name in progress.SCALARS:
        np.testing.assert_array_equal(table[name], want[name], err_msg=name)
        assert table[name].dtype == want[name].dtype, name
    assert np.isfinite(table["neuron_frac_explained"]).all()
    for name in ("excluded_per_freq", "mlp_out_frac_per_key", "spectrogram_W_E", "avg_attn"):
        np.testing.assert_array_equal(getattr(table, name), getattr(want, name), err_msg=name)


def test_a_record_whose_file_goes_missing_is_measured_again(planted_run: Run) -> None:
    tracker = ProgressTracker(planted_run, TEST_DEVICE)
    tracker.update()
    assert len(tracker.table()) == 3
    tracker.store.array_path(10).unlink()
    with pytest.raises(RunError, match=r"epoch_0000010\.safetensors: missing or damaged"):
        tracker.records[10].arrays["neuron_shares"]
    assert tracker.missing() == [10]  # forgotten, so recorded again
    assert tracker.update() == [10] and len(tracker.table()) == 3
    # A reopened run whose file goes bad after it was read: the table leaves that
    # checkpoint out (no traceback) until it is recorded again.
    reopened = ProgressTracker(planted_run, TEST_DEVICE)
    assert reopened.missing() == []
    tracker.store.array_path(20).write_bytes(b"\x00" * 10)
    assert reopened.table().epochs.tolist() == [0, 10]
    assert reopened.update() == [20] and reopened.table().epochs.tolist() == [0, 10, 20]


MEMORY_PROBE = """
import json, sys
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.asof import OutlookHistory
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

n, every = int(sys.argv[2]), 8
cfg = RunConfig(p=53, d_mlp=512, frac_train=0.3, epochs=n, checkpoint_every=1, preset="t")
run = Run.create(sys.argv[1], cfg, "cpu")
weights = paper_init(cfg)
for epoch in range(n):
    run.save_checkpoint(epoch, weights)

def rss_bytes():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))

def footprint(r):
    parts = [r, vars(r), r.scalars, r.sum_sq_per_param, r.avg_attn, r.arrays, vars(r.arrays),
             r.arrays.held, *r.arrays.held.values(), *r.scalars.values(),
             *r.sum_sq_per_param.values()]
    return sum(map(sys.getsizeof, parts))

tracker = ProgressTracker(run, "cpu")
outlooks = OutlookHistory(tracker)
seen = []
for i in range(1, n + 1):
    tracker.update(limit=1)  # the record, then the heap trimmed
    if i in (50, n):
        file = tracker.store.array_path(i - 1).stat().st_size
        kept = sum(footprint(r) for r in tracker.records.values())
        seen.append({"checkpoint": i, "rss": rss_bytes(), "kept": kept, "file": file})
    if i % every == 0:  # what a live run does between records: a table and the outlook
        tracker.table()
        outlooks.at()
print(json.dumps(seen))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS (Linux)")
def test_what_stays_resident_per_checkpoint_is_about_its_record(tmp_path) -> None:
    """Issue 27: measuring many checkpoints (records, tables, the outlook) grows the
    process by about what the records keep in memory: a few kB each, not their files
    (the neuron shares alone are 53 kB at p = 53, d_mlp = 512) nor the analysis' freed
    temporaries (at p = 113 glibc kept ~15 MB a checkpoint).

    A fresh process (nothing else allocated), the same work each checkpoint, resident size
    read after checkpoints 50 and 250: deterministic, and nothing in it is timed."""
    import subprocess
    import sys

    from grok_tui.engine.core.memory import release_free_memory

    if not release_free_memory():
        pytest.skip("not glibc: its heap is not the one measured here")
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "r"), "250"],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    early, late = json.loads(proc.stdout)
    added = late["checkpoint"] - early["checkpoint"]
    grown, kept = late["rss"] - early["rss"], late["kept"] - early["kept"]
    # What a record keeps (its Record, scalars, small arrays: sys.getsizeof of each) is a
    # small part of its file: the large arrays stay there.
    assert kept / added < late["file"] / 8, f"{kept // added} B kept of a {late['file']} B file"
    # Allowed: 6 x what the records keep, plus 4 MB of page granularity and interpreter
    # noise. 6 = 2 x 3: the tracker's and the outlook's entries per checkpoint (candidate
    # set, frequency shares, restricted and excluded losses, a step) are about as much
    # again as the records (tracemalloc: 10 kB of Python objects a checkpoint in all, 4.8
    # of them the record's), and glibc's and pymalloc's headers and fragmentation up to 3x
    # that (measured: 25 kB of resident size a checkpoint, 4.9 MB over these 200).
    # Records that kept their files' arrays, or any cache of them, grow by at least 200 x
    # 53-66 kB more = 11-13 MB; without the heap trim, ~100 MB.
    allowed = 6 * kept + (4 << 20)
    assert grown <= allowed, (
        f"grew {grown >> 10} kB for {kept >> 10} kB kept (allowed {allowed >> 10})"
    )
