"""`grok-tui analyze RUN`: one checkpoint's analysis and the run's phases, as data (the
console draws it as a table: grok_tui/console/report.py).

Everything is as of the chosen checkpoint (default: the newest): nothing after it is read,
so `--epoch N` shows what a viewer of the run showed at N and equals the analysis of a copy
of the run cut at N. `key_freqs` and `cluster_sizes` are the checkpoint's own neuron
clusters. The restricted and excluded losses use the key set in use at that checkpoint
(`measure_key_freqs`, `measure_key_provisional` while it is a provisional set read off W_E
and W_L before neurons cluster; engine/measures/keyfreqs.py says how they are chosen, and
`key_history` since when), or those of a reference checkpoint (`key_epoch`, the paper's
40,000). The phases, the phase now and the forecast are the forward-only outlook as of the
checkpoint (engine/measures/asof.py), stored as it was made; `grokked_at` is the first
epoch (from the metrics, up to the checkpoint) at test accuracy 99%, if any, and then there
is no forecast.

Per op (engine/core/ops.py): multiplicative ops are analysed in the log basis, so frequencies
are those of Z_(p-1) over discrete logs, and their progress measures are those of the
circuit on log x +- log y (engine/measures/record.py). A measure defined by an op's circuit
directions (restricted / excluded loss, trig fractions, key sets) reads "n/a for this op"
for an op with none (the quadratic ops, random), rather than show a number for another op;
their phases and forecast read the curves that need no circuit, except for `random`, which
has no rule to generalise to (`phases.not_applicable`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from grok_tui.engine.core import ops
from grok_tui.engine.measures import phases, progress
from grok_tui.engine.measures.asof import OutlookHistory
from grok_tui.engine.measures.forecast import first_grokked
from grok_tui.engine.measures.numerics import NUMERIC_SCALARS
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run, RunError


def analysis_report(
    run: Run,
    epoch: int | None = None,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
    key_epoch: int | None = None,
    llc: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """JSON-ready analysis of checkpoint `epoch` (default: the newest) and the run's phases.

    `llc`: first estimate the learning coefficient of every checkpoint up to `epoch` that
    has none (cached; seconds each on a CPU); otherwise the report has the estimates made
    so far (by the app, headless training, `run.llc()`), None where there is none. `say`
    is told, before minutes of that, how many it estimates.

    Dict keys of frequencies are strings (JSON objects need them); -1 is the unclustered
    group. Non-finite numbers are None.
    """
    epochs = run.checkpoint_epochs()
    if not epochs:
        raise RunError(f"{run.path} has no checkpoints to analyse")
    if epoch is None:
        epoch = epochs[-1]
    elif epoch not in epochs:
        raise RunError(
            f"--epoch {epoch}: no checkpoint at that epoch in {run.path} "
            f"(checkpoints {epochs[0]}..{epochs[-1]}, {len(epochs)} in all)"
        )
    cfg = run.meta().config
    if key_epoch is not None and key_epoch not in epochs:
        raise RunError(
            f"--key-epoch {key_epoch}: no checkpoint at that epoch in {run.path} "
            f"(checkpoints {epochs[0]}..{epochs[-1]}, {len(epochs)} in all)"
        )
    if llc:
        from grok_tui.engine.measures.llc_checkpoint import LLCCache

        cache = LLCCache(run, device)
        todo = [e for e in cache.todo() if e <= epoch]
        if todo and say is not None:
            say(f"estimating the learning coefficient of {len(todo)} checkpoint(s): seconds "
                "each on a CPU, cached for the next time")  # fmt: skip
        for e in todo:
            if should_stop is not None and should_stop():
                break
            cache.compute(e, should_stop)
    tracker = ProgressTracker(run, device, key_epoch=key_epoch)
    snap = tracker.analyzer.snapshot(run.load_checkpoint(epoch, cfg), epoch)

    tracker.update(should_stop, skip=lambda e: e > epoch)
    table = tracker.table(upto=epoch)
    tracker.fill_excluded(should_stop, keys=table.key_freqs, upto=epoch)
    table = tracker.table(upto=epoch)
    row = table.row(epoch)
    view = OutlookHistory(tracker).at(epoch, should_stop)
    if row is None or view.as_of != epoch:  # stopped before this epoch was measured
        raise RunError(f"measuring {run.path} was stopped before epoch {epoch}")

    embed = snap.embed_freq_sq[1:]
    top = sorted(range(len(embed)), key=lambda i: -embed[i])[:8]
    report: dict[str, Any] = {
        "run": str(run.path),
        "p": cfg.p,
        "op": cfg.op,
        "op_formula": ops.INFO[cfg.op].formula,
        "basis": snap.basis,
        "circuit": ops.INFO[cfg.op].combined or ops.NOT_APPLICABLE,
        "epoch": int(epoch),
        "checkpoints": sum(1 for e in epochs if e <= epoch),
        "train_loss": row["train_loss"],
        "test_loss": row["test_loss"],
        "train_acc": row["train_acc"],
        "test_acc": row["test_acc"],
        "key_freqs": list(snap.key_freqs),
        "cluster_sizes": {str(k): int(v) for k, v in snap.cluster_sizes.items()},
        "restricted_loss": row["restricted_loss"],
        "restricted_loss_train": row["restricted_loss_train"],
        "excluded_loss": row["excluded_loss"],
        "excluded_loss_per_freq": row["excluded_loss_per_freq"],
        "test_restricted_ratio": row["test_restricted_ratio"],
        "gini_W_E": row["gini_W_E"],
        "gini_W_L": row["gini_W_L"],
        "gini_W_E_freq": row["gini_W_E_freq"],
        "gini_W_L_freq": row["gini_W_L_freq"],
        "sum_sq_weights": row["sum_sq_weights"],
        "sum_sq_per_param": row["sum_sq_per_param"],
        "trig_frac_pre": row["trig_frac_pre"],
        "trig_frac_post": row["trig_frac_post"],
        "trig_frac_logits": row["trig_frac_logits"],
        "avg_attn": row["avg_attn"],
        "embed_top_freqs": [int(i + 1) for i in top],
        "neuron_frac_explained": row["neuron_frac_explained"],
        "mlp_out_frac": row["mlp_out_frac"],
        "mlp_out_frac_per_freq": row["mlp_out_frac_per_freq"],
        **{name: row[name] for name in NUMERIC_SCALARS},  # every op: no circuit needed
        # The local learning coefficient where estimated (llc_service.py; None if not yet).
        "llc": row["llc"],
        "llc_std": row["llc_std"],
        "measure_key_freqs": list(row["key_freqs"]),
        "measure_key_provisional": table.key_history.provisional,
        "key_history": table.key_history.to_json(),
        "key_reference_epoch": table.key_history.reference_epoch,
        "key_warning": table.warning,
        "phases": view.phases,
        "phase": view.describe_phase(),
        "forecast": view.forecast.to_json(),
        # every forecast as it was made, one per checkpoint: [epoch, forecast, low, high]
        "forecast_history": [list(f) for f in view.forecasts],
        "grokked_at": None,
    }
    if view.forecast.observed:
        # Metrics have every epoch, the measures only checkpoints; none after this one.
        seen = first_grokked(run.read_metrics(), upto=epoch)
        if seen is None:
            seen = view.forecast.grok_epoch
        report["grokked_at"] = seen
        report["forecast"] = None
        report["forecast_reason"] = f"grokked at {seen:,}: test accuracy reached 99% then"
    elif view.forecast.grok_epoch is None:
        report["forecast_reason"] = view.forecast.reason
    for name in not_applicable(cfg.op):
        report[name] = ops.NOT_APPLICABLE
    return report


# Measures defined by the op's circuit directions, and by the basis its analysis uses.
DIRECTION_MEASURES = (
    "restricted_loss",
    "restricted_loss_train",
    "excluded_loss",
    "excluded_loss_per_freq",
    "test_restricted_ratio",
    "trig_frac_pre",
    "trig_frac_post",
    "trig_frac_logits",
    "measure_key_freqs",
    "measure_key_provisional",
    "mlp_out_frac",
    "mlp_out_frac_per_freq",
)
# What is read off the measures: n/a where an op has nothing to generalise to.
OUTLOOK_MEASURES = ("phases", "phase", "forecast", "forecast_history", "grokked_at")
# Measures of the progress records' Fourier basis of Z_p (key sets, neuron clustering).
BASIS_MEASURES = (
    "gini_W_E",
    "gini_W_L",
    "gini_W_E_freq",
    "gini_W_L_freq",
    "neuron_frac_explained",
    "key_history",
    "key_reference_epoch",
    "key_warning",
)


def not_applicable(op: str) -> tuple[str, ...]:
    """The report's measures that are "n/a for this op" (see the module docstring)."""
    if op not in progress.MEASURES_OPS:
        return DIRECTION_MEASURES + OUTLOOK_MEASURES + BASIS_MEASURES
    if ops.has_circuit_directions(op):
        return ()
    # Gini in Z_p's basis is still a fair sparsity number.
    return DIRECTION_MEASURES + (OUTLOOK_MEASURES if phases.not_applicable(op) else ())
