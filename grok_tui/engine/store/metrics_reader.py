"""Following metrics.jsonl as another process appends to it, a few new rows at a time."""

from __future__ import annotations

import os
import stat

from grok_tui.engine.store.gaps import count_epochs, epoch_gaps, missing_rows_warning
from grok_tui.engine.store.rows import clean_metric_row
from grok_tui.engine.store.runs import Run
from grok_tui.engine.store.untrusted import describe_skipped, parse_jsonl, what_is_wrong


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
        self._gaps_said = False

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
            self._gaps_said = False  # and its gaps, which a resume keeps, said again
        self._inode = st.st_ino
        if not stat.S_ISREG(st.st_mode):
            self.problems.append(f"{self.run.metrics_path} {what_is_wrong(self.run.metrics_path)}")
            return [], reset
        # Reading from the start: listed before the read, every checkpoint has its rows.
        newest = self.run.newest_checkpoint_with_rows() if self.offset == 0 else None
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
        if newest is not None:
            gaps = epoch_gaps((int(r["epoch"]) for r in found.rows), self.run.rows_due(newest))
            unexplained = count_epochs(gaps) > len(found.skipped)  # by the bad lines named
            if unexplained and not self._gaps_said:
                self._gaps_said = True  # once per reader: a rewrite reads it all again
                self.problems.append(missing_rows_warning(self.run.metrics_path.name, gaps, newest))
        return found.rows, reset
