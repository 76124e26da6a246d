"""A tiny real sweep, trained once per test session through the CLI, for sweep tests."""

from __future__ import annotations

from pathlib import Path

from grok_tui.engine.core.config import preset

TINY_BASE = preset("quick").replace(p=17, frac_train=0.5, epochs=300, checkpoint_every=20)
TINY_ARGS = [
    "sweep", "--preset", "quick", "--p", "17", "--frac-train", "0.5", "--epochs", "300",
    "--checkpoint-every", "20", "--weight-decay", "1,3", "--seeds", "2", "--headless",
    "--disk-budget", "200MB",
]  # fmt: skip


def make_tiny_sweep(path: Path) -> Path:
    from grok_tui.cli import main

    assert main([*TINY_ARGS, "--sweep-dir", str(path)]) == 0
    return path
