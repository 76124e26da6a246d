"""Shared test set-up: the tests' device (tests/devices.py) must exist before any test runs."""

from __future__ import annotations

import pytest

from tests.devices import TEST_DEVICE


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DEVICE == "cpu":
        return
    import torch

    if TEST_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise pytest.UsageError(f"GROK_TUI_TEST_DEVICE={TEST_DEVICE} but CUDA is not available")


@pytest.fixture
def device() -> str:
    """The device a test that trains or analyses runs on."""
    return TEST_DEVICE
