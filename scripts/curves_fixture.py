"""Write a run's progress-measure curves as a small JSON fixture (tests/data/).

    .venv/bin/python scripts/curves_fixture.py RUN OUT.json [--upto EPOCH]

The curves are the ones the phase detector and the forecast read, at every checkpoint,
with the key set the run had adopted by its last checkpoint (its excluded losses computed
where missing). Numbers are rounded to 6 significant digits to keep the file small.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run

# gini_W_E / gini_W_L are the paper's (per component); the fixtures in tests/data were
# recorded when they were the per-frequency ones, now gini_W_E_freq / gini_W_L_freq.
CURVES = ("train_loss", "test_loss", "test_acc", "excluded_loss", "restricted_loss",
          "sum_sq_weights", "gini_W_E", "gini_W_L", "gini_W_E_freq", "gini_W_L_freq",
          "xy_share_logits")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--upto", type=int)
    args = parser.parse_args()
    run = Run.open(args.run)
    tracker = ProgressTracker(run)
    tracker.update()
    tracker.fill_excluded()
    table = tracker.table(upto=args.upto)
    grok = next((int(r["epoch"]) for r in run.read_metrics() if r["test_acc"] >= 0.99), None)
    cfg = run.meta().config
    data = {
        "source": f"{run.path.name}: grok-tui train --headless --p {cfg.p} --frac-train "
        f"{cfg.frac_train} --lr {cfg.lr} --weight-decay {cfg.weight_decay} --seed {cfg.seed} "
        f"--data-seed {cfg.data_seed} --checkpoint-every {cfg.checkpoint_every}",
        "grok_epoch": grok,
        "key_freqs": list(table.key_freqs),
        "key_history": table.key_history.to_json(),
        "epochs": table.epochs.tolist(),
        "curves": {
            name: [None if v != v else float(f"{v:.6g}") for v in table[name].tolist()]
            for name in CURVES
        },
    }
    args.out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}: {len(table)} checkpoints, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
