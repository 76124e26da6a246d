"""The command line, `grok-tui`: one module per command family.

    entry.py         main(): parse, run the command, user errors as one line (exit 2)
    parser.py        the grammar: every command and its arguments (no torch)
    options.py       the options several commands share: run configuration, --device
    train.py         train, open (a run, a .pth or hf: file, a sweep directory)
    runs.py          import, export, analyze, compare
    sweep.py         sweep: the grid (grid.py), then the device, then where it trains
                     (distribution.py: shards, several devices, Ray)
    serve.py         serve
    apps.py          the Textual front ends, launched (console/ holds the headless ones)

A command parses everything first, then makes one call into the engine and one into a
front end. Only the command given is imported (entry.command), so `grok-tui --help` loads
neither torch nor Textual.
"""

from grok_tui.cli.entry import main

__all__ = ["main"]
