"""`grok-tui serve RUN`: the viewer in a browser, each session a `grok-tui open RUN --viewer`
process (grok_tui/serve.py, which needs the optional textual-serve)."""

from __future__ import annotations

import argparse

from grok_tui.engine.store.runs import Run
from grok_tui.errors import UsageError


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from grok_tui.serve import serve_viewer
    except ImportError:
        raise UsageError("serve needs textual-serve: pip install 'grok-tui[serve]'") from None
    if not 1 <= args.max_sessions <= 64:
        raise UsageError(f"--max-sessions must be in 1..64, got {args.max_sessions}")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {args.port}")
    run = Run.open(args.run)
    serve_viewer(run.path, run.name, args.host, args.port, args.max_sessions, args.allow_writes)
    return 0
