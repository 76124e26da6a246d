"""Reading files nobody vouches for: a run directory's JSON and JSON lines, torch zip files.

A run directory may come from another machine, another version, a full disk or a hostile
user. Every way such a file can fail to parse becomes one line naming the file (and the
line): bytes that are not UTF-8, text that is not JSON, JSON nested deep enough to exhaust
the recursion limit, numbers with thousands of digits, rows of the wrong shape, absurd
values. A JSON-lines reader never stops at a bad line and never drops one silently: it
returns the good rows and a `Skipped` record for each bad one, which callers report as a
warning (`RunWarning`) and keep a copy of before any rewrite.

A torch zip file (`torch.save`'s format) declares each stored tensor's size in its
directory; `check_zip_sizes` reads that directory and refuses a file whose declared sizes
are implausible for what it should hold before torch inflates anything, so a small
deflated file cannot declare gigabytes and exhaust memory.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.errors import UserError

MAX_JSON_BYTES = 4 << 20  # run.json, a lock: a few hundred bytes when genuine
MAX_LINE_BYTES = 1 << 20  # a metrics row is ~150 bytes, a measures row a few kB
MAX_NESTING = 8  # deepest JSON a run file holds (measures: row -> dict/list -> list)


class RunWarning(UserWarning):
    """Something in a run directory was skipped or repaired; the message is one line."""


class FileProblem(UserError):
    """An untrusted file that cannot be used; the message is one line naming the file."""


class RowProblem(ValueError):
    """A JSON-lines row of the wrong shape (the reason, a short phrase)."""


def warn(message: str) -> None:
    """Issue a RunWarning every time it is asked for (callers decide what repeats:
    `warnings.warn` would show a message only once per call site and process)."""
    warnings.warn_explicit(message, RunWarning, "grok_tui", 0, registry={})


# -- opening -----------------------------------------------------------------------------------
def what_is_wrong(path: Path) -> str:
    """Why `path` cannot be read as a plain file ('' if it can): a symbolic link that
    loops or points nowhere, a directory, a FIFO (whose reading would block forever), a
    file this process may not read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "is missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link that loops (it never reaches a file)"
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(st.st_mode):  # (a reader told "missing" where it was not allowed)
        return "" if os.access(path, os.R_OK) else "cannot be read here (permission denied)"
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
    if stat.S_ISFIFO(st.st_mode):
        kind = "a FIFO, not a file"
    return f"is {kind}"


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a plain file (at most `limit`); FileNotFoundError if it does not exist,
    FileProblem naming it for anything else. Opened non-blocking, so a FIFO planted under
    the name is refused instead of hanging the reader."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileProblem(f"{path} {what_is_wrong(path)}") from None
        raise
    except OSError:
        raise FileProblem(f"{path} {what_is_wrong(path) or 'cannot be read'}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses directories
        os.close(fd)
        raise FileProblem(f"{path} {what_is_wrong(path) or 'is not a regular file'}")
    with os.fdopen(fd, "rb") as f:
        try:
            return f.read() if limit is None else f.read(limit)
        except OSError as exc:
            raise FileProblem(f"cannot read {path}: {exc.strerror or exc}") from None


# -- whole JSON files --------------------------------------------------------------------------
def read_json_file(path: Path, what: str = "") -> Any:
    """The JSON value in `path`; FileProblem (one line) for any failure at all."""
    name = what or str(path)
    try:
        data = read_regular_file(path, MAX_JSON_BYTES + 1)
    except FileProblem as exc:
        raise FileProblem(str(exc).replace(str(path), name, 1)) from None
    if len(data) > MAX_JSON_BYTES:
        raise FileProblem(f"{name} is larger than {MAX_JSON_BYTES >> 20} MB: not a run file")
    try:
        return parse_json(data)
    except RowProblem as exc:
        raise FileProblem(f"{name} {exc}") from None


def parse_json(data: bytes) -> Any:
    """One JSON document from untrusted bytes; RowProblem says why it is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowProblem(f"is not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowProblem(f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise RowProblem("is nested too deeply to be a run file") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise RowProblem(f"is not usable JSON ({str(exc).splitlines()[0][:80]})") from None
    if nesting(value) > MAX_NESTING:
        raise RowProblem("is nested too deeply to be a run file")
    return value


def nesting(value: Any, limit: int = MAX_NESTING + 1) -> int:
    """Depth of a parsed JSON value (a scalar is 0), counted no further than `limit`."""
    if limit <= 0 or not isinstance(value, (dict, list)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((nesting(v, limit - 1) for v in items), default=0)


# -- JSON lines --------------------------------------------------------------------------------
@dataclass
class Skipped:
    """A line that was not used: where, why, and its bytes (for the kept copy)."""

    line: int  # 1-based, in the whole file
    reason: str
    raw: bytes

    def describe(self, name: str) -> str:
        return f"{name} line {self.line:,} {self.reason}: skipped"


def describe_skipped(name: str, skipped: list[Skipped], most: int = 3) -> list[str]:
    """One line per skipped line, or for many, the first few and one line for the rest."""
    lines = [s.describe(name) for s in skipped[:most]]
    if len(skipped) > most:
        rest = skipped[most:]
        lines.append(f"{name}: {len(rest):,} more lines skipped (lines {rest[0].line:,} to "
                     f"{rest[-1].line:,})")  # fmt: skip
    return lines


@dataclass
class JsonLines:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    consumed: int = 0  # bytes up to the end of the last whole line
    lines: int = 0  # whole lines read


def parse_jsonl(
    data: bytes,
    check_row: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    first_line: int = 1,
) -> JsonLines:
    """Rows of JSON-lines bytes; bad lines become `Skipped` records, never exceptions.

    The part after the last newline is a line still being written (or torn by a kill):
    it is left unread (`consumed` stops before it). Blank lines carry nothing and are
    passed over. `check_row` cleans a row or raises RowProblem.
    """
    out = JsonLines()
    end = data.rfind(b"\n")
    if end < 0:
        return out
    out.consumed = end + 1
    for i, raw in enumerate(data[:end].split(b"\n")):
        number = first_line + i
        out.lines += 1
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            out.skipped.append(Skipped(number, f"is {len(raw):,} bytes long", raw[:200]))
            continue
        try:
            row = parse_json(raw)
            if not isinstance(row, dict):
                raise RowProblem(f"is a JSON {type(row).__name__}, not an object")
            if check_row is not None:
                row = check_row(row)
        except RowProblem as exc:
            out.skipped.append(Skipped(number, str(exc), raw))
            continue
        out.rows.append(row)
    return out


def read_jsonl(
    path: Path, check_row: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> JsonLines:
    """All rows of a JSON-lines file (none if it is missing); FileProblem if unreadable."""
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        return JsonLines()
    return parse_jsonl(data, check_row)


# -- row checks ----------------------------------------------------------------------------------
def check_epoch(row: dict[str, Any], max_epoch: int) -> int:
    epoch = row.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise RowProblem(f"has epoch {_short(epoch)}, not an integer")
    if not 0 <= epoch <= max_epoch:
        raise RowProblem(f"has epoch {epoch:,}, outside 0..{max_epoch:,}")
    return epoch


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_numeric_tree(value: Any, where: str, max_items: int = 100_000) -> None:
    """A measures value: numbers, nulls and booleans, in dicts and in rectangular lists."""
    if value is None or isinstance(value, bool) or is_number(value):
        return
    if isinstance(value, dict):
        if len(value) > max_items:
            raise RowProblem(f"has {len(value):,} entries in {where!r}")
        for key, item in value.items():
            check_numeric_tree(item, f"{where}.{key}", max_items)
        return
    if isinstance(value, list):
        if len(value) > max_items:
            raise RowProblem(f"has {len(value):,} entries in {where!r}")
        nested = [isinstance(v, list) for v in value]
        if any(nested) and not all(nested):
            raise RowProblem(f"mixes lists and numbers in {where!r}")
        if all(nested) and len({len(v) for v in value}) > 1:
            raise RowProblem(f"has rows of different lengths in {where!r}")
        for i, item in enumerate(value):
            if isinstance(item, dict):
                raise RowProblem(f"has an object inside the list {where!r}")
            check_numeric_tree(item, f"{where}[{i}]", max_items)
        return
    raise RowProblem(f"has {_short(value)} in {where!r}, not a number")


def finite_or_none(value: Any) -> float:
    """A metric value: a number, or NaN for null (JSON has no NaN)."""
    if value is None:
        return math.nan
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- torch zip files ---------------------------------------------------------------------------
def check_zip_sizes(path: Path, max_entry_bytes: int, max_ratio: float = 4.0) -> None:
    """Refuse a torch zip file whose records declare more than it can plausibly hold.

    Each record (one tensor's storage, or the pickle) must declare at most
    `max_entry_bytes` (the largest tensor any accepted config has), and all of them
    together at most `max_ratio` times the file's size: torch stores tensors
    uncompressed, so a genuine file holds about its own size; a deflated record that
    inflates a thousandfold is a bomb. Files that are not zips (the legacy format) are
    read from the file as they are, bounded by its size, and pass unchecked unless they are
    not pickles at all. Anything but a regular file (a FIFO, a directory, a looping link)
    is refused before it is opened.
    """
    problem = what_is_wrong(path)  # a FIFO would block the zip reader's open forever
    if problem:
        raise FileProblem(f"{path.name} {problem}; not loaded")
    try:
        size = os.path.getsize(path)
        if not zipfile.is_zipfile(path):
            legacy = not_a_legacy_torch_file(path)
            if legacy:
                raise FileProblem(f"{path.name} cannot be loaded safely: {legacy}")
            return
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return  # torch.load will say what is wrong with it
    total = 0
    for info in infos:
        if info.file_size > max_entry_bytes:
            raise FileProblem(
                f"{path.name}: its record {info.filename!r} declares {info.file_size:,} bytes, "
                f"more than any tensor it should hold ({max_entry_bytes:,}); not loaded"
            )
        total += info.file_size
    if total > max(max_ratio * size, 64 << 20):
        raise FileProblem(
            f"{path.name}: its records declare {total:,} bytes in a file of {size:,} "
            "(a compressed bomb?); not loaded"
        )
    check_zip_records(path)


def not_a_legacy_torch_file(path: Path) -> str:
    """Why a file that is not a zip is not torch's older format either ('' if it may be):
    that format is a pickle (protocol 2 or later starts with 0x80). torch's own errors for
    other files are meaningless ("list index out of range" for a text file)."""
    head = read_regular_file(path, 2)
    if not head:
        return "the file is empty or truncated"
    if head[:1] != b"\x80":
        return "it is not a torch file (neither a zip archive nor a pickle)"
    return ""


def check_zip_records(path: Path, chunk: int = 1 << 20) -> None:
    """Refuse a zip whose records do not hold what its directory declares: torch reads
    a record up to its declared size without checking its CRC, so data that inflates to
    far more (or other bytes) than the header says would load as wrong tensors. Streams
    each record once (memory bounded by `chunk`); Python's zip reader stops at the
    declared size and checks the CRC there."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                got = 0
                try:
                    with archive.open(info) as record:
                        while data := record.read(chunk):
                            got += len(data)
                except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise FileProblem(_damaged_record(path, info.filename, reason)) from None
                except (NotImplementedError, RuntimeError) as exc:  # encrypted, odd methods
                    raise FileProblem(_damaged_record(path, info.filename, str(exc))) from None
                if got != info.file_size:
                    reason = f"it holds {got:,} bytes, not the {info.file_size:,} declared"
                    raise FileProblem(_damaged_record(path, info.filename, reason))
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return  # the directory itself: torch.load will say what is wrong with it


def _damaged_record(path: Path, record: str, reason: str) -> str:
    if reason.startswith("Bad CRC-32"):
        reason = "its data does not match its CRC-32 checksum"
    return f"{path.name}: its record {record!r} is damaged or forged ({reason[:120]}); not loaded"
