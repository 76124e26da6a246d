"""CircuitsPane: OV contributions per head for the selected neuron, stepping, views, sizes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from textual.widgets import Static

from grok_tui.engine.measures.analysis import Snapshot
from grok_tui.ui.panes.base import PaneNote
from grok_tui.ui.panes.circuits import CircuitsPane
from grok_tui.ui.widgets.plot import PALETTE, Plot
from tests.pane_harness import SIZES, PaneApp, text_of, tiny_snapshots
from tests.test_pane_attention import freq_norms_explicit, planted_snapshot


@pytest.fixture(scope="module")
def snaps() -> dict[int, Snapshot]:
    return tiny_snapshots()


def drawn_curves(pane: CircuitsPane, view: str = "token") -> dict[int, list[float]]:
    """Head -> the y values last handed to the plot of `view`."""
    return {int(name.split()[1]): ys for name, _, ys, _ in pane.figure(view).series}


def assert_shows_neuron(pane: CircuitsPane, snap: Snapshot, neuron: int) -> None:
    assert pane.neuron == neuron
    curves = drawn_curves(pane)
    assert sorted(curves) == list(range(snap.n_heads))
    for h, ys in curves.items():
        assert np.allclose(ys, snap.W_neur[h, :, neuron])
    info = text_of(pane.query_one("#circ-info", Static))
    assert f"neuron {neuron}/" in info
    assert f"freq {snap.neuron_freq[neuron]}" in info
    assert f"{snap.neuron_frac[neuron]:.1%} explained" in info


async def test_starts_at_neuron_0_and_steps_neurons(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = CircuitsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert_shows_neuron(pane, snap, 0)
        assert "W_neur[head, token, 0]" in pane.figure("token").title
        assert pane.view == "fourier"  # per frequency by default: one spike per head
        status = pane.pane_action("neuron", 1)
        await pilot.pause()
        assert_shows_neuron(pane, snap, 1)
        assert status is not None and status.startswith("neuron 1:")
        pane.pane_action("neuron", -1)
        pane.pane_action("neuron", -1)
        await pilot.pause()
        assert_shows_neuron(pane, snap, snap.d_mlp - 1)  # wraps around
        pane.show_snapshot(snaps[300], "")  # scrubbing keeps the neuron
        await pilot.pause()
        assert_shows_neuron(pane, snaps[300], snap.d_mlp - 1)


async def test_cluster_key_visits_the_best_neuron_of_each_cluster(
    snaps: dict[int, Snapshot],
) -> None:
    snap = snaps[600]
    choices = snap.cluster_choices()
    assert len(choices) >= 4  # the tiny run has grokked into a few frequencies
    pane = CircuitsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        for cluster in choices[1:]:
            status = pane.pane_action("cluster", 1)
            assert pane.cluster == cluster and status is not None and "neuron" in status
            members = snap.clusters[cluster]
            best = int(members[np.argmax(snap.neuron_frac[members])])
            assert pane.neuron == best
        pane.pane_action("cluster", 1)  # back to all neurons: the neuron stays
        assert pane.cluster is None and pane.neuron == best
        pane.pane_action("cluster", -1)
        await pilot.pause()
        assert pane.cluster == -1
        assert_shows_neuron(pane, snap, pane.neuron)
        first = pane.neuron
        pane.pane_action("neuron", 1)  # n steps through the selected cluster's list
        assert pane.neuron == int(snap.neurons_in(-1)[1]) != first


async def test_the_selected_head_is_bold_and_drawn_last(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = CircuitsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        for view in ("token", "fourier"):
            name, _, _, colour = pane.figure(view).series[-1]  # drawn last: on top
            assert name.startswith("head 0") and colour == PALETTE[0]
        assert pane.pane_action("head", 1) == "head 1"
        await pilot.pause()
        series = pane.figure("token").series
        name, _, ys, colour = series[-1]
        assert name.startswith("head 1") and colour == PALETTE[1]
        assert np.allclose(ys, snap.W_neur[1, :, 0])
        assert all(c not in PALETTE for _, _, _, c in series[:-1])  # the others faint
        pane.pane_action("head", -1)
        pane.pane_action("head", -1)
        assert pane.head == 3  # wraps


async def test_fourier_view_is_sparse_in_the_neurons_frequency() -> None:
    snap = planted_snapshot()
    pane = CircuitsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        pane.pane_action("neuron", 1)
        await pilot.pause()
        assert not pane.query_one("#circ-token", Plot).display
        spectra = drawn_curves(pane, "fourier")
        expected = freq_norms_explicit(snap.W_neur[:, :, 1])
        freq = int(snap.neuron_freq[1])
        for h, ys in spectra.items():
            assert np.allclose(ys, expected[h], atol=1e-4)
            assert int(np.argmax(ys)) == freq
        assert f"its freq: {freq}" in pane.figure("fourier").title
        info = text_of(pane.query_one("#circ-info", Static))
        assert f"share in freq {freq}" in info and "100%" in info
        assert pane.pane_action("view", 1) == "OV contributions over the input token"
        await pilot.pause()
        assert pane.query_one("#circ-token", Plot).display
        assert not pane.query_one("#circ-fourier", Plot).display
        pane.pane_action("view", 1)  # both
        await pilot.pause()
        assert pane.query_one("#circ-token", Plot).display
        assert pane.query_one("#circ-fourier", Plot).display


async def test_no_snapshot_shows_the_note(snaps: dict[int, Snapshot]) -> None:
    pane = CircuitsPane()
    async with PaneApp(pane).run_test(size=(80, 24)) as pilot:
        pane.show_snapshot(None, "analysing epoch 1,200…")
        await pilot.pause()
        note = pane.query_one(PaneNote)
        assert note.display and "analysing epoch 1,200" in text_of(note)
        assert not pane.query_one("#circ-plots").display
        for action in ("neuron", "cluster", "head"):
            assert pane.pane_action(action, 1) is None
        assert pane.pane_action("view", 1) is not None  # the view may change with nothing drawn
        pane.show_snapshot(snaps[600], "")
        await pilot.pause()
        assert not note.display and pane.query_one("#circ-plots").display


@pytest.mark.parametrize("view", ["fourier", "both"])
async def test_resizing_never_raises(snaps: dict[int, Snapshot], view: str) -> None:
    pane = CircuitsPane()
    pane.view = view
    async with PaneApp(pane, snaps[600]).run_test(size=(100, 30)) as pilot:
        for size in SIZES:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            if size == (80, 24):
                shown = "circ-token" if view == "both" else "circ-fourier"
                assert pane.query_one(f"#{shown}", Plot).size.height >= 6
        pane.show_snapshot(None, "no checkpoints yet")
        await pilot.resize_terminal(20, 8)
        await pilot.pause()


def test_snapshot_circuits_pane(
    snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual would draw it monochrome
    monkeypatch.setenv("COLORTERM", "truecolor")
    pane = CircuitsPane()
    pane.neuron, pane.head, pane.view = 1, 2, "both"
    assert snap_compare(PaneApp(pane, planted_snapshot()), terminal_size=(100, 30))


async def test_another_run_with_fewer_neurons_keeps_a_valid_choice(
    snaps: dict[int, Snapshot],
) -> None:
    pane = CircuitsPane()
    async with PaneApp(pane, snaps[600]).run_test(size=(100, 30)) as pilot:
        pane.pane_action("neuron", -1)
        pane.pane_action("head", -1)
        assert pane.neuron == snaps[600].d_mlp - 1 and pane.head == 3
        small = planted_snapshot(n_heads=2, d_mlp=8)
        pane.show_snapshot(small, "")
        await pilot.pause()
        assert pane.neuron == 7 and pane.head == 1
        assert_shows_neuron(pane, small, 7)
