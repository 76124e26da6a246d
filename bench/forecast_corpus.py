"""The forecast's corpus: train it with the project's own lab, then read each run's curves.

    export OMP_NUM_THREADS=1
    .venv/bin/python bench/forecast_corpus.py all --set corpus held   # train, then extract
    .venv/bin/python bench/forecast_refit.py    # fit + conformal on the corpus -> constants
    .venv/bin/python bench/forecast_judge.py    # the held-out runs against issue 19's goals

(`train` or `extract` alone; `--root DIR`, default /work/corpus-forecast.)

The features (not the runs: those are gigabytes) are kept in the repository, so the refit
and the judge run on a fresh machine in seconds, without training anything:

    .venv/bin/python bench/forecast_corpus.py unpack    # bench/forecast_data -> ROOT/SET
    .venv/bin/python bench/forecast_corpus.py pack      # ROOT/SET -> bench/forecast_data

`unpack` writes ROOT/SET/features.jsonl only where there is none; a later `extract`
appends to it the trained runs it lacks.

`train` runs `grok-tui sweep --headless` once per sweep of the plan below (one process at a
time, one torch thread), into ROOT/SET/NAME (a finished sweep is skipped, a killed one
resumed). `extract` steps every member run's outlook as a live viewer would
(engine/measures/asof.py: the memorisation end announced as of each checkpoint) and writes
ROOT/SET/features.jsonl: one line a run with its config, its budget (epochs), its grok
epoch (first epoch of metrics.jsonl with test accuracy >= 99%, or null) and, per checkpoint,
the x + y share of the logits, test accuracy, the memorisation end known then and the
phases shown then. The refit and the judge read only these files.

A `train ...` entry of the plan is one `grok-tui train --headless` run (ROOT/SET/NAME/
members/run), for a recipe a sweep does not batch well (the paper's, ~10k epochs).

The corpus (`corpus`) and the held-out runs (`held`) were planned before any was trained:
the held-out runs use other p (41, 53, 59, and 113 with the paper model), other seeds and
data seeds, and are never read by the refit. The corpus was add and subtract (c1, c4); c5-c8
(added for the second fit) bring multiply and divide, p = 31, 67 and 71, and a checkpoint
every 10 epochs. The held-out runs h6-h8 (added after the first judgement, never read by
the refit either) are the paper recipe and multiply and subtract on p = 47 and 61.
Deterministic for one engine and one CPU instruction set (fixed seeds, one thread, CPU):
the training step's float32 rounding changed with its rewrites (runs trained before
2026-12-03 10:31 come out 1-12% apart in grok epoch from today's engine; MKL limited to
AVX2 moves a run from epoch 0). Both sets were trained again with one engine on
2026-12-03 (held-out at c635301, the corpus at 345ea08; h1 trained with the latter equals
the former bit for bit): bench/RESULTS.md, "Reproducing the held-out judgement" and
"Sixth fit".
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEFAULT_ROOT = Path("/work/corpus-forecast")

# One sweep per entry: name, then `grok-tui sweep` options (on the quick preset unless named).
PLAN: dict[str, list[tuple[str, str]]] = {
    "corpus": [
        ("c1", "--p 37,43 --frac-train 0.5,0.6 --weight-decay 1,2 --op add,subtract "
               "--seed 0 --data-seed 0"),
        ("c4", "--p 43 --frac-train 0.55 --weight-decay 1.5 --lr 0.002 --op add,subtract "
               "--seed 3 --data-seed 3"),
        # Added for issue 19 item 3's second fit (before it; none of the held-out runs'
        # numbers were looked at for these): multiply and divide, which c1/c4 lack, and a
        # larger p (67, no held-out run has it) at a lower train fraction, the way the paper
        # recipe is slower; a checkpoint every 10 epochs, so that the first stretch after
        # memorisation (where the forecast now speaks) has cases to calibrate on.
        ("c5", "--p 37,43 --frac-train 0.6 --weight-decay 2 --op multiply,divide "
               "--seed 1 --data-seed 1 --checkpoint-every 10"),
        ("c6", "--p 67 --frac-train 0.4 --weight-decay 2 --op add,multiply "
               "--seed 2 --data-seed 2 --epochs 1500 --checkpoint-every 10"),
        # c5 took ~4 minutes, so two more (planned before any fit, as the rest): every op
        # at a small p, and add and multiply at p = 71.
        ("c7", "--p 31 --frac-train 0.5 --weight-decay 1.5 --op add,subtract,multiply,divide "
               "--seed 4 --data-seed 4 --checkpoint-every 10"),
        ("c8", "--p 71 --frac-train 0.4 --weight-decay 2 --op add,multiply "
               "--seed 15 --data-seed 15 --epochs 1200 --checkpoint-every 10"),
        # Added for issue 19 item 3's third fit (forecast4; before it, and before h10 was
        # planned): the paper recipe's learning rate (1e-3) with the quick model at p = 59
        # and 67: slower runs, as the paper recipe is, which the corpus lacked. Train
        # fraction 0.3 (the paper's) was tried first (weight decay 1 and 2, 5,000 epochs) and
        # stopped at 3,556: at p = 59 the test loss was still at 20-22 of its peak 22-24,
        # test accuracy 6% (1,044 training pairs: far slower than the paper's 3,830 at
        # p = 113); kept in ROOT/abandoned/forecast4-c9-frac0.3, not in the corpus. Then
        # train fraction 0.5, weight decay 2 (add, multiply; 3,000 epochs): p = 59 grokked
        # at ~600, so it was stopped at 800 to save the budget for slower runs
        # (ROOT/abandoned/forecast4-c9-frac0.5-wd2). Now the paper's weight decay too (1).
        ("c9", "--p 59,67 --frac-train 0.4,0.5 --weight-decay 1 --lr 0.001 --op add "
               "--seed 17 --data-seed 12 --epochs 2500 --checkpoint-every 25"),
        # Added for issue 19 item 3's fourth fit (forecast5; before it, and before h11 was
        # planned): every op at p = 83 (no run has it), a checkpoint every 10 epochs,
        # so that the first half of the way to grokking (where the 50% forecast speaks) has
        # more cases.
        ("c10", "--p 83 --frac-train 0.4 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 21 --data-seed 17 --epochs 1500 --checkpoint-every 10"),
        # Added 2026-12-04 for a seventh fit (not made yet), after h15 was judged: the corpus
        # stops at p = 83 and the two held-out runs the forecast was silent on at 65% of the
        # way are at p = 101 and 109. Every prime from 89 to 113 is a held-out run's, so the
        # corpus goes past them (p = 127, 131) and the held-out p lie between its own. Not
        # read by the shipped constants until a refit; a refit needs fresh held-out runs
        # planned after it to be judged.
        ("c11", "--p 127 --frac-train 0.4 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 30 --data-seed 26 --epochs 1500 --checkpoint-every 10"),
        ("c11b", "--p 131 --frac-train 0.3 --weight-decay 1 --lr 0.002 --op add,multiply "
                 "--seed 31 --data-seed 27 --epochs 2500 --checkpoint-every 25"),
        # Added 2026-12-04 (a new session) after the sixth fit was judged on h16/h16b (p = 113
        # and 137: its 80% intervals held the truth 9 times in 17): the corpus' grokking runs
        # are 27 at p <= 83 and 5 above, so its residuals are those of small p. Every op at
        # p = 139 and 149 (no run has either), for a seventh fit; fresh held-out runs
        # planned after that fit judge it.
        ("c12", "--p 149 --frac-train 0.35 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 35 --data-seed 31 --epochs 2000"),
        ("c12b", "--p 139 --frac-train 0.4 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 36 --data-seed 32 --epochs 2500 --checkpoint-every 25"),
        # Added 2026-12-04 (evening session) before any fit of this session: the corpus'
        # never-grokking runs are all at p <= 131, so a forecast fitted on it has not seen
        # how a large-p run that will not grok within its budget looks (h17/opdivide, p =
        # 107, ended at 91.4% with a forecast within budget). p = 163 (no run has it) at
        # train fractions 0.2 and 0.3 with the paper's lr and weight decay: likely not to
        # grok within 1,500 epochs, some perhaps to come near.
        ("c13", "--p 163 --frac-train 0.2,0.3 --weight-decay 1 --lr 0.001 --op add,multiply "
                "--seed 39 --data-seed 35 --epochs 1500 --checkpoint-every 25"),
        # Added 2026-12-04 evening after the candidate eighth fit (c765977: the forecast may
        # start where the train set was memorised, share_rise 0.5, kept on the corpus with
        # 4 false alarms of 16, as without) was judged on the held-out runs h1-h17b (never
        # used to choose it): 12 false alarms of 25 (the seventh fit: 4), on runs whose
        # share rises for a while without grokking within the budget (train fractions
        # 0.2-0.25 at p = 59-103, subtract at 0.4). The corpus' never-grokking runs mostly
        # lack that rise, so its rule could not see the cost. Runs like those at corpus
        # primes (the held-out runs themselves stay out), new seeds: every op at p = 67 with
        # train fraction 0.2 and weight decay 1 and 2, every op at p = 127 with 0.25.
        ("c14", "--p 67 --frac-train 0.2 --weight-decay 1,2 --op add,subtract,multiply,divide "
                "--seed 42 --data-seed 38 --epochs 1500"),
        ("c14b", "--p 127 --frac-train 0.25 --weight-decay 1.5 "
                 "--op add,subtract,multiply,divide --seed 43 --data-seed 39 --epochs 1500"),
        # Added 2026-12-04 night after the tenth fit was judged on fresh runs (h20: every op
        # at p = 167, fraction 0.45, grokked at 156-373, the two fastest with test accuracy
        # at 60-83% before their train set was memorised, so the forecast had no start at
        # 65% of their way). The corpus' fastest runs grok at 197 and 267, after a delay:
        # it has no run that generalises while it memorises, so no start for one can be
        # chosen on it. Such runs at corpus primes, new seeds: every op at p = 149 with
        # train fraction 0.45, every op at p = 131 with 0.5.
        ("c15", "--p 149 --frac-train 0.45 --weight-decay 1.5 "
                "--op add,subtract,multiply,divide --seed 50 --data-seed 46 --epochs 1000"),
        ("c15b", "--p 131 --frac-train 0.5 --weight-decay 1.5 "
                 "--op add,subtract,multiply,divide --seed 51 --data-seed 47 --epochs 1000"),
    ],
    "held": [
        ("h1", "--p 41 --frac-train 0.5,0.6 --weight-decay 1.5 --lr 0.004 --op add,subtract "
               "--seed 7 --data-seed 5"),
        ("h2", "--p 53 --frac-train 0.4 --weight-decay 2 --op add,subtract "
               "--seed 8 --data-seed 6 --epochs 1200"),
        ("h4", "--p 41 --frac-train 0.3 --weight-decay 1 --op add,subtract "
               "--seed 11 --data-seed 8"),
        ("h3", "--p 59 --frac-train 0.45 --weight-decay 1.5 --op add,subtract "
               "--seed 10 --data-seed 7"),
        ("h5", "--preset paper --frac-train 0.4 --weight-decay 2 --epochs 800 "
               "--checkpoint-every 20 --seed 12"),
        # Added after the first judgement (issue 19 asks for the paper recipe and two ops
        # besides add in the held-out set; none of these is read by the refit): the paper
        # recipe itself (p = 113, 30% train, wd 1, lr 1e-3; a seed the phases were not
        # designed on), then multiply and subtract on a p no run of the corpus has.
        ("h6", "train --preset paper --epochs 14000 --seed 1"),
        ("h7", "--p 47 --frac-train 0.6 --weight-decay 2 --op multiply,subtract "
               "--seed 13 --data-seed 9 --epochs 1500"),
        ("h8", "--p 61 --frac-train 0.5 --weight-decay 2 --op multiply,subtract "
               "--seed 14 --data-seed 10 --epochs 2000"),
        # Added after h1-h8 were judged with the second fit's constants (forecast3), to judge
        # those same, unchanged constants on more fresh runs: every op at p = 53.
        ("h9", "--p 53 --frac-train 0.5 --weight-decay 1.5 --op add,subtract,multiply,divide "
               "--seed 16 --data-seed 11 --epochs 1500"),
        # Planned after the third fit's constants were committed (forecast4), trained after
        # them, judged once: every op at p = 73, and the paper's learning rate and weight
        # decay (1e-3, 1) with add and multiply at p = 79; no corpus or held-out run has
        # either p, these seeds or data seeds.
        ("h10", "--p 73 --frac-train 0.45 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 18 --data-seed 13 --epochs 2000"),
        ("h10b", "--p 79 --frac-train 0.5 --weight-decay 1 --lr 0.001 --op add,multiply "
                 "--seed 19 --data-seed 14 --epochs 2500 --checkpoint-every 25"),
        # Planned after the fourth fit's constants were committed (forecast5, 297f169),
        # trained after them, judged once: add, subtract and multiply at p = 89; no corpus or
        # held-out run has this p, these seeds or data seeds.
        ("h11", "--p 89 --frac-train 0.5 --weight-decay 1.5 --op add,subtract,multiply "
                "--seed 22 --data-seed 18 --epochs 1500"),
        # Planned after the fifth fit's constants were committed (forecast6, ce426be),
        # trained after them, judged once: every op at p = 97, and (h12b) one run likely never
        # to grok within its budget (train fraction 0.2), for the false-alarm goal; no corpus
        # or held-out run has this p, these seeds or data seeds.
        ("h12", "--p 97 --frac-train 0.5 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 23 --data-seed 19 --epochs 1500"),
        ("h12b", "--p 97 --frac-train 0.2 --weight-decay 1.5 --op add "
                 "--seed 23 --data-seed 19 --epochs 1500"),
        # Planned after the sixth fit's constants were committed (810f51b), trained after
        # them, judged once: more runs likely never to grok within their budget (train
        # fraction 0.2) for the false-alarm goal, which 9 such runs could not judge to 5%,
        # beside some that will; p = 107 (the paper's width, no run has it) and p = 59 with
        # every op; no corpus or held-out run has these seeds or data seeds.
        ("h13", "--p 107 --frac-train 0.2,0.3 --weight-decay 1.5 --op add,multiply "
                "--seed 24 --data-seed 20 --epochs 1500"),
        ("h13b", "--p 59 --frac-train 0.2 --weight-decay 1,2 --op add,subtract,multiply,divide "
                 "--seed 25 --data-seed 21 --epochs 1500"),
        # Planned 2026-12-04 with the sixth fit's constants unchanged (shipped since 810f51b),
        # trained after this plan was committed, judged once: runs likely to end their budget
        # *near* grokking, the hard case for the false-alarm goal (h13's never-grokking runs
        # ended at 0.3-5.8% test accuracy; the one false alarm so far, h12/opdivide, at
        # 98.4%): every op at p = 103 (no run has it) with train fraction 0.25, between
        # p = 107's 0.2 (never within 1,500) and 0.3 (grokked at 901 and 1,096); and the paper
        # recipe with its budget cut at 4,000 epochs (h6, seed 1, grokked at 5,937); new
        # seeds and data seeds.
        ("h14", "--p 103 --frac-train 0.25 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 27 --data-seed 23 --epochs 1500"),
        ("h14b", "train --preset paper --epochs 4000 --seed 2"),
        # Planned 2026-12-04 after h14 was judged, the sixth fit's constants still unchanged,
        # trained after this plan was committed, judged once: runs likely to grok, because
        # the runs planned after the sixth fit (h13-h14b, 17) hold only 2 that grokked, too
        # few to judge its errors and intervals on runs that played no part in any fit's
        # design. Every op at p = 109, and add and subtract at p = 101 with a learning rate
        # no run has (2e-3) and the paper's weight decay; no run has these p or seeds.
        ("h15", "--p 109 --frac-train 0.4 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 28 --data-seed 24 --epochs 1500"),
        ("h15b", "--p 101 --frac-train 0.5 --weight-decay 1 --lr 0.002 --op add,subtract "
                 "--seed 29 --data-seed 25 --epochs 2500 --checkpoint-every 25"),
        # Planned 2026-12-04 (a new session; the sixth fit's constants still unchanged,
        # shipped since 810f51b), trained after this plan was committed, judged once: more runs
        # likely to grok, because the runs planned after the sixth fit hold only 8 that did
        # and one more or less moves the medians by points. Every op at p = 113 with the
        # quick model (only the paper model had p = 113) and at p = 137 (above every p so
        # far) with the paper's weight decay and a learning rate of 2e-3; new seeds and data
        # seeds. Chosen before any of these runs was trained, on what earlier runs at nearby
        # settings did (h15, p = 109 at 0.4: all four grokked, at 445-1,028; c11b, p = 131 at
        # 0.3 with lr 2e-3: multiply grokked, add not within 2,500), so a train fraction a
        # little above c11b's and budgets of 2,000 and 3,000.
        ("h16", "--p 113 --frac-train 0.4 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 33 --data-seed 29 --epochs 2000"),
        ("h16b", "--p 137 --frac-train 0.35 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 34 --data-seed 30 --epochs 3000 --checkpoint-every 25"),
        # Planned 2026-12-04 after the seventh fit's constants were committed (7a08c27), trained
        # after this plan was committed, judged once: the seventh fit's fresh runs. Every op at
        # p = 107 with train fraction 0.4 (h13 had 0.2 and 0.3 there, add and multiply), and
        # every op at p = 151, above every p of the corpus (c12: 149), with the paper's weight
        # decay and lr 2e-3; new seeds and data seeds. Likely to grok (p = 113 at 0.4 and
        # p = 137 at 0.35 all did, h16/h16b), so that errors and intervals can be judged.
        ("h17", "--p 107 --frac-train 0.4 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 37 --data-seed 33 --epochs 2000"),
        ("h17b", "--p 151 --frac-train 0.45 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 38 --data-seed 34 --epochs 2500 --checkpoint-every 25"),
        # Planned 2026-12-04 (evening session) with the seventh fit's constants unchanged
        # (shipped since 7a08c27), trained after this plan was committed and before any
        # other work of the session, read only to judge (the seventh fit, and an eighth if
        # one is made this session: these runs choose nothing). Every op at p = 103 with
        # train fraction 0.35 (h14 there at 0.25 never grokked within 1,500; p = 107 at 0.4
        # all but divide did): runs that grok late or end near it, the hard case for both the
        # 65% goal and false alarms. Every op at p = 157 (above every corpus p) at train
        # fraction 0.25 with lr 2e-3 and the paper's weight decay: large-p runs that may not
        # grok within 2,000 epochs. New seeds and data seeds.
        ("h18", "--p 103 --frac-train 0.35 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 40 --data-seed 36 --epochs 2000"),
        ("h18b", "--p 157 --frac-train 0.25 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 41 --data-seed 37 --epochs 2000 --checkpoint-every 25"),
        # Planned 2026-12-04 evening after the ninth fit's constants were committed (1e27581:
        # the seventh's with the guard min_evidence 0.1), trained after this plan was
        # committed, judged once: every op at p = 113 with train fraction 0.45 (likely to
        # grok: h16 there at 0.4 all did), and every op at p = 97 with train fraction 0.25,
        # lr 2e-3 and the paper's weight decay (likely to end its budget without grokking, or
        # near it: the false alarms' case). New seeds and data seeds.
        ("h19", "--p 113 --frac-train 0.45 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 44 --data-seed 40 --epochs 2000"),
        ("h19b", "--p 97 --frac-train 0.25 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 45 --data-seed 41 --epochs 2000 --checkpoint-every 25"),
        # Planned 2026-12-04 night after the tenth fit's constants were committed (80344fd:
        # the memorised start with a test-accuracy gate), trained after this plan was
        # committed, judged once: every op at p = 167 (above every p so far) with train
        # fraction 0.45 (fast groks: the runs the ninth fit was silent on at 65%, h19), and
        # every op at p = 109 with train fraction 0.25, lr 2e-3 and the paper's weight decay
        # (runs that may end their budget without grokking: the false alarms' case). New
        # seeds and data seeds.
        ("h20", "--p 167 --frac-train 0.45 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 48 --data-seed 44 --epochs 1500"),
        ("h20b", "--p 109 --frac-train 0.25 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 49 --data-seed 45 --epochs 2000 --checkpoint-every 25"),
        # Planned 2026-12-04 night after the eleventh fit's constants were committed (the
        # corpus with c15/c15b; the start where test accuracy reached 0.3), trained after
        # this plan was committed, judged once: every op at p = 113 (the paper's) with train
        # fraction 0.5 (runs that may generalise while they memorise, as h20), and every
        # op at p = 101 with train fraction 0.3 and the paper's weight decay (runs that may
        # end their budget without grokking). New seeds and data seeds.
        ("h21", "--p 113 --frac-train 0.5 --weight-decay 1.5 --op add,subtract,multiply,divide "
                "--seed 52 --data-seed 48 --epochs 1200"),
        ("h21b", "--p 101 --frac-train 0.3 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 53 --data-seed 49 --epochs 1500 --checkpoint-every 25"),
        # Planned 2026-12-04 (late night session) with the eleventh fit's constants unchanged
        # (shipped since f5e836b), trained after this plan was committed, judged once: the
        # second fresh set that the eleventh fit owed (h21/h21b were its only clean runs),
        # and runs slow enough for the forecast to speak at half way (h21 grokked at 221-500,
        # before it could). Every op at p = 173 (above every p so far) with train fraction
        # 0.4, lr 2e-3 and the paper's weight decay (h17b, p = 151 at 0.45, grokked at
        # 333-1,394); every op at p = 179 with train fraction 0.25 (runs that may end their
        # budget without grokking); and the paper recipe with a new seed (h6, seed 1, grokked
        # at 6,232; h6 and h14b kept the paper's split, this one has its own). New seeds and
        # data seeds.
        ("h22", "--p 173 --frac-train 0.4 --weight-decay 1 --lr 0.002 "
                "--op add,subtract,multiply,divide "
                "--seed 56 --data-seed 52 --epochs 2500 --checkpoint-every 25"),
        ("h22b", "--p 179 --frac-train 0.25 --weight-decay 1 --lr 0.002 "
                 "--op add,subtract,multiply,divide "
                 "--seed 57 --data-seed 53 --epochs 2000 --checkpoint-every 25"),
        ("h22c", "train --preset paper --epochs 12000 --seed 58 --data-seed 54"),
    ],
}  # fmt: skip
TRAIN_RUN = "run"  # a `train` entry's run: ROOT/SET/NAME/members/run (as a sweep member)
QUICK_DEFAULTS = ["--preset", "quick", "--epochs", "1000", "--checkpoint-every", "20"]


def sweep_args(text: str) -> list[str]:
    """The quick defaults, overridden by the sweep's own options."""
    options = text.split()
    if "--preset" in options:
        return options
    named = {o for o in options if o.startswith("--")}
    base: list[str] = []
    for i in range(0, len(QUICK_DEFAULTS), 2):
        if QUICK_DEFAULTS[i] not in named:
            base += QUICK_DEFAULTS[i : i + 2]
    return base + options


REPO = Path(__file__).resolve().parent.parent


def planned(which: str, only: list[str] | None) -> list[tuple[str, str]]:
    """The plan's entries of a set, or only those named (an unknown name is an error)."""
    entries = PLAN[which]
    if only is None:
        return entries
    unknown = set(only) - {name for name, _ in entries}
    if unknown:
        raise SystemExit(f"not in the {which} plan: {', '.join(sorted(unknown))}")
    return [(name, options) for name, options in entries if name in only]


def train(root: Path, which: str, only: list[str] | None = None) -> None:
    # This checkout's code trains, wherever the script is started from: the CLI is run in a
    # fresh interpreter, which would otherwise import whatever grok_tui the venv's
    # editable install points at (another checkout's code, silently).
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    cli = [sys.executable, "-c", "import sys; from grok_tui.cli import main; sys.exit(main())"]
    for name, options in planned(which, only):
        target = root / which / name
        if (target / "done").is_file():
            continue
        started = time.perf_counter()
        if options.startswith("train "):  # one run, not a sweep
            run_dir = target / "members" / TRAIN_RUN
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            if (run_dir / "run.json").is_file():  # killed: continue it
                cmd = [*cli, "open", "--resume", "--headless", "--device", "cpu", str(run_dir)]
            else:
                cmd = [*cli, "train", "--headless", "--device", "cpu", "--run-dir", str(run_dir),
                       *options.split()[1:]]  # fmt: skip
        elif (target / "sweep.json").is_file():
            cmd = [*cli, "sweep", "--headless", "--device", "cpu", "--resume", str(target)]
        else:
            cmd = [*cli, "sweep", "--headless", "--device", "cpu", "--sweep-dir", str(target),
                   "--disk-budget", "20GB", *sweep_args(options)]  # fmt: skip
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
        (target / "done").write_text(f"{time.perf_counter() - started:.0f} s\n")
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)


def run_features(path: Path) -> dict:
    """One run's curves as a live viewer saw them, checkpoint by checkpoint."""
    import torch

    from grok_tui.engine.measures.asof import OutlookHistory
    from grok_tui.engine.measures.progress import ProgressTracker
    from grok_tui.engine.store.runs import Run

    torch.set_num_threads(1)
    run = Run.open(path)
    cfg = run.meta().config
    tracker = ProgressTracker(run, "cpu")
    tracker.update()
    history = OutlookHistory(tracker)
    history.at()
    epochs = sorted(history.steps)
    cols = [history._column_row(e) for e in epochs]
    grok = next((int(r["epoch"]) for r in run.read_metrics() if r["test_acc"] >= 0.99), None)
    return {
        "run": f"{path.parent.parent.name}/{path.name}",
        "config": cfg.to_dict(),
        "budget": cfg.epochs,
        "grok": grok,
        "epochs": epochs,
        "xy_share": [c[5] for c in cols],
        "test_acc": [c[2] for c in cols],
        "test_loss": [c[1] for c in cols],
        "sum_sq_weights": [c[3] for c in cols],
        # For studies of the forecast's start (bench/forecast_starts.py reads train_acc):
        "train_loss": [c[0] for c in cols],
        "train_acc": [c[6] for c in cols],  # the record's, as the forecast reads it live
        "gini_w_e_freq": [c[4] for c in cols],
        "memorisation_end": [
            history.steps[e].state.announced.get("memorisation_end") for e in epochs
        ],
        # The phases as shown at each checkpoint (bench/forecast_judge.py counts flips back
        # and how far announced boundaries move):
        "phase_index": [history.steps[e].state.index for e in epochs],
        "announced": [dict(history.steps[e].state.announced) for e in epochs],
    }


def _lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def recorded_weights(path: Path, epochs: list[int]) -> list[float | None]:
    """The sum of squared weights at each of `epochs`, from the run's measures.jsonl (its
    newest record per epoch, as the progress tracker reads them)."""
    newest: dict[int, float] = {}
    for line in (path / "measures.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("kind") == "record" and "sum_sq_weights" in row:
            newest[int(row["epoch"])] = float(row["sum_sq_weights"])
    return [newest.get(int(e)) for e in epochs]


def add_weights(root: Path, which: str) -> None:
    """Runs extracted before the correction read the weights (issue 19's third fit): their
    sum of squared weights per checkpoint, added from measures.jsonl without stepping the
    outlook again (the old file kept as features.before-weights.jsonl)."""
    out = root / which / "features.jsonl"
    lines = _lines(out)
    if all("sum_sq_weights" in d for d in lines):
        return
    for d in lines:
        if "sum_sq_weights" not in d:
            sweep, member = d["run"].split("/", 1)
            d["sum_sq_weights"] = recorded_weights(root / which / sweep / "members" / member,
                                                   d["epochs"])  # fmt: skip
    partial = out.with_name("features.jsonl.partial")
    partial.write_text("".join(json.dumps(d) + "\n" for d in lines))
    os.replace(out, out.with_name("features.before-weights.jsonl"))
    os.replace(partial, out)
    print(f"{out}: sum of squared weights added to the runs without it", flush=True)


def extract(root: Path, which: str, only: list[str] | None = None) -> None:
    """Append the trained runs not yet in ROOT/SET/features.jsonl. If some line was made
    before the phases were kept, every run is made again into features.jsonl.partial
    (resumable), which replaces features.jsonl when done (the old one kept beside it)."""
    out = root / which / "features.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out
    if any("phase_index" not in d for d in _lines(out)):
        target = out.with_name("features.jsonl.partial")
        print(f"{out} has runs without their phases: all made again into {target}", flush=True)
    done = {d["run"] for d in _lines(target)}
    with open(target, "a") as f:
        for name, _ in planned(which, only):
            members = root / which / name / "members"
            if not (root / which / name / "done").is_file():
                print(f"{name}: not trained yet", flush=True)
                continue
            for path in sorted(members.iterdir()):
                key = f"{name}/{path.name}"
                if key in done:
                    continue
                started = time.perf_counter()
                f.write(json.dumps(run_features(path)) + "\n")
                f.flush()
                print(f"{key}: {time.perf_counter() - started:.0f} s", flush=True)
    if target != out:
        os.replace(out, out.with_name("features.before-phases.jsonl"))
        os.replace(target, out)
    add_weights(root, which)


DATA = REPO / "bench" / "forecast_data"  # SET.jsonl.gz: a set's features.jsonl, packed


def pack(root: Path, which: str) -> None:
    """ROOT/SET/features.jsonl -> bench/forecast_data/SET.jsonl.gz (deterministic bytes)."""
    src = root / which / "features.jsonl"
    if not src.is_file():
        raise SystemExit(f"{src}: not there (extract first)")
    DATA.mkdir(exist_ok=True)
    target = DATA / f"{which}.jsonl.gz"
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(src.read_bytes())
    print(f"{target}: {len(_lines(src))} runs", flush=True)


def unpack(root: Path, which: str) -> None:
    """bench/forecast_data/SET.jsonl.gz -> ROOT/SET/features.jsonl, where there is none."""
    src, target = DATA / f"{which}.jsonl.gz", root / which / "features.jsonl"
    if target.is_file():
        print(f"{target}: already there, left as it is", flush=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name("features.jsonl.partial")
    partial.write_bytes(gzip.decompress(src.read_bytes()))
    os.replace(partial, target)
    print(f"{target}: {len(_lines(target))} runs", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("train", "extract", "all", "pack", "unpack"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--set", dest="which", choices=tuple(PLAN), nargs="+",
                        default=list(PLAN))  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="only these entries of the plan (e.g. fresh runs beside a rebuild "
                        "of the rest, into another --root)")  # fmt: skip
    args = parser.parse_args()
    for which in args.which:
        if args.stage in ("pack", "unpack"):
            (pack if args.stage == "pack" else unpack)(args.root, which)
            continue
        if args.stage in ("train", "all"):
            train(args.root, which, args.only)
        if args.stage in ("extract", "all"):
            extract(args.root, which, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
