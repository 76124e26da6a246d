"""The app ends with exit status 0 every time: on `q`, on SIGTERM, on SIGHUP.

Real processes on a pseudo-terminal. The abort this guards against ("terminate called
without an active exception", status 134) came from the interpreter finalising while an
analysis thread was inside a torch op; it showed up in about half the quits after
scrubbing on the Neurons pane, so each try scrubs there (a snapshot in flight) first.
GROK_TUI_EXIT_TRIES sets the loop (default 10 quits, which a fault of half the quits
passes with chance 1/1024, and 2 of each signal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grok_tui.engine.store.runs import Run
from tests.pty_app import PtyApp

pytestmark = pytest.mark.slow

TRIES = int(os.environ.get("GROK_TUI_EXIT_TRIES", "10"))
SIGNAL_TRIES = max(1, TRIES // 4)
ARGS = ["--preset", "quick", "--checkpoint-every", "10"]


def start_training(tmp_path: Path, i: int, controlling: bool = True) -> tuple[PtyApp, Path]:
    run_dir = tmp_path / f"run{i}"
    app = PtyApp("train", "--run-dir", str(run_dir), *ARGS, cwd=tmp_path, controlling=controlling)
    deadline = time.monotonic() + 120
    while len(list((run_dir / "checkpoints").glob("epoch_*.safetensors"))) < 2:
        assert app.proc.poll() is None, f"exited early: {app.text()}"
        assert time.monotonic() < deadline, "no checkpoints appeared"
        time.sleep(0.05)
    app.press("3")  # Neurons: every scrub asks for a snapshot
    time.sleep(0.5)
    app.press("shift+left", "end", "left", "end", gap=0.1)
    return app, run_dir


def assert_clean(app: PtyApp, rc: int, run_dir: Path) -> None:
    err = app.text()
    assert rc == 0, f"exit status {rc}; output: {err[-2000:]}"
    assert "terminate called" not in err and "Traceback" not in err, err[-2000:]
    run = Run.open(run_dir)
    assert run.meta().status == "paused"  # saved a checkpoint and said so
    assert run.load_resume()["epoch"] == run.checkpoint_epochs()[-1]
    assert not run.lock_path.exists()


def test_quit_with_q_exits_zero_every_time(tmp_path) -> None:
    for i in range(TRIES):
        app, run_dir = start_training(tmp_path, i)
        app.press("q")
        assert_clean(app, app.wait(), run_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_exit_zero_every_time(tmp_path, sig: int) -> None:
    for i in range(SIGNAL_TRIES):
        app, run_dir = start_training(tmp_path, i)
        app.proc.send_signal(sig)
        assert_clean(app, app.wait(), run_dir)


def test_sigterm_ends_an_app_whose_terminal_has_gone(tmp_path) -> None:
    """The terminal closed with no hangup signal (its emulator killed, a test harness gone):
    Textual's writer dies on the first failed write, and its main thread soon blocks on the
    full frame queue. `kill` must still save and end it (it went on training: a loop-run
    handler never ran; the old code was still running 90 s after SIGTERM once the terminal
    had been gone 10 s)."""
    app, run_dir = start_training(tmp_path, 0, controlling=False)  # no hangup on close
    os.close(app.master)  # the drainer stops on the closed descriptor
    time.sleep(15)  # frames pile up with nowhere to go (no wait can see this from outside)
    app.proc.send_signal(signal.SIGTERM)
    rc = app.proc.wait(timeout=300)
    assert rc == 0
    run = Run.open(run_dir)
    assert run.meta().status == "paused"
    assert run.load_resume()["epoch"] == run.checkpoint_epochs()[-1]
    assert not run.lock_path.exists()


# A test process that starts an app on a pty, says its pid, then waits to be killed.
HARNESS = """
import sys, time
from pathlib import Path
from tests.pty_app import PtyApp
tmp = Path(sys.argv[1])
app = PtyApp("train", "--run-dir", str(tmp / "run"), *sys.argv[2:], cwd=tmp)
print(app.proc.pid, flush=True)
time.sleep(900)
"""


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: its parent is gone, nobody may reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_an_app_whose_test_process_is_killed_is_hung_up_and_saves(tmp_path) -> None:
    """A test process killed mid-test (a CI timeout, a lost xdist worker) closes its pty's
    master. The pty is the app's controlling terminal, so the kernel hangs the app up: it
    saves and ends instead of training on, an orphan loading the machine."""
    root = Path(__file__).resolve().parent.parent
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path), *ARGS],
        cwd=root, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pid = int(harness.stdout.readline())
        run_dir = tmp_path / "run"
        deadline = time.monotonic() + 300
        while len(list((run_dir / "checkpoints").glob("epoch_*.safetensors"))) < 2:
            assert not gone(pid), "the app exited before it trained"
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.05)
    finally:
        harness.kill()
        harness.wait()
    deadline = time.monotonic() + 300
    while not gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("the app trained on after its test process was killed")
        time.sleep(0.1)
    run = Run.open(run_dir)
    assert run.meta().status == "paused"
    assert run.load_resume()["epoch"] == run.checkpoint_epochs()[-1]
    assert not run.lock_path.exists()
