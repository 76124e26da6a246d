#!/usr/bin/env bash
# The GPU figures of issues 21 and 24, in one go, for the day a GPU is lent.
#
#   bench/gpu_check.sh                      # on the GPU machine: cuda, full sizes, < 8 minutes
#   bench/gpu_check.sh --device cpu --small # here: the same steps end to end in a few minutes
#
# From a fresh copy of the working tree: installs what it needs (scripts/setup --test, unless
# .venv already imports grok_tui, torch and pytest), then runs each step under its own
# timeout, so one failure or hang does not lose the others:
#   tests_device  the training and analysis tests with GROK_TUI_TEST_DEVICE set to the device
#   tests_rest    the rest of the suite (not slow), on its CPU defaults
#   train_speed   bench/train_speed.py --device DEVICE (reference, fast loop, GEMM floor, I/O)
#   paper_run     the paper preset for 50,000 epochs, headless (wall time, grok epoch)
#   analysis      a Snapshot (p = 113) and progress measures over 500 checkpoints
#   sweep_*       throughput of 64 and 256 paper-recipe sweep members as one batched model
# Every figure goes to one file, $OUT/gpu_check.txt (bench/out/ without $OUT), as lines
# "figure KEY: VALUE"; a step that failed or timed out still writes its keys, with
# "MISSING (...)" and the log to look at. Logs of each step sit beside it in gpu_check_logs/.
# --limit-scale N multiplies every step's time limit (a loaded machine).
# tests/test_gpu_check.py (slow) runs it with --device cpu --small and checks every key.
set -uo pipefail
cd "$(dirname "$0")/.."

device=cuda
small=0
setup=1
scale=1  # --limit-scale N: every step's time limit times N (a loaded machine; the test)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --small) small=1; shift ;;
        --no-setup) setup=0; shift ;;
        --limit-scale) scale="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

out_dir="${OUT:-bench/out}"
report="$out_dir/gpu_check.txt"
logs="$out_dir/gpu_check_logs"
mkdir -p "$logs"
: > "$report"
begun=$EPOCHREALTIME
py=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this tree's code, whatever .venv points to

figure() { echo "figure $1: $2" >> "$report"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME SECONDS COMMAND...: run it under a timeout, its output to the step's log. The
# timeout interrupts (SIGINT) so pytest still prints how far it got; KILL 10 s later.
step() {
    local name="$1" limit=$(( $2 * scale )) start rc
    shift 2
    start=$EPOCHREALTIME
    timeout -s INT -k 10 "$limit" "$@" > "$logs/$name.log" 2>&1
    rc=$?
    local why="rc=$rc"
    [[ $rc == 124 || $rc == 137 ]] && why="timed out after ${limit}s"
    printf 'step %s: %s in %s s\n' "$name" "$why" "$(since "$start")" >> "$report"
    return $rc
}

# grab NAME KEY PATTERN: the figure KEY is the first log line of step NAME matching PATTERN.
grab() {
    local line
    line=$(grep -m1 -E "$3" "$logs/$1.log" 2>/dev/null | sed 's/^ *//')
    if [[ -n "$line" ]]; then
        figure "$2" "$line"
    else
        figure "$2" "MISSING (step $1: see $logs/$1.log)"
    fi
}

# -- sizes -------------------------------------------------------------------------------------
if [[ $small == 1 ]]; then
    device_tests=(tests/test_train_sync.py)
    rest_tests=(tests/test_checkpoints.py)
    train_speed_args=(--blocks 1 --ref-epochs 1 --fast-epochs 2 --full-epochs 10)
    paper_epochs=20 paper_every=10
    analysis_args=(--repeats 1 --checkpoints 4 --key-change 2)
    sweep_preset=quick sweep_sizes=(2 4) sweep_args=(--blocks 1 --epochs 2)
else
    device_tests=(tests/test_train_sync.py tests/test_train.py tests/test_stepper.py
        tests/test_grokfast.py tests/test_analysis.py tests/test_progress.py)
    rest_tests=(tests)
    train_speed_args=()
    paper_epochs=50000 paper_every=100
    analysis_args=(--repeats 5 --checkpoints 500)
    sweep_preset=paper sweep_sizes=(64 256) sweep_args=(--blocks 2 --epochs 10)
fi

# -- set-up ------------------------------------------------------------------------------------
if [[ $setup == 1 ]] && ! "$py" -c "import grok_tui, torch, pytest" > /dev/null 2>&1; then
    step setup 300 scripts/setup --test
fi
step environment 60 "$py" -c "
import torch
name = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'
print(f'torch {torch.__version__}, {name}, {torch.get_num_threads()} CPU threads')"
grab environment environment "^torch "
figure device "$device$([[ $small == 1 ]] && echo ' (--small sizes)')"

# -- the tests on the device -------------------------------------------------------------------
ignore=()
for f in "${device_tests[@]}"; do ignore+=(--ignore "$f"); done
step tests_device 90 env GROK_TUI_TEST_DEVICE="$device" \
    "$py" -m pytest -q -p no:cacheprovider -m "not slow" "${device_tests[@]}"
grab tests_device tests_device "(passed|failed|error|no tests ran).* in "
step tests_rest 80 "$py" -m pytest -q -p no:cacheprovider -m "not slow" "${ignore[@]}" \
    "${rest_tests[@]}"
grab tests_rest tests_rest "(passed|failed|error|no tests ran).* in "

# -- the training loop -------------------------------------------------------------------------
step train_speed 60 "$py" bench/train_speed.py --device "$device" "${train_speed_args[@]}"
grab train_speed train_speed_reference "^reference loop:"
grab train_speed train_speed_fast "^fast loop:"
grab train_speed train_speed_floor "^fast loop at "
grab train_speed train_speed_with_io "^Trainer.train\(\) with I/O"

run_dir=$(mktemp -d)/paper
start=$EPOCHREALTIME
step paper_run 150 "$py" -m grok_tui train --headless --no-measures --preset paper \
    --epochs "$paper_epochs" --checkpoint-every "$paper_every" --device "$device" \
    --run-dir "$run_dir"
wall=$(since "$start")
step paper_summary 30 "$py" - "$run_dir" "$wall" <<'EOF'
"""The paper run's figures from its run directory: epochs, wall time, grok epoch."""
import sys
from pathlib import Path

from grok_tui.engine.store.runs import Run

run = Run(Path(sys.argv[1]))
rows = run.read_metrics()
wall = float(sys.argv[2])
meta = run.meta()
last = rows[-1]["epoch"] if rows else 0
print(f"paper run: {meta.status}, {last} epochs in {wall:.1f} s wall (process included) "
      f"= {1e3 * wall / max(last, 1):.3f} ms/epoch on {meta.device}")
# Grokked: the first epoch from which test accuracy stays >= 99% (train accuracy too).
grok = next((r["epoch"] for i, r in enumerate(rows)
             if all(s["test_acc"] >= 0.99 and s["train_acc"] >= 0.99 for s in rows[i:])), None)
print(f"grok epoch: {grok if grok is not None else 'not reached'}"
      f" (test accuracy >= 99% from then on; final test acc {rows[-1]['test_acc']:.4f})")
EOF
grab paper_summary paper_run_wall "^paper run:"
grab paper_summary paper_run_grok_epoch "^grok epoch:"

# -- analysis ----------------------------------------------------------------------------------
step analysis 45 "$py" bench/analysis_speed.py --device "$device" "${analysis_args[@]}"
grab analysis snapshot "^snapshot p=113:"
grab analysis progress_measures "^progress: "

# -- sweeps ------------------------------------------------------------------------------------
for which in 0 1; do
    n=${sweep_sizes[$which]}
    name=sweep_$([[ $which == 0 ]] && echo smaller || echo larger)
    step "$name" 25 "$py" bench/sweep_speed.py --preset "$sweep_preset" --members "$n" \
        --device "$device" "${sweep_args[@]}"
    grab "$name" "${name}_members" "^[0-9]+ members of the "
    grab "$name" "${name}_one_by_one" "^one by one:"
    grab "$name" "${name}_batched" "^0: [0-9]+ per pass"  # the default setting
done

echo "all steps: $(since "$begun") s" >> "$report"
echo "figures in $report" >&2
cat "$report"
