"""Torch thread counts: a scope that gives them back, and threads that do not inherit a
count by chance (engine/core/threads.py)."""

from __future__ import annotations

import threading

import torch

from grok_tui.engine.core.threads import torch_thread, torch_threads


def count_after_an_op() -> int:
    torch.ones(99_999).cumsum(0)  # a first op initialises the thread's count
    return torch.get_num_threads()


def test_the_scope_sets_and_gives_back_the_callers_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert count_after_an_op() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_torch_thread_runs_on_its_makers_count_whatever_the_default_is_then() -> None:
    """While another thread is inside `torch_threads(1)` (a small model's training step),
    torch's default for new threads is 1: a plain thread starting then takes it at its
    first op; a `torch_thread` takes the count of the thread that made it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    inside, release = threading.Event(), threading.Event()

    def trainer() -> None:
        with torch_threads(1):
            inside.set()
            release.wait(60)

    seen: dict[str, int] = {}
    stepping = threading.Thread(target=trainer)
    try:
        pinned = torch_thread(lambda: seen.update(pinned=count_after_an_op()), "pinned")
        plain = threading.Thread(target=lambda: seen.update(plain=count_after_an_op()))
        stepping.start()
        assert inside.wait(60)
        for t in (plain, pinned):
            t.start()
            t.join(60)
    finally:
        release.set()
        stepping.join(60)
        torch.set_num_threads(before)
    assert seen == {"plain": 1, "pinned": 2}
