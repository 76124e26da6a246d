"""AttentionPane: per-head maps of a real snapshot, head selection, views, enlarge, sizes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from textual.widgets import Static, TabbedContent

from grok_tui.engine.measures.analysis import Snapshot, clusters_from
from grok_tui.ui.panes.attention import AttentionPane
from grok_tui.ui.panes.base import PaneNote
from grok_tui.ui.widgets.plot import PALETTE
from tests.pane_harness import SIZES, PaneApp, TabsApp, text_of, tiny_snapshots
from tests.planted import explicit_basis


def planted_snapshot(p: int = 23, n_heads: int = 4, d_mlp: int = 8) -> Snapshot:
    """A Snapshot from closed-form arrays: deterministic pictures for the snapshot tests.

    Head h attends to x as 0.5 + 0.4 cos(w_k (x - y)) with k = h + 1; W_attn is a cosine of
    frequency 2h + 1; neuron n reads frequency k_n = 1 + n % 3 through every head with a
    head-dependent amplitude and phase, so its OV curves are pure sinusoids of k_n.
    """
    basis = explicit_basis(p)
    t = np.arange(p)
    w = 2 * math.pi / p
    attn = np.stack([0.5 + 0.4 * np.cos(w * (h + 1) * (t[:, None] - t[None, :]))
                     for h in range(n_heads)])  # fmt: skip
    w_attn = np.stack([np.cos(w * (2 * h + 1) * t) * (1 + h) for h in range(n_heads)])
    freqs = 1 + np.arange(d_mlp) % 3
    w_neur = np.stack([
        np.stack([(1 + 0.3 * h) * np.cos(w * freqs[n] * t + 0.7 * h) for n in range(d_mlp)],
                 axis=1)
        for h in range(n_heads)
    ])  # fmt: skip
    frac = np.where(np.arange(d_mlp) % 4 == 3, 0.5, 0.95)
    cluster, clusters, key_freqs = clusters_from(freqs, frac)
    k = (p - 1) // 2
    avg = np.stack([[0.3 + 0.1 * h, 0.6 - 0.1 * h, 0.1] for h in range(n_heads)])
    f32 = np.float32
    return Snapshot(
        epoch=1234, p=p, train_loss=0.01, test_loss=0.02, train_acc=1.0, test_acc=1.0,
        avg_attn=avg.astype(f32),
        attn_key0=attn.astype(f32),
        attn_key0_fourier=np.einsum("ix,hxy,jy->hij", basis, attn, basis).astype(f32),
        neuron_acts=np.zeros((p, p, d_mlp), f32),
        neuron_shares=np.zeros((k, d_mlp), f32),
        neuron_freq=freqs, neuron_frac=frac.astype(f32), neuron_cluster=cluster,
        clusters=clusters, key_freqs=key_freqs,
        neuron_order=np.concatenate(list(clusters.values())),
        W_E=np.zeros((p, 8), f32), W_E_fourier=np.zeros((p, 8), f32),
        embed_fourier_sq=np.zeros(p, f32), embed_freq_sq=np.zeros(k + 1, f32),
        W_neur=w_neur.astype(f32),
        W_attn=w_attn.astype(f32),
        W_attn_fourier=(w_attn @ basis.T).astype(f32),
        W_L_fourier=np.zeros((d_mlp, p), f32),
        logits_fourier_sq=np.zeros((p, p), f32),
        basis_names=("Const", *(f"{c} {i}" for i in range(1, k + 1) for c in ("cos", "sin"))),
    )  # fmt: skip


def freq_norms_explicit(curves: np.ndarray) -> np.ndarray:
    """|coefficients| per frequency, from the explicit basis: (h, p) -> (h, K + 1)."""
    c = np.asarray(curves, dtype=np.float64) @ explicit_basis(curves.shape[1]).T
    return np.concatenate([np.abs(c[:, :1]), np.hypot(c[:, 1::2], c[:, 2::2])], axis=1)


@pytest.fixture(scope="module")
def snaps() -> dict[int, Snapshot]:
    return tiny_snapshots()


async def test_maps_table_and_qk_plot_hold_the_snapshot(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = AttentionPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        maps = pane.maps
        assert len(maps) == snap.n_heads == 4
        for h, heatmap in enumerate(maps):
            assert np.array_equal(heatmap.data, snap.attn_key0[h].astype(np.float64))
            assert heatmap.value_range == (snap.attn_key0.min(), snap.attn_key0.max())
            assert not heatmap.diverging
            assert not heatmap.can_focus and not heatmap.show_cursor
        assert maps[0].has_class("-selected") and not maps[1].has_class("-selected")
        # view 6 per frequency (by default): |W_attn| per head and frequency, as stems
        figure = pane.qk_plot.figure
        assert figure.title.startswith("QK: |W_attn| per frequency") and figure.style == "stems"
        drawn = {name.split()[1]: ys for name, _, ys, _ in figure.series}
        expected = freq_norms_explicit(snap.W_attn)
        for h in range(4):
            assert np.allclose(drawn[str(h)], expected[h], rtol=1e-4, atol=1e-5)
        table = text_of(pane.query_one("#attn-table", Static))
        for value in snap.avg_attn[1]:
            assert f"{value:5.3f}" in table
        assert "▶  0" in table


async def test_head_key_moves_the_highlight_and_the_text(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = AttentionPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        status = pane.pane_action("head", 1)
        await pilot.pause()
        assert pane.head == 1
        assert status is not None and f"{snap.avg_attn[1, 0]:.3f}" in status
        assert [m.has_class("-selected") for m in pane.maps] == [False, True, False, False]
        assert "▶  1" in text_of(pane.query_one("#attn-table", Static))
        series = pane.qk_plot.figure.series
        name, _, ys, colour = series[-1]  # the selected head is drawn on top, in full colour
        assert name.startswith("head 1") and colour == PALETTE[1]
        assert np.allclose(ys, freq_norms_explicit(snap.W_attn)[1], rtol=1e-4, atol=1e-5)
        assert all(c != PALETTE[i] for n, _, _, c in series[:-1]
                   for i in [int(n.split()[1])])  # fmt: skip
        pane.pane_action("head", -1)
        pane.pane_action("head", -1)
        assert pane.head == 3  # wraps around
        # scrubbing keeps the choice
        pane.show_snapshot(snaps[300], "")
        await pilot.pause()
        assert pane.head == 3 and pane.maps[3].has_class("-selected")
        assert np.array_equal(pane.maps[2].data, snaps[300].attn_key0[2].astype(np.float64))


def pair_norms_explicit(spectrum: np.ndarray) -> np.ndarray:
    """Norm of a (p, p) 2D spectrum per frequency pair, by loops over the component blocks."""
    p = spectrum.shape[0]
    comps = [[0]] + [[2 * k - 1, 2 * k] for k in range(1, (p - 1) // 2 + 1)]
    return np.array([[math.sqrt(sum(float(spectrum[i, j]) ** 2 for i in a for j in b))
                      for b in comps] for a in comps])  # fmt: skip


async def test_view_key_shows_the_fourier_spectra(snaps: dict[int, Snapshot]) -> None:
    snap = snaps[600]
    pane = AttentionPane()
    async with PaneApp(pane, snap).run_test(size=(100, 30)) as pilot:
        assert "|fft2| per freq pair" in (pane.pane_action("view", 1) or "")
        await pilot.pause()
        for h, heatmap in enumerate(pane.maps):  # view 11: attention in the Fourier basis
            expected = pair_norms_explicit(snap.attn_key0_fourier[h])
            assert heatmap.data.shape == (12, 12) and not heatmap.diverging
            assert np.allclose(heatmap.data, expected, rtol=1e-5, atol=1e-6)
        top = pair_norms_explicit(snap.attn_key0_fourier[0])
        top[0, 0] = 0
        kx, ky = np.unravel_index(np.argmax(top), top.shape)
        table = text_of(pane.query_one("#attn-table", Static))
        assert f"top: ({kx},{ky}) {top[kx, ky]:.3g}" in table
        assert "QK over the input token" in (pane.pane_action("view", 1) or "")  # view 3
        await pilot.pause()
        assert np.array_equal(pane.maps[0].data, snap.attn_key0[0].astype(np.float64))
        drawn = {name.split()[1]: ys for name, _, ys, _ in pane.qk_plot.figure.series}
        for h in range(4):  # W_attn per head over the input token
            assert np.allclose(drawn[str(h)], snap.W_attn[h])
        pane.pane_action("view", 1)
        assert pane.view == "maps"


async def test_enlarge_maximises_the_selected_map_and_arrows_move_its_cursor(
    snaps: dict[int, Snapshot],
) -> None:
    snap = snaps[600]
    pane = AttentionPane()
    async with PaneApp(pane, snap).run_test(size=(80, 24)) as pilot:
        pane.pane_action("head", 1)
        assert pane.pane_action("enlarge", 1) is not None
        await pilot.pause()
        heatmap = pane.maps[1]
        assert pane.enlarged and pilot.app.screen.maximized is heatmap
        assert pilot.app.focused is heatmap and heatmap.show_cursor
        await pilot.press("down", "down", "right")
        await pilot.pause()
        assert heatmap.cursor == (1, 2)  # (col y, row x)
        assert f"{snap.attn_key0[1][2, 1]:.4g}" in pane.cursor_text
        assert "x=2 y=1" in pane.cursor_text
        pane.pane_action("head", 1)  # the enlarged map follows the selection, cursor kept
        await pilot.pause()
        assert pilot.app.screen.maximized is pane.maps[2] and pane.maps[2].cursor == (1, 2)
        assert not heatmap.can_focus and not heatmap.show_cursor
        assert pane.pane_action("enlarge", 1) == "restored"
        await pilot.pause()
        assert pilot.app.screen.maximized is None and not pane.enlarged
        assert pilot.app.focused is None and not pane.maps[2].can_focus
        pane.pane_action("enlarge", 1)
        await pilot.pause()
        await pilot.press("escape")  # Textual's own way back restores the grid too
        await pilot.pause()
        assert pilot.app.screen.maximized is None and not pane.maps[2].show_cursor


async def test_no_snapshot_shows_the_note(snaps: dict[int, Snapshot]) -> None:
    pane = AttentionPane()
    async with PaneApp(pane).run_test(size=(80, 24)) as pilot:
        pane.show_snapshot(None, "no checkpoints yet")
        await pilot.pause()
        note = pane.query_one(PaneNote)
        assert note.display and "no checkpoints yet" in text_of(note)
        assert not pane.query_one("#attn-body").display
        assert pane.pane_action("head", 1) is None and pane.pane_action("enlarge", 1) is None
        pane.show_snapshot(snaps[600], "")
        await pilot.pause()
        assert not note.display and pane.query_one("#attn-body").display
        pane.pane_action("enlarge", 1)
        pane.show_snapshot(None, "checkpoint epoch_0000100 is damaged: bad header")
        await pilot.pause()
        assert pilot.app.screen.maximized is None
        assert "damaged" in text_of(note)


@pytest.mark.parametrize("enlarged", [False, True])
async def test_resizing_never_raises(snaps: dict[int, Snapshot], enlarged: bool) -> None:
    pane = AttentionPane()
    async with PaneApp(pane, snaps[600]).run_test(size=(100, 30)) as pilot:
        if enlarged:
            pane.pane_action("enlarge", 1)
        for size in SIZES:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            if size == (80, 24) and not enlarged:  # the side panel keeps room to read
                assert pane.query_one("#attn-side").size.width >= 30
                assert pane.query_one("#attn-qk").size.height >= 6
            for heatmap in pane.maps:
                heatmap.render_lines(heatmap.region.reset_offset)  # draws without raising
        pane.show_snapshot(None, "no checkpoints yet")
        await pilot.resize_terminal(20, 8)
        await pilot.pause()


async def test_maps_stay_square(snaps: dict[int, Snapshot]) -> None:
    pane = AttentionPane()
    async with PaneApp(pane, planted_snapshot(p=113)).run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        await pilot.pause()
        scale = pane.maps[0].scale
        assert scale is not None and scale.fx == scale.fy and scale.fy <= 3
        assert pane.query_one("#attn-grid").size.width < 120


def test_snapshot_attention_pane(
    snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual would draw it monochrome
    monkeypatch.setenv("COLORTERM", "truecolor")  # the same colours on every machine
    pane = AttentionPane()
    pane.head = 2
    assert snap_compare(PaneApp(pane, planted_snapshot()), terminal_size=(100, 30))


async def test_a_snapshot_shown_in_a_hidden_tab_fits_once_the_tab_opens(
    snaps: dict[int, Snapshot],
) -> None:
    pane = AttentionPane()
    app = TabsApp(pane)
    async with app.run_test(size=(80, 24)) as pilot:
        pane.show_snapshot(snaps[600], "")  # hidden: nothing to size against yet
        await pilot.pause()
        app.query_one(TabbedContent).active = "pane"
        for _ in range(4):
            await pilot.pause()
        assert np.array_equal(pane.maps[3].data, snaps[600].attn_key0[3].astype(np.float64))
        side = pane.query_one("#attn-side")
        assert side.size.width >= 30 and pane.query_one("#attn-grid").size.width >= 30
        assert pane.query_one("#attn-qk").size.height >= 6 and len(pane.qk_plot.figure.series) == 4


async def test_another_run_with_other_head_count_rebuilds_the_grid(
    snaps: dict[int, Snapshot],
) -> None:
    pane = AttentionPane()
    async with PaneApp(pane, snaps[600]).run_test(size=(100, 30)) as pilot:
        pane.pane_action("head", -1)
        pane.pane_action("enlarge", 1)
        await pilot.pause()
        two = planted_snapshot(n_heads=2)
        pane.show_snapshot(two, "")
        await pilot.pause()
        assert len(pane.maps) == 2 and pane.head == 1 and not pane.enlarged
        assert np.array_equal(pane.maps[1].data, two.attn_key0[1].astype(np.float64))
        assert len(pane.qk_plot.figure.series) == 2
