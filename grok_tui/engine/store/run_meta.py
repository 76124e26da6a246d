"""run.json: a run's format, config, status, device and the software that made it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import ConfigError, RunConfig
from grok_tui.engine.store.errors import RunError

FORMAT_VERSION = 1
STATUSES = ("created", "running", "paused", "done", "failed")
# The config fields that shape the weights: in every run.json since the first format.
SHAPE_FIELDS = ("p", "d_model", "n_heads", "d_head", "d_mlp")


@dataclass(frozen=True)
class RunMeta:
    format: int
    config: RunConfig
    created: str
    status: str
    device: str
    versions: dict[str, str]
    message: str = ""
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "config": self.config.to_dict(),
            "created": self.created,
            "status": self.status,
            "device": self.device,
            "versions": self.versions,
            "message": self.message,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Any, where: Path) -> RunMeta:
        """From untrusted JSON; RunError (one line) naming what is wrong. Fields added to
        the config since the first format take their defaults; those that shape the weights
        were there from the start and must be."""
        if not isinstance(data, dict):
            raise RunError(f"{where}: run.json must hold a JSON object")
        fmt = data.get("format")
        if fmt != FORMAT_VERSION:
            raise RunError(f"{where}: run.json format {fmt!r} is not {FORMAT_VERSION}")
        raw = data.get("config")
        missing = [k for k in SHAPE_FIELDS if isinstance(raw, dict) and k not in raw]
        if missing:  # a default (the paper's p) would only surface as a misfit of shapes
            raise RunError(f"{where}: run.json config lacks {', '.join(map(repr, missing))}")
        try:
            config = RunConfig.from_dict(raw)
        except ConfigError as exc:  # its field's name, not the CLI's flag ("--op")
            said = re.sub(r"^--([a-z-]+)", lambda m: m.group(1).replace("-", "_"), str(exc))
            said = said if said.startswith("config") else f"config {said}"
            raise RunError(f"{where}: run.json {said}") from None
        status = data.get("status")
        if status not in STATUSES:
            raise RunError(f"{where}: run.json status {status!r} is not one of {STATUSES}")
        strings = {}
        for key in ("created", "device", "message", "source"):
            value = data.get(key, "")
            if not isinstance(value, str):
                raise RunError(f"{where}: run.json field {key!r} must be a string")
            strings[key] = value
        versions = data.get("versions", {})
        if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise RunError(f"{where}: run.json field 'versions' must map names to strings")
        return cls(
            format=fmt,
            config=config,
            status=status,
            versions=versions,
            **strings,
        )


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def software_versions() -> dict[str, str]:
    """The packages' versions, plus what else moves a run's float32 rounding: the training
    step's arithmetic (closed_form.ARITHMETIC), the instruction set of torch's own kernels
    ("AVX512", "AVX2", ...) and MKL's if the environment limits it (MKL_ENABLE_INSTRUCTIONS;
    MKL limited to AVX2 moved a run from its first epoch, an AVX-512 machine otherwise uses
    it in full). The torch thread count moves it too; it belongs to the process that trains,
    not to the run's creation."""
    from importlib import metadata

    from grok_tui.engine.core.closed_form import ARITHMETIC

    out = {
        "torch": torch.__version__,
        "training_arithmetic": ARITHMETIC,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "mkl_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "default"),
    }
    for name in ("grok-tui", "transformer_lens", "textual", "safetensors"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out
