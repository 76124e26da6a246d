"""What every analysis pane shares: the snapshot it shows and the keys it answers.

The app owns the selection (the checkpoint timeline) and the analysis thread; a pane
receives a `Snapshot` (numpy arrays, see grok_tui.engine.analysis) and draws it. Keys are
bound once on the app, so they work whatever has focus; the app forwards the pane keys
(`head`, `neuron`, `cluster`, `enlarge`, `view`, `component`) to the visible pane.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

PANE_ACTIONS = ("head", "neuron", "cluster", "enlarge", "view", "component")


class AnalysisPane(Vertical):
    """Base class: keeps the snapshot, shows a note line when there is nothing to draw."""

    ACTIONS: ClassVar[tuple[str, ...]] = ()  # the PANE_ACTIONS this pane answers

    DEFAULT_CSS = """
    AnalysisPane { height: 1fr; }
    AnalysisPane > .pane-note { height: auto; color: $text-muted; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot: Any = None
        self.note = "no checkpoint selected"
        # Counts show_snapshot calls: redraw caches key on it, not on id(snapshot), which
        # Python reuses once an old snapshot is freed.
        self.generation = 0

    def show_snapshot(self, snapshot: Any, note: str = "") -> None:
        """Draw a snapshot (None: nothing to draw, `note` says why). Called on the UI thread."""
        self.generation += 1
        self.snapshot = snapshot
        self.note = note
        self.refresh_view()

    def refresh_view(self) -> None:
        """Redraw from `self.snapshot` and the pane's own selection state."""
        raise NotImplementedError

    @property
    def enlarged(self) -> bool:
        """True while one of this pane's maps fills the screen (panes with maps say)."""
        return False

    def forget_drawn(self) -> None:
        """Drop the pane's redraw caches, so the next snapshot draws everything."""

    def draw_empty(self) -> bool:
        """With no snapshot, show the note instead of the pictures and return True."""
        empty = self.snapshot is None
        self.set_class(empty, "-empty")
        if empty:
            self.query_one(PaneNote).update(self.note_text(self.note))
            self.forget_drawn()
            if self.enlarged:
                self.screen.minimize()
        return empty

    def pane_action(self, name: str, step: int) -> str | None:
        """Handle one of ACTIONS (step +1/-1); return a short status text, or None."""
        return None

    @staticmethod
    def note_text(note: str) -> Text:
        return Text(note, style="italic")


class PaneNote(Static):
    """A one-line message in place of a pane's pictures."""

    DEFAULT_CSS = """
    PaneNote { height: auto; padding: 1 2; color: $text-muted; text-style: italic; }
    """
