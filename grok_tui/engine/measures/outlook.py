"""What a run is doing and what comes next: its phases, the phase now, the grok forecast.

One small value computed off the UI thread, so the status bar and the Curves pane only
format it. It is made as of a checkpoint, from the records up to it only, by the
forward-only history of engine/measures/asof.py (the same way live and in `analyze --epoch`).
"""

from __future__ import annotations

from grok_tui.engine.measures.asof import Outlook, OutlookHistory

__all__ = ["Outlook", "OutlookHistory"]
