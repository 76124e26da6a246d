"""Dismissing a dialog safely when keys and messages arrive faster than screens change.

Textual's `Screen.dismiss` pops whatever screen is on top, not necessarily the one
dismissed. Under a burst of keys a dialog's own message (Enter's `Input.Submitted`, the
palette's `OptionSelected`) can be handled after another dialog was pushed over it (a
queued ctrl+p, or a command the palette scheduled with `call_later`); it then popped the
dialog above it and marked itself dismissed while it stayed on the stack, where escape
could never dismiss it again and `q` typed into its input: the app could not be quit
(found by tests/test_key_storm.py on a loaded CI machine). So a dismiss counts only once,
and only from the top of the stack; one from below is dropped, and the dialog is
dismissed as usual once it is on top again.
"""

from __future__ import annotations

from typing import Any

from textual.await_complete import AwaitComplete


class DismissOnce:
    """Mixin for a `Screen`: `dismiss` acts at most once, and only on the top screen."""

    _dismissed = False

    def dismiss(self, result: Any = None) -> AwaitComplete:
        if self._dismissed or not self.on_top:
            return AwaitComplete()  # gone already, or another dialog above: pop nothing
        self._dismissed = True
        return super().dismiss(result)  # type: ignore[misc]

    @property
    def on_top(self) -> bool:
        """The top of the app's screen stack (Textual's `is_current` is also true for a
        screen showing under a modal one)."""
        return bool(self.is_active)  # type: ignore[attr-defined]
