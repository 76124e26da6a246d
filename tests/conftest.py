"""Shared test set-up: the tests' device (tests/devices.py) must exist before any test runs;
OpenMP threads sleep between parallel regions (as the CLI makes them), `-n auto` starts two
pytest-xdist workers per core, and each worker takes its share of the cores (at least one
thread), so the workers never spin against each other on a small machine."""

from __future__ import annotations

import os

# Before torch loads its OpenMP runtime: spinning threads starve a busy neighbour (the
# other worker, another process) on two cores; RESULTS, issue 9's section.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from tests.devices import TEST_DEVICE


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers per core for `-n auto`: the longest tests are real processes and app
    sessions that mostly wait (on a child, a Ray worker, a redraw), so a second worker per
    core fills those waits; each worker computes on one torch thread (below). Measured in
    RESULTS' suite section."""
    return 2 * (os.cpu_count() or 1)


def pytest_configure(config: pytest.Config) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if TEST_DEVICE == "cpu":
        return
    import torch

    if TEST_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise pytest.UsageError(f"GROK_TUI_TEST_DEVICE={TEST_DEVICE} but CUDA is not available")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with slow tests first: xdist hands out whole files in this order, and a long
    file started last would keep one worker busy while the other idles."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: each file keeps its order


@pytest.fixture
def device() -> str:
    """The device a test that trains or analyses runs on."""
    return TEST_DEVICE
