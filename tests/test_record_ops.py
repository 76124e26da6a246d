"""Records of every op against brute force: multiply and divide in the log basis, the ops
with no circuit (quadratic, random) with NaN where a circuit is needed.

The reference builds everything from definitions, not from grok_tui.engine.core: the
discrete log by exponentiating a primitive root found by search, the waves
cos/sin(2 pi k (log x +- log y) / (p - 1)) as explicit vectors over the p^2 inputs (zero where
x = 0 or y = 0), the restricted logits by least squares on the span {the inputs with a log,
the inputs without, the key waves} over the op's inputs, the excluded ones by removing the
least-squares fit on the key waves alone, and TransformerLens `run_with_cache` logits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grok_tui.engine.core.loss import reference_cross_entropy
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.keyfreqs import fixed_history
from grok_tui.engine.measures.progress import build_table, circuit_frame, restricted_losses
from grok_tui.engine.measures.record import Recorder, expected_shapes, gini, row_is_record
from tests.test_analysis import SMALL, random_weights
from tests.test_record import brute

P = SMALL.p  # 17: Z_16 in the log basis, top frequency 8 (a cosine only)


def explicit_log(p: int) -> dict[int, int]:
    """log_g t by exponentiation, g the first number whose powers give every t != 0."""
    g = next(h for h in range(2, p) if len({pow(h, a, p) for a in range(p - 1)}) == p - 1)
    return {pow(g, a, p): a for a in range(p - 1)}


def waves(op: str, p: int, k: int) -> list[np.ndarray]:
    """Unit vectors over the flat p^2 grid: cos and sin of 2 pi k t / (p - 1), t = log x +-
    log y, zero where x or y is 0 (only the cosine at the top frequency, the sine is 0)."""
    log, sign = explicit_log(p), 1 if op == "multiply" else -1
    x, y = np.divmod(np.arange(p * p), p)
    has_log = (x != 0) & (y != 0)
    pairs = zip(x, y, strict=True)
    t = np.array([(log[a] + sign * log[b]) % (p - 1) if a and b else 0 for a, b in pairs])
    angle = 2 * math.pi * k * t / (p - 1)
    out = []
    for wave in (np.cos(angle), np.sin(angle)):
        wave = np.where(has_log, wave, 0.0)
        if np.linalg.norm(wave) > 1e-9:
            out.append(wave / np.linalg.norm(wave))
    return out


def ce(values: np.ndarray, labels: torch.Tensor) -> float:
    return float(reference_cross_entropy(torch.tensor(values), labels))


def fit(basis: list[np.ndarray], values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The least-squares fit of `values` on the span of `basis`, over `rows` only."""
    a = np.stack([b[rows] for b in basis], axis=1)
    coef, *_ = np.linalg.lstsq(a, values[rows], rcond=None)
    return a @ coef


@pytest.fixture(scope="module", params=["multiply", "divide"])
def log_case(request) -> dict:
    cfg = SMALL.replace(op=request.param)
    weights = random_weights(cfg, seed=11)
    recorder = Recorder(Analyzer(cfg))
    return {
        "cfg": cfg,
        "weights": weights,
        "recorder": recorder,
        "record": recorder.record(weights, epoch=5),
        "ref": brute(cfg, weights),
    }


def test_log_coefficients_are_projections_on_the_log_waves(log_case: dict) -> None:
    op, record, logits = log_case["cfg"].op, log_case["record"], log_case["ref"]["logits"]
    assert record.basis == "log" and record.row()["op"] == op
    assert set(record.arrays) == set(expected_shapes(P, SMALL.d_mlp, op))
    got = record.arrays["logit_coeffs"]
    for k in range(1, (P - 1) // 2 + 1):
        for d, wave in enumerate(waves(op, P, k)):
            np.testing.assert_allclose(got[k - 1, d], wave @ logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got[-1, 1], 0.0)  # no sine at the top frequency


@pytest.mark.parametrize("keys", [(2, 5), (1, 8), (3,), (), tuple(range(1, 9))])
def test_log_restricted_and_excluded_losses_equal_explicit_projections(
    log_case: dict, keys: tuple[int, ...]
) -> None:
    """0 has no log: its inputs (label 0) are a class apart, with the restricted logits
    their own mean; the key waves are zero on them, so excluding leaves them as they are."""
    cfg, record, ref = log_case["cfg"], log_case["record"], log_case["ref"]
    op, logits, labels, train = cfg.op, ref["logits"], ref["labels"], ref["train"].numpy()
    x, y = np.divmod(np.arange(P * P), P)
    inputs = np.flatnonzero(y != 0) if op == "divide" else np.arange(P * P)
    has_log = ((x != 0) & (y != 0)).astype(np.float64)
    key_waves = [w for k in keys for w in waves(op, P, k)]
    restricted = np.zeros_like(logits)
    restricted[inputs] = fit([has_log, 1 - has_log, *key_waves], logits, inputs)

    frame = circuit_frame(cfg)
    arrays = record.arrays
    total, on_train, acc = restricted_losses(
        arrays["logit_coeffs"][None], arrays["logit_mean"][None], keys, frame.train_counts,
        frame, arrays["logit_zero_mean"][None],
    )  # fmt: skip
    assert total[0] == pytest.approx(ce(restricted[inputs], labels[inputs]), rel=1e-4)
    assert on_train[0] == pytest.approx(ce(restricted[train], labels[train]), rel=1e-4)
    want_acc = (restricted[inputs].argmax(1) == labels[inputs].numpy()).mean()
    assert acc[0] == pytest.approx(float(want_acc))

    got, per_freq = log_case["recorder"].excluded_losses(
        log_case["weights"], keys, arrays["logit_coeffs"]
    )
    excluded = logits.copy()
    if keys:
        excluded[inputs] -= fit(key_waves, logits, inputs)
    assert got == pytest.approx(ce(excluded[train], labels[train]), rel=1e-4)
    for k, value in zip(keys, per_freq, strict=True):
        one = logits.copy()
        one[inputs] -= fit(waves(op, P, k), logits, inputs)
        assert value == pytest.approx(ce(one[train], labels[train]), rel=1e-4)


def test_log_gini_spectrogram_and_label_share(log_case: dict) -> None:
    """W_E's per-frequency norms in the log basis: of explicit cos/sin(2 pi k log t / (p-1))
    over tokens t != 0; the label share: the class variance explained by per-label means."""
    cfg, record, weights, ref = (log_case[k] for k in ("cfg", "record", "weights", "ref"))
    log = explicit_log(P)
    tokens = np.arange(1, P)
    a = np.array([log[t] for t in tokens])
    w_e = weights["embed.W_E"].double().numpy()[:P]
    norms = []
    for k in range(1, (P - 1) // 2 + 1):
        sq = 0.0
        for wave in (np.cos(2 * math.pi * k * a / (P - 1)), np.sin(2 * math.pi * k * a / (P - 1))):
            if np.linalg.norm(wave) > 1e-9:
                sq += float(((wave / np.linalg.norm(wave)) @ w_e[tokens]) @ (
                    (wave / np.linalg.norm(wave)) @ w_e[tokens]))  # fmt: skip
        norms.append(math.sqrt(sq))
    table = build_table([record], fixed_history(5, (2, 5)), {}, None, None, circuit_frame(cfg))
    np.testing.assert_allclose(table.spectrogram_W_E[0], norms, rtol=1e-4)
    assert table["gini_W_E_freq"][0] == pytest.approx(gini(np.array(norms)), rel=1e-4)

    y = np.arange(P * P) % P
    inputs = np.flatnonzero(y != 0) if cfg.op == "divide" else np.arange(P * P)
    logits, labels = ref["logits"][inputs], ref["labels"].numpy()[inputs]
    centred = logits - logits.mean(0)
    means = np.stack([centred[labels == c].mean(0) for c in range(P)])[labels]
    want = ((means**2).sum(0) / (centred**2).sum(0)).mean()
    assert table["xy_share_logits"][0] == pytest.approx(want, rel=1e-4)
    assert np.isfinite(table["restricted_loss"][0]) and np.isfinite(table["mlp_out_frac"][0])


@pytest.mark.parametrize("op", ["x2+y2", "random"])
def test_ops_without_a_circuit_record_only_what_needs_none(op: str) -> None:
    """Losses, weights, Gini in Z_p's basis and the label share are numbers; every measure
    of a circuit is NaN (never another op's number), and no key set is ever made."""
    cfg = SMALL.replace(op=op)
    weights = random_weights(cfg, seed=2)
    record = Recorder(Analyzer(cfg)).record(weights, epoch=1)
    assert record.row()["op"] == op and row_is_record(record.row(), 1, op)
    assert not row_is_record(record.row(), 1, "add")
    for name in ("logit_coeffs", "trig_pre", "trig_post", "trig_logits", "neuron_shares",
                 "mlp_out_frac"):  # fmt: skip
        assert np.isnan(record.arrays[name]).all(), name
    ref = brute(cfg, weights)
    logits, labels = ref["logits"], ref["labels"].numpy()
    assert record.scalars["train_loss"] == pytest.approx(
        ce(logits[ref["train"]], ref["labels"][ref["train"]]), rel=1e-4
    )
    centred = logits - logits.mean(0)
    means = np.stack([centred[labels == c].mean(0) for c in range(P)])[labels]
    want = ((means**2).sum(0) / (centred**2).sum(0)).mean()
    assert record.scalars["label_share_logits"] == pytest.approx(want, rel=1e-4)
    table = build_table([record], fixed_history(1, ()), {}, None)
    assert np.isnan(table["restricted_loss"]).all() and np.isnan(table["excluded_loss"]).all()
    assert np.isfinite(table["gini_W_E"]).all() and np.isfinite(table["sum_sq_weights"]).all()


def test_an_op_tagged_row_is_read_back_from_the_cache(tmp_path) -> None:
    """The store's untrusted reader keeps a row naming its op (a string among numbers) and
    drops one naming an op it does not know."""
    import json

    from grok_tui.engine.store.rows import check_measures_row
    from grok_tui.engine.store.untrusted import RowProblem

    record = Recorder(Analyzer(SMALL.replace(op="multiply"))).record(
        random_weights(SMALL, seed=1), epoch=3
    )
    row = json.loads(json.dumps(record.row()))
    assert check_measures_row(row)["op"] == "multiply"
    with pytest.raises(RowProblem, match="op"):
        check_measures_row(dict(row, op="modexp"))
