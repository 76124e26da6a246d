"""Reading tensor files from elsewhere: safetensors, and torch.load's refusals, as one line.

Nothing here unpickles arbitrary objects: safetensors holds tensors only, and a
`torch.load(weights_only=True)` that refuses a file is described, never retried unsafely.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.store.errors import RunError
from grok_tui.engine.store.untrusted import what_is_wrong

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def describe_load_error(exc: BaseException) -> str:
    """One line for a `torch.load(weights_only=True)` failure.

    torch's own text spans paragraphs, carries ANSI codes and advises retrying with
    weights_only=False, which is exactly what must not be done with a file from elsewhere.
    """
    import pickle

    text = _ANSI_RE.sub("", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(exc, EOFError) or (not lines and isinstance(exc, pickle.UnpicklingError)):
        return "the file is empty or truncated"
    if isinstance(exc, pickle.UnpicklingError) and text.startswith("Weights only load failed"):
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            what = found.group(1)
            return f"it refers to {what}, not just tensors, lists and dicts (it could run code)"
        detail = next((ln for ln in lines if ln.startswith("Unsupported")), "")
        return f"not a plain torch file, or damaged ({detail})" if detail else "damaged"
    return lines[0].split(". ")[0] if lines else type(exc).__name__


def load_plain(path: Path) -> Any:
    """`torch.load(path, weights_only=True)` onto the CPU, without torch's warning about a
    pickle protocol it did not write (a file from elsewhere: two lines of noise before the
    one-line error or the result)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; any damage becomes one RunError line naming the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    problem = what_is_wrong(path)  # a loop, a dangling link, a FIFO: say which
    if problem:
        raise RunError(f"checkpoint {path.name} {problem}")
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"checkpoint {path.name} is missing") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"checkpoint {path.name} is damaged: {msg}") from None
