"""The terminal driver of a served viewer: it dies with its server and its session.

`grok-tui serve` runs each browser session's app with Textual's WebDriver (screen on
stdout, keys on stdin, both pipes to the server). Left alone, an app whose server is
killed keeps running: its input thread ends quietly at EOF, every frame's write fails
with a broken pipe, and it spins at full CPU, orphaned. This driver:

- asks the kernel to kill it when the server dies (PR_SET_PDEATHSIG, Linux), and exits at
  once if the server is already gone (its parent pid is not the server's any more);
- treats EOF on stdin or a broken stdout as the end of the session and ends the process
  at once, writing nothing more.

A viewer holds nothing to save (it never trains; the run is read-only to it), so ending
it hard is safe, and it is the only safe way: asking the app to exit while it is still
mounting its first screen (a server gone during start-up, common on a loaded machine)
crashed inside Textual (ContentTabs validating a tab already removed, exit status 1).
`os._exit` runs no interpreter teardown, so a torch op in an analysis thread cannot abort
it either.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

from textual.drivers.web_driver import WebDriver

SERVER_PID_ENV = "GROK_TUI_SERVER_PID"


def die_with_parent(expected_parent: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it has already (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:  # the server died before the prctl: go too
        os._exit(0)


class ViewerDriver(WebDriver):
    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        server = os.environ.get(SERVER_PID_ENV, "")
        if server.isdigit():
            die_with_parent(int(server))
        self._lost = threading.Event()
        self._write = self._write_or_leave  # instead of a bare os.write

    def _write_or_leave(self, data: bytes) -> None:
        if self._lost.is_set():
            return  # nobody is reading: never spin on a closed pipe
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fileno, view) :]
        except OSError:
            self._session_over()

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # EOF: the server is gone, not a normal exit
            self._session_over()

    def _session_over(self) -> None:
        if self._lost.is_set():
            return
        self._lost.set()
        os._exit(0)
