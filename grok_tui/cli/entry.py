"""`grok-tui`: parse the whole command line, run the command it names, and turn every user
error into one line and exit code 2."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from grok_tui.cli.parser import COMMANDS, build_parser
from grok_tui.engine.store.untrusted import RunWarning
from grok_tui.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passive_openmp_threads()
    show_run_warnings()
    parser = build_parser()
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["train", *argv]  # bare `grok-tui [options]` trains a new run
        args = parser.parse_args(argv)
        return imported_whole(args.command)(args)
    except UserError as exc:
        print(f"grok-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `grok-tui analyze --json | head`: the reader left, that's fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:  # the system refused (a name too long, an address to bind): a
        print(f"grok-tui: error: {os_error_line(exc)}", file=sys.stderr)  # line, not a
        return 1  # traceback; the commands turn the errors they expect into UserErrors


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: what the system said, and of which file (a long name cut
    in its middle)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename
    if name is None:
        return what
    name = os.fsdecode(name)
    if len(name) > 120:
        name = f"{name[:60]}...{name[-50:]}"
    return f"{what}: {name}"


def imported_whole(name: str) -> Callable[[Any], int]:
    """`command(name)`, with ctrl+c held until its imports are done, then honoured (exit
    130). A KeyboardInterrupt inside `import numpy` (torch imports it, and swallows what
    the import raises) left numpy half made: tracebacks, runs marked failed for a missing
    `numpy.multiply`, or the interrupt ignored and the progress measures lost."""
    held: list[int] = []
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started with it ignored
            return command(name)  # (`cmd &` from a script): ignored it stays
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except ValueError:  # not the main thread: nothing to hold
        return command(name)
    try:
        found = command(name)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)  # now, to whatever handled it before
    return found


def command(name: str) -> Callable[[Any], int]:
    """The function that runs a command, its module imported now: only the command given
    loads the engine (and torch), so `--help` and a bad option answer at once."""
    module, function = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"grok_tui.cli.{module}"), function)


def show_run_warnings() -> None:
    """A RunWarning (a damaged line skipped, a file kept) is one line on stderr."""
    original = warnings.showwarning
    if getattr(original, "grok_tui", False):
        return

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, RunWarning):
            print(f"grok-tui: warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    show.grok_tui = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def passive_openmp_threads() -> None:
    """Let torch's OpenMP threads sleep, not spin, between parallel regions (unless the
    user chose a policy). Spinning threads on a machine whose cores are shared (a GPU
    server's CPUs, a laptop running anything else) wait for a descheduled partner at every
    barrier: measured here, 2 threads trained the paper preset at 1.2 epochs/s with the
    default policy and ~25 epochs/s with PASSIVE while another process used one core. Must
    run before torch is imported (the command modules import it)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
