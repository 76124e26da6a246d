"""The fixed cost of a training epoch: aten calls per epoch, by kind, and CPU time.

A loaded machine moves the wall clock (and even the CPU time) of an epoch from one block to
the next; the number of aten calls an epoch makes does not move at all. Each call costs the
dispatcher and Python a few microseconds whatever its size, so on small models (the quick
preset, p = 53) the count is most of what is not arithmetic: it is this benchmark's
primary figure, counted with a `TorchDispatchMode` over one epoch (`Stepper.measure()` and
`Stepper.step()`, as the Trainer runs them), after torch's composite ops have decomposed,
so views, slices and reshapes count as the calls they are.

Beside it, CPU time per epoch (`time.process_time`, one torch thread unless told), in
alternating blocks of every variant, median over blocks. `--baseline REV` adds the epoch of
another commit: its `closed_form.py` and `stepper.py`, read with `git show` into modules of
their own (the rest of the package is this tree's), so an old and a new step run in one
process on the same weights without the old code staying in the package.

    .venv/bin/python bench/train_calls.py --preset quick --baseline 58d7988
    .venv/bin/python bench/train_calls.py --preset paper --baseline 58d7988 --epochs 10

The CPU model and the load average (before and after) are printed beside the figures.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.training.stepper import MemberState, Stepper
from grok_tui.engine.training.train import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from train_speed import cpu_model, load  # noqa: E402  (the same context as its figures)

TINY = RunConfig(p=7, frac_train=0.5, d_model=16, n_heads=2, d_head=8, d_mlp=32, preset="t")


class CallCounter(TorchDispatchMode):
    """Every aten call below autograd, by overload packet name and by kind: a view (aliases
    its input), an in-place or out= call (writes a tensor it was given), or a new tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.names: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        self.names[func.overloadpacket.__name__] += 1
        schema = func._schema
        if func.is_view:
            kind = "view"
        elif any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments):
            kind = "in place / out="
        else:
            kind = "new tensor"
        self.kinds[kind] += 1
        return func(*args, **kwargs)


def git_module(rev: str, path: str, name: str, replace: dict[str, str]) -> ModuleType:
    """The module at `path` as of commit `rev`, imported under `name` (imports renamed by
    `replace` first), without touching the working tree."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    for old, new in replace.items():
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def baseline_stepper_class(rev: str) -> Any:
    """`Stepper` as of `rev`, with that commit's closed-form step."""
    closed = "grok_tui.engine.core.closed_form"
    git_module(rev, "grok_tui/engine/core/closed_form.py", "_baseline_closed_form", {})
    stepper = git_module(
        rev,
        "grok_tui/engine/training/stepper.py",
        "_baseline_stepper",
        {f"from {closed} import": "from _baseline_closed_form import"},
    )
    return stepper.Stepper


def epoch(stepper: Any) -> None:
    """The Trainer's epoch without its I/O: metrics of W_e, then the step."""
    stepper.measure()
    stepper.step()


def count_calls(stepper: Any) -> CallCounter:
    with CallCounter() as counter:
        epoch(stepper)
    return counter


def cpu_ms(stepper: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        epoch(stepper)
    return 1e3 * (time.process_time() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="quick", help="paper, quick or tiny (p = 7)")
    parser.add_argument("--baseline", help="a commit whose step runs beside this tree's")
    parser.add_argument("--epochs", type=int, default=0, help="epochs per block (0: by preset)")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=12, help="call names listed per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    cfg = {"paper": RunConfig(), "tiny": TINY}.get(args.preset) or preset(args.preset)
    epochs = args.epochs or {"paper": 10, "quick": 40}.get(args.preset, 200)
    classes = {"this tree": Stepper}
    if args.baseline:
        classes = {f"baseline {args.baseline}": baseline_stepper_class(args.baseline), **classes}
    steppers = {
        name: cls([cfg], "cpu", [MemberState(0, paper_init(cfg))]) for name, cls in classes.items()
    }
    load_before = load()
    counts = {}
    for name, stepper in steppers.items():
        for _ in range(3):  # warm-up: buffers allocated, caches filled
            epoch(stepper)
        counts[name] = count_calls(stepper)
    ms: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.blocks):
        for name, stepper in steppers.items():
            ms[name].append(cpu_ms(stepper, epochs))
    print(f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"{args.preset} (p = {cfg.p}); {load_before} before, {load()} after")
    for name in steppers:
        c, times = counts[name], ms[name]
        kinds = ", ".join(f"{k} {v}" for k, v in c.kinds.most_common())
        print(f"\n{name}: {sum(c.names.values())} aten calls per epoch ({kinds})")
        print("  " + ", ".join(f"{k} {v}" for k, v in c.names.most_common(args.top)))
        spread = f"min {min(times):.2f}, max {max(times):.2f}"
        print(f"  CPU time {statistics.median(times):.2f} ms/epoch (median of {args.blocks} "
              f"blocks of {epochs}; {spread})")  # fmt: skip
    if args.baseline:
        old, new = ms[f"baseline {args.baseline}"], ms["this tree"]
        ratios = [o / n for o, n in zip(old, new, strict=True)]
        print(f"\nbaseline / this tree, CPU time per epoch: {statistics.median(ratios):.2f}x "
              f"(per block: min {min(ratios):.2f}x, max {max(ratios):.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
