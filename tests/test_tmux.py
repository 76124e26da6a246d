"""The app in a real terminal: tmux runs `grok-tui`, send-keys types, capture-pane reads.

Pilot drives the app without a terminal, where nothing has the focus; in a real one the tab
bar used to take the arrow keys at start-up. These tests press the keys a user presses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer

TMUX = shutil.which("tmux")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        TMUX is None, reason="tmux is not installed (scripts/setup --test installs it)"
    ),
]
CFG = RunConfig(p=23, frac_train=0.6, lr=3e-3, epochs=300, checkpoint_every=20, preset="t")
ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    """One tmux server of our own (its own socket), one window running a command."""

    def __init__(self, command: list[str], size: tuple[int, int]) -> None:
        self.socket = f"grok-tui-test-{os.getpid()}-{time.monotonic_ns()}"
        env = {**os.environ, "COLORTERM": "truecolor"}
        cmd = " ".join(subprocess.list2cmdline([c]) for c in command)
        # The server's own configuration, read before the session exists: the size a window
        # falls back to without a client is the one asked for. With tmux's default (80x24) a
        # detached 200x60 window was seen shrinking to 80x24 now and then (tmux 3.3a, a suite
        # of four workers). (`window-size manual` there makes tmux 3.3a's server exit.)
        with tempfile.NamedTemporaryFile("w", suffix=".tmux.conf", delete=False) as conf:
            conf.write(f"set -g default-size {size[0]}x{size[1]}\n")
        self.config = Path(conf.name)
        self.tmux("new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]),
                  f"cd {ROOT} && exec {cmd}", env=env)  # fmt: skip
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        out = subprocess.run([TMUX, "-L", self.socket, "-f", str(self.config), *args],
                             capture_output=True, text=True, env=env, timeout=20)  # fmt: skip
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "t", key)
            time.sleep(0.15)

    def wait_for(self, what: str | Callable[[str], bool], timeout: float = 60.0) -> str:
        test = what if callable(what) else (lambda screen: what in screen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"not on screen after {timeout} s: {what!r}\n{self.screen()}")

    @property
    def exited(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "t", "#{pane_dead}").strip() == "1"

    def close(self) -> None:
        self.tmux("kill-server")
        self.config.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = Run.create(tmp_path_factory.mktemp("tmux") / "run", CFG, "cpu")
    Trainer(run, "cpu").train()
    return run


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str, size: tuple[int, int] = (80, 24)) -> Terminal:
        term = Terminal([sys.executable, "-m", "grok_tui", *args], size)
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        term.close()


def curves_title(screen: str) -> bool:
    """Whether the Curves pane is on screen: its per-epoch loss plot, or at 80x24 once the
    progress measures are in, the measures plot that takes its place (the losses in it)."""
    return "loss per epoch" in screen or "restricted and excluded loss" in screen


def timeline(screen: str) -> str:
    """The checkpoint timeline: the line above the footer."""
    lines = [line for line in screen.splitlines() if "epoch" in line and "/" in line]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_arrows_scrub_checkpoints_from_start_up(trained: Run, terminal, size) -> None:
    term = terminal("open", str(trained.path), size=size)
    screen = term.wait_for("epoch 300 ")
    assert " done " in screen.splitlines()[0]  # the status bar says the run is finished
    assert (
        term.tmux("display-message", "-p", "-t", "t", "#{window_width}x#{window_height}").strip()
        == f"{size[0]}x{size[1]}"
    )
    term.keys("Left")
    # Still the Curves pane: the arrows did not switch tabs. Wait for its title rather than
    # read it off the first frame with the new epoch: the plots redraw after the timeline
    # moves, and a capture between the two (seen on a loaded or slower machine) lacks it.
    term.wait_for(lambda s: "epoch 280 " in timeline(s) and curves_title(s))
    term.keys("Left", "Left", "Right")
    term.wait_for(lambda s: "epoch 260 " in timeline(s))
    term.keys("2")  # the Attention pane, where the arrows still scrub
    term.wait_for("head 0")
    term.keys("Left")
    term.wait_for(lambda s: "epoch 240 " in timeline(s))
    term.keys("q")
    deadline = time.monotonic() + 20
    while not term.exited:
        assert time.monotonic() < deadline, "q did not quit"
        time.sleep(0.2)


def test_enlarged_map_takes_the_arrows_then_gives_them_back(trained: Run, terminal) -> None:
    term = terminal("open", str(trained.path))
    term.wait_for("epoch 300 ")
    term.keys("2")
    term.wait_for("head 0")
    term.keys("z")  # head 0's map fills the screen, with a cursor
    term.wait_for("y=0 x=0")  # the heatmap's readout: column y, row x
    term.keys("Right", "Down", "Down")
    screen = term.wait_for("y=1 x=2")
    assert "epoch 300" not in screen  # the timeline is hidden behind the enlarged map
    term.keys("Escape")
    term.wait_for(lambda s: "epoch 300 " in timeline(s))
    term.keys("Left")
    term.wait_for(lambda s: "epoch 280 " in timeline(s))
    term.keys("q")


def test_training_ends_with_the_final_state_at_once(tmp_path: Path, terminal) -> None:
    """After the last epoch the status bar says done (not "training", "ETA 0s"), and the
    footer no longer offers to pause."""
    term = terminal("train", "--p", "23", "--frac-train", "0.6", "--epochs", "150",
                    "--checkpoint-every", "50", "--device", "cpu",
                    "--run-dir", str(tmp_path / "run"))  # fmt: skip

    def finished(screen: str) -> bool:
        lines = screen.splitlines()
        return " done " in lines[0] and "Pause" not in lines[-1]

    screen = term.wait_for(finished, timeout=300)
    assert "epoch 150/150" in screen.splitlines()[0]
    status, footer = screen.splitlines()[0], screen.splitlines()[-1]
    assert "ETA 0s" not in status and "training" not in status and "Pause" not in footer
    term.keys("q")
