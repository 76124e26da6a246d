"""Prieto et al. 2025's central claim on this model: without weight decay, cross-entropy
stalls in softmax collapse, while StableMax or the orthogonal gradient (⊥Grad) groks.

Conditions, all from the same init and split (weight decay 0 unless named):

- `ce`: this project's cross-entropy (engine/core/loss.py: float32, but exact near zero
  loss, so its gradient survives a float32 softmax's collapse until exp underflows);
- `ce-f32`: a plain float32 `log_softmax` cross-entropy, the paper's float32 setting
  (`cross_entropy_float32` in their utils.py), here for the bench only: its gradient
  vanishes on every collapsed example;
- `stablemax`: `--loss stablemax` (theirs, float64);
- `orthograd`: `--orthogonal-grad` with cross-entropy;
- `both`: StableMax and ⊥Grad together;
- `ce-wd`: cross-entropy with the preset's weight decay, the usual grokking, for reference;
- `orthograd-paper`, `stablemax-paper`: the same with the optimiser of their transformer
  runs (run_main_experiments.sh, figure 6; utils.py defaults): lr 1e-3, beta2 0.99 and
  Adam's epsilon 1e-25 (this project's is torch's 1e-8; set here for the bench only).

Every `--every` epochs: train and test accuracy, train cross-entropy, and the numerical
measures of the train logits (engine/measures/numerics.py: softmax collapse share, zero-loss
share, logit gap quantiles). A run stops early once test accuracy has held >= 0.99 for
`--hold` epochs. The table gives the epoch each first reaches train accuracy 0.99 and test
accuracy 0.99, the last test accuracy and the numerical measures at the end.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/numerics.py --epochs 6000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from grok_tui.engine.core.config import RunConfig, preset
from grok_tui.engine.core.fastpath import last_logits, member_tables
from grok_tui.engine.core.loss import Segment, member_loss_and_accuracy
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.measures.numerics import numerical_measures
from grok_tui.engine.training import stepper as stepper_module
from grok_tui.engine.training.stepper import MemberState, Stepper

GROKKED_ACC = 0.99


def float32_log_softmax_loss(
    logits: torch.Tensor, labels: torch.Tensor, segments: list[Segment], stablemax: list[bool]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`member_training_loss` with the paper's plain float32 cross-entropy as the objective
    (one member per chunk: the bench trains one run at a time)."""
    assert len(segments) == 1 and segments[0][2] == len(labels)
    objective = -logits.float().log_softmax(-1).gather(1, labels[:, None]).mean()
    with torch.no_grad():
        loss, accuracy = member_loss_and_accuracy(logits, labels, segments)
    return objective, loss, accuracy


PAPER_ADAM_EPS = 1e-25  # their utils.py default (--adam_epsilon)


def train(name: str, cfg: RunConfig, epochs: int, every: int, hold: int) -> dict:
    original, original_eps = stepper_module.member_training_loss, stepper_module.ADAM_EPS
    if name == "ce-f32":
        stepper_module.member_training_loss = float32_log_softmax_loss
    if name.endswith("-paper"):
        stepper_module.ADAM_EPS = PAPER_ADAM_EPS
    try:
        st = Stepper([cfg], "cpu", [MemberState(0, paper_init(cfg))])
        rows, start, grokked_at = [], time.perf_counter(), None
        for epoch in range(epochs + 1):
            metrics = st.measure()[0].tolist()
            if epoch % every == 0 or epoch == epochs:
                rows.append(log_row(st, epoch, metrics, time.perf_counter() - start))
                print(name, json.dumps(rows[-1]), flush=True)
            if metrics[3] >= GROKKED_ACC and grokked_at is None:
                grokked_at = epoch
            if grokked_at is not None and epoch - grokked_at >= hold and epoch % every == 0:
                break
            if epoch < epochs:
                st.step()
    finally:
        stepper_module.member_training_loss = original
        stepper_module.ADAM_EPS = original_eps
    return {"name": name, "config": cfg.to_dict(), "rows": rows}


def log_row(st: Stepper, epoch: int, metrics: list[float], seconds: float) -> dict:
    cfg, ch = st.cfgs[0], st.chunks[0]
    with torch.no_grad():
        logits = last_logits(member_tables(st.weights(st.flat), cfg.p), ch.train_plan)
        numerics = numerical_measures(logits[:, : cfg.p], ch.train_labels)
        norm = float(st.flat.norm())
    return {
        "epoch": epoch,
        "train_loss": metrics[0],
        "test_loss": metrics[1],
        "train_acc": metrics[2],
        "test_acc": metrics[3],
        "weight_norm": norm,
        "seconds": round(seconds, 1),
        **numerics,
    }


def first(rows: list[dict], key: str) -> int | None:
    return next((r["epoch"] for r in rows if r[key] >= GROKKED_ACC), None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--p", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=6000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--hold", type=int, default=500)
    parser.add_argument("--only", help="comma-separated conditions")
    parser.add_argument("--out", type=Path, default=Path("bench/numerics_results.json"))
    parser.add_argument(
        "--summarise", nargs="+", type=Path, help="print the table of these logs (stdout of runs)"
    )
    args = parser.parse_args()
    if args.summarise:
        print_table([from_log(path) for path in args.summarise], args.epochs)
        return 0
    torch.set_num_threads(1)
    base = preset(args.preset).replace(weight_decay=0.0, epochs=args.epochs)
    if args.p is not None:
        base = base.replace(p=args.p)
    if args.lr is not None:
        base = base.replace(lr=args.lr)
    conditions = {
        "ce": base,
        "ce-f32": base,
        "stablemax": base.replace(loss="stablemax"),
        "orthograd": base.replace(orthogonal_grad=True),
        "both": base.replace(loss="stablemax", orthogonal_grad=True),
        "ce-wd": base.replace(weight_decay=preset(args.preset).weight_decay),
        "orthograd-paper": base.replace(orthogonal_grad=True, lr=1e-3, beta2=0.99),
        "stablemax-paper": base.replace(loss="stablemax", lr=1e-3, beta2=0.99),
    }
    if args.only:
        conditions = {k: v for k, v in conditions.items() if k in args.only.split(",")}
    results = []
    for name, cfg in conditions.items():
        results.append(train(name, cfg, args.epochs, args.every, args.hold))
        args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{args.preset} preset, p={base.p}, lr {base.lr:g}")
    print_table(results, args.epochs)
    return 0


def from_log(path: Path) -> dict:
    """A condition's result from its printed rows (a run stopped early keeps what it did)."""
    rows, name = [], ""
    for line in path.read_text().splitlines():
        head, _, rest = line.partition(" ")
        if rest.startswith("{"):
            name = head
            rows.append(json.loads(rest))
    wd = preset("quick").weight_decay if name == "ce-wd" else 0.0  # as `main` sets it
    return {"name": name, "config": {"weight_decay": wd}, "rows": rows}


def print_table(results: list[dict], epochs: int) -> None:
    print(f"{epochs} epochs at most")
    print("| condition | wd | train acc 99% | test acc 99% | last test acc | collapsed | "
          "zero loss | gap p10/p50/p90 | last epoch | s/epoch |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rows, last = r["rows"], r["rows"][-1]
        spe = last["seconds"] / max(last["epoch"], 1) * 1000
        gaps = "/".join(
            f"{last[k]:.1f}" for k in ("logit_gap_p10", "logit_gap_p50", "logit_gap_p90")
        )
        print(
            f"| {r['name']} | {r['config']['weight_decay']:g} | {first(rows, 'train_acc')} | "
            f"{first(rows, 'test_acc')} | {last['test_acc']:.3f} | "
            f"{last['softmax_collapse']:.2f} | {last['zero_loss']:.2f} | {gaps} | "
            f"{last['epoch']} | {spe:.1f} ms |"
        )


if __name__ == "__main__":
    sys.exit(main())
