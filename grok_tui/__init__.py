"""grok-tui: train and take apart the grokking transformer of Nanda et al. 2023.

In a notebook: ``from grok_tui import open_run`` (see grok_tui.api). Imported lazily, so
``grok-tui --help`` never loads torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_run"]


def __getattr__(name: str) -> Any:
    if name == "open_run":
        from grok_tui.api import open_run

        return open_run
    raise AttributeError(f"module 'grok_tui' has no attribute {name!r}")
