"""Analysis per op: planted models and planted logits whose frequencies are known.

- multiply: a model whose embedding holds cos/sin(v_k log t) (v_k = 2 pi k / (p - 1)) is
  sparse in the log basis: its neurons cluster at exactly the planted k and W_E's energy
  sits there; read in the plain Fourier basis of Z_p the same model has no such structure.
- subtract / multiply / divide: logits planted as sum_k cos(w_k (u +- v - z)) lie in the span
  of the op's circuit directions at the planted k (and not in the other ops').
- A trained multiply run (slow): its key frequencies in the log basis carry most of W_E.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from grok_tui.engine.core import fourier, ops
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.store.runs import Run
from tests.planted import PLANTED, planted_weights


def explicit_log(p: int) -> dict[int, int]:
    g = next(h for h in range(2, p) if len({pow(h, a, p) for a in range(p - 1)}) == p - 1)
    return {pow(g, a, p): a for a in range(p - 1)}


def log_planted_weights(freqs, seed: int = 0):
    """`planted_weights` with the embedding waves in log coordinates (token 0 embeds as 0)."""
    cfg = PLANTED.replace(op="multiply")
    weights, expected = planted_weights(cfg, freqs, per_freq=6, n_mixed=2, seed=seed)
    p, log = cfg.p, explicit_log(cfg.p)
    w_e = weights["embed.W_E"]
    for i, k in enumerate(freqs):
        for t in range(p):
            a = 2 * math.pi * k * log[t] / (p - 1) if t else None
            w_e[t, 2 * i] = 0.0 if a is None else math.cos(a)
            w_e[t, 2 * i + 1] = 0.0 if a is None else math.sin(a)
    return cfg, weights, expected


@pytest.mark.parametrize("freqs", [(2, 7), (3, 5, 9)])
def test_planted_multiply_model_is_found_in_the_log_basis(freqs) -> None:
    cfg, weights, expected = log_planted_weights(freqs)
    snap = Analyzer(cfg).snapshot(weights)
    assert snap.basis == "log" and snap.op == "multiply"
    assert snap.key_freqs == tuple(sorted(freqs))
    for k, neurons in expected.items():
        assert sorted(snap.clusters[k].tolist()) == neurons, k
    assert snap.embed_key_share() > 0.999
    # The embedding's energy per frequency, brute force: project each column on explicit
    # log-basis waves (k in freqs) and compare with the snapshot's per-frequency sums.
    p, log = cfg.p, explicit_log(cfg.p)
    w_e = weights["embed.W_E"][:p].double().numpy()
    for k in freqs:
        wave = [
            [math.cos(2 * math.pi * k * log[t] / (p - 1)) if t else 0.0 for t in range(p)],
            [math.sin(2 * math.pi * k * log[t] / (p - 1)) if t else 0.0 for t in range(p)],
        ]
        basis = np.array([np.asarray(w) / np.linalg.norm(w) for w in wave])
        assert snap.embed_freq_sq[k] == pytest.approx(float(((basis @ w_e) ** 2).sum()), rel=1e-4)
    # The same weights read in Z_p's Fourier basis (as if the op were additive) are not
    # sparse: their top frequencies explain much less, and the planted ones are not found.
    plain = Analyzer(cfg.replace(op="add")).snapshot(weights)
    assert plain.embed_key_share() < 0.5 and plain.key_freqs != snap.key_freqs


def test_planted_additive_model_is_found_for_subtract() -> None:
    weights, expected = planted_weights(PLANTED, (3, 7), per_freq=6, n_mixed=2)
    snap = Analyzer(PLANTED.replace(op="subtract")).snapshot(weights)
    assert snap.basis == "fourier" and snap.key_freqs == (3, 7)
    assert all(sorted(snap.clusters[k].tolist()) == n for k, n in expected.items())


def planted_logits(op: str, p: int, freqs) -> torch.Tensor:
    """(p^2, p) logits sum_k cos(w (u +- v - z)) from the definition; 0 where u, v undefined."""
    log = explicit_log(p)
    multiplicative = op in ("multiply", "divide")
    sign = -1 if op in ("subtract", "divide") else 1
    n = p - 1 if multiplicative else p
    out = np.zeros((p * p, p))
    for x in range(p):
        for y in range(p):
            if multiplicative and (x == 0 or y == 0):
                continue
            u, v = (log[x], log[y]) if multiplicative else (x, y)
            for z in range(p):
                if multiplicative and z == 0:
                    continue
                c = log[z] if multiplicative else z
                out[x * p + y, z] = sum(
                    math.cos(2 * math.pi * k * (u + sign * v - c) / n) for k in freqs
                )
    return torch.tensor(out)


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_planted_logits_lie_on_the_ops_directions_at_their_frequencies(op: str) -> None:
    p, freqs = 23, (2, 5)
    logits = planted_logits(op, p, freqs)
    every = list(range(1, fourier.n_freqs(p) + 1))
    dirs = ops.circuit_directions(op, p, every, dtype=torch.float64)
    coeffs = dirs @ logits  # (2K, p)
    per_freq = coeffs.square().reshape(len(every), 2, p).sum(dim=(1, 2))
    total = logits.square().sum()
    # All of the planted logits' energy is on the planted frequencies' directions ...
    assert float(per_freq[[k - 1 for k in freqs]].sum() / total) == pytest.approx(1.0, abs=1e-9)
    assert float(per_freq.max()) == pytest.approx(float(per_freq[[k - 1 for k in freqs]].max()))
    # ... and projecting on those directions rebuilds them.
    key = ops.circuit_directions(op, p, freqs, dtype=torch.float64)
    torch.testing.assert_close(key.T @ (key @ logits), logits, atol=1e-9, rtol=0)
    # Another op's directions miss them (add vs subtract; multiply vs divide).
    other = {"add": "subtract", "subtract": "add", "multiply": "divide", "divide": "multiply"}[op]
    wrong = ops.circuit_directions(other, p, freqs, dtype=torch.float64)
    assert float((wrong @ logits).square().sum() / total) < 0.1


@pytest.mark.slow
def test_a_trained_multiply_run_is_sparse_in_the_log_basis(tmp_path: Path) -> None:
    """Quick preset, op multiply, trained here: it generalises,
    and its key frequencies in the log basis carry most of W_E's energy."""
    from grok_tui.engine.core.config import preset
    from grok_tui.engine.training.train import Trainer

    cfg = preset("quick").replace(op="multiply", epochs=2000, checkpoint_every=500)
    run = Run.create(tmp_path / "mult", cfg, "cpu")
    assert Trainer(run, "cpu").train().status == "done"
    assert run.read_metrics()[-1]["test_acc"] > 0.99
    snap = Analyzer(cfg).snapshot(run.load_checkpoint(2000), 2000)
    assert 1 <= len(snap.key_freqs) <= 8
    assert snap.embed_key_share() > 0.7
    plain = Analyzer(cfg.replace(op="add")).snapshot(run.load_checkpoint(2000), 2000)
    assert plain.embed_key_share() < snap.embed_key_share()


@pytest.mark.parametrize("op", ["random", "multiply", "x2+y2"])
def test_analyze_says_na_rather_than_another_ops_number(tmp_path: Path, op: str, capsys) -> None:
    """Multiply has its own measures (the log basis); an op with no circuit says n/a for the
    measures of a circuit, and random for its phases and forecast too: never a number read
    with another op's directions."""
    from grok_tui.cli import main
    from grok_tui.engine.measures.report import (
        DIRECTION_MEASURES,
        OUTLOOK_MEASURES,
        analysis_report,
    )
    from grok_tui.engine.training.train import Trainer

    cfg = PLANTED.replace(op=op, epochs=20, checkpoint_every=10, preset="t")
    run = Run.create(tmp_path / op, cfg, "cpu")
    Trainer(run, "cpu").train()
    report = analysis_report(run)
    assert report["op"] == op and report["basis"] == ops.basis_kind(op)
    circuit = op == "multiply"
    for name in DIRECTION_MEASURES:
        assert (report[name] == ops.NOT_APPLICABLE) != circuit, name
    for name in OUTLOOK_MEASURES:
        assert (report[name] == ops.NOT_APPLICABLE) == (op == "random"), name
    if circuit:
        assert isinstance(report["restricted_loss"], float) and report["measure_key_freqs"]
    assert isinstance(report["gini_W_E"], float)  # the log basis' for multiply
    assert isinstance(report["train_loss"], float) and isinstance(report["key_freqs"], list)
    assert main(["analyze", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert ("n/a for this op" in out) != circuit and ops.INFO[op].formula.split(" ")[0] in out
    assert "progress measures, phases and forecast: n/a" not in out
    rows = [json.loads(line) for line in run.measures_path.read_text().splitlines()]
    assert all(r["op"] == op for r in rows if r["kind"] in ("record", "excluded"))


def test_analyze_gives_subtract_its_own_progress_measures(tmp_path: Path) -> None:
    """Subtract is additive: its records read the x - y directions (tests/test_record.py
    checks them), so the measures, phases and forecast are its own, not "n/a"."""
    from grok_tui.engine.measures.report import DIRECTION_MEASURES, analysis_report
    from grok_tui.engine.training.train import Trainer

    cfg = PLANTED.replace(op="subtract", epochs=20, checkpoint_every=10, preset="t")
    run = Run.create(tmp_path / "subtract", cfg, "cpu")
    Trainer(run, "cpu").train()
    report = analysis_report(run)
    assert not any(report[name] == ops.NOT_APPLICABLE for name in DIRECTION_MEASURES)
    assert isinstance(report["restricted_loss"], float) and report["measure_key_freqs"]
    assert isinstance(report["excluded_loss"], float) and isinstance(report["phases"], dict)
    rows = [json.loads(line) for line in run.measures_path.read_text().splitlines()]
    assert all(r["sign"] == -1 for r in rows if r["kind"] in ("record", "excluded"))
