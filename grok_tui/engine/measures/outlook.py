"""What a run is doing and what comes next: its phases, the phase now, the grok forecast.

One small value computed off the UI thread from a `ProgressTable`, so the status bar and
the Curves pane only format it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grok_tui.engine.measures.forecast import Forecast, forecast_table
from grok_tui.engine.measures.phases import current_phase, detect_phases


@dataclass
class Outlook:
    phases: dict[str, int | None] = field(default_factory=dict)
    phase: str = "memorising"  # what the run is doing now
    since: int | None = None  # ... since which epoch
    forecast: Forecast = field(default_factory=lambda: Forecast(None, reason="no checkpoints"))

    def describe_phase(self) -> str:
        """'circuit forming since 1,400'."""
        return self.phase if self.since is None else f"{self.phase} since {self.since:,}"


def outlook(table: Any) -> Outlook:
    if table is None or not len(table):
        return Outlook()
    phases = detect_phases(table)
    name, since = current_phase(phases)
    return Outlook(phases, name, since, forecast_table(table, phases))
