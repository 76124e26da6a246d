"""The numerical view (Prieto et al. 2025): each measure against a brute-force computation one
example at a time, in a record of a checkpoint and through every way out (table, analyze,
CSV, API)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.data import all_tokens, make_dataset
from grok_tui.engine.core.tl import hooked_model
from grok_tui.engine.measures.analysis import Analyzer
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS, numerical_measures
from grok_tui.engine.measures.record import Recorder
from tests.test_analysis import SMALL, random_weights


def brute_numerics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """One example at a time with Python floats: the measures from their definitions.

    Collapsed: the label leads and 1 + sum_{j != label} exp(z_j - z_label), rounded once to
    float32, is exactly 1. Zero loss: log1p of that sum rounded to float32 is exactly 0.
    Gap: the top logit minus the runner-up; quantiles by linear interpolation (numpy's)."""
    collapsed, zero, gaps = [], [], []
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        leads = row[label] == max(row)
        rest = math.fsum(math.exp(v - row[label]) for j, v in enumerate(row) if j != label)
        collapsed.append(leads and float(np.float32(1.0 + rest)) == 1.0)
        zero.append(leads and float(np.float32(math.log1p(rest))) == 0.0)
        ordered = sorted(row)
        gaps.append(ordered[-1] - ordered[-2])
    q = np.percentile(np.array(gaps), [10, 50, 90])
    return {
        "softmax_collapse": float(np.mean(collapsed)),
        "zero_loss": float(np.mean(zero)),
        "logit_gap_p10": float(q[0]),
        "logit_gap_p50": float(q[1]),
        "logit_gap_p90": float(q[2]),
    }


def spread_logits(n: int = 600, classes: int = 17, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Rows whose label leads by margins from 0 to 150 (collapse ~17, underflow ~104), and
    rows the label does not lead, in float32."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g)
    margin = torch.linspace(-5.0, 150.0, n)
    logits.scatter_(1, labels[:, None], logits.amax(1, keepdim=True) + margin[:, None])
    return logits.float(), labels


def test_measures_equal_the_per_example_brute_force() -> None:
    logits, labels = spread_logits()
    ours = numerical_measures(logits, labels)
    ref = brute_numerics(logits.double().numpy(), labels.numpy())
    assert set(ours) == set(NUMERIC_SCALARS)
    for name in NUMERIC_SCALARS:
        assert ours[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name
    # The spread covers every regime: some collapsed, fewer of them at zero loss.
    assert 0 < ours["zero_loss"] < ours["softmax_collapse"] < 1


def test_collapse_is_what_float32_softmax_and_log_softmax_say_away_from_the_threshold() -> None:
    """Where S is clearly below 2^-24 or clearly above what a term-by-term float32 sum can
    round away ((classes - 1) 2^-24), torch's float32 softmax agrees: probability exactly 1,
    log_softmax exactly 0; and away from float32's subnormal range (where exp and log1p
    kernels may round to 0 early) the trainer's own float32 loss is 0 on the zero-loss rows
    and positive elsewhere."""
    from grok_tui.engine.measures.numerics import row_losses, zero_loss

    logits, labels = spread_logits(seed=1)
    z = logits.double() - logits.double().gather(1, labels[:, None])
    rest = z.exp().scatter(1, labels[:, None], 0.0).sum(1)
    clear = (rest < 2**-24.5) | (rest > 2 * logits.shape[1] * 2**-24)
    prob = logits.softmax(-1).gather(1, labels[:, None]).squeeze(1)
    logp = logits.log_softmax(-1).gather(1, labels[:, None]).squeeze(1)
    ours = numerical_measures(logits[clear], labels[clear])["softmax_collapse"]
    assert ours == pytest.approx((prob[clear] == 1.0).double().mean().item())
    assert ours == pytest.approx((logp[clear] == 0.0).double().mean().item())
    away = (rest > 2**-120) | (rest < 2**-155)  # float32 kernels' subnormal rounding aside
    zero = zero_loss(logits, labels)[away]
    assert torch.equal(row_losses(logits, labels)[away] == 0, zero) and zero.any()


def test_label_not_leading_is_never_collapsed_and_empty_input_is_nan() -> None:
    logits = torch.tensor([[0.0, 100.0, -100.0], [300.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    got = numerical_measures(logits, labels)
    assert got["softmax_collapse"] == 0.5 and got["zero_loss"] == 0.5
    assert got["logit_gap_p50"] == pytest.approx((100.0 + 300.0) / 2)
    empty = numerical_measures(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert all(math.isnan(v) for v in empty.values())


def sharp_weights(cfg: RunConfig, seed: int, scale: float) -> dict[str, torch.Tensor]:
    """Random weights with the unembedding scaled up: logit gaps from ~0 to past collapse."""
    w = random_weights(cfg, seed)
    w["unembed.W_U"] = w["unembed.W_U"] * scale
    return w


def test_a_record_holds_the_numerics_of_its_train_logits() -> None:
    """Against TransformerLens' logits of the train inputs, brute-forced per example."""
    weights = sharp_weights(SMALL, seed=5, scale=12.0)
    record = Recorder(Analyzer(SMALL)).record(weights, epoch=3)
    with torch.no_grad():
        logits = hooked_model(SMALL, weights)(all_tokens(SMALL.p))[:, -1, : SMALL.p]
    data = make_dataset(SMALL)
    ref = brute_numerics(
        logits[data.train_idx].double().numpy(), data.labels[data.train_idx].numpy()
    )
    assert 0 < ref["softmax_collapse"] < 1  # the case exercises the measure
    for name in NUMERIC_SCALARS:
        # Two forwards (TransformerLens, the fast path) round differently: a row at the
        # threshold may tip, so the shares agree to one example in the train set.
        tol = 1.01 / len(data.train_idx) if name in ("softmax_collapse", "zero_loss") else 1e-3
        assert record.scalars[name] == pytest.approx(ref[name], abs=tol, rel=1e-4), name
    assert all(name in record.row() for name in NUMERIC_SCALARS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from grok_tui.engine.store.runs import Run
    from grok_tui.engine.training.train import Trainer

    cfg = RunConfig(p=23, frac_train=0.6, lr=1e-2, weight_decay=0.0, epochs=300,
                    checkpoint_every=100, preset="t")  # fmt: skip
    run = Run.create(tmp_path_factory.mktemp("numerics") / "run", cfg, "cpu")
    assert Trainer(run, "cpu").train().status == "done"
    return run


def test_every_way_out_carries_the_numerics(trained, tmp_path) -> None:
    """The progress table, `analyze --json`, the CSV export and the API give the same
    numbers, which are the brute force's on the checkpoint's train logits."""
    from grok_tui.api import GrokRun
    from grok_tui.engine.measures.export import export_csv
    from grok_tui.engine.measures.report import analysis_report

    run = trained
    api = GrokRun(run)
    table = api.measures()
    assert list(table.epochs) == [0, 100, 200, 300]
    report = analysis_report(run, epoch=300)
    rows = list(csv.DictReader(export_csv(run, tmp_path / "out.csv").open()))
    by_epoch = {int(r["epoch"]): r for r in rows}
    data = make_dataset(run.meta().config)
    for i, epoch in enumerate(table.epochs.tolist()):
        weights = run.load_checkpoint(epoch)
        with torch.no_grad():
            logits = hooked_model(run.meta().config, weights)(all_tokens(23))[:, -1, :23]
        train = data.train_idx
        ref = brute_numerics(logits[train].double().numpy(), data.labels[train].numpy())
        one = api.numerics(epoch)
        for name in NUMERIC_SCALARS:
            tol = 1.01 / len(train) if name in ("softmax_collapse", "zero_loss") else 1e-3
            assert table[name][i] == pytest.approx(ref[name], abs=tol, rel=1e-4), (epoch, name)
            assert float(by_epoch[epoch][name]) == pytest.approx(table[name][i], rel=1e-12)
            assert one[name] == pytest.approx(table[name][i], abs=tol, rel=1e-4)
        assert len(one["logit_gap"]) == len(train) == len(one["collapsed"]) == len(one["loss"])
    for name in NUMERIC_SCALARS:
        assert report[name] == pytest.approx(table[name][-1], rel=1e-12)
    assert table["softmax_collapse"][0] == 0.0  # at init no example is anywhere near


def test_a_record_made_before_the_numerics_existed_is_made_again(trained) -> None:
    from grok_tui.engine.measures.progress import ProgressTracker

    run = trained
    ProgressTracker(run).update()
    rows = run.read_measures()
    old = [{k: v for k, v in r.items() if k not in NUMERIC_SCALARS} for r in rows]
    run.rewrite_measures(old)
    tracker = ProgressTracker(run)
    assert tracker.update() == run.checkpoint_epochs()  # every record redone, with numerics
    assert not math.isnan(tracker.table()["softmax_collapse"][-1])


async def test_the_curves_pane_draws_the_numerical_views(trained) -> None:
    """`m` reaches the two views; each plots its columns of the progress table."""
    from grok_tui.engine.measures.progress import progress_table
    from tests.pane_harness import curves_series

    table = progress_table(trained)
    for view, columns in (
        ("numerics", ("softmax_collapse", "zero_loss")),
        ("logit gap", ("logit_gap_p10", "logit_gap_p50", "logit_gap_p90")),
    ):
        series = await curves_series(table, view)
        assert len(series) == len(columns)
        for (_label, _xs, ys, _colour), column in zip(series, columns, strict=True):
            assert ys == pytest.approx(list(table[column]), nan_ok=True)
