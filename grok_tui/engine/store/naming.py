"""Where runs and sweeps live: new directory names, and the runs under a directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


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


def iter_runs(root: Path) -> Iterator[Path]:
    """Run directories directly under root, newest first."""
    if not root.is_dir():
        return iter(())
    runs = [p for p in root.iterdir() if (p / "run.json").is_file()]
    return iter(sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True))
