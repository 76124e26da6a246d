"""The errors a user can fix, under one base the command line turns into one line.

Every error whose message is meant for the person at the keyboard (a bad option, a config a
run cannot use, a run directory or file that cannot be used as asked, a missing device)
derives from `UserError`; `grok-tui` prints it as `grok-tui: error: MESSAGE` and exits 2.
Anything else is a bug and keeps its traceback. This module imports nothing, so the command
line can catch these errors without loading the engine (and torch) that raises them.
"""

from __future__ import annotations


class UserError(Exception):
    """Input or a file the user can fix; the message is one line that names what is wrong."""


class UsageError(UserError):
    """Bad command-line input: an unknown option, a missing argument, a clash of options."""
