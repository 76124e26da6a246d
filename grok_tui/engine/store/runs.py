"""The run directory: the contract between the trainer, the viewer and other processes.

    RUN/
      run.json          format, config, status, device, versions (rewritten atomically)
      metrics.jsonl     one JSON object per epoch, append-only; a torn last line is ignored
      checkpoints/      epoch_0000100.safetensors, weights under classic TransformerLens names
      resume.pt         weights + optimiser + scheduler + RNG at the newest resume point
      measures.jsonl    progress measures per checkpoint (cache, append-only; appends and
                        compactions under one lock, store/measures_lock.py)
      lock              {"pid", "host", "started"} of the one process allowed to train this run
      llc.claim         the one LLC service estimating this run now (engine/measures/llc_claim.py)

Every write is atomic (temp file + os.replace) or an append, so a kill -9 at any moment
leaves a run that opens and resumes. A write that fails (a full disk, a quota) leaves no
trace: the temp file is removed, an append is cut back to the last whole line, and the
error is one line (`DiskFull` for a full disk). Nothing here executes code from a file:
weights are safetensors, `resume.pt` is read with `weights_only=True`, JSON is type-checked.

`Run` is the directory; its parts have modules of their own in the store: `errors`
(RunError, DiskFull), `atomic` (the writes), `run_meta` (run.json), `rows` (the lines of
metrics.jsonl and measures.jsonl), `metrics_reader` (following metrics.jsonl), `liveness`
(is the lock's process alive), `tensor_files` (safetensors and resume.pt failures as one
line) and `naming` (new directory names, the runs under a directory).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import MAX_EPOCHS, ConfigError, RunConfig
from grok_tui.engine.core.grokfast import state_elements as grokfast_state_elements
from grok_tui.engine.core.model import WeightsError, check_weights, param_shapes
from grok_tui.engine.store.atomic import (
    append_bytes,
    atomic_write_bytes,
    create_new_bytes,
    write_error,
)
from grok_tui.engine.store.errors import DiskFull, RunError
from grok_tui.engine.store.gaps import count_epochs, describe_gaps, epoch_gaps, missing_rows_warning
from grok_tui.engine.store.liveness import lock_is_stale, process_start
from grok_tui.engine.store.measures_lock import measures_lock
from grok_tui.engine.store.rows import (
    check_measures_row,
    clean_metric_row,
    format_metric_row,
)
from grok_tui.engine.store.run_meta import FORMAT_VERSION, RunMeta, now_iso, software_versions
from grok_tui.engine.store.tensor_files import describe_load_error, load_plain, load_safetensors
from grok_tui.engine.store.untrusted import (
    FileProblem,
    JsonLines,
    check_zip_sizes,
    describe_skipped,
    read_json_file,
    read_jsonl,
    warn,
    what_is_wrong,
)

__all__ = ["Run", "RunError"]  # RunError lives in errors.py; importers may take it from here

_CHECKPOINT_RE = re.compile(r"^epoch_(\d{7,})\.safetensors$")


class Run:
    """One run directory on disk."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        self.path = Path(path)
        self._warned: set[str] = set()  # each damaged line is reported once per Run
        # A read-only run (a served viewer's) writes nothing: its progress measures stay
        # in memory, and anything that would change the directory is a RunError.
        self.read_only = read_only
        self._measures_in_memory: list[dict[str, Any]] = []

    def _writable(self) -> None:
        if self.read_only:
            raise RunError(f"{self.path} is open read-only here")

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warn(message)

    # -- paths -------------------------------------------------------------------------
    def export_target(self, out: Path | str) -> Path:
        """`out` as a path an export may write: never inside this run's directory, where
        it would replace the run's own files (run.json, a checkpoint, resume.pt)."""
        out = Path(out)
        try:
            inside = out.resolve().is_relative_to(self.path.resolve())
        except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
            raise RunError(f"cannot write {out}: {getattr(exc, 'strerror', None) or exc}") from None
        if inside:
            raise RunError(
                f"will not write {out} inside the run {self.path} (its own files live "
                "there): choose a path outside it"
            )
        return out

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def measures_path(self) -> Path:
        return self.path / "measures.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def resume_path(self) -> Path:
        return self.path / "resume.pt"

    @property
    def lock_path(self) -> Path:
        return self.path / "lock"

    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch_{epoch:07d}.safetensors"

    # -- create / open -------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, config: RunConfig, device: str, source: str = "") -> Run:
        """Make a new run directory; refuse one that exists and is not empty."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunError(f"{run.path} exists and is not a directory")
        if run.path.is_dir() and any(run.path.iterdir()):
            raise RunError(f"run directory {run.path} already exists and is not empty")
        try:
            run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create {run.path}: {exc.strerror}") from None
        meta = RunMeta(
            format=FORMAT_VERSION,
            config=config.validated(),
            created=now_iso(),
            status="created",
            device=device,
            versions=software_versions(),
            source=source,
        )
        run.write_meta(meta)
        run.metrics_path.touch()
        return run

    @classmethod
    def open(cls, path: Path | str, read_only: bool = False) -> Run:
        run = cls(path, read_only=read_only)
        if not run.path.exists():
            raise RunError(f"no run at {run.path}")
        if not run.path.is_dir():
            raise RunError(f"{run.path} is not a run directory")
        run.meta()  # validates run.json
        return run

    @classmethod
    def open_to_read(cls, path: Path | str) -> Run:
        """A run to analyse or export: read-only (`read_only`) where this process may not
        write its measures cache (another user's run, a read-only mount), so its progress
        measures are computed in memory instead of failing on the cache's folder."""
        run = cls.open(path)
        run.read_only = not run.cache_writable()
        return run

    def cache_writable(self) -> bool:
        """Whether this process may write the measures cache: the directory, and the cache
        file and folder where they exist (`os.access`: also False on a read-only mount)."""
        parts = [p for p in (self.measures_path, self.path / "measures") if p.exists()]
        return all(os.access(p, os.W_OK) for p in (self.path, *parts))

    def meta(self) -> RunMeta:
        try:
            data = read_json_file(self.meta_path)
        except FileNotFoundError:
            if (self.path / "sweep.json").is_file():  # lab/sweep.py's file: a sweep
                raise RunError(
                    f"{self.path} is a sweep, not a run: its runs are in {self.path / 'members'} "
                    f"(grok-tui open {self.path} shows the sweep)"
                ) from None
            raise RunError(f"{self.path} is not a run directory (no run.json)") from None
        except FileProblem as exc:
            raise RunError(str(exc)) from None
        return RunMeta.from_json(data, self.meta_path)

    def write_meta(self, meta: RunMeta) -> None:
        self._writable()
        data = json.dumps(meta.to_json(), indent=2).encode() + b"\n"
        atomic_write_bytes(self.meta_path, data)

    def update_meta(self, **changes: Any) -> RunMeta:
        from dataclasses import replace

        meta = replace(self.meta(), **changes)
        self.write_meta(meta)
        return meta

    def extend(self, epochs: int, why: str = "") -> RunMeta:
        """Raise the epoch budget by `epochs` and mark the run resumable, so that the next
        training continues it from its last checkpoint: the same numbers as a run made with
        the larger budget (nothing in a step reads the budget; warm-up is by epoch).

        Under the trainer lock (taken here unless this process holds it), so that no
        trainer starts, or extends, between the read and the write. RunError (one line)
        while another live process trains it, for a run that diverged (it would diverge
        again at the same epoch) and past the largest budget. `why`: said in its message."""
        self._writable()
        if epochs <= 0:
            raise RunError(f"extend by a number of epochs > 0, not {epochs}")
        mine = _held_here(self.lock_owner())
        if not mine:
            self.acquire_lock()  # RunError while another live process trains it
        try:
            meta = self.meta()
            config = self._extended(meta, epochs)
            note = f"extended to {config.epochs:,} epochs" + (f" ({why})" if why else "")
            return self.update_meta(config=config, status="paused", message=note)
        finally:
            if not mine:
                self.release_lock()

    def check_extend(self, epochs: int) -> None:
        """RunError (one line) where `extend(epochs)` would refuse the run as it is now,
        writing nothing: a command checks this before it asks for anything else."""
        self._extended(self.meta(), epochs)

    def _extended(self, meta: RunMeta, epochs: int) -> RunConfig:
        """The run's config with `epochs` more; RunError if it diverged or past the
        largest budget."""
        if self.diverged():
            raise RunError(f"{self.path} diverged ({meta.message}): more epochs would "
                           "diverge again at the same epoch")  # fmt: skip
        try:
            return meta.config.replace(epochs=meta.config.epochs + epochs).validated()
        except ConfigError as exc:
            raise RunError(f"{self.path} cannot be extended by {epochs:,}: {exc}") from None

    def diverged(self) -> bool:
        """Stopped by a non-finite loss (its last metrics row): training it again from its
        last good checkpoint would only diverge again, so sweeps and `extend` leave it."""
        if self.meta().status != "failed":
            return False
        rows = self.read_metrics()
        return bool(rows) and not (
            math.isfinite(rows[-1]["train_loss"]) and math.isfinite(rows[-1]["test_loss"])
        )

    # -- metrics -------------------------------------------------------------------------
    def append_metrics(self, rows: Iterable[dict[str, float]]) -> None:
        self._writable()
        text = "".join(format_metric_row(row) for row in rows)
        if text:
            append_bytes(self.metrics_path, text.encode())

    def read_metrics(self, whole: bool = False) -> list[dict[str, float]]:
        """Every whole, valid row; each line skipped is a RunWarning naming it. `whole`
        (an export): a RunWarning also names the epochs up to the newest checkpoint that
        have no row, for a file cut short parses cleanly."""
        newest = self.newest_checkpoint_with_rows() if whole else None  # listed before reading
        found = self._read_metrics_lines(warn_skipped=True)
        if newest is not None:
            gaps = epoch_gaps((int(r["epoch"]) for r in found.rows), self.rows_due(newest))
            if count_epochs(gaps) > len(found.skipped):  # more than the bad lines explain
                self.warn_once(missing_rows_warning(self.metrics_path.name, gaps, newest))
        return found.rows

    def newest_checkpoint_with_rows(self) -> int | None:
        """The newest checkpoint epoch, up to which every epoch must have a metrics row (the
        trainer writes rows before checkpoints); None for a run without checkpoints or one
        imported from a file, whose rows are what that file held."""
        epochs = [e for e in self.checkpoint_epochs() if e <= MAX_EPOCHS]
        if not epochs:
            return None
        try:
            if self.meta().source:
                return None
        except RunError:
            return None
        return epochs[-1]

    def rows_due(self, newest: int) -> int:
        """The last epoch that must have a metrics row, `newest` being the newest
        checkpoint: itself in a finished run; the one before in any other, which a stop
        (q, a signal, a pause) leaves at checkpoint E with rows to E - 1 (E's row is
        written when training resumes: README, "Which file is the truth")."""
        try:
            finished = self.meta().status == "done"
        except RunError:
            finished = False
        return newest if finished else newest - 1

    def _read_metrics_lines(self, warn_skipped: bool) -> JsonLines:
        try:
            found = read_jsonl(self.metrics_path, clean_metric_row)
        except FileProblem as exc:
            raise RunError(str(exc)) from None
        if warn_skipped:
            for line in describe_skipped(self.metrics_path.name, found.skipped):
                self.warn_once(line)
        return found

    def truncate_metrics(self, before_epoch: int) -> None:
        """Keep rows with epoch < before_epoch (resuming recomputes the rest).

        A line that cannot be read, or rows missing below the resume point (a file cut
        short), are never passed over silently: the file as it was is kept beside it
        (`metrics.jsonl.damaged-STAMP`), and a warning names the lines and the epochs left
        without a row.
        """
        self._writable()
        found = self._read_metrics_lines(warn_skipped=False)
        rows = [r for r in found.rows if r["epoch"] < before_epoch]
        gaps = epoch_gaps((int(r["epoch"]) for r in rows), min(before_epoch, MAX_EPOCHS + 1) - 1)
        if found.skipped:
            kept = self.keep_damaged_copy(self.metrics_path)
            gap = f"; epochs without a row: {describe_gaps(gaps)}" if gaps else ""
            first = found.skipped[0]
            which = f"line {first.line:,}"
            if len(found.skipped) > 1:
                numbers = ", ".join(f"{s.line:,}" for s in found.skipped[1:5])
                more = ", ..." if len(found.skipped) > 5 else ""
                which = f"lines {first.line:,}, {numbers}{more} ({which}"
                first_reason = f"{first.reason})"
            else:
                first_reason = first.reason
            self.warn_once(
                f"{self.metrics_path.name} {which} {first_reason}: dropped from the "
                f"rewritten file, kept in {kept.name}{gap}"
            )
        elif gaps:  # cut short, emptied or torn: rows are missing though every line parses
            kept = self.keep_damaged_copy(self.metrics_path)
            n = count_epochs(gaps)
            self.warn_once(
                f"{self.metrics_path.name} has no row for {n:,} of the {before_epoch:,} epochs "
                f"before the resume point ({describe_gaps(gaps)}): it was cut short or damaged; "
                f"kept as it was in {kept.name}; those epochs stay without a row"
            )
        text = "".join(format_metric_row(r) for r in rows)
        atomic_write_bytes(self.metrics_path, text.encode())

    def keep_damaged_copy(self, path: Path) -> Path:
        """Keep `path` as it is now under a new name (a hard link where it can be)."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        copy = path.with_name(f"{path.name}.damaged-{stamp}")
        n = 1
        while copy.exists():
            n += 1
            copy = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        try:
            os.link(path, copy)
        except OSError:
            import shutil

            try:
                shutil.copyfile(path, copy)
            except OSError as exc:
                copy.unlink(missing_ok=True)
                raise write_error(exc, copy) from None
        return copy

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_epochs(self) -> list[int]:
        """The epochs of the checkpoints on disk, ascending; a `checkpoints` that cannot
        be listed (a file in its place, no permission) is said once, not taken for none."""
        try:
            names = os.listdir(self.checkpoint_dir)
        except FileNotFoundError:
            return []
        except OSError as exc:
            kind = "not a directory" if isinstance(exc, NotADirectoryError) else exc.strerror
            self.warn_once(f"{self.checkpoint_dir} cannot be listed ({kind}): no checkpoint read")
            return []
        epochs = []
        for name in names:
            m = _CHECKPOINT_RE.match(name)
            if m:
                epochs.append(int(m.group(1)))
        return sorted(epochs)

    def save_checkpoint(self, epoch: int, weights: dict[str, torch.Tensor]) -> Path:
        self._writable()
        from safetensors.torch import save

        path = self.checkpoint_path(epoch)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        data = save(tensors, metadata={"format": "grok-tui/1", "epoch": str(epoch)})
        with contextlib.suppress(OSError):  # removed by hand: made again (else the write's
            path.parent.mkdir(exist_ok=True)  # own error says why not, in one line)
        atomic_write_bytes(path, data)
        return path

    def load_checkpoint(
        self, epoch: int, config: RunConfig | None = None
    ) -> dict[str, torch.Tensor]:
        """Weights of one checkpoint, checked against the run's config."""
        path = self.checkpoint_path(epoch)
        weights = load_safetensors(path)
        try:
            check_weights(config or self.meta().config, weights)
        except WeightsError as exc:
            raise RunError(f"{path.name}: {exc}") from None
        return weights

    # -- resume --------------------------------------------------------------------------
    def save_resume(self, state: dict[str, Any]) -> None:
        self._writable()
        import io

        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.resume_path, buf.getvalue())

    def load_resume(self) -> dict[str, Any] | None:
        if not os.path.lexists(self.resume_path):
            return None
        problem = what_is_wrong(self.resume_path)  # a FIFO would block torch.load forever
        if problem:
            raise RunError(f"{self.resume_path} {problem}: it cannot be resumed from")
        # Weights and two Adam moments, each at most the largest weight (float64 at worst),
        # the Grokfast state, plus the pickle and RNG state: nothing genuine declares more.
        cfg = self.meta().config
        largest = max(math.prod(s) for s in param_shapes(cfg).values())
        largest = max(largest, grokfast_state_elements(cfg))  # the Grokfast filter's state
        try:
            check_zip_sizes(self.resume_path, 8 * largest + (1 << 20))
        except FileProblem as exc:
            raise RunError(str(exc)) from None
        try:
            state = load_plain(self.resume_path)
        except Exception as exc:  # unpickling refused, truncated zip, ...
            msg = describe_load_error(exc)
            raise RunError(f"{self.resume_path} cannot be loaded safely: {msg}") from None
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            raise RunError(f"{self.resume_path} does not hold a resume state")
        return state

    def resume_epoch(self) -> int | None:
        """The epoch a resume starts from (resume.pt's), or None if there is none usable."""
        try:
            state = self.load_resume()
        except RunError:
            return None
        return None if state is None else int(state["epoch"])

    def disk_full_message(self, exc: DiskFull) -> str:
        """One line for a write that failed on a full disk: what, and what is kept."""
        epoch = self.resume_epoch()
        if epoch is None:
            kept = "no resume point was saved yet, so once space is freed it starts from epoch 0"
        else:
            kept = f"the run is intact up to epoch {epoch:,} and resumes from there"
            kept += " once space is freed"
        return f"disk full while writing {exc.path.name}; {kept}"

    def ensure_resumable(self) -> None:
        """Raise RunError (one line) for a run with checkpoints but no optimiser state.

        Training such a run would start again from fresh weights over its history: runs
        imported from elsewhere (no resume.pt) can be analysed, not trained further.
        """
        if os.path.lexists(self.resume_path) or not self.checkpoint_epochs():
            return
        source = self.meta().source
        if source:
            raise RunError(
                f"{self.path} was imported from {source} and has no optimiser state: "
                "it can be analysed but not trained further"
            )
        raise RunError(f"{self.path} has checkpoints but no resume.pt: it cannot be resumed")

    def check_trainable(self) -> None:
        """Raise RunError (one line) if this process could not train the run on: a file it
        must read or write that it may not (permissions, a read-only mount). Checked before
        a command changes run.json (`open --resume --extend`), so that a refusal leaves
        the run as it was instead of extended with nothing trained."""
        # run.json and resume.pt are replaced by a rename (the folder's permission counts);
        # metrics.jsonl is appended to in place
        needs = [(self.path, os.W_OK | os.X_OK), (self.checkpoint_dir, os.W_OK | os.X_OK)]
        needs += [(self.meta_path, os.R_OK), (self.resume_path, os.R_OK)]
        needs.append((self.metrics_path, os.R_OK | os.W_OK))
        for path, mode in needs:  # (a loop, a FIFO, a dangling link: their readers say so)
            plain = os.path.isfile(path) or os.path.isdir(path)
            if plain and not os.access(path, mode):
                what = {os.R_OK: "read", os.R_OK | os.W_OK: "read and written"}.get(mode, "written")
                raise RunError(f"cannot train {self.path} on: {path} cannot be {what} here")

    # -- measures cache ------------------------------------------------------------------
    def measures_lock(self) -> contextlib.AbstractContextManager[None]:
        """The cache's writer lock (store/measures_lock.py): every append holds it, and a
        compaction holds it from its read to its rewrite, so no append falls between."""
        return measures_lock(self.path)

    def append_measures(self, rows: Iterable[dict[str, Any]]) -> None:
        if self.read_only:
            self._measures_in_memory.extend(rows)
            return
        lines = [json.dumps(r, separators=(",", ":"), allow_nan=False) for r in rows]
        if lines:
            with self.measures_lock():
                append_bytes(self.measures_path, ("\n".join(lines) + "\n").encode())

    def rewrite_measures(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the cache with `rows` (dropping rows no longer useful); a compaction
        reads and rewrites inside `measures_lock()`."""
        if self.read_only:
            return  # the file stays as it is; rows computed here stay in memory
        text = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in rows)
        with self.measures_lock():
            atomic_write_bytes(self.measures_path, text.encode())

    def read_measures(self) -> list[dict[str, Any]]:
        """Every whole, valid cached row; each line skipped is a RunWarning naming it (the
        cache is recomputed where rows are missing)."""
        try:
            found = read_jsonl(self.measures_path, check_measures_row)
        except FileProblem as exc:
            raise RunError(str(exc)) from None
        for line in describe_skipped(self.measures_path.name, found.skipped):
            self.warn_once(line)
        return found.rows + self._measures_in_memory

    # -- lock ----------------------------------------------------------------------------
    def acquire_lock(self) -> str:
        """Take the trainer lock; return a notice if a stale lock was taken over ('' if not)."""
        self._writable()
        pid = os.getpid()
        me = {"pid": pid, "host": socket.gethostname(), "since": now_iso(),
              "started": process_start(pid)}  # fmt: skip
        notice = ""
        for _ in range(3):
            if create_new_bytes(self.lock_path, json.dumps(me).encode()):
                return notice
            owner = self.lock_owner()
            if owner is None or lock_is_stale(owner):
                who = f"pid {owner['pid']}" if owner else "an unreadable lock"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock_path)
                notice = f"took over a stale lock ({who} is gone)"
                continue
            if _held_here(owner):
                return ""
            raise RunError(f"{self.path} is being trained by pid {owner['pid']} on {owner['host']}")
        raise RunError(f"cannot take the lock {self.lock_path}")

    def lock_owner(self) -> dict[str, Any] | None:
        try:
            data = read_json_file(self.lock_path)
        except (OSError, FileProblem):
            return None
        if (
            isinstance(data, dict)
            and isinstance(data.get("pid"), int)
            and isinstance(data.get("host"), str)
        ):
            return data
        return None

    def release_lock(self) -> None:
        owner = self.lock_owner()
        if _held_here(owner):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)

    def writer_alive(self) -> bool:
        """Whether some live process holds the trainer lock."""
        owner = self.lock_owner()
        return owner is not None and not lock_is_stale(owner)


def _held_here(owner: dict[str, Any] | None) -> bool:
    """Whether a lock's owner is this process (pid and host)."""
    return owner is not None and (owner["pid"], owner["host"]) == (
        os.getpid(), socket.gethostname())  # fmt: skip
