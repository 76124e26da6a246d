"""The operations: labels, input sets, the multiplicative group, and training groups that mix
ops. Every expectation is computed here by brute force, independently of engine/core/ops.py."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from grok_tui.engine.core import fourier, ops, zp
from grok_tui.engine.core.config import OPS, ConfigError, RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.stepper import MemberState, Stepper
from tests.test_stepper import max_rel, reference_run


def brute_label(op: str, x: int, y: int, p: int) -> int | None:
    """The label from its definition; None off the op's input set."""
    if op == "add":
        return (x + y) % p
    if op == "subtract":
        return (x - y) % p
    if op == "multiply":
        return (x * y) % p
    if op == "divide":
        if y == 0:
            return None
        return next(z for z in range(p) if (z * y) % p == x)  # z = x / y: z y = x
    if op == "x2+y2":
        return (x**2 + y**2) % p
    if op == "x2+xy+y2":
        return (x**2 + x * y + y**2) % p
    if op == "x3+xy":
        return (x**3 + x * y) % p
    raise AssertionError(op)


def test_every_op_has_its_analysis_info() -> None:
    assert set(ops.INFO) == set(OPS)


@pytest.mark.parametrize("op", [o for o in OPS if o != "random"])
def test_labels_and_input_sets_by_brute_force(op: str) -> None:
    p = 11
    data = make_dataset(RunConfig(p=p, frac_train=0.5, op=op))
    inputs = sorted(torch.cat([data.train_idx, data.test_idx]).tolist())
    expected = [
        x * p + y for x in range(p) for y in range(p) if brute_label(op, x, y, p) is not None
    ]
    assert inputs == expected
    for i in inputs:
        x, y = divmod(i, p)
        assert data.labels[i].item() == brute_label(op, x, y, p)
        assert data.tokens[i].tolist() == [x, y, p]


def test_divide_has_p_times_p_minus_1_inputs_and_the_papers_split_rule() -> None:
    p, frac, seed = 23, 0.4, 5
    cfg = RunConfig(p=p, frac_train=frac, data_seed=seed, op="divide")
    data = make_dataset(cfg)
    pairs = [i for i in range(p * p) if i % p != 0]
    random.seed(seed)
    random.shuffle(pairs)
    assert cfg.n_inputs == p * (p - 1) and cfg.n_train == int(frac * p * (p - 1))
    assert data.train_idx.tolist() == pairs[: cfg.n_train]
    assert data.test_idx.tolist() == pairs[cfg.n_train :]
    # Every other op keeps the paper's split exactly.
    add = make_dataset(RunConfig(p=p, frac_train=frac, data_seed=seed, op="x3+xy"))
    assert (
        add.train_idx.tolist()
        == make_dataset(RunConfig(p=p, frac_train=frac, data_seed=seed)).train_idx.tolist()
    )


def test_random_table_is_fixed_by_the_data_seed() -> None:
    p = 53
    a = make_dataset(RunConfig(p=p, frac_train=0.4, op="random", data_seed=1)).labels
    b = make_dataset(RunConfig(p=p, frac_train=0.4, op="random", data_seed=1)).labels
    c = make_dataset(RunConfig(p=p, frac_train=0.4, op="random", data_seed=2)).labels
    assert torch.equal(a, b) and not torch.equal(a, c)
    counts = torch.bincount(a, minlength=p).double()
    assert counts.min() > 0  # every class drawn; roughly uniform (chi-square below)
    chi2 = float(((counts - p) ** 2 / p).sum())
    assert chi2 < 2 * p  # ~p - 1 expected for a uniform draw
    # Not a function of x + y, x - y, x y: no structure to generalise.
    add = make_dataset(RunConfig(p=p, frac_train=0.4)).labels
    assert (a == add).double().mean() < 0.1


def explicit_log_basis(p: int) -> np.ndarray:
    """The log basis from its definition, independently of engine/core/fourier.py."""
    g = next(h for h in range(2, p) if len({pow(h, a, p) for a in range(p - 1)}) == p - 1)
    log = {pow(g, a, p): a for a in range(p - 1)}
    n, k_top = p - 1, (p - 1) // 2
    rows = [[0.0] + [1 / math.sqrt(n)] * n]
    for k in range(1, k_top):
        rows.append(
            [0.0] + [math.cos(2 * math.pi * k * log[t] / n) * math.sqrt(2 / n) for t in range(1, p)]
        )
        rows.append(
            [0.0] + [math.sin(2 * math.pi * k * log[t] / n) * math.sqrt(2 / n) for t in range(1, p)]
        )
    rows.append([0.0] + [(-1) ** log[t] / math.sqrt(n) for t in range(1, p)])
    rows.append([1.0] + [0.0] * n)
    return np.array(rows)


@pytest.mark.parametrize("p", [3, 7, 23])
def test_log_basis_matches_its_definition_and_is_orthonormal(p: int) -> None:
    basis = fourier.basis_matrix("log", p)
    np.testing.assert_allclose(basis, explicit_log_basis(p), atol=1e-12)
    np.testing.assert_allclose(basis @ basis.T, np.eye(p), atol=1e-12)
    names = fourier.basis_names(p, "log")
    assert names[0] == "Const" and names[-1] == "zero" and len(names) == p
    freqs = fourier.component_freqs(p, "log")
    assert freqs[-1] == 0 and freqs[-2] == (p - 1) // 2


def test_legendre_row_is_the_quadratic_character() -> None:
    p = 23
    squares = {x * x % p for x in range(1, p)}
    row = fourier.basis_matrix("log", p)[p - 2] * math.sqrt(p - 1)
    assert [round(v) for v in row[1:]] == [1 if t in squares else -1 for t in range(1, p)]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_circuit_directions_are_the_ops_waves(op: str) -> None:
    """cos/sin(w_k(u +- v)) written out from the definition, u, v = x, y or their logs."""
    p = 23
    x, y = np.divmod(np.arange(p * p), p)
    if ops.structure(op) == "additive":
        u, v, w, live = x, y, 2 * math.pi / p, np.ones(p * p, bool)
    else:
        g = zp.generator(p)
        log = {pow(g, a, p): a for a in range(p - 1)}
        live = (x != 0) & (y != 0)
        u = np.array([log.get(t, 0) for t in x])
        v = np.array([log.get(t, 0) for t in y])
        w = 2 * math.pi / (p - 1)
    sign = 1 if op in ("add", "multiply") else -1
    freqs = [1, 4, (p - 1) // 2]
    dirs = ops.circuit_directions(op, p, freqs, dtype=torch.float64).numpy()
    for i, k in enumerate(freqs):
        cos = unit(np.where(live, np.cos(w * k * (u + sign * v)), 0.0))
        np.testing.assert_allclose(dirs[2 * i], cos, atol=1e-12)
        sin = np.where(live, np.sin(w * k * (u + sign * v)), 0.0)
        if np.abs(sin).max() < 1e-9:  # the log basis' top frequency has no sine
            assert not dirs[2 * i + 1].any()
        else:
            np.testing.assert_allclose(dirs[2 * i + 1], unit(sin), atol=1e-12)
    with pytest.raises(ValueError, match="no additive or multiplicative"):
        ops.circuit_directions("x2+y2", p, [1])


def test_structured_inputs_drop_zero_for_multiplicative_ops() -> None:
    p = 7
    assert ops.structured_inputs("add", p) == list(range(49))
    assert ops.structured_inputs("multiply", p) == [
        x * p + y for x in range(1, p) for y in range(1, p)
    ]
    assert ops.structured_inputs("divide", p) == ops.structured_inputs("multiply", p)
    assert not ops.has_circuit_directions("random")


def test_config_validates_the_op_and_run_json_records_it(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--op must be one of"):
        RunConfig(op="modexp").validated()
    with pytest.raises(ConfigError, match="must be str"):
        RunConfig.from_dict({"op": 3})
    cfg = RunConfig(p=23, frac_train=0.5, op="divide", preset="t").validated()
    run = Run.create(tmp_path / "r", cfg, "cpu")
    assert Run.open(tmp_path / "r").meta().config.op == "divide"
    assert '"op": "divide"' in (run.path / "run.json").read_text()
    # A run.json from before ops were options reads as addition.
    assert RunConfig.from_dict({"p": 23}).op == "add"


SMALL = RunConfig(p=23, frac_train=0.5, d_model=32, n_heads=4, d_head=8, d_mlp=64, preset="t")
MIXED = [
    SMALL.replace(epochs=60, op=op, seed=i)
    for i, op in enumerate(("divide", "add", "random", "multiply"))
]


def test_members_of_different_ops_train_as_their_single_runs() -> None:
    """One batched pass (chunk of 4) with three input-set sizes and four label tables:
    each member follows the reference trainer, which reads labels from make_dataset."""
    stepper = Stepper(MIXED, "cpu", [MemberState(0, paper_init(c)) for c in MIXED], chunk_size=4)
    assert stepper.chunks[0].train_plan.counts == [c.n_train for c in MIXED]
    assert MIXED[0].n_train == int(0.5 * 23 * 22) != MIXED[1].n_train
    history = []
    for epoch in range(61):
        history.append(stepper.measure().tolist())
        if epoch < 60:
            stepper.step()
    for m, cfg in enumerate(MIXED):
        rows, _ = reference_run(cfg, 60)
        assert max_rel([h[m] for h in history], rows) < 2e-3, cfg.op


@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide"])
def test_circuit_coeffs_equal_the_dense_projection(op: str) -> None:
    """The O(p^2) grouping the progress records use, against directions @ values."""
    p = 23
    k_top = (p - 1) // 2
    values = torch.randn(p * p, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dense = ops.circuit_directions(op, p, range(1, k_top + 1), dtype=torch.float64) @ values
    fast = ops.circuit_coeffs(op, p, values)
    torch.testing.assert_close(fast, dense.reshape(k_top, 2, 5), atol=1e-12, rtol=0)
    # The label is a function of the coordinate on the inputs the directions describe.
    t = ops.circuit_coordinate(op, p)
    labels = ops.labels(op, p)
    idx = torch.tensor(ops.structured_inputs(op, p))
    assert bool((t[idx] >= 0).all())
    assert torch.equal(ops.coordinate_labels(op, p)[t[idx]], labels[idx])
