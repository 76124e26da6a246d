"""The app's screens: run (panes, status bar, timeline), sweep, compare, go to epoch."""

from __future__ import annotations

from textual.screen import Screen


def being_removed(screen: Screen[object]) -> bool:
    """The screen is being taken down (the app ends, or escape popped it): news from a
    thread that arrives now is dropped, as the widgets it would update may be gone already.
    Textual marks the nodes it removes with `_pruning` and has no public flag for it."""
    return screen._pruning or not screen.is_attached
