"""Training without the UI: a rich progress bar on stderr and a one-line summary.

Progress measures are recorded as each checkpoint is written, by the same low-priority
background service the app uses (a viewer that follows the run then finds them cached),
and the bar shows the phase the run is in and the grok forecast.

When the measures cannot be written (say measures.jsonl is not a file), that is one
line (again only if they recover, then fail anew) and training goes on: the exit status
stays 0, because the run itself (checkpoints, metrics, resume state) is whole and the
measures are a cache that `analyze` or a viewer recomputes. At the end the front end
waits only while the service still has work it can do (the last checkpoints), never for
an idle, failed or n/a one.
"""

from __future__ import annotations

import math
import shlex
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from grok_tui.console.plain_log import PlainProgress, console_writer
from grok_tui.engine.measures.forecast import GROKKED_ACC, Forecast, first_grokked
from grok_tui.engine.measures.llc_service import TRAINING_SHARE, LLCService
from grok_tui.engine.measures.services import ProgressService, ProgressUpdate
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import CheckpointSaved, Finished, TrainControl, Trainer
from grok_tui.engine.training.train import Progress as TrainProgress

DRAIN_S = 120.0  # at the end of a run, the longest wait for its last measures


def extend_hint(path: object, budget: int, test_acc: float, forecast: Forecast | None) -> str:
    """What to run when a run's budget ended before it grokked ('' when it grokked): with a
    forecast past the budget, enough epochs for its interval's high end (in hundreds);
    without one, the budget once more (100 after a budget of 0, which is legal)."""
    if not test_acc < GROKKED_ACC:  # grokked (or no row at all: NaN says nothing)
        return ""
    said = ""
    more = budget or 100
    if forecast is not None and forecast.grok_epoch is not None and not forecast.observed:
        said = f"; the forecast says {forecast.describe().removeprefix('groks ')}"
        high = forecast.high if forecast.high is not None else forecast.grok_epoch
        if high > budget:
            more = 100 * math.ceil((high - budget) / 100)
    return (
        f"not grokked within its {budget:,} epochs (test accuracy {test_acc:.1%}){said}; "
        f"train on with: grok-tui open {shlex.quote(str(path))} --resume --extend {more}"
    )


def fmt_loss(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3e}"


def forecast_words(forecast: Forecast, grokked: int | None) -> str:
    """The forecast in words; once the run has grokked, the epoch the metrics saw (every
    epoch) rather than the first checkpoint past it: the app and `analyze` say the same."""
    if forecast.observed and grokked is not None:
        return f"grokked at {grokked:,}"
    return forecast.describe()


def describe_time(epochs: int, train_s: float, elapsed_s: float) -> str:
    """'46 s training (54.3 epochs/s), 47 s in all': the speed is the training loop's (the
    metrics' wall_s), not slowed by start-up or by waiting for the last measures."""
    speed = max(epochs, 0) / train_s if train_s > 0 else 0.0
    return f"{train_s:.0f} s training ({speed:.1f} epochs/s), {elapsed_s:.0f} s in all"


@contextmanager
def stop_on_signals(control: TrainControl) -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP ask the loop to save a checkpoint and stop."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        received.append(signum)
        control.request_stop()

    sigs = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        sigs.append(signal.SIGHUP)
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train_headless(
    run: Run, device: str | None, console: Console | None = None, measures: bool = True
) -> int:
    """Train a run to the end (or a signal); return the process exit code."""
    console = console or Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("train {task.fields[train]}  test {task.fields[test]}  acc {task.fields[acc]}"),
        TextColumn("{task.fields[speed]} ep/s"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[outlook]}"),
    )
    control = TrainControl()
    last: dict[str, float] = {}
    forecast: list[Forecast] = []  # the newest, for the hint at the end
    grokked: list[int] = []  # `first_grokked` of the rows, once known (rows have every epoch)
    started = time.perf_counter()
    # Not a terminal (a log file): plain lines at a steady interval instead of the bar.
    plain = None if console.is_terminal else PlainProgress(console_writer(console), name=run.name)
    with Progress(*columns, console=console, transient=False, disable=plain is not None) as bar:
        task = bar.add_task(run.name, total=run.meta().config.epochs, train="-", test="-",
                            acc="-", speed="-", outlook="")  # fmt: skip
        service = None
        llc = None
        if measures:
            failing = [False]  # said why the measures fail, and they have not recovered

            def on_measures(update: ProgressUpdate) -> None:
                if update.outlook is not None:
                    failing[0] = False
                    o = update.outlook
                    forecast[:] = [o.forecast]
                    said = forecast_words(o.forecast, grokked[0] if grokked else None)
                    bar.update(task, outlook=f"{o.describe_phase()}; {said}")
                    if plain is not None:
                        plain.outlook(f"phase {o.describe_phase()}; {said}")
                elif update.note:
                    bar.update(task, outlook=update.note)
                    if plain is not None:
                        plain.outlook(update.note)
                elif update.error and not failing[0]:
                    failing[0] = True  # one line: the service tries (and fails) at each poke
                    bar.console.print(
                        f"[yellow]progress measures not recorded: {escape(update.error)}[/]",
                        highlight=False,
                        soft_wrap=True,
                    )

            service = ProgressService(run, device or "cpu", on_measures)
            # The learning coefficient, at a small share of the time while training; what
            # is not estimated when training ends is left to a viewer or `run.llc()`.
            llc = LLCService(run, device or "cpu", service.add_llc, share=TRAINING_SHARE)

        def on_event(event: object) -> None:
            if isinstance(event, TrainProgress) and event.rows:
                row = event.rows[-1]
                last.update(row)
                if not grokked and (seen := first_grokked(event.rows)) is not None:
                    grokked.append(seen)
                bar.update(
                    task,
                    completed=row["epoch"],
                    train=fmt_loss(row["train_loss"]),
                    test=fmt_loss(row["test_loss"]),
                    acc=f"{row['test_acc']:.1%}",
                    speed=f"{event.epochs_per_s:.0f}",
                )
                if plain is not None:
                    plain.row(row, event.total_epochs, event.epochs_per_s)
            elif isinstance(event, CheckpointSaved) and service is not None:
                service.poke()
                if llc is not None:
                    llc.poke()

        trainer = Trainer(run, device, on_event)
        start_epoch, start_wall = trainer.epoch, trainer.wall_s
        if start_epoch > 0 and not grokked:  # resumed: it may have grokked before. Read
            seen = first_grokked(run.read_metrics())  # after the resume's repair
            grokked.extend([] if seen is None else [seen])
        bar.update(task, completed=start_epoch)
        result = Finished("failed", trainer.epoch, "interrupted")
        received: list[int] = []
        try:
            with stop_on_signals(control) as received:
                result: Finished = trainer.train(control)
        finally:
            if llc is not None:
                llc.stop()  # the estimate in flight is dropped within a few steps
            if service is not None:
                if result.status == "done" and not received:
                    bar.update(task, outlook="measuring the last checkpoints…")
                    if plain is not None:
                        plain.finish()
                        plain.write(f"{run.name}: measuring the last checkpoints...")
                    if not service.drain(timeout=DRAIN_S):
                        bar.console.print(
                            f"[yellow]progress measures of the last checkpoints not finished "
                            f"after {DRAIN_S:.0f} s: analyze or a viewer computes them[/]",
                            highlight=False,
                            soft_wrap=True,
                        )
                service.stop()  # it finishes the checkpoint in hand, then stops
                service.join()
            if llc is not None:
                llc.join()
            if plain is not None:
                plain.finish()  # the newest row, with the phase and forecast now known
    elapsed = time.perf_counter() - started
    summary = (
        f"{result.status}: epoch {result.epoch}/{trainer.cfg.epochs}, "
        f"train loss {fmt_loss(last.get('train_loss', math.nan))}, "
        f"test loss {fmt_loss(last.get('test_loss', math.nan))}, "
        f"test acc {last.get('test_acc', math.nan):.1%}, "
        f"{describe_time(result.epoch - start_epoch, trainer.wall_s - start_wall, elapsed)} "
        f"on {trainer.device} -> {run.path}"
    )
    if result.status == "failed":
        console.print(f"[red]{summary}[/]\n{result.message}", highlight=False, soft_wrap=True)
        return 1
    if received:
        console.print(
            f"{summary}\nstopped by signal; continue with: grok-tui open "
            f"{shlex.quote(str(run.path))} --resume",
            highlight=False,
            soft_wrap=True,
        )
        return 130
    console.print(summary, highlight=False, soft_wrap=True)
    if result.status == "done" and result.epoch >= trainer.cfg.epochs:
        if not last:  # nothing left to train (resumed at its budget): its last row
            rows = run.read_metrics()
            last = rows[-1] if rows else {}
        hint = extend_hint(run.path, trainer.cfg.epochs, last.get("test_acc", math.nan),
                           forecast[0] if forecast else None)  # fmt: skip
        if hint:
            console.print(hint, highlight=False, soft_wrap=True)
    return 0
