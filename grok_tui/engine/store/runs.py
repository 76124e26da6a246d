"""The run directory: the contract between the trainer, the viewer and other processes.

    RUN/
      run.json          format, config, status, device, versions (rewritten atomically)
      metrics.jsonl     one JSON object per epoch, append-only; a torn last line is ignored
      checkpoints/      epoch_0000100.safetensors, weights under classic TransformerLens names
      resume.pt         weights + optimiser + scheduler + RNG at the newest resume point
      measures.jsonl    progress measures per checkpoint (cache, append-only)
      lock              {"pid", "host"} of the one process allowed to train this run

Every write is atomic (temp file + os.replace) or an append, so a kill -9 at any moment
leaves a run that opens and resumes. A write that fails (a full disk, a quota) leaves no
trace: the temp file is removed, an append is cut back to the last whole line, and the
error is one line (`DiskFull` for a full disk). Nothing here executes code from a file:
weights are safetensors, `resume.pt` is read with `weights_only=True`, JSON is type-checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import math
import os
import re
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grok_tui.engine.core.config import MAX_EPOCHS, ConfigError, RunConfig
from grok_tui.engine.core.grokfast import state_elements as grokfast_state_elements
from grok_tui.engine.core.model import WeightsError, check_weights, param_shapes
from grok_tui.engine.store.untrusted import (
    FileProblem,
    JsonLines,
    RowProblem,
    check_epoch,
    check_numeric_tree,
    check_zip_sizes,
    describe_skipped,
    finite_or_none,
    is_number,
    parse_jsonl,
    read_json_file,
    read_jsonl,
    warn,
    what_is_wrong,
)

FORMAT_VERSION = 1
STATUSES = ("created", "running", "paused", "done", "failed")
METRIC_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc", "lr", "wall_s")
_CHECKPOINT_RE = re.compile(r"^epoch_(\d{7,})\.safetensors$")


class RunError(Exception):
    """A run directory that cannot be used as asked; the message is one line for the user."""


class DiskFull(RunError):
    """The file system ran out of space (or quota) while writing `path`; nothing was torn."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(f"disk full while writing {self.path}")


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


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
        if not isinstance(data, dict):
            raise RunError(f"{where}: run.json must hold a JSON object")
        fmt = data.get("format")
        if fmt != FORMAT_VERSION:
            raise RunError(f"{where}: run.json format {fmt!r} is not {FORMAT_VERSION}")
        try:
            config = RunConfig.from_dict(data.get("config"))
        except ConfigError as exc:
            raise RunError(f"{where}: run.json {exc}") from None
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
    from importlib import metadata

    out = {"torch": torch.__version__}
    for name in ("grok-tui", "transformer_lens", "textual", "safetensors"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_error(exc: OSError, path: Path) -> RunError:
    """A failed write as one line: DiskFull for a full disk or quota, else RunError."""
    if exc.errno in _FULL_ERRNOS:
        return DiskFull(path)
    return RunError(f"cannot write {path}: {exc.strerror or exc}")


def _write_fd(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (os.write may write less than asked). Every run-directory
    write goes through here (tests inject a full disk at this one place)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write a whole file or nothing: a reader (or a kill -9) never sees half of it.

    A failure removes the temp file and raises DiskFull / RunError. fsync is for power
    loss only; a killed process cannot tear a replaced file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            _write_fd(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(exc, path) from None
        raise


def append_bytes(path: Path, data: bytes) -> None:
    """Append whole lines or nothing: a failed append is cut back to where it began (a file
    it created is removed), so no half line is left to read as garbage once others follow.
    After a torn last line (a kill mid-write) the new lines start on a line of their own."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
    try:
        try:
            fd, created = os.open(path, flags | os.O_EXCL, 0o666), True
        except FileExistsError:
            fd, created = os.open(path, flags, 0o666), False
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        start = os.fstat(fd).st_size  # one writer per file (the lock): no one appends between
        if start and os.pread(fd, 1, start - 1) != b"\n":
            data = b"\n" + data  # a torn last line stays a line of its own, not glued to ours
        try:
            _write_fd(fd, data)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                if created:
                    os.unlink(path)
                else:
                    os.ftruncate(fd, start)  # shrinking needs no space
            if isinstance(exc, OSError):
                raise write_error(exc, path) from None
            raise
    finally:
        os.close(fd)


def format_metric_row(row: dict[str, float]) -> str:
    """One metrics line. JSON has no NaN or inf: they are written as null, read as NaN."""
    clean: dict[str, float | int | None] = {}
    for key in METRIC_KEYS:
        if key in row:
            value = row[key]
            if key == "epoch":
                clean[key] = int(value)
            else:
                clean[key] = float(value) if math.isfinite(value) else None
    return json.dumps(clean, separators=(",", ":")) + "\n"


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

    def meta(self) -> RunMeta:
        try:
            data = read_json_file(self.meta_path)
        except FileNotFoundError:
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

    # -- metrics -------------------------------------------------------------------------
    def append_metrics(self, rows: Iterable[dict[str, float]]) -> None:
        self._writable()
        text = "".join(format_metric_row(row) for row in rows)
        if text:
            append_bytes(self.metrics_path, text.encode())

    def read_metrics(self) -> list[dict[str, float]]:
        """Every whole, valid row; each line skipped is a RunWarning naming it."""
        return self._read_metrics_lines(warn_skipped=True).rows

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

        A line that cannot be read is never dropped silently: the file as it was is kept
        beside it (`metrics.jsonl.damaged-STAMP`), and a warning names the line and the
        epochs left without a row.
        """
        self._writable()
        found = self._read_metrics_lines(warn_skipped=False)
        rows = [r for r in found.rows if r["epoch"] < before_epoch]
        if found.skipped:
            kept = self.keep_damaged_copy(self.metrics_path)
            have = {int(r["epoch"]) for r in rows}
            missing = [e for e in range(min(before_epoch, MAX_EPOCHS + 1)) if e not in have]
            gap = f"; epochs without a row: {describe_epochs(missing)}" if missing else ""
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
        try:
            names = os.listdir(self.checkpoint_dir)
        except OSError:
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
        if not self.resume_path.exists():
            return None
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
            state = torch.load(self.resume_path, map_location="cpu", weights_only=True)
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
            kept = "nothing resumable was saved yet"
        else:
            kept = f"the run is intact up to epoch {epoch:,} and resumes from there"
        return f"disk full while writing {exc.path.name}; {kept} once space is freed"

    def ensure_resumable(self) -> None:
        """Raise RunError (one line) for a run with checkpoints but no optimiser state.

        Training such a run would start again from fresh weights over its history: runs
        imported from elsewhere (no resume.pt) can be analysed, not trained further.
        """
        if self.resume_path.exists() or not self.checkpoint_epochs():
            return
        source = self.meta().source
        if source:
            raise RunError(
                f"{self.path} was imported from {source} and has no optimiser state: "
                "it can be analysed but not trained further"
            )
        raise RunError(f"{self.path} has checkpoints but no resume.pt: it cannot be resumed")

    # -- measures cache ------------------------------------------------------------------
    def append_measures(self, rows: Iterable[dict[str, Any]]) -> None:
        if self.read_only:
            self._measures_in_memory.extend(rows)
            return
        lines = [json.dumps(r, separators=(",", ":"), allow_nan=False) for r in rows]
        if lines:
            append_bytes(self.measures_path, ("\n".join(lines) + "\n").encode())

    def rewrite_measures(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the cache with `rows` (dropping rows no longer useful)."""
        if self.read_only:
            return  # the file stays as it is; rows computed here stay in memory
        text = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in rows)
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
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
        notice = ""
        for _ in range(3):
            if self._create_lock(me):
                return notice
            owner = self.lock_owner()
            if owner is None or lock_is_stale(owner):
                who = f"pid {owner['pid']}" if owner else "an unreadable lock"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock_path)
                notice = f"took over a stale lock ({who} is gone)"
                continue
            if owner["pid"] == os.getpid() and owner["host"] == me["host"]:
                return ""
            raise RunError(f"{self.path} is being trained by pid {owner['pid']} on {owner['host']}")
        raise RunError(f"cannot take the lock {self.lock_path}")

    def _create_lock(self, me: dict[str, Any]) -> bool:
        """Create the lock holding `me`; False if one exists. Never leaves an empty lock."""
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise write_error(exc, self.lock_path) from None
        try:
            _write_fd(fd, json.dumps(me).encode())
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
            raise write_error(exc, self.lock_path) from None
        os.close(fd)
        return True

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
        if owner and owner["pid"] == os.getpid() and owner["host"] == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock_path)

    def writer_alive(self) -> bool:
        """Whether some live process holds the trainer lock."""
        owner = self.lock_owner()
        return owner is not None and not lock_is_stale(owner)


def lock_is_stale(owner: dict[str, Any]) -> bool:
    """A lock is stale when its pid is dead on this host; other hosts can't be checked."""
    if owner["host"] != socket.gethostname():
        return False
    return not pid_alive(owner["pid"])


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


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


class MetricsReader:
    """Reads metrics.jsonl incrementally: what a follower calls every few hundred ms.

    Lines that cannot be used are skipped and described in `problems` (the caller shows
    them once); the rows after them still arrive.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.offset = 0
        self.line = 1  # number of the next line to read
        self._inode: int | None = None
        self.problems: list[str] = []

    def read_new(self) -> list[dict[str, float]]:
        """Rows appended since the last call (all rows again if the file was rewritten)."""
        return self.poll()[0]

    def poll(self) -> tuple[list[dict[str, float]], bool]:
        """(new rows, reset): reset means the file was rewritten and rows restart from 0."""
        try:
            st = os.stat(self.run.metrics_path)
        except FileNotFoundError:
            return [], False
        except OSError:  # a symbolic link loop, say
            self.problems.append(f"{self.run.metrics_path} {what_is_wrong(self.run.metrics_path)}")
            return [], False
        reset = self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset)
        if reset:
            self.offset, self.line = 0, 1  # rewritten (a resume truncated it): read it again
        self._inode = st.st_ino
        if not stat.S_ISREG(st.st_mode):
            self.problems.append(f"{self.run.metrics_path} {what_is_wrong(self.run.metrics_path)}")
            return [], reset
        try:
            with open(self.run.metrics_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError as exc:
            self.problems.append(f"cannot read {self.run.metrics_path}: {exc.strerror}")
            return [], reset
        found = parse_jsonl(data, clean_metric_row, first_line=self.line)
        self.offset += found.consumed
        self.line += found.lines
        self.problems.extend(describe_skipped(self.run.metrics_path.name, found.skipped))
        return found.rows, reset


def clean_metric_row(row: dict[str, Any]) -> dict[str, float]:
    """A metrics row with float values (null -> NaN); RowProblem if it is not one."""
    out: dict[str, float] = {"epoch": check_epoch(row, MAX_EPOCHS)}
    for key in METRIC_KEYS[1:]:
        value = row.get(key)
        if value is not None and not is_number(value):
            raise RowProblem(f"has {key} {str(value)[:30]!r}, not a number")
        out[key] = finite_or_none(value)
    return out


def stamped_path(root: Path, prefix: str) -> Path:
    """root/PREFIX-YYYYmmdd-HHMMSS, with -2, -3, ... if that exists already."""
    import datetime

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"{prefix}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{prefix}-{stamp}-{n}"
    return path


# Row kinds of measures.jsonl: records and excluded losses (engine/measures/progress.py), and
# the outlook as of each checkpoint (engine/measures/asof.py).
MEASURES_ROW_KINDS = ("record", "excluded", "outlook")


def check_measures_row(row: dict[str, Any]) -> dict[str, Any]:
    """A cached progress-measures row: an epoch, and numbers in dicts and rectangular lists."""
    check_epoch(row, MAX_EPOCHS)
    if row.get("kind", "record") not in MEASURES_ROW_KINDS:
        raise RowProblem(f"has kind {str(row.get('kind'))[:30]!r}, not one of ours")
    for key, value in row.items():
        if key != "kind":
            check_numeric_tree(value, key)
    freqs = row.get("key_freqs")
    if freqs is not None and not (
        isinstance(freqs, list) and all(isinstance(k, int) and k >= 0 for k in freqs)
    ):
        raise RowProblem("has key_freqs that are not whole numbers")
    return row


def describe_epochs(epochs: list[int], most: int = 6) -> str:
    """[3, 4, 5, 9] -> '3-5, 9' (the first few runs of consecutive epochs)."""
    runs: list[tuple[int, int]] = []
    for e in epochs:
        if runs and e == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((e, e))
    parts = [f"{a:,}" if a == b else f"{a:,}-{b:,}" for a, b in runs[:most]]
    return ", ".join(parts) + (", ..." if len(runs) > most else "")


def iter_runs(root: Path) -> Iterator[Path]:
    """Run directories directly under root, newest first."""
    if not root.is_dir():
        return iter(())
    runs = [p for p in root.iterdir() if (p / "run.json").is_file()]
    return iter(sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True))
