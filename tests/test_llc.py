"""The SGLD estimate of the local learning coefficient against independent truths: models
whose learning coefficient is known analytically, devinterp's update written out by hand,
and a brute-force checkpoint loss. Everything is seeded: each test gives the same numbers
every time on a given machine."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.measures.llc import (
    SGLDSettings,
    default_nbeta,
    estimate_llc,
    sgld_step,
    summarise,
)
from grok_tui.engine.measures.llc_checkpoint import (
    checkpoint_llc,
    llc_row,
    order_to_fill,
    parse_llc_row,
    settings_json,
)
from grok_tui.engine.store.rows import check_measures_row


def analytic_llc(loss, d: int, settings: SGLDSettings):
    """The estimate for a data-free loss L(w) of d parameters with minimum at w* = 0."""
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    est = estimate_llc([w], lambda _g: loss(w), 0.0, settings)
    assert est is not None and not est.diverged
    assert torch.equal(w.detach(), torch.zeros(d, dtype=torch.float64))  # w* restored
    return est


def standard_error(est) -> float:
    """The chains are independent: the spread of their estimates over sqrt(chains)."""
    return float(est.chain_llc.std(ddof=1) / math.sqrt(len(est.chain_llc)))


@pytest.mark.slow
def test_a_regular_quadratic_has_half_its_dimension() -> None:
    """L = 1/2 sum h_i w_i^2 in d = 6: lambda = d/2 = 3 (the posterior exp(-nbeta L) is
    Gaussian, E[L] = d / (2 nbeta) exactly). The discrete chain's stationary variance is
    1 / (a (1 - epsilon a / 4)) along curvature a = nbeta h_i, which shifts the expected
    estimate to sum_i 1 / (2 (1 - epsilon a_i / 4)) (here 3.06); the estimate is within four
    standard errors of that, and the standard error is small against lambda."""
    h = torch.tensor([0.5, 1.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    s = SGLDSettings(epsilon=5e-4, gamma=0.0, nbeta=100.0, chains=8, draws=4000, burn_in=500)
    est = analytic_llc(lambda w: 0.5 * (h * w * w).sum(), 6, s)
    a = s.nbeta * h.numpy()
    expected = float(np.sum(1.0 / (2.0 * (1.0 - s.epsilon * a / 4.0))))
    se = standard_error(est)
    assert se < 0.05 * 3.0
    assert abs(est.llc - expected) < 4 * se, (est.llc, expected, se)
    assert abs(est.llc - 3.0) < 4 * se + (expected - 3.0)


@pytest.mark.slow
def test_localisation_lowers_a_quadratic_as_its_formula_says() -> None:
    """With gamma the posterior's precision is nbeta h + gamma: llc = d/2 * nbeta h /
    (nbeta h + gamma) (before the discretisation factor, which is included)."""
    s = SGLDSettings(epsilon=5e-4, gamma=100.0, nbeta=100.0, chains=8, draws=4000, burn_in=500)
    est = analytic_llc(lambda w: 0.5 * (w * w).sum(), 4, s)
    a = s.nbeta + s.gamma
    expected = 4 * 0.5 * s.nbeta / a / (1.0 - s.epsilon * a / 4.0)  # 1.0 + 2.5%
    se = standard_error(est)
    assert abs(est.llc - expected) < 4 * se, (est.llc, expected, se)
    assert est.llc < 1.5  # far from the unlocalised 2


@pytest.mark.slow
def test_a_quartic_is_singular_with_a_quarter_per_parameter() -> None:
    """L = sum w_i^4 in d = 4: lambda = d/4 = 1, not the regular d/2 = 2 (E[w^4] under
    exp(-a w^4) is 1/(4a) exactly). The flat minimum mixes slowly and w^4 is heavy-tailed,
    so the chains are long; the step is small enough that the discretisation bias (+4% at
    2.5 times this step, measured with 20,000 draws) stays inside four standard errors."""
    s = SGLDSettings(epsilon=2e-3, gamma=0.0, nbeta=100.0, chains=8, draws=10000, burn_in=1000)
    est = analytic_llc(lambda w: (w**4).sum(), 4, s)
    se = standard_error(est)
    assert se < 0.05
    assert abs(est.llc - 1.0) < 4 * se, (est.llc, se)


@pytest.mark.slow
def test_a_mixed_minimum_adds_its_parts() -> None:
    """L = w1^2 / 2 + w2^4: lambda = 1/2 + 1/4 (the coordinates are independent)."""
    s = SGLDSettings(epsilon=2e-3, gamma=0.0, nbeta=100.0, chains=8, draws=10000, burn_in=1000)
    est = analytic_llc(lambda w: 0.5 * w[0] ** 2 + w[1] ** 4, 2, s)
    se = standard_error(est)
    quadratic = 0.5 / (1.0 - s.epsilon * s.nbeta / 4.0)  # its discrete chain's exact part
    assert abs(est.llc - (quadratic + 0.25)) < 4 * se, (est.llc, se)


def test_the_sgld_step_is_devinterps_update() -> None:
    """devinterp's SGLD.step (noise_level 1, no weight decay), written out by hand: for each
    parameter in order, dw = nbeta grad + gamma (w - w0), noise ~ N(0, 1) from the same
    generator, w <- w - lr/2 dw + sqrt(lr) noise."""
    g = torch.Generator().manual_seed(3)
    params = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    anchors = [p + 0.1 * torch.randn(p.shape, generator=g) for p in params]
    grads = [torch.randn(p.shape, generator=g) for p in params]
    s = SGLDSettings(epsilon=0.01, gamma=5.0, nbeta=46.2)

    ours = [p.clone() for p in params]
    for w, grad in zip(ours, grads, strict=True):
        w.grad = grad.clone()
    sgld_step(ours, anchors, s, torch.Generator().manual_seed(11))

    noise_gen = torch.Generator().manual_seed(11)
    for w, w0, grad, got in zip(params, anchors, grads, ours, strict=True):
        dw = grad * s.nbeta
        dw = dw + (w - w0) * s.gamma
        noise = torch.normal(mean=0.0, std=1.0, size=dw.size(), generator=noise_gen)
        want = w + dw * (-0.5 * s.epsilon) + noise * s.epsilon**0.5
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_the_estimate_is_nbeta_times_the_mean_draw_loss_above_the_start() -> None:
    """llc = nbeta (mean over draws, burn-in left out, - L(w*)), per chain then averaged;
    the same seed gives the same trace."""
    s = SGLDSettings(epsilon=1e-3, gamma=1.0, nbeta=20.0, chains=3, draws=50, burn_in=20)
    w = torch.zeros(3, requires_grad=True)
    first = estimate_llc([w], lambda _g: (w * w).sum() + 0.5, 0.5, s)
    again = estimate_llc([w], lambda _g: (w * w).sum() + 0.5, 0.5, s)
    assert first is not None and again is not None
    np.testing.assert_array_equal(first.trace, again.trace)
    assert first.trace.shape == (3, 70)
    per_chain = [20.0 * (sum(row[20:].tolist()) / 50 - 0.5) for row in first.trace]
    assert first.chain_llc.tolist() == pytest.approx(per_chain, rel=1e-9)
    assert first.llc == pytest.approx(sum(per_chain) / 3, rel=1e-9)
    assert first.trace[:, 0].tolist() == pytest.approx([0.5] * 3)  # each chain starts at w*


def test_a_diverging_chain_is_said_and_gives_no_estimate() -> None:
    """epsilon * curvature > 4 makes the chain blow up: NaN, diverged, not a number."""
    s = SGLDSettings(epsilon=0.1, gamma=0.0, nbeta=100.0, chains=2, draws=400, burn_in=10)
    w = torch.zeros(2, requires_grad=True)
    est = estimate_llc([w], lambda _g: 0.5 * (w * w).sum(), 0.0, s)
    assert est is not None and est.diverged and math.isnan(est.llc)
    assert torch.equal(w.detach(), torch.zeros(2))


def test_stopping_gives_no_estimate_and_restores_the_weights() -> None:
    s = SGLDSettings(epsilon=1e-3, gamma=0.0, nbeta=10.0, chains=2, draws=100, burn_in=10)
    w = torch.ones(2, requires_grad=True)
    assert estimate_llc([w], lambda _g: (w * w).sum(), 2.0, s, should_stop=lambda: True) is None
    assert torch.equal(w.detach(), torch.ones(2))


def test_summarise_by_hand() -> None:
    s = SGLDSettings(epsilon=1.0, gamma=0.0, nbeta=2.0, chains=2, draws=2, burn_in=1)
    est = summarise(np.array([[9.0, 1.0, 3.0], [9.0, 2.0, 2.0]]), 1.0, s)
    assert est.chain_llc.tolist() == [2.0, 2.0] and est.llc == 2.0 and est.llc_std == 0.0
    assert est.mean_loss == 2.0


# -- a checkpoint's estimate -----------------------------------------------------------------

TINY = RunConfig(p=17, frac_train=0.5, d_model=32, n_heads=4, d_head=8, d_mlp=48, preset="t")
FEW = SGLDSettings(epsilon=1e-4, gamma=1000.0, nbeta=default_nbeta(64), chains=2, draws=30,
                   burn_in=10)  # fmt: skip


def test_a_checkpoint_loss_is_the_train_cross_entropy_of_transformer_lens() -> None:
    """L(w*) is the mean cross-entropy over the p + 1 classes on the train set, and each
    chain's first step is the minibatch its generator draws, at w*: both against
    TransformerLens's forward and torch's cross-entropy, computed here."""
    weights = paper_init(TINY)
    weights = {k: v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
               for k, v in weights.items()}  # fmt: skip
    frozen = {k: v.clone() for k, v in weights.items()}
    est = checkpoint_llc(TINY, weights, FEW, batch_size=64)
    assert est is not None and not est.diverged and math.isfinite(est.llc)
    for k, v in weights.items():
        assert torch.equal(v, frozen[k])  # the checkpoint is not touched

    data = make_dataset(TINY)
    with torch.no_grad():
        logits = hooked_model(TINY, weights)(data.tokens)[:, -1].double()
    train = data.train_idx
    full = torch.nn.functional.cross_entropy(logits[train], data.labels[train])
    assert est.init_loss == pytest.approx(float(full), rel=1e-5)
    for chain in range(FEW.chains):
        rows = torch.randint(len(train), (64,), generator=torch.Generator().manual_seed(chain))
        first = torch.nn.functional.cross_entropy(logits[train][rows], data.labels[train][rows])
        assert est.trace[chain, 0] == pytest.approx(float(first), rel=1e-5)

    again = checkpoint_llc(TINY, weights, FEW, batch_size=64)
    assert again is not None
    np.testing.assert_array_equal(est.trace, again.trace)  # seeded: the same every time


def test_a_row_round_trips_and_other_settings_are_not_ours() -> None:
    trace = np.array([[1.0, 2.0, 3.0], [1.0, math.nan, 2.5]])
    s = SGLDSettings(epsilon=1e-3, gamma=1.0, nbeta=10.0, chains=2, draws=2, burn_in=1)
    row = llc_row(50, summarise(trace, 0.5, s))
    check_measures_row(row)  # what the cache's reader accepts
    assert parse_llc_row(row) is None  # not the settings in use
    back = parse_llc_row(row, settings_json(s))
    assert back is not None and back.epoch == 50 and math.isnan(back.llc)  # a NaN chain
    np.testing.assert_array_equal(back.trace, trace)
    assert parse_llc_row({**row, "version": -1}, settings_json(s)) is None


def test_the_order_to_fill_spreads_the_estimates() -> None:
    """Each next checkpoint is one farthest (in checkpoints) from those estimated, the newest
    among equals: brute force over every choice."""
    epochs = list(range(0, 1100, 100))
    done = {300}
    order = order_to_fill(epochs, done)
    assert sorted(order) == [e for e in epochs if e != 300]
    have = [3]
    for e in order:
        best = max(min(abs(epochs.index(c) - j) for j in have) for c in epochs
                   if epochs.index(c) not in have)  # fmt: skip
        assert min(abs(epochs.index(e) - j) for j in have) == best
        have.append(epochs.index(e))
    assert order[0] == 1000 and order_to_fill([0, 50], set())[0] == 50


# -- in a run: the service, the table, every way out ----------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from grok_tui.engine.store.runs import Run
    from grok_tui.engine.training.train import Trainer

    cfg = TINY.replace(lr=1e-2, weight_decay=0.0, epochs=200, checkpoint_every=100)
    run = Run.create(tmp_path_factory.mktemp("llc") / "run", cfg, "cpu")
    assert Trainer(run, "cpu").train().status == "done"
    return run


def test_every_way_out_carries_the_llc(trained, tmp_path, monkeypatch) -> None:
    """The background service estimates every checkpoint; the progress table, the CSV export,
    `analyze --json`'s report and the API then give the numbers of the cached rows, each the
    estimator's on that checkpoint."""
    from grok_tui.api import GrokRun
    from grok_tui.engine.measures import llc_checkpoint
    from grok_tui.engine.measures.export import export_csv
    from grok_tui.engine.measures.llc_service import LLCService
    from grok_tui.engine.measures.progress import ProgressTracker
    from grok_tui.engine.measures.report import analysis_report

    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", FEW)
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    run = trained
    got: list = []
    service = LLCService(run, "cpu", got.append)
    try:
        assert service.drain(timeout=300)
    finally:
        service.stop()
        service.join()
    assert sorted(service.computed) == run.checkpoint_epochs() == [0, 100, 200]
    assert service.computed[0] == 200  # the newest first
    assert sorted(s.epoch for s in got) == [0, 100, 200] and not service.error

    tracker = ProgressTracker(run)
    tracker.update()
    table = tracker.table()
    rows = {int(r["epoch"]): r for r in csv.DictReader(export_csv(run, tmp_path / "o.csv").open())}
    report = analysis_report(run, epoch=200)
    api = GrokRun(run).llc(compute=False)
    assert api["trace"].shape == (3, FEW.chains, FEW.burn_in + FEW.draws)
    for i, epoch in enumerate([0, 100, 200]):
        est = checkpoint_llc(run.meta().config, run.load_checkpoint(epoch), FEW, batch_size=64)
        assert est is not None
        assert table["llc"][i] == pytest.approx(est.llc, rel=1e-4, abs=1e-6)
        assert table["llc_std"][i] == pytest.approx(est.llc_std, rel=1e-4, abs=1e-6)
        assert float(rows[epoch]["llc"]) == table["llc"][i]
        assert api["llc"][i] == table["llc"][i]
        np.testing.assert_allclose(api["trace"][i], est.trace, rtol=1e-5)
    assert report["llc"] == table["llc"][-1] and report["llc_std"] == table["llc_std"][-1]


def test_a_served_run_keeps_its_estimates_in_memory(trained, monkeypatch) -> None:
    """A read-only run writes nothing; the estimates reach the progress table through the
    progress service they are handed to."""
    from grok_tui.engine.measures import llc_checkpoint
    from grok_tui.engine.measures.llc_service import LLCService
    from grok_tui.engine.measures.services import ProgressService
    from grok_tui.engine.store.runs import Run

    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", replace(FEW, seed=7))
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    before = trained.measures_path.read_bytes()
    run = Run.open(trained.path, read_only=True)
    updates: list = []
    progress = ProgressService(run, "cpu", updates.append)
    llc = LLCService(run, "cpu", progress.add_llc)
    try:
        assert llc.drain(timeout=300)
        assert progress.drain(timeout=300)
    finally:
        for service in (llc, progress):
            service.stop()
            service.join()
    assert trained.measures_path.read_bytes() == before
    last = [u.table for u in updates if u.table is not None][-1]
    assert np.isfinite(last["llc"]).all()


async def test_the_curves_pane_draws_the_llc_with_its_band(trained, monkeypatch) -> None:
    """`m` reaches the view; it plots the table's llc and llc -+ sd."""
    from grok_tui.engine.measures import llc_checkpoint
    from grok_tui.engine.measures.progress import ProgressTracker
    from tests.pane_harness import curves_series

    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", FEW)
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    GrokRun = __import__("grok_tui.api", fromlist=["GrokRun"]).GrokRun
    GrokRun(trained).llc()
    tracker = ProgressTracker(trained)
    tracker.update()
    table = tracker.table()

    series = await curves_series(table, "learning coefficient")
    by_label = {label: ys for label, _xs, ys, _colour in series}
    assert by_label["llc"] == pytest.approx(list(table["llc"]))
    sd = table["llc_std"]
    assert by_label["- sd"] == pytest.approx(list(table["llc"] - sd))
    assert by_label["+ sd"] == pytest.approx(list(table["llc"] + sd))


def test_analyze_llc_estimates_the_checkpoints_up_to_its_epoch(
    trained, monkeypatch, capsys
) -> None:
    """`grok-tui analyze RUN --epoch 100 --llc --json` estimates checkpoints 0 and 100 (not
    200) and reports epoch 100's; without --llc nothing is estimated."""
    import json

    from grok_tui.cli.entry import main
    from grok_tui.engine.measures import llc_checkpoint

    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", replace(FEW, seed=3))
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    assert main(["analyze", str(trained.path), "--epoch", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["llc"] is None
    assert main(["analyze", str(trained.path), "--epoch", "100", "--json", "--llc"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert err.startswith("grok-tui: estimating the learning coefficient of 2 checkpoint(s)")
    cache = llc_checkpoint.LLCCache(trained)
    assert sorted(cache.scan()) == [0, 100]
    assert report["llc"] == cache.scan()[100].llc


def test_a_paced_service_rests_but_estimates_the_same(trained, monkeypatch) -> None:
    """At a share of the time below 1 the thread rests between bursts of steps; the numbers
    are those of an estimate made in one go (pacing changes when, not what)."""
    from grok_tui.engine.measures import llc_checkpoint
    from grok_tui.engine.measures.llc_service import LLCService

    settings = replace(FEW, seed=11)
    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", settings)
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    got: list = []
    service = LLCService(trained, "cpu", got.append, share=lambda: 0.5)
    try:
        assert service.drain(timeout=300)
    finally:
        service.stop()
        service.join()
    assert sorted(s.epoch for s in got) == [0, 100, 200] and service.busy_s > 0
    for summary in got:
        weights = trained.load_checkpoint(summary.epoch)
        est = checkpoint_llc(trained.meta().config, weights, settings, batch_size=64)
        assert est is not None and summary.llc == pytest.approx(est.llc, rel=1e-5, abs=1e-6)


def fake_estimate(settings: SGLDSettings, level: float):
    """A stand-in for an SGLD run: an estimate with these settings, made at once."""
    trace = np.full((settings.chains, settings.burn_in + settings.draws), level)
    return summarise(trace, 0.5, settings, seconds=0.01)


def test_a_compaction_racing_an_llc_append_keeps_every_row_once(trained, monkeypatch) -> None:
    """The LLC thread's row, appended (through its own Run) while a compaction has read the
    cache and not yet replaced it, waits for the compaction and lands in the new file: each
    estimate is there exactly once, the one from before the compaction too. Without the
    cache's writer lock the append would go into the replaced file and be lost."""
    import threading

    from grok_tui.engine.measures import llc_checkpoint
    from grok_tui.engine.measures.progress import RecordStore
    from grok_tui.engine.store.runs import Run

    settings = replace(FEW, seed=21)
    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", settings)
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    monkeypatch.setattr(
        llc_checkpoint, "checkpoint_llc", lambda cfg, w, **kw: fake_estimate(settings, 0.75)
    )
    compacting = Run.open(trained.path)
    store = RecordStore(compacting, trained.meta().config.p, trained.meta().config.d_mlp)
    llc_checkpoint.LLCCache(Run.open(trained.path)).compute(0)  # one row before

    read, appended = threading.Event(), threading.Event()
    rewrite = compacting.rewrite_measures

    def paused_rewrite(rows) -> None:
        read.set()  # the compaction has read the cache; its rewrite is next
        appended.wait(2.0)  # an unlocked append finishes here; a locked one cannot
        rewrite(rows)

    monkeypatch.setattr(compacting, "rewrite_measures", paused_rewrite)
    compaction = threading.Thread(target=store.compact, args=((),))
    compaction.start()
    assert read.wait(60)

    def estimate() -> None:
        llc_checkpoint.LLCCache(Run.open(trained.path)).compute(100)
        appended.set()

    appender = threading.Thread(target=estimate)
    appender.start()
    compaction.join(60)
    appender.join(60)
    assert not compaction.is_alive() and not appender.is_alive()
    ours = [r["epoch"] for r in trained.read_measures() if parse_llc_row(r) is not None]
    assert sorted(ours) == [0, 100]


def test_two_services_on_one_run_estimate_each_checkpoint_once(trained, monkeypatch) -> None:
    """A viewer's service and a trainer's (two `Run`s of one directory) share the work by
    the run's claim: every checkpoint is estimated by exactly one of them, the cache has one
    row per checkpoint, and each service hands over all three estimates (its own and the
    other's). The claim is gone once both are done."""
    from grok_tui.engine.measures import llc_checkpoint, llc_service
    from grok_tui.engine.measures.llc_claim import CLAIM_NAME
    from grok_tui.engine.measures.llc_service import LLCService
    from grok_tui.engine.store.runs import Run

    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", replace(FEW, seed=23))
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    monkeypatch.setattr(llc_service, "CLAIM_RECHECK_S", 0.05)
    got: tuple[list, list] = ([], [])
    services = [LLCService(Run.open(trained.path), "cpu", g.append) for g in got]
    try:
        for service in services:
            service.poke()  # both start at once
        assert all(service.drain(timeout=300) for service in services)
    finally:
        for service in services:
            service.stop()
            service.join()
    a, b = (sorted(s.computed) for s in services)
    assert sorted(a + b) == [0, 100, 200]  # each checkpoint by one service, once
    assert all(sorted({s.epoch for s in g}) == [0, 100, 200] for g in got)
    rows = [r["epoch"] for r in trained.read_measures() if parse_llc_row(r) is not None]
    assert sorted(rows) == [0, 100, 200]
    assert not (trained.path / CLAIM_NAME).exists()
    assert not any(s.error for s in services)


def test_a_live_claim_makes_a_service_wait_and_a_dead_one_is_taken_over(
    trained, monkeypatch
) -> None:
    """A claim held by a live process (here pid 1) keeps the service from estimating and
    says who holds it; once released the service estimates. A dead holder's claim, or one
    whose pid now belongs to another process, is taken over at once."""
    import json
    import socket

    from grok_tui.engine.measures import llc_checkpoint, llc_service
    from grok_tui.engine.measures.llc_claim import CLAIM_NAME
    from grok_tui.engine.measures.llc_service import LLCService

    settings = replace(FEW, seed=29)
    monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", settings)
    monkeypatch.setattr(llc_checkpoint, "BATCH_SIZE", 64)
    monkeypatch.setattr(  # an estimate with the settings in use, made at once
        llc_checkpoint,
        "checkpoint_llc",
        lambda cfg, w, **kw: fake_estimate(llc_checkpoint.LLC_SETTINGS, 0.6),
    )
    monkeypatch.setattr(llc_service, "CLAIM_RECHECK_S", 0.05)
    claim = trained.path / CLAIM_NAME
    host = socket.gethostname()
    claim.write_text(json.dumps({"pid": 1, "host": host, "token": "other"}))
    service = LLCService(trained, "cpu", lambda s: None)
    try:
        assert not service.drain(timeout=1.0)  # waits on pid 1's claim
        assert service.computed == [] and "pid 1" in service.note
        claim.unlink()
        assert service.drain(timeout=60)
        assert sorted(service.computed) == [0, 100, 200] and service.note == ""
    finally:
        service.stop()
        service.join()

    from grok_tui.engine.store.liveness import process_start

    dead = {"pid": subprocess_pid_that_exited(), "host": host, "token": "gone"}
    # pid 1 is alive, but not the process that wrote this claim (another start time): the
    # pid was reused, so the claim is stale too.
    reused = {"pid": 1, "host": host, "token": "old", "started": (process_start(1) or 0) + 1}
    for seed, stale in ((31, dead), (37, reused)):
        monkeypatch.setattr(llc_checkpoint, "LLC_SETTINGS", replace(settings, seed=seed))
        claim.write_text(json.dumps(stale))
        service = LLCService(trained, "cpu", lambda s: None)
        try:
            assert service.drain(timeout=60), stale
            assert sorted(service.computed) == [0, 100, 200]
        finally:
            service.stop()
            service.join()
        assert not claim.exists()


def subprocess_pid_that_exited() -> int:
    """The pid of a process that has exited and been reaped (dead on this host)."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)
