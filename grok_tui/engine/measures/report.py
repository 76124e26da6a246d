"""`grok-tui analyze RUN`: one checkpoint's analysis and the run's phases, as data (the
console draws it as a table: grok_tui/console/report.py).

`key_freqs` and `cluster_sizes` are the chosen checkpoint's own neuron clusters. The
restricted and excluded losses use the run's key frequencies as known at its newest
checkpoint (`measure_key_freqs`; engine/measures/keyfreqs.py says how they are chosen, and
`key_history` since when), or those of a reference checkpoint (`key_epoch`, the paper's
40,000), so an early checkpoint is measured against the circuit the run has formed; they
are the cached progress measures of that epoch, and the phases come from the same cache
(computed where missing).

Per op (engine/core/ops.py): multiplicative ops are analysed in the log basis, so frequencies
are those of Z_(p-1) over discrete logs; a measure defined by the op's circuit directions
(restricted / excluded loss, trig fractions) or by its basis (Gini) reads "n/a for this
op" where it does not apply, and wherever the progress measures do not yet compute it for
the op (`progress.MEASURES_OPS`: the ops whose directions and basis they use; addition
alone until they call `ops.circuit_directions`) rather than show a number for another op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from grok_tui.engine.core import ops
from grok_tui.engine.measures import progress
from grok_tui.engine.measures.outlook import outlook
from grok_tui.engine.measures.progress import ProgressTracker
from grok_tui.engine.store.runs import Run, RunError


def analysis_report(
    run: Run,
    epoch: int | None = None,
    device: str | torch.device = "cpu",
    should_stop: Callable[[], bool] | None = None,
    key_epoch: int | None = None,
) -> dict[str, Any]:
    """JSON-ready analysis of checkpoint `epoch` (default: the newest) and the run's phases.

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
    tracker = ProgressTracker(run, device, key_epoch=key_epoch)
    snap = tracker.analyzer.snapshot(run.load_checkpoint(epoch, cfg), epoch)

    tracker.update(should_stop)
    tracker.fill_excluded(should_stop)
    table = tracker.table()
    row = table.row(epoch)
    view = outlook(table)
    if row is None:  # stopped before this epoch was measured
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
        "checkpoints": len(epochs),
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
        "measure_key_freqs": list(row["key_freqs"]),
        "key_history": table.key_history.to_json(),
        "key_reference_epoch": table.key_history.reference_epoch,
        "key_warning": table.warning,
        "phases": view.phases,
        "phase": view.describe_phase(),
        "forecast": view.forecast.to_json(),
    }
    if view.forecast.grok_epoch is None:
        report["forecast_reason"] = view.forecast.reason
    elif view.forecast.observed:
        seen = next((int(r["epoch"]) for r in run.read_metrics() if r["test_acc"] >= 0.99), None)
        if seen is not None:  # metrics have every epoch, the measures only checkpoints
            report["forecast"] = {"grok_epoch": seen, "low": seen, "high": seen}
        report["forecast_reason"] = "observed: the run reached test accuracy 99% at this epoch"
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
    "mlp_out_frac",
    "mlp_out_frac_per_freq",
    # the phases and the forecast are read off the measures above
    "phases",
    "phase",
    "forecast",
)
# Measures of the progress records' Fourier basis of Z_p (key sets, neuron clustering).
BASIS_MEASURES = (
    "gini_W_E",
    "gini_W_L",
    "neuron_frac_explained",
    "key_history",
    "key_reference_epoch",
    "key_warning",
)


def not_applicable(op: str) -> tuple[str, ...]:
    """The report's measures that are "n/a for this op" (see the module docstring)."""
    if op in progress.MEASURES_OPS:
        return ()
    if not ops.has_circuit_directions(op):
        return DIRECTION_MEASURES  # Gini in Z_p's basis is still a fair sparsity number
    return DIRECTION_MEASURES + (BASIS_MEASURES if ops.basis_kind(op) != "fourier" else ())
