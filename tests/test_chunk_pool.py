"""ChunkPool: callables side by side on worker threads, each with its own torch threads."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from grok_tui.engine.training.chunk_pool import ChunkPool


def workers_alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("grok-chunk-")]


def test_results_come_back_in_order_from_fixed_workers() -> None:
    """Each worker keeps its own thread count, even with a caller on more threads (which
    `_start` restores as torch's default for new threads: a worker that had made no torch
    call before took that default at its first op, and ran on the caller's count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    pool = ChunkPool(2, threads_each=1)
    try:
        names = pool.run([threading.current_thread for _ in range(5)])
        assert [t.name for t in names] == ["grok-chunk-0", "grok-chunk-1"] * 2 + ["grok-chunk-0"]
        assert pool.run([lambda i=i: i * i for i in range(7)]) == [i * i for i in range(7)]
        ops = [lambda: (torch.ones(99_999).cumsum(0), torch.get_num_threads())[1]] * 2
        assert pool.run(ops) == [1, 1]
        assert pool.run([torch.get_num_threads, torch.get_num_threads]) == [1, 1]
        assert pool.run([torch.is_grad_enabled]) == [True]  # grad mode is the callable's job
    finally:
        pool.close()
        torch.set_num_threads(before)
    assert not workers_alive()


def test_the_callers_threads_and_the_default_for_new_threads_stay() -> None:
    before = torch.get_num_threads()
    pool = ChunkPool(2, threads_each=1)
    try:
        pool.run([lambda: torch.ones(3).sum()] * 2)
        assert torch.get_num_threads() == before
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [before]  # a thread started later gets the process default
    finally:
        pool.close()


def test_an_error_is_raised_after_every_callable_ran() -> None:
    done = threading.Event()

    def slow() -> str:
        done.wait(5)
        return "slow"

    def bad() -> None:
        done.set()
        raise ValueError("chunk 1 broke")

    pool = ChunkPool(2)
    try:
        with pytest.raises(ValueError, match="chunk 1 broke"):
            pool.run([slow, bad])
        assert pool.run([lambda: 1, lambda: 2]) == [1, 2]  # nothing stale left behind
    finally:
        pool.close()


def test_close_joins_and_a_closed_pool_starts_again() -> None:
    pool = ChunkPool(3)
    pool.run([lambda: None] * 3)
    assert len(workers_alive()) == 3
    pool.close()
    pool.close()  # idempotent
    assert not workers_alive()
    assert pool.run([lambda: 5]) == [5]
    pool.close()
    assert not workers_alive()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        ChunkPool(1)
    with pytest.raises(ValueError):
        ChunkPool(2, threads_each=0)


def test_a_pool_left_open_at_exit_is_joined_and_the_process_exits_cleanly() -> None:
    """A torch op on a thread while the interpreter finalises aborts the process: the
    atexit hook stops and joins the workers first (here they are busy when main ends)."""
    script = (
        "import torch, threading\n"
        "from grok_tui.engine.training.chunk_pool import ChunkPool\n"
        "pool = ChunkPool(2)\n"
        "pool.run([lambda: torch.ones(8).sum()] * 2)\n"
        "def busy():\n"
        "    a = torch.randn(200, 200)\n"
        "    for _ in range(200):\n"
        "        a = torch.tanh(a @ a)\n"
        "pool._jobs[0].put((0, busy))\n"  # a job still running when the main thread ends
        "print('main done')\n"
    )
    root = Path(__file__).resolve().parents[1]
    for _ in range(3):  # without the hook, about one exit in three aborts (SIGABRT)
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "main done"


def test_after_the_exit_hook_callables_run_in_the_caller(monkeypatch) -> None:
    """A trainer thread still stepping after the atexit hook closed its pool starts no new
    worker: its chunks run on its own thread."""
    import grok_tui.engine.training.chunk_pool as chunk_pool

    monkeypatch.setattr(chunk_pool, "_exiting", threading.Event())
    pool = ChunkPool(2)
    pool.run([lambda: None] * 2)
    chunk_pool._close_open_pools()
    assert not workers_alive()
    me = threading.current_thread()
    assert pool.run([threading.current_thread] * 3) == [me] * 3
    assert not workers_alive()
