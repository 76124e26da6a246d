"""One base for user errors: every exception grok-tui defines is a UserError (printed as one
line, exit 2) or is named here as internal; the base loads nothing heavy."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import grok_tui
from grok_tui.errors import UsageError, UserError

# Exceptions that never reach the user, and why.
INTERNAL = {
    # The reason a JSON-lines row is skipped (a phrase, "has kind 'x', not one of ours"):
    # the reader catches it and warns with the file and line (engine/store/untrusted.py).
    "grok_tui.engine.store.untrusted.RowProblem",
    # A transition the UI's state machine does not have: a bug, which keeps its traceback.
    "grok_tui.ui.state.IllegalTransition",
}


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of grok_tui (warnings aside), by name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(grok_tui.__path__, prefix="grok_tui."):
        if info.name == "grok_tui.__main__":  # importing it runs the command line
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == info.name
                and issubclass(cls, BaseException)
                and not issubclass(cls, Warning)
            ):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_is_a_user_error_or_named_internal() -> None:
    found = defined_exceptions()
    assert set(found) >= INTERNAL, "an internal exception was renamed: update INTERNAL"
    not_user = {name for name, cls in found.items() if not issubclass(cls, UserError)}
    assert not_user == INTERNAL
    # The errors the command line used to recognise by module path, among others.
    for name in (
        "grok_tui.engine.core.config.ConfigError",
        "grok_tui.engine.core.device.DeviceError",
        "grok_tui.engine.core.model.WeightsError",
        "grok_tui.engine.store.errors.RunError",
        "grok_tui.engine.store.errors.DiskFull",
        "grok_tui.engine.store.untrusted.FileProblem",
        "grok_tui.engine.lab.sweep.SweepError",
        "grok_tui.errors.UsageError",
    ):
        assert issubclass(found[name], UserError), name


def test_value_errors_stay_value_errors() -> None:
    """Callers that catch ValueError (a config from elsewhere, a state dict) still do."""
    from grok_tui.engine.core.config import ConfigError
    from grok_tui.engine.core.device import DeviceError
    from grok_tui.engine.core.model import WeightsError

    for cls in (ConfigError, DeviceError, WeightsError):
        assert issubclass(cls, ValueError) and issubclass(cls, UserError)


def test_the_base_imports_nothing_beyond_the_standard_library() -> None:
    """So the command line can catch user errors without loading what raises them."""
    code = (
        "import sys\nbefore = set(sys.modules)\nimport grok_tui.errors\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "grok_tui" in loaded
    assert loaded - {"grok_tui"} <= set(sys.stdlib_module_names), loaded


def test_a_user_error_from_any_command_is_one_line_and_a_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from grok_tui.cli import entry

    def fails_with(exc: BaseException):
        def handler(args: object) -> int:
            raise exc

        return lambda name: handler

    monkeypatch.setattr(entry, "command", fails_with(UsageError("a clash of options")))
    assert entry.main(["export", "r", "--format", "csv", "o.csv"]) == 2
    assert capsys.readouterr().err == "grok-tui: error: a clash of options\n"
    monkeypatch.setattr(entry, "command", fails_with(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        entry.main(["export", "r", "--format", "csv", "o.csv"])
