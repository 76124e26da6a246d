"""Which torch device a run trains and analyses on."""

from __future__ import annotations

import re

import torch

from grok_tui.errors import UserError


class DeviceError(UserError, ValueError):
    """A device name that is unknown or not available here."""


def best_device() -> str:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | None) -> str:
    """Check a device name ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'); return a usable one."""
    if name is None or name == "auto":
        return best_device()
    if not isinstance(name, str):
        raise DeviceError(f"--device {name!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if name == "cpu":
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", name)
    if m:
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise DeviceError(f"--device {name}: this machine has {count} CUDA device(s)")
        return name
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("--device mps: MPS is not available on this machine")
        return name
    raise DeviceError(f"--device {name!r} is not one of auto, cpu, cuda, cuda:N, mps")
