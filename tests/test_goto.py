"""The go-to-epoch dialog's reading of what was typed."""

from __future__ import annotations

import pytest

from grok_tui.ui.screens.goto import parse_epoch


@pytest.mark.parametrize(
    ("text", "epoch"),
    [("12000", 12000), (" 12,000 ", 12000), ("12k", 12000), ("1.5K", 1500), ("1_000", 1000),
     ("1e3", 1000), ("0", 0), ("9" * 40, 10**12), ("9" * 400, 10**12)],
)  # fmt: skip
def test_numbers_and_their_shorthands(text: str, epoch: int) -> None:
    assert parse_epoch(text) == epoch


@pytest.mark.parametrize("text", ["", "abc", "-50", "nan", "inf", "1e999", "k", "10kk"])
def test_what_is_not_an_epoch(text: str) -> None:
    assert parse_epoch(text) is None
