"""Persisting one member's training into its run directory: rows, checkpoints, status.

The stepper computes and never touches a file; a `RunWriter` per member turns what it
hands over into the run directory of DESIGN.md section 2 and reads a member's resume point
back. `resume.pt` keeps the layout `torch.optim.AdamW` and `LambdaLR` state dicts have, so
runs written before the batched engine resume unchanged (tests/test_train.py).
"""

from __future__ import annotations

import contextlib
import math
import traceback
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import (
    CLASSIC_NAMES,
    PAPER_TRAINED,
    WeightsError,
    check_weights,
    paper_init,
)
from grok_tui.engine.store.atomic import atomic_write_bytes
from grok_tui.engine.store.errors import DiskFull
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.stepper import ADAM_EPS, MemberState


class RunWriter:
    """The files of one member run; every method is one atomic write or an append."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.cfg: RunConfig = run.meta().config

    # -- where to start ------------------------------------------------------------------------
    def load_state(self) -> MemberState:
        """The member's resume point, or fresh paper-init weights at epoch 0.

        Metrics rows from the resume epoch on are dropped (they are recomputed); a run with
        checkpoints but no resume state is refused rather than started over.
        """
        data = self.run.load_resume()
        if data is None:
            self.run.ensure_resumable()
            self.run.truncate_metrics(before_epoch=0)
            return MemberState(0, paper_init(self.cfg))
        state = self._fitting(data)
        self.run.truncate_metrics(before_epoch=state.epoch)
        return state

    def check_resume(self) -> None:
        """Raise RunError if the run has a resume state that cannot be resumed from; read
        only (a command checks before it changes run.json, e.g. to extend the budget)."""
        data = self.run.load_resume()
        if data is not None:
            self._fitting(data)

    def _fitting(self, data: dict[str, Any]) -> MemberState:
        """`resume_to_state`, its misfits as one RunError line."""
        try:
            return resume_to_state(data, self.cfg)
        except KeyError as exc:  # str() of a KeyError is the bare key, quoted
            raise RunError(
                f"{self.run.resume_path} does not fit this run: it has no entry {exc.args[0]!r}"
            ) from None
        except (ValueError, RuntimeError, TypeError, IndexError, WeightsError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"{self.run.resume_path} does not fit this run: {first}") from None

    # -- while training ------------------------------------------------------------------------
    def started(self, device: str) -> None:
        self.run.update_meta(status="running", device=device, message="")

    def append(self, rows: list[dict[str, float]]) -> None:
        self.run.append_metrics(rows)

    def save(self, state: MemberState, wall_s: float) -> Path:
        """Checkpoint W_epoch, then the resume state beside it; returns the checkpoint."""
        path = self.run.save_checkpoint(state.epoch, state.weights)
        self.run.save_resume(state_to_resume(state, self.cfg, wall_s))
        return path

    def status(self, status: str, message: str | None = None) -> None:
        changes: dict[str, Any] = {"status": status}
        if message is not None:
            changes["message"] = message
        with contextlib.suppress(RunError):  # a full disk may refuse even this
            self.run.update_meta(**changes)

    # -- how it ended --------------------------------------------------------------------------
    def non_finite(self, epoch: int) -> str:
        """The message for a loss that became NaN or inf at `epoch`."""
        good = [e for e in self.run.checkpoint_epochs() if e < epoch]
        kept = f"; last good checkpoint: epoch {good[-1]}" if good else ""
        return f"loss became non-finite at epoch {epoch}; stopped{kept}"

    def crashed(self, exc: BaseException) -> str:
        """Out of memory, a full disk, a bug: say it in a line; keep the traceback in the
        run for a bug report (not for a full disk, or a file that could not be written: the
        failed write left nothing behind, and its one line says all there is)."""
        if isinstance(exc, DiskFull):
            return self.run.disk_full_message(exc)
        if isinstance(exc, RunError):
            return str(exc)
        with contextlib.suppress(RunError):
            atomic_write_bytes(self.run.path / "error.log", traceback.format_exc().encode())
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''} (see error.log)"


def state_to_resume(state: MemberState, cfg: RunConfig, wall_s: float) -> dict[str, Any]:
    """resume.pt contents: weights, AdamW state as `torch.optim.AdamW.state_dict()` lays it
    out (parameters numbered in PAPER_TRAINED order), the LambdaLR position, wall time."""
    if state.exp_avg is None or state.exp_avg_sq is None:
        raise ValueError("a resume state needs the optimiser's moments")
    step = torch.tensor(float(state.epoch))
    optimizer = {
        "state": {
            i: {
                "step": step.clone(),
                "exp_avg": state.exp_avg[s],
                "exp_avg_sq": state.exp_avg_sq[s],
            }
            for i, s in enumerate(PAPER_TRAINED)
        },
        "param_groups": [
            {
                "lr": cfg.lr,
                "betas": (cfg.beta1, cfg.beta2),
                "eps": ADAM_EPS,
                "weight_decay": cfg.weight_decay,
                "amsgrad": False,
                "maximize": False,
                "params": list(range(len(PAPER_TRAINED))),
            }
        ],
    }
    return {
        "epoch": state.epoch,
        "weights": state.weights,
        "optimizer": optimizer,
        "scheduler": {"base_lrs": [cfg.lr], "last_epoch": state.epoch},
        "rng": torch.get_rng_state(),
        "wall_s": wall_s,
        **({"grokfast": state.grokfast} if state.grokfast else {}),
    }


def resume_to_state(data: dict[str, Any], cfg: RunConfig) -> MemberState:
    """Read a resume.pt dict (this engine's or the AdamW trainer's before it); raise on misfit."""
    epoch = int(data["epoch"])
    weights = data["weights"]
    if not isinstance(weights, dict):
        raise TypeError("weights are not a mapping")
    check_weights(cfg, weights)
    for name, tensor in weights.items():  # a run resumes from good weights, never NaN ones
        if isinstance(tensor, torch.Tensor) and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"weight {name} is not finite")
    moments: dict[str, dict[str, torch.Tensor]] = {"exp_avg": {}, "exp_avg_sq": {}}
    per_param = data["optimizer"]["state"]
    for i, short in enumerate(PAPER_TRAINED):
        entry = per_param[i]
        step = float(entry["step"])
        if step != epoch:
            raise ValueError(f"optimiser step {step:g} is not epoch {epoch}")
        for key, out in moments.items():
            tensor = entry[key]
            shape = tuple(weights[CLASSIC_NAMES[short]].shape)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                raise ValueError(f"{key} of {short} does not have shape {shape}")
            if not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{key} of {short} is not finite")
            out[short] = tensor
    if "rng" in data:
        torch.Generator().set_state(data["rng"])  # a damaged state raises here
    wall = float(data.get("wall_s", 0.0))
    wall_s = wall if math.isfinite(wall) and wall >= 0 else 0.0
    grokfast = data.get("grokfast")
    if grokfast is not None and not isinstance(grokfast, dict):
        raise TypeError("the Grokfast state is not a mapping")
    # Shapes and values are checked when the stepper loads it (GradientFilter.load).
    return MemberState(
        epoch, weights, moments["exp_avg"], moments["exp_avg_sq"], wall_s, grokfast or None
    )
