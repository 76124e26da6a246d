"""`grok-tui ablate`: a checkpoint's (or every checkpoint's) scores with parts ablated."""

from __future__ import annotations

import argparse
import json

from grok_tui.console.ablate import print_ablation
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.measures.ablate import Ablation, ablate_run, replay
from grok_tui.engine.store.runs import Run
from grok_tui.errors import UsageError


def int_list(option: str, text: str | None, empty: bool = False) -> tuple[int, ...] | None:
    """'3,17' -> (3, 17); None when the option was not given. An empty list ('' or ',')
    is an error unless `empty` (--keep-freqs '': keep none, the mean alone): asked to
    ablate, a list that names nothing is a slip, not a request for no ablation."""
    if text is None:
        return None
    try:
        got = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a list of integers (e.g. 3,17)") from None
    if not got and not empty:
        raise UsageError(f"{option}: {text!r} names nothing to ablate (e.g. 3,17)")
    return got


def epoch_arg(text: str | None) -> int | str | None:
    """None (the newest), 'all', or an epoch."""
    if text is None or text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--epoch: {text!r} is neither an epoch nor 'all'") from None


def spec_from_args(args: argparse.Namespace) -> Ablation:
    return Ablation.of(
        heads=int_list("--heads", args.heads) or (),
        neurons=int_list("--neurons", args.neurons) or (),
        clusters=int_list("--clusters", args.clusters) or (),
        freqs=int_list("--freqs", args.freqs) or (),
        keep_freqs=int_list("--keep-freqs", args.keep_freqs, empty=True),
        mode=args.mode,
    )


def cmd_ablate(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    epoch = epoch_arg(args.epoch)
    run = Run.open_to_read(args.run)
    spec.check(run.meta().config)  # before any forward: a bad head is an error at once
    device = resolve_device(args.device)
    if epoch == "all":
        results = replay(run, spec, device)
        if args.json:
            print(json.dumps([r.as_dict() for r in results], allow_nan=False))
        else:
            print_ablation([r.as_dict() for r in results])
        return 0
    result = ablate_run(run, spec, epoch if isinstance(epoch, int) else None, device)
    if args.json:
        print(json.dumps(result.as_dict(), allow_nan=False))
    else:
        print_ablation([result.as_dict()])
    return 0
