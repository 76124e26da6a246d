"""The training loop: full-batch AdamW on the paper's task, writing into a run directory.

One epoch is one optimiser step. Row `e` of metrics.jsonl and checkpoint `e` describe the
same weights W_e, the weights after e steps: the train loss (whose gradient makes step e)
and the test loss are both measured on W_e. A run of N epochs has rows 0..N and N steps.

The loop never waits on a reader: it reports through a callback (the app turns it into
coalescing messages), keeps metrics in a device buffer and reads them back a few times a
second, so a GPU is not synchronised every epoch.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from grok_tui.engine.config import RunConfig
from grok_tui.engine.data import make_dataset
from grok_tui.engine.device import resolve_device
from grok_tui.engine.loss import loss_and_accuracy
from grok_tui.engine.model import GrokModel, InputPlan, WeightsError, paper_init
from grok_tui.engine.runs import DiskFull, Run, RunError, atomic_write_bytes

FLUSH_SECONDS = 0.2  # how stale the UI's numbers may get


@dataclass
class Progress:
    """New metrics rows (the newest last) and the speed."""

    rows: list[dict[str, float]]
    total_epochs: int
    epochs_per_s: float


@dataclass
class CheckpointSaved:
    epoch: int


@dataclass
class Paused:
    """The loop saved a checkpoint and waits for `TrainControl.request_resume`."""

    epoch: int


@dataclass
class Resumed:
    epoch: int


@dataclass
class Finished:
    """The loop ended: status is done, paused (stopped on request) or failed."""

    status: str
    epoch: int
    message: str = ""


Event = Progress | CheckpointSaved | Paused | Resumed | Finished


@dataclass
class TrainControl:
    """Thread-safe requests from the UI or a signal handler to a running loop."""

    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=threading.Event)
    stop_at: int | None = None  # stop (saving a checkpoint) once this epoch is reached

    def request_stop(self) -> None:
        self.stop.set()
        self.resumed.set()  # wake a paused loop so it can stop

    def request_pause(self) -> None:
        self.resumed.clear()
        self.pause.set()

    def request_resume(self) -> None:
        self.pause.clear()
        self.resumed.set()


def keep_freed_memory() -> None:
    """Stop glibc returning big freed blocks to the OS after every step.

    Each epoch allocates tens of MB of activations. By default glibc maps and unmaps them
    each time, so every step pays page faults on fresh memory: measured here, a quarter
    of CPU epoch time. Raising the mmap and trim thresholds keeps the blocks for reuse.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def lr_at(cfg: RunConfig, step: int) -> float:
    """Linear warm-up over warmup_steps (the paper's LambdaLR(min(step / 10, 1)))."""
    if cfg.warmup_steps <= 0:
        return cfg.lr
    return cfg.lr * min(step / cfg.warmup_steps, 1.0)


def make_optimizer(cfg: RunConfig, model: GrokModel) -> torch.optim.AdamW:
    """AdamW on every trained parameter; the fused kernel where this torch has one."""
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "betas": (cfg.beta1, cfg.beta2)}
    device = next(model.parameters()).device.type
    if device in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # an older torch without fused AdamW for this device
    return torch.optim.AdamW(model.parameters(), **kwargs)


def make_scheduler(cfg: RunConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(cfg, step) / cfg.lr)


class Trainer:
    """Owns the model and optimiser of one run; `train()` runs until done, stopped or failed."""

    def __init__(
        self,
        run: Run,
        device: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.run = run
        meta = run.meta()
        self.cfg: RunConfig = meta.config
        self.device = resolve_device(device or "auto")
        self.on_event = on_event or (lambda event: None)
        if self.device == "cpu":
            keep_freed_memory()

        data = make_dataset(self.cfg).to(self.device)
        self.train_plan = InputPlan(
            data.x[data.train_idx], data.y[data.train_idx], self.cfg.p, self.cfg.n_heads
        )
        self.test_plan = InputPlan(
            data.x[data.test_idx], data.y[data.test_idx], self.cfg.p, self.cfg.n_heads
        )
        self.train_labels = data.labels[data.train_idx]
        self.test_labels = data.labels[data.test_idx]

        self.model = GrokModel(self.cfg).to(self.device)
        self.opt = make_optimizer(self.cfg, self.model)
        self.sched = make_scheduler(self.cfg, self.opt)
        self.epoch = 0
        self.wall_s = 0.0
        self._load_or_init()

    # -- state -----------------------------------------------------------------------------
    def _load_or_init(self) -> None:
        state = self.run.load_resume()
        if state is None:
            self.run.ensure_resumable()  # checkpoints without resume.pt: never start over
            self.model.load_classic(paper_init(self.cfg))
            self.run.truncate_metrics(before_epoch=0)
            return
        try:
            self.model.load_classic(state["weights"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            if "rng" in state:
                torch.set_rng_state(state["rng"])
            self.epoch = int(state["epoch"])
            self.wall_s = float(state.get("wall_s", 0.0))
        except (KeyError, ValueError, RuntimeError, TypeError, WeightsError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunError(f"{self.run.resume_path} does not fit this run: {first}") from None
        # Rows from W_epoch on are recomputed; everything before it is kept as written.
        self.run.truncate_metrics(before_epoch=self.epoch)

    def save(self) -> None:
        """Checkpoint W_epoch and the resume state beside it."""
        weights = self.model.classic_state()
        self.run.save_checkpoint(self.epoch, weights)
        self.run.save_resume(
            {
                "epoch": self.epoch,
                "weights": weights,
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "rng": torch.get_rng_state(),
                "wall_s": self.wall_s,
            }
        )
        self.on_event(CheckpointSaved(self.epoch))

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs and self.run.checkpoint_path(self.epoch).exists()

    # -- the loop ----------------------------------------------------------------------------
    def _measure(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train loss of W_epoch (with graph) and the 4 metrics of W_epoch (no graph)."""
        tables = self.model.tables()
        train_logits = self.model.plan_logits(tables, self.train_plan)
        train_loss, train_acc = loss_and_accuracy(train_logits, self.train_labels)
        with torch.no_grad():
            test_logits = self.model.plan_logits(tables, self.test_plan)
            test_loss, test_acc = loss_and_accuracy(test_logits, self.test_labels)
            metrics = torch.stack([train_loss.detach(), test_loss, train_acc, test_acc])
        return train_loss, metrics

    def train(self, control: TrainControl | None = None) -> Finished:
        control = control or TrainControl()
        cfg = self.cfg
        self.run.update_meta(status="running", device=self.device, message="")
        self.model.train()

        # (epoch, lr, wall seconds, metrics still on the device)
        pending: list[tuple[int, float, float, torch.Tensor]] = []
        last_flush = time.perf_counter()
        rate_t, rate_epoch = last_flush, self.epoch
        epochs_per_s = 0.0
        segment_start = last_flush

        def flush() -> Finished | None:
            nonlocal last_flush, rate_t, rate_epoch, epochs_per_s
            if not pending:
                return None
            values = torch.stack([m for *_, m in pending]).tolist()  # one device sync
            rows = []
            failed = None
            for (epoch, lr, wall, _), (tr, te, tra, tea) in zip(pending, values, strict=True):
                rows.append(
                    {"epoch": epoch, "train_loss": tr, "test_loss": te, "train_acc": tra,
                     "test_acc": tea, "lr": lr, "wall_s": wall}
                )  # fmt: skip
                if not (math.isfinite(tr) and math.isfinite(te)):
                    failed = epoch
                    break
            pending.clear()
            self.run.append_metrics(rows)
            now = time.perf_counter()
            if now > rate_t and rows[-1]["epoch"] > rate_epoch:
                epochs_per_s = (rows[-1]["epoch"] - rate_epoch) / (now - rate_t)
            rate_t, rate_epoch, last_flush = now, rows[-1]["epoch"], now
            self.on_event(Progress(rows, cfg.epochs, epochs_per_s))
            if failed is not None:
                good = [e for e in self.run.checkpoint_epochs() if e < failed]
                kept = f"; last good checkpoint: epoch {good[-1]}" if good else ""
                return Finished(
                    "failed", failed, f"loss became non-finite at epoch {failed}; stopped{kept}"
                )
            return None

        def finish(result: Finished) -> Finished:
            with contextlib.suppress(RunError):  # a full disk may refuse even this
                self.run.update_meta(status=result.status, message=result.message)
            self.on_event(result)
            return result

        try:
            while True:
                if control.stop_at is not None and self.epoch >= control.stop_at:
                    control.request_stop()
                if control.stop.is_set() or control.pause.is_set():
                    failed = flush()
                    if failed:
                        return finish(failed)
                    self.save()
                    if control.stop.is_set():
                        return finish(Finished("paused", self.epoch, "stopped; resumable"))
                    self.run.update_meta(status="paused")
                    self.on_event(Paused(self.epoch))
                    control.resumed.wait()
                    if control.stop.is_set():
                        return finish(Finished("paused", self.epoch, "stopped; resumable"))
                    self.run.update_meta(status="running")
                    self.on_event(Resumed(self.epoch))
                    segment_start = rate_t = time.perf_counter()
                    rate_epoch = self.epoch

                train_loss, metrics = self._measure()
                now = time.perf_counter()
                self.wall_s += now - segment_start
                segment_start = now
                pending.append((self.epoch, lr_at(cfg, self.epoch), self.wall_s, metrics))
                at_checkpoint = self.epoch % cfg.checkpoint_every == 0 or self.epoch >= cfg.epochs
                if at_checkpoint or now - last_flush >= FLUSH_SECONDS:
                    failed = flush()
                    if failed:
                        return finish(failed)
                if at_checkpoint:
                    self.save()
                if self.epoch >= cfg.epochs:
                    return finish(Finished("done", self.epoch, "finished"))

                train_loss.backward()
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                self.epoch += 1
        except DiskFull as exc:  # the failed write left nothing behind; say what is kept
            return finish(Finished("failed", self.epoch, self.run.disk_full_message(exc)))
        except Exception as exc:
            # Out of memory, a bug, ...: say what happened, keep what is on disk, and
            # leave the traceback in the run for a bug report.
            import traceback

            with contextlib.suppress(RunError):
                atomic_write_bytes(self.run.path / "error.log", traceback.format_exc().encode())
            text = str(exc).strip().splitlines()
            msg = f"{type(exc).__name__}: {text[0] if text else ''} (see error.log)"
            return finish(Finished("failed", self.epoch, msg))
