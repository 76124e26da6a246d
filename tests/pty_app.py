"""Drive `grok-tui` in a real pseudo-terminal: keys in, screen bytes drained, resizes, signals.

What Pilot cannot show: how the process ends (exit status, an abort at interpreter exit,
a traceback) and what the real terminal driver does with a storm of keys and resizes.
The child gets the pty's slave as stdin, stdout and stderr (Textual draws on stderr); a
thread drains the master, so the app never blocks writing its screen, and keeps the tail,
where an abort message or a traceback printed as the app ends can be read.

The pty is the child's controlling terminal (a new session, then TIOCSCTTY in a small
launcher that execs the app, so the pid stays the app's): when the test process dies, the
master closes and the kernel hangs the app up, as a closed terminal emulator would, so a
killed test run leaves no app training on. `controlling=False` leaves the child without
one: a terminal that goes away with no hangup signal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

KEYS = {
    "q": b"q",
    "enter": b"\r",
    "escape": b"\x1b",
    "left": b"\x1b[D",
    "right": b"\x1b[C",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "shift+left": b"\x1b[1;2D",
    "shift+right": b"\x1b[1;2C",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "tab": b"\t",
    "ctrl+p": b"\x10",
    "space": b" ",
    "backspace": b"\x7f",
}


# Run in the child (a session leader with no terminal yet, start_new_session): make the
# pty on stdin its controlling terminal, then become the app (argv after -c's program).
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyApp:
    """One `python -m grok_tui ARGS` process on a pty of the given size."""

    def __init__(
        self, *args: str, cwd: Path, size: tuple[int, int] = (100, 30), controlling: bool = True
    ) -> None:
        self.master, slave = os.openpty()
        set_size(slave, *size)
        # PYTHONFAULTHANDLER: a test that finds the app hung sends SIGABRT and reads where
        # every thread was.
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", PYTHONFAULTHANDLER="1")
        for key in ("COLUMNS", "LINES", "TEXTUAL_DRIVER"):
            env.pop(key, None)
        self.controlling = controlling
        launch = [sys.executable, "-c", TAKE_TERMINAL] if controlling else []
        self.proc = subprocess.Popen(
            [*launch, sys.executable, "-m", "grok_tui", *args],
            cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.screen_bytes = 0
        self._tail = bytearray()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not data:
                return
            self.screen_bytes += len(data)
            self._tail = (self._tail + data)[-200_000:]

    def tail(self) -> bytes:
        return bytes(self._tail)

    def press(self, *keys: str, gap: float = 0.0) -> None:
        for key in keys:
            with contextlib.suppress(OSError):
                os.write(self.master, KEYS.get(key, key.encode()))
            if gap:
                time.sleep(gap)

    def resize(self, cols: int, rows: int) -> None:
        set_size(self.master, cols, rows)  # the kernel tells a controlling tty's process
        if not self.controlling:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGWINCH)  # no controlling tty: say it ourselves

    def wait_for_output(self, needle: bytes, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self._tail:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared on screen")
            time.sleep(0.05)

    def wait(self, timeout: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def ui_thread_demand(self, window: float = 2.0) -> float | None:
        """The share of `window` seconds the app's main (UI) thread spent running or waiting
        for a CPU (Linux schedstat), None where the kernel does not say.

        Near 1 while the app works off a backlog of keys and resizes, whatever the machine's
        load (a backlogged thread waits on the run queue when it is not running); well
        below while it idles between repaints. Lets a test tell "behind" from "stuck".
        """
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/schedstat")

        def busy_ns() -> int | None:
            try:
                run_ns, wait_ns, _ = path.read_text().split()
            except (OSError, ValueError):
                return None
            return int(run_ns) + int(wait_ns)

        start, t0 = busy_ns(), time.monotonic()
        time.sleep(window)
        end, t1 = busy_ns(), time.monotonic()
        if start is None or end is None:
            return None
        return (end - start) / 1e9 / (t1 - t0)

    def text(self, last: int = 20_000) -> str:
        """The last `last` bytes of output as text, escape sequences removed."""
        text = self.tail()[-last:].decode("utf-8", "replace")
        return re.sub(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]", "", text)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._drainer.join(timeout=5)  # the last bytes (EIO once the child's side closes)
        with contextlib.suppress(OSError):
            os.close(self.master)
