"""Batched training: every member of a group follows the trajectory of its own single run.

The reference for a single run is written out here as the trainer was before the batched
engine: one GrokModel on the fast path, `torch.optim.AdamW` and `LambdaLR` from torch.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
import torch

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.data import make_dataset
from grok_tui.engine.core.loss import loss_and_accuracy
from grok_tui.engine.core.model import GrokModel, InputPlan, paper_init
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.stepper import (
    CPU_CHUNK_BYTES,
    ONE_THREAD_BYTES,
    MemberState,
    Stepper,
    caller_threads,
    chunk_bounds,
    default_chunk_size,
    default_chunks,
    lr_at,
    member_bytes,
)
from grok_tui.engine.training.train import GroupTrainer, Trainer
from tests.devices import TEST_DEVICE

BASE = RunConfig(p=23, frac_train=0.5, epochs=200, checkpoint_every=50, preset="t")
# Three members that differ in everything a member may differ in: lr, weight decay, betas,
# warm-up, init seed, split seed and train fraction (so train sets of different sizes).
MEMBERS = [
    BASE,
    BASE.replace(lr=3e-3, weight_decay=0.3, seed=1, frac_train=0.3, warmup_steps=0),
    BASE.replace(weight_decay=2.0, beta2=0.99, beta1=0.8, data_seed=3, seed=2, frac_train=0.5),
]


def reference_run(
    cfg: RunConfig,
    epochs: int,
    grad_filter: Callable[[torch.nn.Module], None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[list[list[float]], dict[str, torch.Tensor]]:
    """Metrics [train_loss, test_loss, train_acc, test_acc] of W_0..W_epochs, final weights.
    `grad_filter(model)` may change the gradients before each optimiser step (Grokfast)."""
    model = GrokModel(cfg).to(dtype)
    model.load_classic(paper_init(cfg))
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        betas=(cfg.beta1, cfg.beta2),
        fused=True,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(cfg, step) / cfg.lr)
    data = make_dataset(cfg)
    plans = [
        (InputPlan(data.x[i], data.y[i], cfg.p, cfg.n_heads), data.labels[i])
        for i in (data.train_idx, data.test_idx)
    ]
    rows = []
    for epoch in range(epochs + 1):
        tables = model.tables()
        (train_plan, train_labels), (test_plan, test_labels) = plans
        loss, acc = loss_and_accuracy(model.plan_logits(tables, train_plan), train_labels)
        with torch.no_grad():
            test = loss_and_accuracy(model.plan_logits(tables, test_plan), test_labels)
        rows.append([loss.item(), test[0].item(), acc.item(), test[1].item()])
        if epoch == epochs:
            break
        loss.backward()
        if grad_filter is not None:
            grad_filter(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return rows, model.classic_state()


@pytest.fixture(scope="module")
def references() -> list[tuple[list[list[float]], dict[str, torch.Tensor]]]:
    return [reference_run(cfg, BASE.epochs) for cfg in MEMBERS]


def single_stepper_run(
    cfg: RunConfig, epochs: int, device: str = "cpu"
) -> tuple[list[list[float]], dict[str, torch.Tensor]]:
    """`reference_run`'s rows and final weights from a single-member stepper: training's
    own arithmetic (the closed-form gradient), which a group's members reproduce."""
    stepper = Stepper([cfg], device, [MemberState(0, paper_init(cfg))])
    rows = []
    for epoch in range(epochs + 1):
        rows.append(stepper.measure()[0].tolist())
        if epoch < epochs:
            stepper.step()
    return rows, stepper.export([0])[0].weights


@pytest.fixture(scope="module")
def references64() -> list[tuple[list[list[float]], dict[str, torch.Tensor]]]:
    return [reference_run(cfg, BASE.epochs, dtype=torch.float64) for cfg in MEMBERS]


# A chunk of members shares batched GEMMs, which sum in another order than a single run's, so
# in float32 the two differ in the last bits from the first step. Adam then amplifies that
# wherever a gradient is itself rounding noise: such a coordinate's update is
# lr * m / (sqrt(v) + eps) with sqrt(v) ~ 1e-7 >> eps = 1e-8, a full-size step in a random
# direction. How far that carries in 200 epochs depends on the CPU's GEMM kernels (5e-4 on an
# AMD EPYC, 2.6e-3 on an Intel Xeon), so no float32 tolerance both holds everywhere and still
# sees a wrong hyperparameter. In float64 the same noise is ~1e-16, far below eps, and Adam
# damps it instead: a member's trajectory then equals its single run's to rounding (measured
# on an Intel Xeon: 2.9e-15 at most over 200 epochs), while a 1% error in one member's
# weight decay moves its losses by more than 1% (checked below). The float32 kernels
# themselves are checked one step at a time in
# `test_a_float32_chunk_measures_its_members_as_float64_does`, where nothing amplifies.
F64_RTOL = 1e-10
LOSS_RTOL = 2e-3  # float32 trajectories that are not bit-exact (a group's members, resumed)


def max_rel(ours: list[list[float]], theirs: list[list[float]]) -> float:
    """Largest relative difference of train and test loss over the epochs given."""
    return max(
        abs(a[c] - b[c]) / abs(b[c]) for a, b in zip(ours, theirs, strict=True) for c in (0, 1)
    )


def test_members_train_as_their_single_runs(references64) -> None:
    # Chunks of two: members 0 and 1 share a forward pass, member 2 has its own. The
    # stepper's closed-form gradient against `reference_run`'s autograd, 200 epochs.
    states = [MemberState(0, paper_init(c)) for c in MEMBERS]
    stepper = Stepper(MEMBERS, TEST_DEVICE, states, chunk_size=2, dtype=torch.float64)
    history = []
    for epoch in range(BASE.epochs + 1):
        metrics = stepper.measure()
        history.append(metrics.tolist())
        if epoch < BASE.epochs:
            stepper.step()
    assert stepper.epochs == [BASE.epochs] * 3
    for m, (rows, weights) in enumerate(references64):
        ours = [h[m] for h in history]
        assert max_rel(ours, rows) < F64_RTOL, m
        assert all(a[2:] == b[2:] for a, b in zip(ours, rows, strict=True))  # accuracies
        final = stepper.export([m])[0].weights
        ours_w = torch.cat([final[name].flatten() for name in weights])
        theirs_w = torch.cat([t.flatten() for t in weights.values()])
        assert (ours_w - theirs_w).norm() <= F64_RTOL * theirs_w.norm()
    # The members really differ, and the tolerance is tight enough to see a 1% error.
    assert len({round(h[-1][0], 6) for h in [[row[m] for row in history] for m in range(3)]}) == 3
    wrong, _ = reference_run(MEMBERS[2].replace(weight_decay=2.02), BASE.epochs)
    assert max_rel(wrong, references64[2][0]) > 1e-2


# One float32 measure (forward and backward) of a chunk against float64 on the same weights:
# each value is a few chained dot products of length <= 512 (d_mlp) whose float32 rounding is
# bounded by ~512 * 2**-24 * (sum of |terms|) / |sum| in the worst case and sqrt(512) * 2**-24
# ~ 1.4e-6 typically (measured on an Intel Xeon over 60 epochs: losses 4.8e-7, gradient norms
# 5.8e-6); 1e-4 leaves room for the softmax and the ill-conditioned sums near a memorised
# train loss.
F32_STEP_RTOL = 1e-4


@pytest.mark.parametrize("kernel", ["closed-form", "onednn", "bmm"])
def test_a_float32_chunk_measures_its_members_as_float64_does(kernel, monkeypatch) -> None:
    """The closed-form step (training's), and autograd through `fastpath` with either GEMM."""
    import grok_tui.engine.core.fastpath as fastpath

    if kernel == "bmm":
        monkeypatch.setattr(fastpath, "_USE_ONEDNN", False)
    gradient = "closed-form" if kernel == "closed-form" else "autograd"
    exact = Stepper(
        MEMBERS, "cpu", [MemberState(0, paper_init(c)) for c in MEMBERS], 1, torch.float64,
        gradient=gradient,
    )  # fmt: skip
    for epoch in range(61):
        if epoch % 20 == 0:  # fresh, memorising, and on the way
            at = [MemberState(0, s.weights) for s in exact.export(range(3))]
            chunked = Stepper(MEMBERS, "cpu", at, chunk_size=2, gradient=gradient)  # float32
            got, want = chunked.measure(), exact.measure()
            assert chunked.chunks[0].end == 2
            rel = ((got.double() - want)[:, :2].abs() / want[:, :2].abs()).max().item()
            assert rel < F32_STEP_RTOL, (epoch, rel)
            for g32, g64 in zip(chunked.grads, exact.grads, strict=True):
                assert (g32.double() - g64).norm() <= F32_STEP_RTOL * g64.norm(), epoch
        else:
            exact.measure()
        exact.step()


def test_with_a_chunk_size_of_one_members_reproduce_their_single_runs_bit_for_bit(
    references,
) -> None:
    """`chunk_size=1` (a sweep's `--chunk-size 1`): one member per pass, one at a time in the
    caller's threads: each member's arithmetic is its single run's, so the batched engine
    reproduces it exactly. With autograd's gradient that is the plain torch loop of
    `reference_run` (torch's own AdamW and LambdaLR included); with the closed-form gradient
    training uses, the member's own single-member stepper."""
    history = {"autograd": [], "closed-form": []}
    for gradient, rows in history.items():
        states = [MemberState(0, paper_init(c)) for c in MEMBERS]
        stepper = Stepper(MEMBERS, "cpu", states, chunk_size=1, gradient=gradient)
        assert len(stepper.chunks) == 3 and stepper.pool is None
        for epoch in range(BASE.epochs + 1):
            rows.append(stepper.measure().tolist())
            if epoch < BASE.epochs:
                stepper.step()
        finals = stepper.export(range(3))
        for m, (ref_rows, weights) in enumerate(references):
            if gradient == "closed-form":
                ref_rows, weights = single_stepper_run(MEMBERS[m], BASE.epochs)
            assert [h[m] for h in rows] == ref_rows
            final = finals[m].weights
            assert all(torch.equal(final[name], tensor) for name, tensor in weights.items())
    # The two gradients differ in the last bits (other sums), which Adam amplifies in float32
    # (see above): that they train the same runs is `test_members_train_as_their_single_runs`
    # (closed form, float64, against `reference_run`).


def test_the_cpu_default_chunks_by_the_model_not_the_cores() -> None:
    """A CPU chunk holds as many members as fit CPU_CHUNK_BYTES of per-example buffers (the
    quick preset 5, the paper's 1), split as evenly as that allows, in two chunks at least
    where there are two members; a GPU takes all. Nothing depends on the cores."""
    cpu, quick, paper = torch.device("cpu"), preset("quick"), preset("paper")
    assert member_bytes(quick) == 53**2 * (512 + 54) * 4
    assert default_chunk_size(quick, cpu) == CPU_CHUNK_BYTES // member_bytes(quick) == 5
    assert default_chunk_size(paper, cpu) == 1
    two = [paper, paper.replace(seed=1)]
    exact = Stepper(two, "cpu", [MemberState(0, paper_init(c)) for c in two])
    assert len(exact.chunks) == 2 and exact.pool is None  # one by one: the exact path
    assert default_chunk_size(paper, torch.device("cuda")) >= 1 << 30
    assert chunk_bounds(16, 5, even=True) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert chunk_bounds(16, 5) == [(0, 5), (5, 10), (10, 15), (15, 16)]
    assert chunk_bounds(3, 1, even=True) == [(0, 1), (1, 2), (2, 3)]
    assert default_chunks(16, 5) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert default_chunks(4, 5) == [(0, 2), (2, 4)]  # fits one pass: two side by side
    assert default_chunks(3, 5) == [(0, 2), (2, 3)]
    assert default_chunks(7, 5) == [(0, 4), (4, 7)]
    assert default_chunks(1, 5) == [(0, 1)]
    assert default_chunks(3, 1) == [(0, 1), (1, 2), (2, 3)]
    cfgs = [preset("quick").replace(seed=s) for s in range(7)]
    stepper = Stepper(cfgs, "cpu", [MemberState(0, paper_init(c)) for c in cfgs], workers=1)
    assert [(ch.start, ch.end) for ch in stepper.chunks] == [(0, 4), (4, 7)]
    assert stepper.pool is None  # one worker: the caller steps the chunks


def test_a_small_model_steps_on_one_thread_where_openmp_threads_sleep(monkeypatch) -> None:
    """Under OMP_WAIT_POLICY=PASSIVE (the CLI's, and the tests' conftest) a model below
    ONE_THREAD_BYTES of per-example buffers is stepped on one torch thread, its forward,
    backward and AdamW step; the caller's own count is back after each. The paper preset,
    a spinning policy and a GPU keep the caller's count."""
    import grok_tui.engine.training.stepper as stepper_module

    cpu, quick, paper = torch.device("cpu"), preset("quick"), preset("paper")
    assert member_bytes(quick) < ONE_THREAD_BYTES < member_bytes(paper)
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert caller_threads([quick], cpu) == 1
    assert caller_threads([paper], cpu) is None
    assert caller_threads([quick], torch.device("cuda")) is None
    assert caller_threads([quick] * 3, cpu) is None  # a chunk of three: 19 MB
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert caller_threads([quick], cpu) is None
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert caller_threads([quick], cpu) is None

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    seen: list[int] = []
    measure_chunk = stepper_module._measure_chunk

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return measure_chunk(*args, **kwargs)

    monkeypatch.setattr(stepper_module, "_measure_chunk", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        small = Stepper([quick], "cpu", [MemberState(0, paper_init(quick))])
        assert small.caller_threads == 1
        small.measure()
        assert torch.get_num_threads() == 2
        small.step()
        assert torch.get_num_threads() == 2
        large = Stepper([paper], "cpu", [MemberState(0, paper_init(paper))])
        large.measure()
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]


def run_stepper(stepper: Stepper, epochs: int) -> tuple[list[list[list[float]]], torch.Tensor]:
    rows = []
    for _ in range(epochs):
        rows.append(stepper.measure().tolist())
        stepper.step()
    return rows, stepper.flat.clone()


def in_a_thread(threads: int, fn: Callable[[], object]) -> object:
    """fn() in a fresh thread with `threads` torch threads (as a chunk worker runs)."""
    out = []

    def target() -> None:
        torch.set_num_threads(threads)
        out.append(fn())

    t = threading.Thread(target=target)
    t.start()
    t.join()
    return out[0]


def test_chunks_stepped_at_once_give_the_numbers_of_one_thread_run_after_run() -> None:
    """Two workers step the chunks side by side; a chunk's numbers are those of the same
    chunks stepped one after another with the workers' torch threads, bit for bit, and
    the same again on a second run: they depend on the settings, never on scheduling."""
    caller_threads = torch.get_num_threads()
    states = [MemberState(0, paper_init(c)) for c in MEMBERS]
    concurrent = [Stepper(MEMBERS, "cpu", states, chunk_size=2, workers=2) for _ in range(2)]
    assert all(st.pool is not None and st.pool.workers == 2 for st in concurrent)
    runs = [run_stepper(st, 30) for st in concurrent]
    each = concurrent[0].pool.threads_each
    serial = in_a_thread(
        each, lambda: run_stepper(Stepper(MEMBERS, "cpu", states, chunk_size=2, workers=1), 30)
    )
    for rows, flat in runs:
        assert rows == serial[0] and torch.equal(flat, serial[1])
    for st in concurrent:
        st.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("grok-chunk-")]
    assert torch.get_num_threads() == caller_threads


def test_each_member_reads_its_own_split() -> None:
    states = [MemberState(0, paper_init(c)) for c in MEMBERS]
    stepper = Stepper(MEMBERS, "cpu", states, chunk_size=3)
    (chunk,) = stepper.chunks
    plan = chunk.train_plan
    assert plan.counts == [c.n_train for c in MEMBERS]
    start = 0
    for m, cfg in enumerate(MEMBERS):
        data = make_dataset(cfg)
        n = cfg.n_train
        flat = plan.x[start : start + n] * cfg.p + plan.y[start : start + n]
        assert torch.equal(flat, data.train_idx)
        assert torch.equal(chunk.train_labels[start : start + n], data.labels[data.train_idx])
        assert bool((plan.member[start : start + n] == m).all())
        start += n
    test_counts = chunk.test_plan.counts
    assert test_counts == [c.p**2 - c.n_train for c in MEMBERS]


def test_a_large_models_members_side_by_side_reproduce_their_single_runs() -> None:
    """Chunks of one member of a large model (the paper preset) go side by side on the
    chunk pool, each member's examples in two shards one after the other on its worker's
    thread; a single run steps its two shards side by side on the shard pool, its O(p)
    work in the caller. One thread a shard either way, and the O(p) work on one: equal bit
    for bit, metrics and weights (with the O(p) work on the caller's two threads the
    weights differed from the first step on an Intel Xeon)."""
    cfgs = [RunConfig(), RunConfig(seed=1, weight_decay=0.5)]
    epochs = 4
    with torch_threads(2):
        group = Stepper(cfgs, "cpu", [MemberState(0, paper_init(c)) for c in cfgs])
        assert group.pool is not None and group.shard_pool is None
        assert [len(ch.closed_form.shards) for ch in group.chunks] == [2, 2]
        try:
            rows = []
            for epoch in range(epochs + 1):
                rows.append(group.measure().tolist())
                if epoch < epochs:
                    group.step()
            finals = group.export(range(2))
        finally:
            group.close()
        for m, cfg in enumerate(cfgs):
            single = Stepper([cfg], "cpu", [MemberState(0, paper_init(cfg))])
            assert single.shard_pool is not None
            single.close()
            ref_rows, weights = single_stepper_run(cfg, epochs)
            assert [r[m] for r in rows] == ref_rows
            assert all(torch.equal(finals[m].weights[k], t) for k, t in weights.items())


@pytest.mark.parametrize("chunk_size", [0, 1])
def test_a_diverging_member_stops_alone(tmp_path, chunk_size) -> None:
    # lr 1e12: the first real step throws the weights to ~1e12 and the logits overflow.
    # By default the three share a chunk (the CPU default batches a model this small);
    # with chunk_size=1 the others train as their single runs, bit for bit on a CPU.
    bad = BASE.replace(lr=1e12, warmup_steps=0, seed=5)
    cfgs = [MEMBERS[0], bad, MEMBERS[2]]
    runs = [Run.create(tmp_path / f"m{i}", c, TEST_DEVICE) for i, c in enumerate(cfgs)]
    results = GroupTrainer(runs, TEST_DEVICE, chunk_size=chunk_size).train()
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert "non-finite" in results[1].message and "last good checkpoint: epoch 0" in (
        results[1].message
    )
    assert runs[1].meta().status == "failed"
    assert runs[1].checkpoint_epochs() == [0]
    last = runs[1].read_metrics()[-1]
    assert not (math.isfinite(last["train_loss"]) and math.isfinite(last["test_loss"]))
    for run, cfg in zip([runs[0], runs[2]], [cfgs[0], cfgs[2]], strict=True):
        got = [[r["train_loss"], r["test_loss"]] for r in run.read_metrics()]
        assert len(got) == BASE.epochs + 1 and all(math.isfinite(x) for r in got for x in r)
        assert run.checkpoint_epochs() == [0, 50, 100, 150, 200]
        if chunk_size == 1:
            rows, _ = single_stepper_run(cfg, BASE.epochs, TEST_DEVICE)
            assert max_rel(got, rows) < LOSS_RTOL
            if TEST_DEVICE == "cpu":
                assert got == [r[:2] for r in rows]


def test_a_nan_member_leaves_its_chunk_mates_untouched() -> None:
    """Members never mix, not even with NaN: the others' numbers in a chunk with a diverging
    member are bit for bit those they have beside a healthy one of the same shape."""
    bad = BASE.replace(lr=1e12, warmup_steps=0, seed=5)
    histories = []
    for third in (bad, bad.replace(lr=BASE.lr)):
        cfgs = [MEMBERS[0], third, MEMBERS[2]]
        states = [MemberState(0, paper_init(c)) for c in cfgs]
        histories.append(run_stepper(Stepper(cfgs, "cpu", states, chunk_size=3), 30))
    (rows_bad, flat_bad), (rows_ok, flat_ok) = histories
    assert math.isnan(rows_bad[-1][1][0]) and math.isfinite(rows_ok[-1][1][0])
    for m in (0, 2):
        assert [r[m] for r in rows_bad] == [r[m] for r in rows_ok]
        assert torch.equal(flat_bad[m], flat_ok[m])


def test_members_at_different_epochs_resume_together(tmp_path) -> None:
    """A group can hold members at different epochs (a killed sweep resumes that way)."""
    cfgs = [BASE.replace(epochs=60, checkpoint_every=10), MEMBERS[1].replace(epochs=60)]
    straight = [Run.create(tmp_path / f"s{i}", c, TEST_DEVICE) for i, c in enumerate(cfgs)]
    for run in straight:
        Trainer(run, TEST_DEVICE).train()
    runs = [Run.create(tmp_path / f"r{i}", c, TEST_DEVICE) for i, c in enumerate(cfgs)]
    from grok_tui.engine.training.train import TrainControl

    Trainer(runs[1], TEST_DEVICE).train(TrainControl(stop_at=30))  # member 1 at 30, member 0 at 0
    results = GroupTrainer(runs, TEST_DEVICE).train()
    assert [r.status for r in results] == ["done", "done"]
    for run, ref in zip(runs, straight, strict=True):
        assert [r["epoch"] for r in run.read_metrics()] == list(range(61))
        ours = [[r["train_loss"], r["test_loss"]] for r in run.read_metrics()]
        assert max_rel(ours, [[r["train_loss"], r["test_loss"]] for r in ref.read_metrics()]) < (
            LOSS_RTOL
        )
        a, b = run.load_checkpoint(60), ref.load_checkpoint(60)
        diff = sum(float((a[k] - b[k]).square().sum()) for k in a) ** 0.5
        assert diff <= 1e-2 * sum(float(b[k].square().sum()) for k in b) ** 0.5


def test_a_resume_state_of_the_torch_adamw_trainer_still_resumes(tmp_path) -> None:
    """resume.pt written by the trainer before the batched engine (torch's AdamW and LambdaLR
    state dicts) continues exactly where that trainer would have."""
    cfg = BASE.replace(epochs=40, checkpoint_every=20)
    model = GrokModel(cfg)
    model.load_classic(paper_init(cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(cfg.beta1, cfg.beta2), fused=True)  # fmt: skip
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(cfg, step) / cfg.lr)
    data = make_dataset(cfg)
    plan = InputPlan(data.x[data.train_idx], data.y[data.train_idx], cfg.p, cfg.n_heads)
    for _ in range(20):
        loss, _ = loss_and_accuracy(
            model.plan_logits(model.tables(), plan), data.labels[data.train_idx]
        )
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    run = Run.create(tmp_path / "old", cfg, TEST_DEVICE)
    run.save_checkpoint(20, model.classic_state())
    old_format = {
        "epoch": 20,
        "weights": model.classic_state(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": torch.get_rng_state(),
        "wall_s": 1.0,
    }
    run.save_resume(old_format)
    trainer = Trainer(run, TEST_DEVICE)
    # Like for like with `reference_run`: what is pinned is the old state's conversion, and
    # 20 float32 epochs of Adam amplify the last-bit differences between the closed-form
    # and autograd gradients beyond this tolerance (they are pinned to each other elsewhere).
    trainer.stepper.gradient = "autograd"
    assert trainer.train().status == "done"
    _, want = reference_run(cfg, 40)
    got = run.load_checkpoint(40)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=name)


def grok_epochs(stepper: Stepper, limit: int, watched: int | None = None) -> list[int | None]:
    """First epoch with test accuracy >= 99% of each member, training up to `limit` or until
    the first `watched` members (all by default) have grokked."""
    found: list[int | None] = [None] * stepper.n_members
    for epoch in range(limit + 1):
        for m, row in enumerate(stepper.measure().tolist()):
            if found[m] is None and row[3] >= 0.99:
                found[m] = epoch
        if None not in found[:watched]:
            break
        stepper.step()
    return found


@pytest.mark.slow
def test_a_quick_member_groks_when_its_single_run_does() -> None:
    """The issue asks for a batched quick-preset member to grok within 5% of its single
    run's epoch. The epoch itself moves more than that under rounding-level noise: runs
    from initial weights perturbed by 1e-7 (relative) grok up to ~15% away (measured: 919
    to 1074 around 932). So: batched three to a chunk, the member is no further from its
    single run than the farthest of three such perturbed runs, plus 5%. (That a chunk of
    one reproduces the single run bit for bit, the CPU default, is pinned by
    test_on_a_cpu_members_reproduce_their_single_runs_bit_for_bit, in a few seconds.)"""
    cfg = preset("quick")
    cfgs = [cfg, cfg.replace(seed=1), cfg.replace(weight_decay=1.0)]
    torch.manual_seed(0)
    w0 = paper_init(cfg)
    noisy = [{n: t * (1 + 1e-7 * torch.randn_like(t)) for n, t in w0.items()} for _ in range(3)]
    singles = Stepper([cfg] * 4, "cpu", [MemberState(0, w) for w in [w0, *noisy]], chunk_size=1)
    alone, *spread = grok_epochs(singles, 2000)
    assert alone is not None and None not in spread
    states = [MemberState(0, paper_init(c)) for c in cfgs]
    batched = grok_epochs(Stepper(cfgs, "cpu", states, chunk_size=3), 2000, watched=1)[0]
    rounding = max(abs(e - alone) for e in spread)
    assert batched is not None and abs(batched - alone) <= rounding + 0.05 * alone
