"""Make the sweep screenshots in screenshots/ from a real sweep.

Opens the sweep screen on a sweep directory (by default it trains one first: the quick
preset over weight decay x train fraction, two seeds each) and saves:
  - sweep.svg: the phase diagram and the member table;
  - sweep-cell.svg: the diagram's cursor on a cell, its members' curves beside it and the
    table showing those members (both at 160 columns);
  - compare.svg: `grok-tui compare` on three members, aligned by grok epoch.

    .venv/bin/python scripts/sweep_screenshots.py [--sweep DIR] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from grok_tui.engine.core.config import preset
from grok_tui.engine.lab.backends import train_sweep
from grok_tui.engine.lab.sweep import Sweep, SweepSpec
from grok_tui.engine.lab.sweep_status import SweepWatcher
from grok_tui.ui.app import make_compare_app, make_sweep_app
from grok_tui.ui.screens.sweep import SweepView

SIZE = (120, 40)
WIDE = (160, 44)  # the sweep screen draws the selected cell's curves beside the diagram


def make_sweep(path: Path) -> Sweep:
    spec = SweepSpec(
        preset("quick").replace(epochs=1500),
        {"weight_decay": [0.5, 1.0, 2.0, 4.0], "frac_train": [0.3, 0.4, 0.6], "seed": [0, 1]},
    )
    sweep = Sweep.create(path, spec, "cpu")
    train_sweep(sweep, "cpu")
    return sweep


async def shoot_sweep(sweep: Sweep, out: Path) -> None:
    app = make_sweep_app(sweep, "cpu", view=SweepView(sort="grok@"))
    async with app.run_test(size=WIDE) as pilot:
        await pilot.pause(0.5)
        await shoot(pilot, app, "sweep.svg", str(out))
        await pilot.press("d", "right", "up")
        await pilot.pause(0.3)
        await shoot(pilot, app, "sweep-cell.svg", str(out))
        await pilot.press("q")


def pick_members(sweep: Sweep) -> list[str]:
    """Three members that grokked at different times (earliest, middle, latest)."""
    watcher = SweepWatcher(sweep)
    watcher.poll()
    seed0 = [s for s in watcher.members.values() if s.values.get("seed", 0) == 0]
    grokked = sorted((s for s in seed0 if s.grokked_at is not None), key=lambda s: s.grokked_at)
    if len(grokked) < 3:
        return list(watcher.members)[:3]
    return [grokked[0].name, grokked[len(grokked) // 2].name, grokked[-1].name]


async def shoot_compare(sweep: Sweep, out: Path) -> None:
    runs = [sweep.member_run(n) for n in pick_members(sweep)]
    app = make_compare_app(runs, "cpu")
    async with app.run_test(size=SIZE) as pilot:
        session = app.screen.session
        for _ in range(1200):
            await pilot.pause(0.1)
            if not session.measuring and len(session.tables) == len(runs):
                break
        await pilot.press("a")
        await pilot.pause(0.5)
        await shoot(pilot, app, "compare.svg", str(out))
        await pilot.press("q")


async def shoot(pilot, app, filename: str, path: str) -> None:
    """Save the screen without toasts: a notice from one step must not cover the next shot."""
    app.clear_notifications()
    await pilot.pause(0.2)
    app.save_screenshot(filename=filename, path=path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--sweep", type=Path, help="an existing sweep directory")
    args = parser.parse_args()
    os.environ["COLORTERM"] = "truecolor"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sweep is not None and Sweep.is_sweep(args.sweep):
        sweep = Sweep.open(args.sweep)
    else:
        sweep = make_sweep(args.sweep or Path("runs") / "screenshot-sweep")
    asyncio.run(shoot_sweep(sweep, args.out))
    asyncio.run(shoot_compare(sweep, args.out))
    print(f"wrote sweep.svg, sweep-cell.svg, compare.svg to {args.out} from {sweep.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
