"""Heatmap widget: pooling, half-block strips, Pilot-driven rendering, cursor, 256 colours."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from rich.color import ColorType
from rich.style import Style
from textual import constants
from textual.app import App, ComposeResult
from textual.strip import Strip

from grok_tui.ui import colormap as cm
from grok_tui.ui.widgets.heatmap import (
    HALF_BLOCK,
    Heatmap,
    Scale,
    block_pool,
    fit_scale,
    heatmap_layout,
    natural_width,
    shared_range,
)
from grok_tui.ui.widgets.heatmap import pixels_to_strips as to_strips

P = 23


def cos_map(p: int = P, k: int = 3) -> np.ndarray:
    x = np.arange(p)
    return np.cos(2 * np.pi * k * (x[:, None] + x[None, :]) / p)


def rgb_of(style: Style | None, attr: str = "color") -> tuple[int, int, int] | None:
    color = getattr(style, attr) if style is not None else None
    return None if color is None or color.triplet is None else tuple(color.triplet)


def strip_text(strip: Strip) -> str:
    return "".join(segment.text for segment in strip)


class HeatmapApp(App[None]):
    """One heatmap filling the screen; records the CursorMoved messages it sees."""

    def __init__(self, data: np.ndarray | None = None, **kwargs: object) -> None:
        super().__init__()
        self.data = cos_map() if data is None else data
        self.kwargs = {"title": "cos 3(x+y)", "colour_mode": "truecolor", **kwargs}
        self.moves: list[tuple[int, int, float]] = []

    def compose(self) -> ComposeResult:
        yield Heatmap(self.data, **self.kwargs)  # type: ignore[arg-type]

    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        self.moves.append((message.x, message.y, message.value))


def all_lines(heatmap: Heatmap) -> list[Strip]:
    return [heatmap.render_line(y) for y in range(heatmap.size.height)]


# ---- pure pieces ----------------------------------------------------------------------------


def test_block_pool_exact_means_on_a_planted_array() -> None:
    blocks = np.array([[1.0, 2.0], [3.0, 4.0]])
    planted = np.kron(blocks, np.ones((3, 3)))  # 6 x 6, constant 3 x 3 blocks
    planted += np.tile(np.array([[-1.0, 0.0, 1.0]]), (6, 2))  # zero-mean wiggle in each block
    assert np.array_equal(block_pool(planted, 3), blocks)
    assert np.array_equal(block_pool(planted, 1), planted)
    a = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(block_pool(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert np.array_equal(block_pool(a, 1, 2), [[0.5, 2.5], [4.5, 6.5], [8.5, 10.5], [12.5, 14.5]])


def test_block_pool_edges_and_nan() -> None:
    a = np.arange(15.0).reshape(3, 5)
    pooled = block_pool(a, 2)
    assert pooled.shape == (2, 3)
    assert pooled[0, 2] == np.mean([4.0, 9.0])  # partial right-edge block
    assert pooled[1, 0] == np.mean([10.0, 11.0])  # partial bottom-edge block
    assert pooled[1, 2] == 14.0  # corner: one value
    b = np.array([[np.nan, 2.0], [np.nan, np.nan]])
    assert block_pool(b, 2)[0, 0] == 2.0  # NaN ignored
    assert np.isnan(block_pool(np.full((2, 2), np.nan), 2)[0, 0])  # all NaN stays NaN
    with pytest.raises(ValueError):
        block_pool(np.zeros(4), 2)
    with pytest.raises(ValueError):
        block_pool(np.zeros((4, 4)), 0)


def test_maxabs_pooling_keeps_extremes_and_signs() -> None:
    a = np.array([[1.0, -5.0, 2.0], [3.0, 4.0, np.nan], [0.5, -0.2, np.nan]])
    pooled = block_pool(a, 2, how="maxabs")
    assert pooled.tolist()[0] == [-5.0, 2.0]  # the largest magnitude, sign kept; NaN ignored
    assert pooled[1, 0] == 0.5 and np.isnan(pooled[1, 1])  # an all-NaN block stays NaN
    assert np.array_equal(block_pool(a, 1, how="maxabs"), a, equal_nan=True)


def test_a_high_frequency_neuron_stays_visible_when_pooled() -> None:
    """A relu'd wave of frequency 26 at p = 53 (the quick preset's neuron 0) is a checkerboard
    with a slow beat. Block means flatten it, and more at factor 2 (enlarged) than at 3 (a
    tile); max-abs pooling shows less the more it pools, so enlarged never shows less."""
    p = 53
    t = np.arange(p)
    wave = np.maximum(np.cos(2 * np.pi * 26 * (t[:, None] + t[None, :]) / p) + 0.2, 0.0)
    spread = [float(block_pool(wave, f, how="maxabs").std()) for f in range(1, 9)]
    assert (np.diff(spread) <= 0).all()
    assert spread[1] >= 0.5 * spread[0]  # enlarged at 2x2 keeps half the full contrast
    mean = [float(block_pool(wave, f).std()) for f in (2, 3)]
    assert mean[0] < mean[1] and mean[0] < 0.35 * spread[0]  # what the mean did


def test_public_layout_rules() -> None:
    layout = heatmap_layout((113, 113), 80, 24)
    assert layout.scale == Scale(3, 3, 1, 1) and layout.gutter == 4 and layout.dw == 38
    assert (layout.title_y, layout.plot_y, layout.plot_lines) == (0, 1, 19)
    assert natural_width((113, 113), 24, x_label="y") == 4 + 38 + 2
    assert natural_width((23, 23), 24, x_label="y") == 3 + 23 * 1 + 2  # zoom fits the height
    assert shared_range([np.array([0.3, 0.7]), np.array([0.4, np.nan])]) == (0.3, 0.7)
    assert shared_range([np.full(3, np.nan)]) == (0.0, 1.0)
    spectrum = np.array([[50.0, 1.0], [2.0, 0.5]])
    heatmap = Heatmap()
    heatmap.set_data(spectrum, vmin=0.0, saturate_origin=True)  # the constant left out
    assert heatmap.value_range == (0.0, 2.0) and heatmap.data[0, 0] == 50.0


def test_fit_scale_keeps_pixels_square_and_zooms_small_maps() -> None:
    assert fit_scale((113, 113), 74, 36) == Scale(4, 4, 1, 1)  # height-bound: square pooling
    assert fit_scale((113, 113), 200, 120) == Scale(1, 1, 1, 1)  # full resolution
    assert fit_scale((23, 23), 196, 110) == Scale(1, 1, 4, 4)  # zoom by the smaller fit
    assert fit_scale((23, 23), 196, 110, zoom=False) == Scale(1, 1, 1, 1)
    assert fit_scale((4, 512), 74, 36) == Scale(7, 7, 1, 1)  # square even if rows merge...
    assert fit_scale((4, 512), 74, 36, keep_aspect=False) == Scale(1, 7, 9, 1)  # ...or not
    assert fit_scale((113, 113), 0, 10) is None
    assert fit_scale((0, 5), 10, 10) is None
    s = fit_scale((113, 113), 74, 36)
    assert s is not None and s.display_shape((113, 113)) == (29, 29)  # square on screen


def test_half_block_strips_carry_top_and_bottom_colours() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    strips = to_strips(rgb)
    assert len(strips) == 2
    for line, strip in enumerate(strips):
        assert strip.cell_length == 4
        cells = [(seg.style, ch) for seg in strip for ch in seg.text]
        assert len(cells) == 4
        for col, (style, ch) in enumerate(cells):
            assert ch == HALF_BLOCK
            assert rgb_of(style) == tuple(rgb[2 * line, col])  # foreground: top pixel
            assert rgb_of(style, "bgcolor") == tuple(rgb[2 * line + 1, col])  # bottom pixel


def test_half_block_strips_merge_runs_and_handle_odd_rows() -> None:
    rgb = np.zeros((3, 5, 3), dtype=np.uint8)
    rgb[:, 3:] = (255, 0, 0)
    strips = to_strips(rgb)
    assert len(strips) == 2
    assert [seg.text for seg in strips[0]] == [HALF_BLOCK * 3, HALF_BLOCK * 2]
    assert all(seg.style is not None and seg.style.bgcolor is None for seg in strips[1])


def test_half_block_strips_in_256_colours() -> None:
    rgb = np.array([[[0, 95, 135], [128, 128, 128]], [[255, 255, 255], [5, 48, 97]]], np.uint8)
    (strip,) = to_strips(rgb, reduced=True)
    styles = [seg.style for seg in strip]
    assert [s.color.type for s in styles] == [ColorType.EIGHT_BIT] * 2
    assert [s.color.number for s in styles] == [16 + 6 * 1 + 2, 244]
    assert [s.bgcolor.number for s in styles] == [231, 23]


# ---- the widget in an app -----------------------------------------------------------------


async def test_tiny_array_in_a_4x2_region_draws_exact_pixels() -> None:
    data = np.array(
        [[-1.0, -0.5, 0.0, 0.5], [1.0, 0.5, 0.0, -0.5], [0.25, -0.25, 1.0, -1.0], [0, 0, 0, 0]]
    )
    app = HeatmapApp(data, show_cursor=False, vmin=-1.0, vmax=1.0)
    async with app.run_test(size=(4, 2)):
        heatmap = app.query_one(Heatmap)
        assert heatmap.scale == Scale(1, 1, 1, 1)
        expected = cm.to_rgb(data, diverging=True, vmin=-1.0, vmax=1.0)
        for line in range(2):
            strip = heatmap.render_line(line)
            cells = [(seg.style, ch) for seg in strip for ch in seg.text]
            assert [ch for _, ch in cells] == [HALF_BLOCK] * 4
            for col, (style, _) in enumerate(cells):
                assert rgb_of(style) == tuple(expected[2 * line, col])
                assert rgb_of(style, "bgcolor") == tuple(expected[2 * line + 1, col])


@pytest.mark.parametrize("size", [(80, 24), (200, 60), (20, 8), (3, 2), (1, 1), (12, 3)])
async def test_renders_at_many_sizes(size: tuple[int, int]) -> None:
    app = HeatmapApp(cos_map(113))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        heatmap = app.query_one(Heatmap)
        lines = all_lines(heatmap)
        assert all(strip.cell_length == size[0] for strip in lines)
        assert any(HALF_BLOCK in strip_text(strip) for strip in lines)
        assert "<svg" in app.export_screenshot()  # through the compositor too


async def test_layout_at_80x24_and_full_resolution_when_big() -> None:
    app = HeatmapApp(cos_map(113))
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one(Heatmap)
        await pilot.pause()
        assert heatmap.scale == Scale(3, 3, 1, 1)  # 21 plot lines = 42 px for 113 rows
        lines = [strip_text(s) for s in all_lines(heatmap)]
        assert lines[0].startswith("y   cos 3(x+y)")
        assert "x=0 y=0" in lines[0]  # the cursor readout
        assert lines[1].startswith("  0>")  # y tick and cursor mark in the gutter
        axis = lines[1 + 19]  # 38 pooled rows (ceil(113 / 3)) = 19 plot lines
        assert axis.split() == ["0", "20", "40", "60", "80", "100", "x"]
        assert "-1" in lines[21] and "3×3 max|·|" in lines[21]  # colour bar and scale
        await pilot.resize_terminal(200, 70)
        await pilot.pause()
        assert heatmap.scale == Scale(1, 1, 1, 1)  # enlarged: every value its own pixel
        texts = [strip_text(s) for s in all_lines(heatmap)]
        assert texts[1].count(HALF_BLOCK) == 113


async def test_small_maps_zoom_to_fill() -> None:
    app = HeatmapApp(cos_map(23))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        heatmap = app.query_one(Heatmap)
        assert heatmap.scale == Scale(1, 1, 3, 3)  # 37 lines = 74 px >= 3 * 23
        assert "zoom ×3" in strip_text(heatmap.render_line(1 + 35 + 1))


async def test_cursor_moves_with_arrow_keys_and_reports_the_value() -> None:
    data = cos_map(P) + np.arange(P)[None, :] * 1e-3  # distinct values
    app = HeatmapApp(data, zoom=False)
    async with app.run_test(size=(80, 30)) as pilot:
        heatmap = app.query_one(Heatmap)
        heatmap.focus()
        await pilot.pause()
        assert heatmap.scale == Scale(1, 1, 1, 1)
        await pilot.press("right", "right", "down")
        await pilot.pause()
        assert heatmap.cursor == (2, 1)
        assert app.moves[-1] == (2, 1, data[1, 2])
        assert heatmap.cursor_value == data[1, 2]
        assert "x=2 y=1" in strip_text(heatmap.render_line(0))
        n = len(app.moves)
        await pilot.press("up", "up")  # second press is clamped at row 0: no message
        await pilot.pause()
        assert heatmap.cursor == (2, 0) and len(app.moves) == n + 1
        heatmap.set_cursor(100, 100)  # the parent can set it too; clamped to the data
        await pilot.pause()
        assert heatmap.cursor == (P - 1, P - 1) and app.moves[-1][:2] == (P - 1, P - 1)


async def test_click_moves_the_cursor() -> None:
    app = HeatmapApp(cos_map(P), zoom=False)
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.pause()
        gutter = len(str(P - 1)) + 1
        await pilot.click(Heatmap, offset=(gutter + 5, 1 + 3))  # column 5, text line 3
        await pilot.pause()
        heatmap = app.query_one(Heatmap)
        assert heatmap.cursor == (5, 6)  # a click lands on the cell's top pixel (row 2 * 3)
        assert app.moves[-1][:2] == (5, 6)


async def test_cursor_steps_one_pooled_block_and_is_drawn() -> None:
    app = HeatmapApp(cos_map(113))
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one(Heatmap)
        heatmap.focus()
        await pilot.pause()
        f = heatmap.scale.fx  # type: ignore[union-attr]
        await pilot.press("right", "down", "down")
        await pilot.pause()
        assert heatmap.cursor == (f, 2 * f)
        # the cursor pixel (pooled row 2 = top half of plot line 1, column 1) is black/white
        strip = heatmap.render_line(2)
        cells = [seg.style for seg in strip for _ in seg.text]
        gutter = 4
        assert rgb_of(cells[gutter + 1]) in ((0, 0, 0), (255, 255, 255))
        assert strip_text(strip)[gutter - 1] == ">"


async def test_cursor_moves_repaint_only_a_few_lines() -> None:
    app = HeatmapApp(cos_map(113))
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one(Heatmap)
        await pilot.pause()
        all_lines(heatmap)
        before = heatmap.render_count
        all_lines(heatmap)
        assert heatmap.render_count == before  # served from the strip cache
        heatmap.set_cursor(30, 30)
        all_lines(heatmap)
        assert heatmap.render_count - before <= 5  # old/new cursor lines, title, axis
        before = heatmap.render_count
        heatmap.set_data(cos_map(113, k=5), title="new")
        all_lines(heatmap)
        assert heatmap.render_count - before == heatmap.size.height  # new data: everything


async def test_resizes_keep_working() -> None:
    app = HeatmapApp(cos_map(113))
    async with app.run_test(size=(80, 24)) as pilot:
        heatmap = app.query_one(Heatmap)
        for size in [(200, 60), (20, 8), (3, 2), (120, 40), (1, 1), (80, 24)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            assert heatmap.size == size
            lines = all_lines(heatmap)
            assert all(strip.cell_length == size[0] for strip in lines)
        assert heatmap.scale == Scale(3, 3, 1, 1)


async def test_zero_width_widget() -> None:
    class ZeroApp(HeatmapApp):
        CSS = "Heatmap { width: 0; }"

    app = ZeroApp()
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        heatmap = app.query_one(Heatmap)
        assert heatmap.size.width == 0
        assert [s.cell_length for s in all_lines(heatmap)] == [0] * 10


async def test_awkward_data() -> None:
    app = HeatmapApp(np.zeros((0, 0)))
    async with app.run_test(size=(40, 12)) as pilot:
        heatmap = app.query_one(Heatmap)
        await pilot.pause()
        assert strip_text(heatmap.render_line(0)).startswith("no data")
        assert heatmap.cursor_value is None

        weird = np.array([[np.nan, np.inf], [-np.inf, 1.0]])
        heatmap.set_data(weird)
        await pilot.pause()
        assert heatmap.diverging and heatmap.value_range == (-1.0, 1.0)
        assert np.isnan(heatmap.cursor_value)  # type: ignore[arg-type]
        assert "nan" in strip_text(heatmap.render_line(0))
        all_lines(heatmap)

        heatmap.set_data(np.arange(10.0))  # 1-D: one row
        await pilot.pause()
        assert heatmap.data.shape == (1, 10) and not heatmap.diverging
        assert any(HALF_BLOCK in strip_text(s) for s in all_lines(heatmap))

        heatmap.set_data(np.full((5, 5), np.nan))
        all_lines(heatmap)
        with pytest.raises(ValueError, match="1-D or 2-D"):
            heatmap.set_data(np.zeros((2, 2, 2)))


async def test_explicit_options() -> None:
    app = HeatmapApp(np.abs(cos_map()), vmin=0.0, vmax=2.0, diverging=True)
    async with app.run_test(size=(60, 20)) as pilot:
        heatmap = app.query_one(Heatmap)
        await pilot.pause()
        assert heatmap.diverging and heatmap.value_range == (0.0, 2.0)
        heatmap.set_data(np.abs(cos_map()))  # auto: non-negative -> sequential
        assert not heatmap.diverging
        assert heatmap.value_range == cm.auto_range(np.abs(cos_map()), diverging=False)
        heatmap.set_data(cos_map(), vmax=0.5)  # one end given: symmetric
        assert heatmap.value_range == (-0.5, 0.5)


async def test_256_colour_terminal_gets_no_truecolor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "COLOR_SYSTEM", "256")  # as TERM=xterm-256color would
    app = HeatmapApp(cos_map(113), colour_mode="auto")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert app.console.color_system == "256"
        heatmap = app.query_one(Heatmap)
        assert heatmap.reduced_colours and heatmap.color_system == "256"
        lines = all_lines(heatmap)
        colours = [
            color
            for strip in lines
            for seg in strip
            if seg.style is not None
            for color in (seg.style.color, seg.style.bgcolor)
            if color is not None
        ]
        assert colours and all(c.type != ColorType.TRUECOLOR for c in colours)
        assert any(c.type == ColorType.EIGHT_BIT and c.number >= 16 for c in colours)
        assert any("256 colours" in strip_text(s) for s in lines)  # says so
        heatmap.colour_mode = "truecolor"  # the app may override
        assert not heatmap.reduced_colours
        assert any(
            seg.style is not None
            and seg.style.color is not None
            and seg.style.color.type == ColorType.TRUECOLOR
            for s in all_lines(heatmap)
            for seg in s
        )


def test_snapshot_cos_map(
    snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)  # Textual would draw it monochrome
    assert snap_compare(HeatmapApp(cos_map(23)), terminal_size=(60, 20))


def test_a_non_negative_periodic_map_keeps_its_pattern_when_pooled() -> None:
    """Before, a ReLU neuron's map (period shorter than a block) pooled by max-abs was one
    solid colour in the 80x24 thumbnails."""
    from grok_tui.ui.widgets.heatmap import choose_pooling

    p, k, f = 53, 21, 4
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    neuron = np.maximum(np.cos(2 * np.pi * k * (x + y) / p), 0.0)
    solid = block_pool(neuron, f, how="maxabs")
    assert solid.std() < 0.25 * neuron.std()  # the failure: (almost) one colour
    how = choose_pooling(neuron, f, f)
    assert how != "maxabs"
    kept = block_pool(neuron, f, how="auto")
    assert kept.std() > 0.5 * neuron.std()  # the stripes survive
    # A sparse non-negative spectrum keeps its bright coefficient (max-abs wins there).
    spectrum = np.zeros((p, p))
    spectrum[13, 29] = 5.0
    assert choose_pooling(spectrum, f, f) == "maxabs"
    assert block_pool(spectrum, f, how="auto").max() == 5.0
    # A signed map is pooled by max-abs as before.
    assert choose_pooling(neuron - 0.5, f, f) == "maxabs"
    # Subsampling: each block's first value (brute force).
    sub = block_pool(neuron, f, how="subsample")
    assert sub.shape == (14, 14) and sub[3, 5] == neuron[3 * f, 5 * f]


async def test_x_names_label_the_columns_a_spectrogram_s_epochs() -> None:
    """Before, the spectrogram's x axis counted checkpoints (0-60) under a title in epochs."""
    epochs = [100 * i for i in range(61)]
    app = HeatmapApp(np.random.default_rng(0).random((27, 61)), show_cursor=False)
    async with app.run_test(size=(120, 30)) as pilot:
        heatmap = app.query_one(Heatmap)
        heatmap.set_data(heatmap.data, x_label="epoch", x_names=[f"{e:,}" for e in epochs])
        await pilot.pause()
        lines = [strip_text(s) for s in all_lines(heatmap)]
        axis = next(line for line in lines if line.rstrip().endswith("epoch"))
        ticks = axis.split()[:-1]
        assert ticks[0] == "0" and all(t.replace(",", "").isdigit() for t in ticks)
        assert all(int(t.replace(",", "")) % 100 == 0 for t in ticks)  # epochs, not indices
        assert any(int(t.replace(",", "")) >= 1000 for t in ticks)


async def test_a_map_of_a_few_columns_zoomed_far_labels_every_column() -> None:
    """A spectrogram of a new run has a few checkpoints; on a wide terminal each column is
    zoomed tens of cells wide, where the tick step came out as 0 and the axis raised
    (found by tests/test_key_storm.py: 3 columns at 68 cells each)."""
    app = HeatmapApp(
        np.random.default_rng(1).random((27, 3)), show_cursor=False, keep_aspect=False, zoom=True
    )  # as the Spectrogram draws
    async with app.run_test(size=(250, 40)) as pilot:
        heatmap = app.query_one(Heatmap)
        heatmap.set_data(heatmap.data, x_label="epoch", x_names=["0", "10", "20"])
        await pilot.pause()
        assert heatmap.scale is not None and heatmap.scale.kx >= 20
        lines = [strip_text(s).split() for s in all_lines(heatmap)]
        assert ["0", "10", "20"] in lines  # the x axis (no room left for its label)
