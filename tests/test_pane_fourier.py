"""FourierPane: each sub-view draws the snapshot's arrays; keys step them; sizes; no snapshot."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from textual.widgets import Static, TabbedContent

from grok_tui.engine.core import fourier
from grok_tui.engine.measures.analysis import Snapshot
from grok_tui.engine.measures.demos import planted_demo
from grok_tui.ui.panes.base import PaneNote
from grok_tui.ui.panes.fourier import FourierPane
from tests.pane_harness import PaneApp, TabsApp, text_of, tiny_snapshots
from tests.planted import explicit_basis
from tests.test_pane_neurons import planted_snapshot

SIZES = ((80, 24), (200, 60), (20, 8))
VIEWS = FourierPane.VIEWS


@pytest.fixture(scope="module")
def snaps() -> dict[int, Snapshot]:
    return tiny_snapshots()


async def show(pane: FourierPane, view: str, pilot: object) -> None:
    """Step "view" until `view` shows, and let it lay out."""
    for _ in range(len(VIEWS)):
        if pane.view == view:
            break
        pane.pane_action("view", 1)
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


def header(pane: FourierPane) -> str:
    return text_of(pane.query_one("#fourier-header", Static))


async def test_views_cycle_with_titles(snaps: dict[int, Snapshot]) -> None:
    pane = FourierPane()
    async with PaneApp(pane, snaps[600]).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        seen = []
        for i in range(len(VIEWS)):
            assert pane.view == VIEWS[i]
            assert header(pane).startswith(f"{i + 1}/{len(VIEWS)}")
            body = pane.query_one(f"#fv-{VIEWS[i].replace(' ', '-')}")
            assert body.display and body.size.height > 0
            seen.append(pane.pane_action("view", 1))
            await pilot.pause()
        assert pane.view == VIEWS[0]  # wrapped
        assert seen[0] == "Fourier view 2: spectra"


async def test_embedding_view_shows_component_norms(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(30, 24)) as pilot:
        await show(pane, "embedding", pilot)
        drawn = pane.figure("embed-plot")  # narrow (< p + 12 columns): a bar per frequency
        assert np.allclose(drawn.series[0][2], snap.embed_freq_sq)
        assert drawn.highlight == set(snap.key_freqs)
        text = text_of(pane.query_one("#embed-text", Static))
        assert "key frequencies " + ", ".join(map(str, snap.key_freqs)) in text
        for freq in snap.key_freqs:
            assert f"{freq}: {len(snap.clusters[freq])}" in text
        assert f"unclustered: {len(snap.clusters[-1])}" in text
        await pilot.resize_terminal(80, 24)  # wide: one bar per component, cos and sin
        await pilot.pause()
        await pilot.pause()
        drawn = pane.figure("embed-plot")
        assert np.allclose(drawn.series[0][2], snap.embed_fourier_sq)
        assert drawn.highlight == {2 * k - 1 for k in snap.key_freqs} | {
            2 * k for k in snap.key_freqs
        }


async def test_spectra_view_heads_neurons_clusters(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await show(pane, "spectra", pilot)
        attn, neuron = pane.heatmap("attn-spectrum"), pane.heatmap("neuron-spectrum")
        assert np.allclose(attn.data, np.abs(snap.attn_key0_fourier[0]))
        assert np.allclose(neuron.data, np.abs(snap.neuron_spectrum(0, centred=True)))
        assert pane.pane_action("head", 1) == "head 1"
        pane.pane_action("neuron", -1)
        await pilot.pause()
        assert pane.head == 1 and pane.neuron == snap.d_mlp - 1
        assert np.allclose(attn.data, np.abs(snap.attn_key0_fourier[1]))
        last = snap.d_mlp - 1
        assert np.allclose(neuron.data, np.abs(snap.neuron_spectrum(last, centred=True)))
        assert f"neuron {last}: freq {snap.neuron_freq[last]}" in text_of(
            pane.query_one("#spectra-text", Static)
        )
        # cluster: the best neuron of the next cluster (from unclustered: the first key freq)
        pane.neuron = int(snap.clusters[-1][0])
        status = pane.pane_action("cluster", 1)
        first = snap.clusters[snap.key_freqs[0]]
        best = int(first[np.argmax(snap.neuron_frac[first])])
        assert pane.neuron == best and status is not None and f"neuron {best}" in status
        pane.pane_action("cluster", 1)
        assert snap.neuron_cluster[pane.neuron] == snap.key_freqs[1]


async def test_wl_view_sorted_by_cluster(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await show(pane, "W_L", pilot)
        heatmap = pane.heatmap("wl-map")
        assert not heatmap.keep_aspect
        assert np.allclose(heatmap.data, np.abs(snap.W_L_fourier[snap.neuron_order]))
        lo, hi = heatmap.value_range
        assert lo == 0.0 and 0 < hi <= np.abs(snap.W_L_fourier).max() + 1e-6
        text = text_of(pane.query_one("#wl-text", Static))
        for freq, first, last in snap.cluster_spans():
            name = "unclustered" if freq == -1 else f"freq {freq}"
            assert f"{first:>3}-{last:<3} {name} ({last - first + 1})" in text


async def test_basis_view_components_and_dimension(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    p = snap.p
    basis = explicit_basis(p)
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await show(pane, "basis", pilot)
        assert np.allclose(pane.figure("basis-plot").series[0][2], basis[1])  # cos 1
        status = pane.pane_action("component", 1)
        await pilot.pause()
        assert status == "basis component 2: sin 1"
        assert np.allclose(pane.figure("basis-plot").series[0][2], basis[2])
        assert "sin 1" in pane.figure("basis-plot").title
        pane.pane_action("component", -3)
        assert pane.component == p - 1  # wraps
        assert pane.pane_action("dim", 1) == "embedding dimension 1"
        await pilot.pause()
        assert np.allclose(pane.figure("dim-plot").series[0][2], snap.W_E[:, 1])
        fft = pane.figure("dim-fft-plot")
        want = fourier.freq_norms((basis @ snap.W_E[:, 1].astype(np.float64)) ** 2)
        assert np.allclose(fft.series[0][2], want, rtol=1e-4, atol=1e-8)
        assert fft.highlight == set(snap.key_freqs)
        assert pane.neuron == 0  # the neuron selection is left alone


async def test_planted_view_shows_the_demo(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    demo = planted_demo(snap.p)
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await show(pane, "planted", pilot)
        assert np.allclose(pane.heatmap("planted-values").data, demo.values)
        n = demo.span
        assert np.allclose(pane.heatmap("planted-spectrum").data, demo.spectrum[:n, :n])
        text = text_of(pane.query_one("#planted-text", Static))
        assert demo.formula in text and demo.describe()[0] in text


async def test_embed_dims_view(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await show(pane, "embed dims", pilot)
        drawn = pane.figure("dims-plot")
        assert [label for label, *_ in drawn.series] == ["dim 0", "dim 1", "dim 2", "dim 3"]
        for d, (_, xs, ys, _) in enumerate(drawn.series):
            assert xs == list(range(snap.p)) and np.allclose(ys, snap.W_E[:, d])
        pane.pane_action("dim", -1)
        await pilot.pause()
        d_model = snap.W_E.shape[1]
        assert pane.figure("dims-plot").series[0][0] == f"dim {d_model - 1}"


async def test_enlarge_and_cursor(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=(80, 24)) as pilot:
        await show(pane, "W_L", pilot)
        heatmap = pane.heatmap("wl-map")
        assert pane.pane_action("enlarge", 1).startswith("W_L enlarged: arrows move the cursor")
        await pilot.pause()
        assert pane.screen.maximized is heatmap and pane.screen.focused is heatmap
        await pilot.press("down", "right")
        await pilot.pause()
        _, row = heatmap.cursor
        neuron = int(snap.neuron_order[row])
        assert pane.cursor_text.startswith(f"neuron {neuron} (row {row}), ")
        assert pane.pane_action("enlarge", 1) == "restored"
        await pilot.pause()
        assert not pane.enlarged and not heatmap.can_focus and pane.cursor_text == ""
        # spectra: the map last stepped is the one enlarged, and it follows the keys
        await show(pane, "spectra", pilot)
        pane.pane_action("head", 1)
        pane.pane_action("enlarge", 1)
        await pilot.pause()
        assert pane.screen.maximized is pane.heatmap("attn-spectrum")
        pane.pane_action("neuron", 1)
        await pilot.pause()
        assert pane.screen.maximized is pane.heatmap("neuron-spectrum")
        pane.pane_action("view", 1)  # a new view restores first
        await pilot.pause()
        assert not pane.enlarged and pane.view == "W_L"
        await show(pane, "basis", pilot)
        pane.pane_action("enlarge", 1)  # a plot can be enlarged too
        await pilot.pause()
        assert pane.screen.maximized is pane.plot("basis-plot")
        await pilot.press("escape")
        await pilot.pause()
        assert not pane.enlarged


async def test_no_snapshot_shows_the_note() -> None:
    pane = FourierPane()
    async with PaneApp(pane).run_test(size=(80, 24)) as pilot:
        pane.show_snapshot(None, "checkpoint 1,200 is damaged")
        await pilot.pause()
        note = pane.query_one(PaneNote)
        assert note.display and "damaged" in text_of(note)
        assert not pane.query_one("#fourier-body").display
        for name in ("head", "neuron", "cluster", "component", "dim", "enlarge"):
            assert pane.pane_action(name, 1) is None
        pane.pane_action("view", 1)  # the view may change with nothing to draw
        assert pane.view == VIEWS[1]
        pane.show_snapshot(tiny_snapshots()[600], "")  # the body was hidden: drawn once laid out
        await pilot.pause()
        await pilot.pause()
        attn = pane.heatmap("attn-spectrum")
        snap = tiny_snapshots()[600]
        assert attn.size.width > 0 and np.allclose(attn.data, np.abs(snap.attn_key0_fourier[0]))


@pytest.mark.parametrize("size", SIZES)
async def test_every_view_at_every_size(snaps: dict[int, Snapshot], size: tuple[int, int]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    async with PaneApp(pane, snap).run_test(size=size) as pilot:
        for _ in VIEWS:
            await pilot.pause()
            for name in ("head", "neuron", "component", "dim", "cluster", "enlarge", "enlarge"):
                pane.pane_action(name, 1)
            other = SIZES[(SIZES.index(size) + 1) % len(SIZES)]
            await pilot.resize_terminal(*other)
            await pilot.pause()
            await pilot.resize_terminal(*size)
            pane.pane_action("view", 1)
        pane.show_snapshot(snaps[300], "")
        await pilot.pause()
        pane.show_snapshot(None, "analysing epoch 1,200…")
        await pilot.pause()
        assert pane.has_class("-empty")


async def test_snapshot_arrives_while_hidden(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = FourierPane()
    app = TabsApp(pane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane.pane_action("view", 1)  # spectra: heatmaps with size-dependent colour ranges
        pane.show_snapshot(snap, "")
        await pilot.pause()
        app.query_one(TabbedContent).active = "pane"
        await pilot.pause()
        await pilot.pause()
        attn = pane.heatmap("attn-spectrum")
        snap = tiny_snapshots()[600]
        assert attn.size.width > 0 and np.allclose(attn.data, np.abs(snap.attn_key0_fourier[0]))
        assert attn.size.width < 100  # the pair was fitted once laid out


def test_snapshot_fourier_pane(
    snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual would draw it monochrome
    monkeypatch.setenv("COLORTERM", "truecolor")  # the same colours on every machine
    pane = FourierPane()
    pane.view = "spectra"
    pane.head, pane.neuron = 1, 4
    assert snap_compare(PaneApp(pane, planted_snapshot()), terminal_size=(100, 30))


def nan_snapshot() -> Snapshot:
    """A diverged checkpoint: every float array NaN (the engine would report it, not crash)."""
    snap = planted_snapshot()
    for name, value in vars(snap).items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            setattr(snap, name, np.full_like(value, np.nan))
    return snap


async def test_nan_snapshot_draws_without_errors() -> None:
    from grok_tui.ui.panes.neurons import NeuronsPane

    for pane in (FourierPane(), NeuronsPane()):
        async with PaneApp(pane, nan_snapshot()).run_test(size=(100, 30)) as pilot:
            for _ in range(len(VIEWS)):
                await pilot.pause()
                pane.pane_action("view", 1)
                pane.pane_action("cluster", 1)
            await pilot.pause()
