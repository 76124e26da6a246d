"""Small modal screens: jump to an epoch."""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from grok_tui.ui.dismiss_once import DismissOnce


class GotoEpochScreen(DismissOnce, ModalScreen[int | None]):
    """Ask for an epoch; dismiss with it (None on escape or a bad number).

    Dismissed at most once, from the top of the stack (`DismissOnce`): Enter then Escape
    in quick succession would set its result twice (InvalidStateError, found by the key
    storm).
    """

    DEFAULT_CSS = """
    GotoEpochScreen { align: center middle; }
    GotoEpochScreen > Vertical {
        width: 44; height: auto; padding: 1 2; border: round $accent; background: $panel;
    }
    GotoEpochScreen Label { width: 100%; }
    """
    BINDINGS = [("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "Input"  # the app focuses nothing by itself; this screen types

    def __init__(self, first: int, last: int) -> None:
        super().__init__()
        self.first, self.last = first, last

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Go to epoch ({self.first:,} to {self.last:,}); the nearest checkpoint")
            yield Input(placeholder="epoch, e.g. 10000 or 10k", id="epoch")
            yield Label("", id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        epoch = parse_epoch(event.value)
        if epoch is None:
            self.query_one("#error", Label).update(
                f"not an epoch: {event.value!r} (a number such as 10000 or 10k)"
            )
            return
        self.dismiss(epoch)

    def action_cancel(self) -> None:
        self.dismiss(None)


def parse_epoch(text: str) -> int | None:
    """'12000', '12,000', '12k', '1.5k' -> an int; None for anything else. Past 10^12 (no
    run is that long) it is 10^12, whose nearest checkpoint is the last: a long string of
    9s meant "the end" (it read "not an epoch")."""
    text = text.strip().lower().replace(",", "").replace("_", "")
    scale = 1
    if text.endswith("k"):
        text, scale = text[:-1], 1000
    try:
        value = float(text) * scale
    except ValueError:
        return None
    if value == math.inf and text.isdigit():  # digits past a float's range: the end
        return 10**12
    if not 0 <= value < math.inf:  # negative, NaN or infinite
        return None
    return min(round(value), 10**12)
