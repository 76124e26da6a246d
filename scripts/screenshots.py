"""Make the SVG screenshots in screenshots/ from a real run.

Trains the quick preset (p=53) headless, then opens the app on it:
  - curves.svg: the first screen mid-training (the app resumes the run and trains live);
  - measures.svg, numerics.svg (the numerical view) and one SVG per analysis pane at the
    last checkpoint of the grokked run;
  - ablate.svg: the Ablate pane with the key frequencies removed, replayed over training;
  - llc.svg: the Curves pane's "learning coefficient" view, the LLC estimated first at
    every sixth checkpoint (`LLC_EVERY`; a few seconds each).

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--keep RUN_DIR]
    .venv/bin/python scripts/screenshots.py --run RUN_DIR   # a finished quick run, no training
    .venv/bin/python scripts/screenshots.py --only-ablation RUN_DIR [--out screenshots]
    .venv/bin/python scripts/screenshots.py --only-llc RUN_DIR [--out screenshots]

The third form shoots ablate.svg alone from a trained run (the first's --keep RUN_DIR); the
last shoots llc.svg alone from a run with LLC estimates (those it has: none is made).

With --run (a machine too busy to train the preset in reasonable time), the first screen
comes from a copy of that run cut at epoch 700 and viewed, not trained (the status bar
says so), and the panes from the run itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grok_tui.api import GrokRun
from grok_tui.engine.core.config import preset
from grok_tui.engine.measures.progress import progress_table
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import TrainControl, Trainer
from grok_tui.ui.app import GrokApp, make_run_app
from grok_tui.ui.panes.ablations import KINDS, AblationsPane
from grok_tui.ui.panes.curves import CurvesPane
from grok_tui.ui.screens.run import ANALYSIS_PANES
from grok_tui.ui.widgets.status_bar import StatusBar
from grok_tui.ui.widgets.timeline import CheckpointTimeline

SIZE = (120, 36)
LLC_EVERY = 6  # the checkpoints estimated for llc.svg: every sixth


async def shoot_first_screen(run: Run, out: Path) -> None:
    app = make_run_app(run, train=True, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        status = app.query_one(StatusBar)
        start = status.info.epoch or 0
        curves = app.query_one(CurvesPane)
        while (status.info.epoch or 0) < start + 150 or not curves.has_measures_drawn(3):
            await pilot.pause(0.1)
        await pilot.pause(1.2)  # the plots repaint on a 1 s timer
        await shoot(pilot, app, "curves.svg", str(out))
        await pilot.press("q")
        while not app.sessions[0].trainer_done.is_set():
            await pilot.pause(0.1)


def cut_copy(run: Run, dest: Path, epoch: int) -> Run:
    """A copy of `run` as it stood at `epoch`: later checkpoints, rows and measures gone,
    no resume state (it is viewed, not trained)."""
    shutil.copytree(run.path, dest)
    cut = Run.open(dest)
    for e in cut.checkpoint_epochs():
        if e > epoch:
            cut.checkpoint_path(e).unlink()
    cut.truncate_metrics(before_epoch=epoch + 1)
    cut.rewrite_measures([r for r in cut.read_measures() if r.get("epoch", 0) <= epoch])
    cut.resume_path.unlink(missing_ok=True)
    meta = json.loads(cut.meta_path.read_text())
    meta["status"] = "paused"
    cut.meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return cut


async def shoot_stopped_first_screen(run: Run, out: Path) -> None:
    app = make_run_app(run, train=False, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        await settle(pilot, app)
        await shoot(pilot, app, "curves.svg", str(out))
        await pilot.press("q")


async def settle(pilot, app: GrokApp, timeout: float = 60.0) -> None:
    """Wait until the panes show the selected checkpoint's snapshot."""
    timeline = app.query_one(CheckpointTimeline)
    for _ in range(int(timeout / 0.1)):
        snap = app.screen.snapshot
        if snap is not None and snap.epoch == timeline.selected:
            break
        await pilot.pause(0.1)
    await pilot.pause(0.8)  # plots repaint on a timer


async def shoot_panes(run: Run, out: Path) -> list[str]:
    """The grokked run at its last checkpoint: measures, then every analysis pane."""
    names = []
    app = make_run_app(run, train=False, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        await settle(pilot, app)  # and the measures plot (restricted, excluded loss) drawn
        await shoot(pilot, app, "measures.svg", str(out))
        names.append("measures.svg")
        curves = app.query_one(CurvesPane)
        while curves.view != "numerics":  # the numerical view (softmax collapse), by `m`
            await pilot.press("m")
        await pilot.pause(0.8)
        await shoot(pilot, app, "numerics.svg", str(out))
        names.append("numerics.svg")
        for key, (pane_id, _title, _cls) in enumerate(ANALYSIS_PANES, start=2):
            if pane_id == "ablate":
                continue  # shot with something ablated: shoot_ablation
            await pilot.press(str(key))
            await settle(pilot, app)
            await shoot(pilot, app, f"{pane_id}.svg", str(out))
            names.append(f"{pane_id}.svg")
        await pilot.press("q")
    return names


async def shoot_ablation(run: Run, out: Path) -> str:
    """The Ablate pane at the last checkpoint: every key frequency removed from the logits,
    the replay over training done (the ablated test loss leaves the intact one as the
    circuit forms)."""
    app = make_run_app(run, train=False, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        key = 2 + [pane_id for pane_id, _, _ in ANALYSIS_PANES].index("ablate")
        await pilot.press(str(key))
        await settle(pilot, app)
        pane = app.query_one(AblationsPane)
        await pilot.press(*["t"] * KINDS.index("key set"), "a")
        for _ in range(int(300 / 0.1)):  # the replay: one forward per checkpoint
            update = pane.update
            if update is not None and update.total and update.replay_done:
                break
            await pilot.pause(0.1)
        await pilot.pause(0.8)
        await shoot(pilot, app, "ablate.svg", str(out))
        await pilot.press("q")
    return "ablate.svg"


async def shoot_llc(run: Run, out: Path) -> str:
    """The Curves pane's learning-coefficient view at the last checkpoint, drawn from the
    estimates in the run's cache (the app's own LLC thread waits its first seconds, and
    each estimate takes longer than the shot)."""
    app = make_run_app(run, train=False, device="cpu")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("end")
        await settle(pilot, app)
        curves = app.query_one(CurvesPane)
        while curves.view != "learning coefficient":
            await pilot.press("m")
        await pilot.pause(1.2)  # the plots repaint on a 1 s timer
        await shoot(pilot, app, "llc.svg", str(out))
        await pilot.press("q")
    return "llc.svg"


def estimate_llc_sample(run: Run) -> None:
    """The LLC of every `LLC_EVERY`-th checkpoint and the last (cached in the run)."""
    epochs = run.checkpoint_epochs()
    GrokRun(run).llc(sorted({*epochs[::LLC_EVERY], epochs[-1]}))


async def shoot(pilot, app, filename: str, path: str) -> None:
    """Save the screen without toasts: a notice from one step must not cover the next shot."""
    app.clear_notifications()
    await pilot.pause(0.2)
    app.save_screenshot(filename=filename, path=path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    parser.add_argument("--keep", type=Path, help="keep the run here instead of a temp dir")
    parser.add_argument("--only-ablation", type=Path, help="shoot ablate.svg from this run")
    parser.add_argument("--only-llc", type=Path, help="shoot llc.svg from this run")
    parser.add_argument("--run", type=Path, help="a finished quick run: shoot it, train nothing")
    args = parser.parse_args()
    os.environ["COLORTERM"] = "truecolor"  # what a local terminal (or --truecolor) gives
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only_ablation:
        name = asyncio.run(shoot_ablation(Run.open(args.only_ablation), args.out))
        print(f"wrote {name} into {args.out}", file=sys.stderr)
        return 0
    if args.only_llc:
        name = asyncio.run(shoot_llc(Run.open(args.only_llc), args.out))
        print(f"wrote {name} into {args.out}", file=sys.stderr)
        return 0
    tmp = Path(tempfile.mkdtemp())
    if args.run is not None:
        run = Run.open(args.run)
        asyncio.run(shoot_stopped_first_screen(cut_copy(run, tmp / run.name, 700), args.out))
        progress_table(run)
        names = ["curves.svg", *asyncio.run(shoot_panes(run, args.out))]
        names.append(asyncio.run(shoot_ablation(run, args.out)))
        estimate_llc_sample(run)
        names.append(asyncio.run(shoot_llc(run, args.out)))
        print(f"wrote {', '.join(names)} into {args.out} from {run.path}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    run_dir = args.keep or tmp / "quick"
    run = Run.create(run_dir, preset("quick"), "cpu")
    # Mid-training, in the middle of the grokking gap: memorised, not yet general.
    Trainer(run, "cpu").train(TrainControl(stop_at=700))
    asyncio.run(shoot_first_screen(run, args.out))
    # Then the whole preset (grokked near epoch 1,000, cleaned up by 3,000) for the panes,
    # with the progress measures computed first so the app reads them from the cache.
    Trainer(run, "cpu").train()
    progress_table(run)
    names = ["curves.svg", *asyncio.run(shoot_panes(run, args.out))]
    names.append(asyncio.run(shoot_ablation(run, args.out)))
    estimate_llc_sample(run)
    names.append(asyncio.run(shoot_llc(run, args.out)))
    print(f"wrote {', '.join(names)} into {args.out} from {run_dir}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
