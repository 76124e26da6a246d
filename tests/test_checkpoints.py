"""Checkpoint spacing from a disk budget, and dense checkpoints where the metrics move."""

from __future__ import annotations

import pytest

from grok_tui.engine.core.config import ConfigError, RunConfig, preset
from grok_tui.engine.core.model import CLASSIC_NAMES, PAPER_TRAINED, paper_init
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.checkpoints import (
    CheckpointPolicy,
    checkpoint_bytes,
    parse_bytes,
    plan_checkpoints,
    resume_bytes,
)
from grok_tui.engine.training.stepper import MemberState
from grok_tui.engine.training.writer import state_to_resume


def test_file_sizes_are_what_the_files_take(tmp_path) -> None:
    cfg = RunConfig()
    run = Run.create(tmp_path / "r", cfg, "cpu")
    weights = paper_init(cfg)
    path = run.save_checkpoint(0, weights)
    size = path.stat().st_size
    assert size <= checkpoint_bytes(cfg) <= size + 8192
    avg, avg_sq = ({s: 0 * weights[CLASSIC_NAMES[s]] for s in PAPER_TRAINED} for _ in "12")
    run.save_resume(state_to_resume(MemberState(0, weights, avg, avg_sq), cfg, 0.0))
    size = run.resume_path.stat().st_size
    assert size <= resume_bytes(cfg) <= size + 40000


def test_the_issue_example_needs_a_sparser_spacing() -> None:
    # 64 paper members x 501 checkpoints (every 100) would be ~45 GB; 2 GB needs far fewer.
    cfgs = [RunConfig(seed=s) for s in range(64)]
    plan = plan_checkpoints(cfgs, 2 * 10**9)
    assert plan.every > 100 and plan.every % 100 == 0
    assert plan.base_bytes + plan.dense_bytes <= 2 * 10**9
    assert plan.base_bytes <= 2 * 10**9 * 0.8
    # The same members at 200 checkpoints each: ~12 GB, the issue's figure.
    assert 11e9 < 64 * 200 * checkpoint_bytes(cfgs[0]) < 13e9


def test_a_roomy_budget_keeps_the_configs_spacing() -> None:
    cfgs = [preset("quick").replace(seed=s) for s in range(4)]
    plan = plan_checkpoints(cfgs, 10**10)
    assert plan.every == 50 and plan.dense_quota == 0


def test_a_tight_budget_funds_dense_checkpoints() -> None:
    cfgs = [preset("quick").replace(seed=s) for s in range(16)]
    plan = plan_checkpoints(cfgs, 150 * 10**6)
    assert plan.every > 50
    assert plan.dense_every < plan.every and plan.dense_quota > 0
    assert plan.base_bytes + plan.dense_bytes <= 150 * 10**6


def test_a_budget_too_small_is_one_line() -> None:
    with pytest.raises(ConfigError, match="too small for 64 members") as info:
        plan_checkpoints([RunConfig(seed=s) for s in range(64)], 10**6)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [("2GB", 2 * 10**9), ("500M", 5 * 10**8), ("1.5g", 15 * 10**8), ("123456", 123456)],
)
def test_parse_bytes(text, value) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1GB", "0", "nanGB"])
def test_parse_bytes_refuses(text) -> None:
    with pytest.raises(ConfigError, match="disk-budget"):
        parse_bytes(text)


def row(train_acc: float, test_acc: float, test_loss: float) -> dict[str, float]:
    return {"train_acc": train_acc, "test_acc": test_acc, "test_loss": test_loss}


def test_dense_checkpoints_follow_moving_metrics() -> None:
    policy = CheckpointPolicy(every=500, dense_every=100, dense_left=2)
    assert policy.due(1000) and not policy.due(1100)
    assert policy.wants_row(1100) and not policy.wants_row(1000) and not policy.wants_row(1150)
    policy.saved(row(1.0, 0.02, 20.0), dense=False)
    assert not policy.dense_due(row(1.0, 0.025, 21.0))  # flat: no dense checkpoint
    assert policy.dense_due(row(1.0, 0.05, 20.0))  # test accuracy rising
    assert policy.dense_due(row(1.0, 0.02, 10.0))  # test loss halving
    assert policy.dense_due(row(0.95, 0.02, 20.0))  # train accuracy moving
    policy.saved(row(1.0, 0.05, 10.0), dense=True)
    policy.saved(row(1.0, 0.5, 1.0), dense=True)
    assert policy.dense_left == 0 and not policy.wants_row(1200)  # the quota is spent
