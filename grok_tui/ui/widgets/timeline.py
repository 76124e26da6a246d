"""The checkpoint timeline: which checkpoint every pane shows, and whether it follows live."""

from __future__ import annotations

import bisect

from rich.text import Text
from textual.message import Message
from textual.widget import Widget


class CheckpointTimeline(Widget):
    """One line: a ruler of checkpoints with a cursor, the selected epoch and the mode.

    It holds the selection; the run screen binds the keys (so they work whatever has focus)
    and calls `step`, `jump_to`, `toggle_follow`. Every change posts `Selected`.
    """

    DEFAULT_CSS = """
    CheckpointTimeline { height: 1; background: $panel; padding: 0 1; }
    """

    class Selected(Message):
        def __init__(self, epoch: int | None) -> None:
            super().__init__()
            self.epoch = epoch

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CheckpointTimeline.Selected)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: list[int] = []
        self.index: int | None = None
        self.follow = True
        self.note = ""  # e.g. "checkpoint damaged"

    # -- state -------------------------------------------------------------------------------
    @property
    def selected(self) -> int | None:
        return None if self.index is None else self.epochs[self.index]

    def set_checkpoints(self, epochs: list[int]) -> None:
        """New list from disk; keep the selected epoch, or move to the newest when following."""
        previous = self.selected
        self.epochs = list(epochs)
        if not self.epochs:
            self.index = None
        elif self.follow or previous is None:
            self.index = len(self.epochs) - 1
        else:
            self.index = self._nearest(previous)
        self.refresh()
        if self.selected != previous:
            self.post_message(self.Selected(self.selected))

    def _nearest(self, epoch: int) -> int:
        i = bisect.bisect_left(self.epochs, epoch)
        if i >= len(self.epochs):
            return len(self.epochs) - 1
        if i > 0 and epoch - self.epochs[i - 1] <= self.epochs[i] - epoch:
            return i - 1
        return i

    def _select(self, index: int) -> None:
        if not self.epochs:
            return
        index = max(0, min(len(self.epochs) - 1, index))
        self.follow = index == len(self.epochs) - 1 and self.follow
        if index != self.index:
            self.index = index
            self.post_message(self.Selected(self.selected))
        self.refresh()

    def step(self, n: int) -> None:
        if self.index is None:
            return
        if n < 0:
            self.follow = False
        self._select(self.index + n)

    def first(self) -> None:
        self.follow = False
        self._select(0)

    def last(self) -> None:
        self._select(len(self.epochs) - 1)

    def jump_to(self, epoch: int) -> int | None:
        """Select the checkpoint nearest to epoch; return it."""
        if not self.epochs:
            return None
        self.follow = False
        self._select(self._nearest(epoch))
        return self.selected

    def toggle_follow(self) -> bool:
        self.follow = not self.follow
        if self.follow:
            self.last()
        self.refresh()
        return self.follow

    # -- drawing ---------------------------------------------------------------------------
    def render(self) -> Text:
        width = max(self.size.width, 10)
        if not self.epochs:
            return Text(" no checkpoints yet", style="dim")
        i = self.index or 0
        label = Text()
        label.append(f" epoch {self.epochs[i]:,} ", style="bold reverse")
        label.append(f" {i + 1}/{len(self.epochs)} ", style="dim")
        label.append(" following" if self.follow else " ", style="bold cyan")
        if self.note:
            label.append(f" {self.note}", style="bold red")
        ruler_width = width - len(label) - 2
        if ruler_width < 8:
            return label
        last = max(self.epochs[-1], 1)
        cells = ["─"] * ruler_width
        for epoch in self.epochs:
            cells[min(ruler_width - 1, epoch * (ruler_width - 1) // last)] = "┴"
        ruler = Text("".join(cells), style="dim")
        cursor = min(ruler_width - 1, self.epochs[i] * (ruler_width - 1) // last)
        ruler.stylize("bold yellow", cursor, cursor + 1)
        ruler = Text.assemble(ruler[:cursor], Text("●", style="bold yellow"), ruler[cursor + 1 :])
        return Text.assemble(ruler, " ", label)
