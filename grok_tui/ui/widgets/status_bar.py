"""One line that says where the run is: state, phase, epoch, losses, speed, ETA, device, run.

The state comes from the run screen's state machine (ui/state.py) and shows at once when it
changes; speed and ETA only while the run grows (otherwise "-"). `phase` and `forecast`
(the grokking phase the run is in, and when it may generalise) follow the state when set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

STATE_STYLES = {
    "training": "bold green",
    "paused": "bold yellow",
    "following": "bold cyan",
    "done": "bold blue",
    "failed": "bold red",
    "stopped": "bold magenta",
    "starting": "dim",
    "quitting": "bold yellow",
}


def fmt_loss(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2e}"


def fmt_acc(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


@dataclass
class StatusInfo:
    run: str = ""
    device: str = ""
    epoch: int | None = None
    total: int = 0
    train_loss: float | None = None
    test_loss: float | None = None
    train_acc: float | None = None
    test_acc: float | None = None
    epochs_per_s: float = 0.0
    eta_s: float | None = None
    state: str = "starting"
    phase: str = ""  # "circuit forming since 1,400" (from the progress measures)
    forecast: str = ""  # "grok ~10.6k (9.8k-11.9k)"


class StatusBar(Static):
    """Reads a StatusInfo; drops fields from the right-hand end when the line is narrow."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.info = StatusInfo()

    def show(self, info: StatusInfo) -> None:
        self.info = info
        self.update(self.render_info(info, self.size.width or 200))

    def on_resize(self) -> None:
        self.update(self.render_info(self.info, self.size.width or 200))

    @staticmethod
    def render_info(info: StatusInfo, width: int) -> Text:
        epoch = "-" if info.epoch is None else f"{info.epoch:,}"
        state = Text()
        state.append(f" {info.state} ", style=STATE_STYLES.get(info.state, "bold"))
        parts = [
            (f"epoch {epoch}/{info.total:,}", "bold"),
            (info.phase, "italic"),
            (info.forecast, "bold magenta"),
            (f"loss {fmt_loss(info.train_loss)}/{fmt_loss(info.test_loss)}", ""),
            (f"acc {fmt_acc(info.train_acc)}/{fmt_acc(info.test_acc)}", ""),
            (f"{info.epochs_per_s:.0f} ep/s" if info.epochs_per_s else "- ep/s", ""),
            (f"ETA {fmt_duration(info.eta_s)}", ""),
            (info.device, "dim"),
            (info.run, "italic"),
        ]
        line = state.copy()
        budget = max(width - 2, 0) - len(state)
        for text, style in parts:
            if not text:
                continue
            piece = "  " + text
            if len(piece) > budget:
                break
            line.append(piece, style=style)
            budget -= len(piece)
        return line
