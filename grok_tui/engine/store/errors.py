"""The one-line errors of the run directory (every module of the store raises these)."""

from __future__ import annotations

from pathlib import Path

from grok_tui.errors import UserError


class RunError(UserError):
    """A run directory that cannot be used as asked; the message is one line for the user."""


class DiskFull(RunError):
    """The file system ran out of space (or quota) while writing `path`; nothing was torn."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(f"disk full while writing {self.path}")
