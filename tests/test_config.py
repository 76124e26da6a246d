"""Presets and validation of run configurations."""

from __future__ import annotations

import pytest

from grok_tui.engine.core.config import PRESETS, ConfigError, RunConfig, is_prime, preset


def test_paper_preset_is_the_papers_recipe() -> None:
    cfg = preset("paper")
    assert (cfg.p, cfg.frac_train, cfg.data_seed) == (113, 0.3, 0)
    assert (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab) == (128, 4, 32, 512, 114)
    assert (cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2) == (1e-3, 1.0, 0.9, 0.98)
    assert (cfg.warmup_steps, cfg.epochs, cfg.checkpoint_every) == (10, 50_000, 100)
    assert cfg.n_train == 3830


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_validate(name: str) -> None:
    assert preset(name).validated() == preset(name)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"p": 4}, "--p must be a prime"),
        ({"p": 2}, "--p must be a prime >= 3"),
        ({"p": 2**61 - 1}, "<= 997"),  # a hostile run.json must not hang a primality test
        ({"frac_train": 0.0}, "--frac-train"),
        ({"frac_train": 1.0}, "--frac-train"),
        ({"p": 5, "frac_train": 0.01}, "empty train"),
        ({"epochs": -1}, "--epochs"),
        ({"checkpoint_every": 0}, "--checkpoint-every"),
        ({"lr": 0.0}, "--lr"),
        ({"weight_decay": -1.0}, "--weight-decay"),
        ({"d_model": 100}, "n_heads \\* d_head"),
        # Caps, so that a run.json from elsewhere cannot make us allocate terabytes:
        ({"d_mlp": 100_000_000_000}, "d_mlp must be in 1..16,384"),
        ({"n_heads": 1000, "d_head": 1}, "n_heads must be in 1..64"),
        ({"epochs": 10_000_000_000}, "--epochs must be in 0..10,000,000"),
        ({"checkpoint_every": 10**12}, "--checkpoint-every must be in"),
        ({"warmup_steps": 10**12}, "warmup_steps must be in"),
        ({"lr": float("inf")}, "--lr must be a finite number"),
        ({"weight_decay": float("nan")}, "--weight-decay must be a finite"),
        ({"seed": 2**70}, "--seed must be in 0..2\\*\\*63-1"),
        ({"seed": -1}, "--seed must be in 0..2\\*\\*63-1, got -1"),
        ({"data_seed": -5}, "--data-seed must be in 0..2\\*\\*63-1"),
        ({"p": 997, "d_mlp": 1024}, "too large to analyse"),
        ({"preset": "x" * 1000}, "not a short name"),
        ({"preset": "a\x1b[2J"}, "not a short name"),
    ],
)
def test_bad_values_are_named(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunConfig().replace(**changes).validated()


def test_the_caps_leave_room_for_real_runs() -> None:
    """The largest configs anyone runs pass: p = 997 at the paper's width, a wide MLP at
    p = 113, a long run."""
    RunConfig(p=997).validated()
    RunConfig(d_model=1024, n_heads=16, d_head=64, d_mlp=16384).validated()
    RunConfig(epochs=10_000_000, checkpoint_every=1_000).validated()


def test_from_dict_checks_types_and_ignores_unknown_keys() -> None:
    cfg = RunConfig.from_dict({"p": 7, "lr": 1, "unknown": "x", "preset": "test"})
    assert cfg.p == 7 and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    with pytest.raises(ConfigError, match="'p' must be int"):
        RunConfig.from_dict({"p": "113"})
    with pytest.raises(ConfigError, match="'p' must be int"):
        RunConfig.from_dict({"p": True})
    with pytest.raises(ConfigError, match="JSON object"):
        RunConfig.from_dict([113])
    assert RunConfig.from_dict(RunConfig().to_dict()) == RunConfig()


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        preset("fast")


def test_is_prime() -> None:
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
