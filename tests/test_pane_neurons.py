"""NeuronsPane: the grid holds the snapshot's neuron maps, clusters filter it, keys, sizes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from textual.widgets import Static, TabbedContent

from grok_tui.engine.core import fourier
from grok_tui.engine.measures.analysis import UNCLUSTERED, Snapshot, clusters_from
from grok_tui.ui.panes.base import PaneNote
from grok_tui.ui.panes.neurons import (
    NeuronsPane,
    even_pooling,
    grid_shape,
    tile_title,
)
from tests.pane_harness import SIZES, PaneApp, TabsApp, text_of, tiny_snapshots
from tests.planted import explicit_basis


def planted_snapshot(p: int = 23, d_mlp: int = 12, d_model: int = 8) -> Snapshot:
    """A Snapshot from closed-form arrays: deterministic pictures for the snapshot tests.

    Neuron n is relu(cos(w k_n (x + y) + phase_n)) plus, for every fourth neuron, a second
    frequency (so it is unclustered); its shares come from the engine's block_shares of its
    exact 2D spectrum. W_E column 2i, 2i+1 holds cos and sin of key frequency i; W_L writes
    each neuron's frequency; head h attends to x as 0.5 + 0.4 cos(w (h + 1)(x - y)).
    """
    basis = explicit_basis(p)
    t = np.arange(p)
    w = 2 * math.pi / p
    freqs = np.array([2, 5, 7])
    xy = t[:, None] + t[None, :]
    acts = []
    for n in range(d_mlp):
        f = freqs[n % 3]
        wave = np.cos(w * f * xy + 0.5 * n)
        if n % 4 == 3:
            wave = wave + np.cos(w * (f + 1) * (t[:, None] - t[None, :]))
        acts.append(np.maximum(wave + 0.2, 0.0))
    neuron_acts = np.stack(acts, axis=2)
    centred = neuron_acts - neuron_acts.mean(axis=(0, 1))
    spectra = np.einsum("ix,xyn,jy->ijn", basis, centred, basis)
    shares = np.asarray(fourier.block_shares(spectra))
    frac, freq = shares.max(axis=0), shares.argmax(axis=0) + 1
    cluster, clusters, key_freqs = clusters_from(freq, frac)
    w_e = np.zeros((p, d_model))
    for i, f in enumerate(freqs[: d_model // 2]):
        w_e[:, 2 * i], w_e[:, 2 * i + 1] = np.cos(w * f * t), np.sin(w * f * t)
    w_e_fourier = basis @ w_e
    embed_sq = (w_e_fourier**2).sum(axis=1)
    w_l = np.stack([np.cos(w * freq[n] * t + n) for n in range(d_mlp)])
    h = 4
    attn = np.stack([0.5 + 0.4 * np.cos(w * (i + 1) * (t[:, None] - t[None, :])) for i in range(h)])
    w_attn = np.stack([np.cos(w * (2 * i + 1) * t) for i in range(h)])
    f32 = np.float32
    return Snapshot(
        epoch=1234,
        p=p,
        train_loss=0.01,
        test_loss=0.02,
        train_acc=1.0,
        test_acc=1.0,
        avg_attn=np.tile(np.array([0.5, 0.4, 0.1], f32), (h, 1)),
        attn_key0=attn.astype(f32),
        attn_key0_fourier=np.einsum("ix,hxy,jy->hij", basis, attn, basis).astype(f32),
        neuron_acts=neuron_acts.astype(f32),
        neuron_shares=shares.astype(f32),
        neuron_freq=freq,
        neuron_frac=frac.astype(f32),
        neuron_cluster=cluster,
        clusters=clusters,
        key_freqs=key_freqs,
        neuron_order=np.concatenate(list(clusters.values())),
        W_E=w_e.astype(f32),
        W_E_fourier=w_e_fourier.astype(f32),
        embed_fourier_sq=embed_sq.astype(f32),
        embed_freq_sq=fourier.freq_norms(embed_sq).astype(f32),
        W_neur=np.zeros((h, p, d_mlp), f32),
        W_attn=w_attn.astype(f32),
        W_attn_fourier=(w_attn @ basis.T).astype(f32),
        W_L_fourier=(w_l @ basis.T).astype(f32),
        logits_fourier_sq=np.zeros((p, p), f32),
        basis_names=tuple(fourier.basis_names(p)),
    )


def as64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


@pytest.fixture(scope="module")
def snaps() -> dict[int, Snapshot]:
    return tiny_snapshots()


# ---- pure helpers -------------------------------------------------------------------------------


def test_grid_shape_fits_and_grows() -> None:
    rows, cols, tile_w, tile_h = grid_shape(38, 16, 113)
    assert (rows, cols) == (3, 3) and rows * tile_h <= 16 and cols * (tile_w + 1) - 1 <= 38
    big = grid_shape(70, 52, 113)
    assert big[0] * big[1] > rows * cols and big[3] > tile_h
    assert grid_shape(1, 1, 113)[:2] == (1, 1)  # never zero tiles


def test_even_pooling_leaves_no_thin_edge() -> None:
    assert even_pooling(113, 7).fy == 9  # 113 = 16 * 7 + 1 would leave a one-row edge
    assert even_pooling(113, 2).fy == 2 and even_pooling(23, 4).fy == 4
    assert all(113 % even_pooling(113, f).fy * 2 >= even_pooling(113, f).fy for f in range(2, 60))


def test_tile_title_shortens(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    assert tile_title(snap, 3, 40).startswith(f"3 k{snap.neuron_freq[3]} ")
    assert tile_title(snap, 3, 5) == f"3 k{snap.neuron_freq[3]}"
    assert tile_title(snap, 3, 1) == "3"


# ---- the pane -----------------------------------------------------------------------------------


async def test_grid_and_enlarged_neuron_hold_the_snapshot(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        rows, cols, tile_w, tile_h = pane.shape
        assert rows * cols >= 6
        tile = pane.tiles[0]
        # Each tile shows its title and pixels; its axis and colour bar lie clipped below.
        assert tile.parent.size == (tile_w, tile_h) and tile.size.height == tile_h + 2
        assert list(pane.page) == list(range(rows * cols))  # the first neurons
        for heatmap, n in zip(pane.tiles, pane.page, strict=False):
            assert np.array_equal(heatmap.data, as64(snap.neuron_acts[:, :, n]))
            assert not heatmap.can_focus and not heatmap.show_cursor
        assert pane.tiles[0].has_class("-selected") and not pane.tiles[1].has_class("-selected")
        assert np.array_equal(pane.neuron_map.data, as64(snap.neuron_acts[:, :, 0]))
        spectrum = np.abs(snap.neuron_spectrum(0, centred=True))
        assert np.allclose(pane.spectrum_map.data, spectrum)
        info = text_of(pane.query_one("#neurons-info", Static))
        freq = int(snap.neuron_freq[0])
        assert f"neuron 0 · freq {freq}" in info
        assert f"{float(snap.neuron_frac[0]):.0%} explained" in info
        cluster = int(snap.neuron_cluster[0])
        assert snap.describe_cluster(cluster) in info
        if cluster == UNCLUSTERED:
            assert f"unclustered (< 85%; {len(snap.clusters[UNCLUSTERED])} such)" in info
        else:
            assert f"cluster {cluster} ({len(snap.clusters[cluster])} neurons)" in info
        grid_title = text_of(pane.query_one("#neurons-grid-title", Static))
        assert f"all neurons: 1-{rows * cols}/{snap.d_mlp}" in grid_title


async def test_cluster_filter_lists_the_cluster_by_fraction(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    assert len(snap.key_freqs) >= 2  # the tiny run has clusters to filter by
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        seen = []
        for _ in range(len(snap.key_freqs) + 2):
            status = pane.pane_action("cluster", 1)
            await pilot.pause()
            seen.append(pane.cluster)
            if pane.cluster is None:
                assert len(pane.neuron_list()) == snap.d_mlp
                continue
            members = snap.clusters[pane.cluster]
            listed = pane.neuron_list()
            assert sorted(listed.tolist()) == sorted(members.tolist())
            fracs = snap.neuron_frac[listed]
            assert np.all(np.diff(fracs) <= 0)  # best first
            assert pane.neuron == listed[0]  # the best one is selected
            shown = min(len(listed), pane.shape[0] * pane.shape[1])
            assert list(pane.page) == listed[:shown].tolist()
            for heatmap, n in zip(pane.tiles, listed[:shown], strict=False):
                assert np.array_equal(heatmap.data, as64(snap.neuron_acts[:, :, n]))
                assert heatmap.has_class("-unclustered") == (pane.cluster == UNCLUSTERED)
            assert status is not None and snap.describe_cluster(pane.cluster) in status
        assert seen == [*snap.key_freqs, UNCLUSTERED, None]  # all -> clusters -> unclustered
        pane.pane_action("cluster", -1)
        assert pane.cluster == UNCLUSTERED


async def test_neuron_steps_page_and_wrap(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        per_page = pane.shape[0] * pane.shape[1]
        for _ in range(per_page):
            status = pane.pane_action("neuron", 1)
        await pilot.pause()
        assert pane.neuron == per_page and pane.page[0] == per_page  # the second page
        assert status is not None and status.startswith(f"neuron {per_page}:")
        assert np.array_equal(pane.neuron_map.data, as64(snap.neuron_acts[:, :, per_page]))
        assert f"neuron {per_page} ·" in text_of(pane.query_one("#neurons-info", Static))
        pane.select_neuron(0)
        pane.pane_action("neuron", -1)
        await pilot.pause()
        assert pane.neuron == snap.d_mlp - 1 and snap.d_mlp - 1 in pane.page


async def test_view_cycles_maps_and_spectra(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert pane.view == "maps"
        pane.pane_action("view", 1)
        await pilot.pause()
        assert pane.view == "spectra" and pane.centred
        for heatmap, n in zip(pane.tiles, pane.page, strict=False):
            assert np.allclose(heatmap.data, np.abs(snap.neuron_spectrum(int(n), centred=True)))
        pane.pane_action("view", 1)
        await pilot.pause()
        assert pane.view == "raw spectra" and not pane.centred
        first = pane.tiles[0]
        assert np.allclose(first.data, np.abs(snap.neuron_spectrum(0, centred=False)))
        assert np.allclose(pane.spectrum_map.data, np.abs(snap.neuron_spectrum(0)))
        assert "raw" in text_of(pane.query_one("#neurons-grid-title", Static))
        pane.pane_action("view", 1)
        await pilot.pause()
        assert pane.view == "maps"


async def test_selection_survives_a_new_snapshot(snaps: dict[int, Snapshot]) -> None:
    late, early = snaps[600], snaps[300]
    pane = NeuronsPane()
    async with PaneApp(pane, late).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        pane.pane_action("cluster", 1)
        cluster = pane.cluster
        pane.select_neuron(17)
        pane.show_snapshot(early, "")
        await pilot.pause()
        assert pane.neuron == 17 and pane.cluster == cluster
        assert np.array_equal(pane.neuron_map.data, as64(early.neuron_acts[:, :, 17]))
        listed = pane.neuron_list()
        assert pane.has_class("-no-list") == (len(listed) == 0)
        if len(listed):
            assert sorted(listed.tolist()) == sorted(early.clusters[cluster].tolist())


async def test_enlarge_focuses_the_map_and_reads_the_cursor(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane.select_neuron(5)
        status = pane.pane_action("enlarge", 1)
        await pilot.pause()
        assert status is not None and "enlarged" in status
        heatmap = pane.neuron_map
        assert pane.enlarged and pane.screen.maximized is heatmap
        assert pane.screen.focused is heatmap and heatmap.show_cursor
        await pilot.press("down", "down", "right")
        await pilot.pause()
        x, y = heatmap.cursor
        assert (x, y) != (0, 0)
        value = float(snap.neuron_acts[y, x, 5])
        assert pane.cursor_text == f"neuron 5 at x={y} y={x}: {value:.4g}"
        assert pane.pane_action("enlarge", 1) == "restored"
        await pilot.pause()
        assert not pane.enlarged and pane.screen.focused is not heatmap
        assert not heatmap.show_cursor and not heatmap.can_focus
        # In a spectrum view the spectrum is the one enlarged; escape restores too.
        pane.pane_action("view", 1)
        pane.pane_action("enlarge", 1)
        await pilot.pause()
        assert pane.screen.maximized is pane.spectrum_map
        await pilot.press("escape")
        await pilot.pause()
        assert not pane.enlarged and pane.screen.focused is None


async def test_no_snapshot_shows_the_note() -> None:
    pane = NeuronsPane()
    async with PaneApp(pane).run_test(size=(80, 24)) as pilot:
        pane.show_snapshot(None, "no checkpoints yet")
        await pilot.pause()
        assert pane.has_class("-empty")
        note = pane.query_one(PaneNote)
        assert note.display and "no checkpoints yet" in text_of(note)
        assert not pane.query_one("#neurons-body").display
        for name in ("neuron", "cluster", "enlarge"):
            assert pane.pane_action(name, 1) is None
        pane.pane_action("view", -1)  # the view may change with nothing drawn
        assert pane.view == "raw spectra"
        # The first snapshot after the note: the body was hidden, the grid must still fit.
        pane.show_snapshot(tiny_snapshots()[600], "")
        await pilot.pause()
        await pilot.pause()
        assert len(pane.tiles) == pane.shape[0] * pane.shape[1] >= 6
        assert all(t.size.height > 0 for t in pane.tiles[: len(pane.page)])


@pytest.mark.parametrize("size", SIZES)
async def test_sizes_and_resizes(snaps: dict[int, Snapshot], size: tuple[int, int]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    async with PaneApp(pane, snap).run_test(size=size) as pilot:
        await pilot.pause()
        for name in ("cluster", "neuron", "view", "enlarge", "enlarge"):
            pane.pane_action(name, 1)
            await pilot.pause()
        for other in SIZES:
            await pilot.resize_terminal(*other)
            await pilot.pause()
            assert len(pane.page) >= 1
        await pilot.resize_terminal(*size)
        await pilot.pause()
        pane.show_snapshot(None, "analysing epoch 1,200…")
        await pilot.pause()
        pane.show_snapshot(snap, "")
        await pilot.pause()
        if size == (200, 60):
            assert len(pane.page) > 9  # more neurons when there is room
            assert all(t.size.height > 0 for t in pane.tiles[: len(pane.page)])


async def test_snapshot_arrives_while_hidden(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = NeuronsPane()
    app = TabsApp(pane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane.show_snapshot(snap, "")
        await pilot.pause()
        app.query_one(TabbedContent).active = "pane"
        await pilot.pause()
        await pilot.pause()
        assert len(pane.tiles) == pane.shape[0] * pane.shape[1] >= 6
        for heatmap, n in zip(pane.tiles, pane.page, strict=False):
            assert heatmap.size.height > 0
            assert np.array_equal(heatmap.data, as64(snap.neuron_acts[:, :, n]))


def test_snapshot_neurons_pane(
    snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual would draw it monochrome
    monkeypatch.setenv("COLORTERM", "truecolor")  # the same colours on every machine
    pane = NeuronsPane()
    pane.neuron = 4
    assert snap_compare(PaneApp(pane, planted_snapshot()), terminal_size=(100, 30))
