"""The UI kit without an app: ticks, plot figures, the state machine, the status line, the
speed and ETA, and the shared selection keys."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from grok_tui.engine.store.follow import MetricsHistory
from grok_tui.ui import selection
from grok_tui.ui.panes.curves import primary_last
from grok_tui.ui.state import (
    TRANSITIONS,
    IllegalTransition,
    RunState,
    check_transition,
    state_on_disk,
)
from grok_tui.ui.widgets.plot import PALETTE, faint, head_series
from grok_tui.ui.widgets.status_bar import StatusBar, StatusInfo
from grok_tui.ui.widgets.ticks import (
    log_ticks,
    nice_step,
    round_ticks,
    tick_label,
    ticks_that_fit,
)
from tests.pane_harness import tiny_snapshots


def test_log_ticks_label_a_span_under_a_decade() -> None:
    """The paper run's first 100 epochs: loss 2.4 to 7.6, no power of ten inside."""
    ticks = log_ticks([2.4, 3.0, 5.5, 7.6])
    values = [v for v, _ in ticks]
    assert len(ticks) >= 3 and all(2.4 <= v <= 7.6 for v in values)
    assert [label for _, label in ticks] == [tick_label(v) for v in values]
    assert [label for _, label in log_ticks([0.3, 0.45])] == ["0.3", "0.4"]
    assert len(log_ticks([0.31, 0.33])) == 2  # inside one step: its ends, rounded


def test_log_ticks_use_decades_when_the_data_spans_them() -> None:
    ticks = log_ticks([3e-7, 1e-3, 4.0])
    assert [v for v, _ in ticks] == [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0][::2]
    assert [label for _, label in ticks] == ["1e-7", "1e-5", "0.001", "0.1", "10"]
    assert log_ticks([0.0, -1.0, float("nan")]) == []


def test_round_ticks_and_steps() -> None:
    assert round_ticks(50_000, 6) == list(range(0, 50_001, 10_000))
    assert round_ticks(112, 12) == [*range(0, 101, 20), 112]  # at most 11 steps of 10.2
    assert round_ticks(112, 13) == list(range(0, 111, 10))
    assert round_ticks(0, 5) == [0]
    assert [nice_step(x) for x in (0.3, 1, 3, 7, 23, 240)] == [1, 1, 5, 10, 25, 250]
    assert nice_step(0.3, integer=False) == pytest.approx(0.5)


def test_head_series_selected_last_others_faint_and_primary_curves_last() -> None:
    values = np.arange(12.0).reshape(4, 3)
    series = head_series(values, [0.0, 1.0, 2.0], selected=2)
    assert [name.split()[1] for name, *_ in series] == ["0", "1", "3", "2"]
    assert series[-1][3] == PALETTE[2] and series[0][3] == faint(PALETTE[0]) != PALETTE[0]
    named = [(n, [], [], PALETTE[0]) for n in ("train", "restricted", "test", "excluded")]
    assert [s[0] for s in primary_last(named)] == ["restricted", "excluded", "train", "test"]


def test_state_machine() -> None:
    check_transition(RunState.TRAINING, RunState.PAUSED)
    check_transition(RunState.PAUSED, RunState.DONE)
    with pytest.raises(IllegalTransition):
        check_transition(RunState.QUITTING, RunState.TRAINING)  # quitting starts nothing
    with pytest.raises(IllegalTransition):
        check_transition(RunState.DONE, RunState.TRAINING)  # a finished run never trains
    assert TRANSITIONS[RunState.QUITTING] == set()
    assert all(RunState.QUITTING in TRANSITIONS[s] for s in RunState if s != RunState.QUITTING)
    assert state_on_disk("running", writer_alive=True) == RunState.FOLLOWING
    assert state_on_disk("running", writer_alive=False) == RunState.STOPPED
    assert state_on_disk("done", False) == RunState.DONE
    assert state_on_disk("failed", False) == RunState.FAILED


def test_status_line_shows_state_phase_and_forecast_first() -> None:
    info = StatusInfo(run="r", epoch=5, total=10, state="done", phase="cleanup",
                      forecast="groks ~9k")  # fmt: skip
    line = StatusBar.render_info(info, 200).plain
    assert line.startswith(" done ") and line.index("cleanup") < line.index("groks ~9k")
    assert "- ep/s" in line and "ETA -" in line
    narrow = StatusBar.render_info(info, 30).plain
    assert narrow.startswith(" done ") and len(narrow) <= 30


def rows(epochs: range, seconds_per_epoch: float, start_wall: float = 0.0) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0, "test_loss": 1.0, "train_acc": 0.5,
             "test_acc": 0.5, "wall_s": start_wall + (e - epochs[0]) * seconds_per_epoch}
            for e in epochs]  # fmt: skip


def test_speed_and_eta_ignore_a_slow_start_and_wait_until_meaningful() -> None:
    history = MetricsHistory()
    history.extend(rows(range(0, 2), 3.0))  # the first epoch took 3 s (start-up)
    assert history.epochs_per_s() == 0 and history.eta_s(50_000) is None  # "-"
    history.extend(rows(range(2, 400), 0.01, start_wall=3.0 + 0.01))
    assert history.epochs_per_s() == pytest.approx(100.0, rel=1e-6)
    assert history.eta_s(50_000) == pytest.approx((50_000 - 399) / 100.0, rel=1e-6)


def test_selection_keys_mean_the_same_everywhere() -> None:
    snap = tiny_snapshots()[600]
    assert selection.step_head(snap, 3, 1) == 0
    cluster, neuron = selection.step_cluster(snap, None, 5, 1)
    assert cluster == snap.key_freqs[0] and neuron == int(snap.neurons_in(cluster)[0])
    assert selection.step_neuron(snap, neuron, cluster, 1) == int(snap.neurons_in(cluster)[1])
    assert selection.step_neuron(snap, 7, None, -1) == 6
    back, kept = selection.step_cluster(snap, snap.cluster_choices()[-1], 42, 1)
    assert back is None and kept == 42  # back at "all": the neuron stays


def test_the_curves_pane_says_when_its_key_set_is_provisional() -> None:
    """The frequency-dependent curves name their key set: provisional (read off W_E / W_L
    before neurons cluster), clustered since a checkpoint, or from a reference one."""
    from types import SimpleNamespace

    from grok_tui.engine.measures.keyfreqs import KeyHistory, fixed_history
    from grok_tui.ui.panes.curves import CurvesPane

    pane = CurvesPane(MetricsHistory())
    provisional = KeyHistory(changes=[(0, (3, 7))])
    clustered = KeyHistory(changes=[(0, (3, 7)), (40, (3, 7))], clustered_since=40)
    cases = [
        (provisional, "key freqs 3, 7 provisional (strongest in W_E / W_L"),
        (clustered, "key freqs 3, 7 since 40"),
        (fixed_history(90, (3, 7)), "key freqs 3, 7 from epoch 90"),
    ]
    for history, label in cases:
        pane.measures = SimpleNamespace(key_freqs=history.current, key_history=history,
                                        key_since=history.since)  # fmt: skip
        assert pane.key_set_label().startswith(label), pane.key_set_label()


def test_the_curves_pane_plots_the_forecasts_as_made_and_the_truth_once_known() -> None:
    """The forecast view: forecast and interval against the epoch each was made at (none
    where there was none), and the grok epoch as a level line once the run has grokked."""
    from types import SimpleNamespace

    from grok_tui.ui.panes.curves import MEASURE_VIEWS, forecast_series

    assert "forecast" in MEASURE_VIEWS
    made = ((0, None, None, None), (50, 400, 200, 900), (100, 450, 300, 700))
    outlook = SimpleNamespace(forecasts=made)
    series = {label: (xs, ys) for label, xs, ys, _ in forecast_series(outlook, None)}
    assert set(series) == {"forecast", "80% low", "80% high"}
    assert series["forecast"] == ([50.0, 100.0], [400.0, 450.0])
    assert series["80% low"] == ([50.0, 100.0], [200.0, 300.0])
    assert series["80% high"] == ([50.0, 100.0], [900.0, 700.0])
    known = {label: (xs, ys) for label, xs, ys, _ in forecast_series(outlook, 480)}
    assert known["grokked"] == ([50.0, 100.0], [480.0, 480.0])
    assert forecast_series(None, 480) == forecast_series(SimpleNamespace(forecasts=()), 480)
    assert all(not xs for _, xs, _, _ in forecast_series(None, 480))


async def test_a_plot_legend_is_a_line_under_the_frame_never_over_the_data() -> None:
    """Before, plotext drew the legend inside the frame's top-left corner: at 80x24 over
    the first ~150 epochs of the test loss, and the loss plot had 2 rows of data."""
    from textual.app import App

    from grok_tui.ui.widgets.plot import Figure, Plot

    xs = [float(e) for e in range(0, 3001, 30)]
    train = [10.0 * 0.99**i for i in range(len(xs))]
    test = [20.0 * 0.995**i for i in range(len(xs))]

    class One(App[None]):
        def compose(self):
            yield Plot()

    app = One()
    async with app.run_test(size=(80, 10)) as pilot:
        plot = app.query_one(Plot)
        plot.show(Figure("loss", [("train", xs, train, (1, 2, 3)), ("test", xs, test, (4, 5, 6))],
                         "epoch", log_y=True))  # fmt: skip
        await pilot.pause()
        lines = plot.render().plain.splitlines()
        assert len(lines) == 10
        assert "━━ test" in lines[-1] and "━━ train" in lines[-1]
        assert not any("train" in line or "test" in line for line in lines[:-1])
        assert "epoch" not in "".join(lines)  # a short plot keeps its rows for the data
        plot.show(Figure("loss", [("train", xs, train, (1, 2, 3))], "epoch", log_x=True))
        await pilot.pause()
        lines = plot.render().plain.splitlines()
        ticks = lines[-1].split()
        assert ticks == ["100", "1,000"] or ticks == ["10", "100", "1,000"], lines[-1]


def test_a_frequency_axis_labels_round_frequencies_as_well_as_the_key_ones() -> None:
    """Before, the Fourier bar chart labelled only c and the key frequencies."""
    from grok_tui.ui.panes.fourier import freq_ticks

    ticks = dict((label, x) for x, label in freq_ticks({7, 8, 21}, 27))
    assert {"c", "7", "8", "21"} <= set(ticks) and {"15", "25"} <= set(ticks)
    assert "20" not in ticks  # one from 21: its label would run into the key one's
    assert ticks["15"] == 15.0
    wide = dict((label, x) for x, label in freq_ticks({7}, 27, components=True))
    assert wide["7"] == 13.5 and wide["15"] == 29.5  # between cos k and sin k
    assert [label for _, label in freq_ticks(set(), 57)][:3] == ["c", "10", "20"]


def test_help_says_next_and_previous_for_the_pane_keys() -> None:
    from grok_tui.ui.screens.run import RunScreen

    described = {b.key: b.description for b in RunScreen.BINDINGS}
    assert (described["n"], described["N"]) == ("Next neuron", "Previous neuron")
    assert (described["h"], described["H"]) == ("Next head", "Previous head")


def test_log_ticks_on_a_short_plot_are_few_and_evenly_spaced() -> None:
    """12 runs compared at 80 x 24 squeezed the loss plot to 3 rows, and plotext dropped
    one of 6 labels (1e-25 of 0.1, 1e-9, ..., 1e-41): a short plot asks for fewer."""
    assert [ticks_that_fit(r) for r in (3, 5, 8, 12, 15, 40)] == [2, 2, 3, 5, 6, 7]
    values = [1e-41, 0.1]
    for rows in (3, 8, 10, 15, 40):
        ticks = [t for t, _ in log_ticks(values, most=ticks_that_fit(rows))]
        assert 2 <= len(ticks) <= ticks_that_fit(rows)
        exponents = [round(math.log10(t)) for t in ticks]
        assert len({b - a for a, b in itertools.pairwise(exponents)}) <= 1  # even steps
