"""Fourier: the model's weights and activations in the Fourier basis, six sub-views.

Nanda et al. 2023 found that the grokked model computes (x + y) mod p with waves of a few
key frequencies. This pane shows the evidence, one sub-view at a time ("view" cycles them):

  1 embedding  the norm of each Fourier component of W_E: a few key frequencies stand out
               (blog view 13), with the number of neurons in each frequency's cluster;
  2 spectra    2D spectra of attention to x (one head) and of one neuron (views 11, 12);
  3 W_L        the neuron-logit map with classes in the Fourier basis, neurons sorted by
               cluster: each cluster writes its own frequency's cos and sin;
  4 basis      the Fourier basis itself, one component at a time (view 8), and one
               embedding dimension with its 1D Fourier transform squared (view 9);
  5 planted    a planted 2D function and its 2D spectrum: fft2d at work (view 10);
  6 embed dims embedding dimensions as functions of the input token (view 7).

Keys: view (next sub-view); head (the attention head in 2); neuron (the neuron in 2, the
embedding dimension in 4 and 6); cluster (in 2: jump to the best neuron of the next
cluster); component (the basis component in 4); enlarge (maximise the sub-view's main
picture; a heatmap gets the focus and a cursor).

2D spectra are drawn as magnitudes, with colour ranges from the pooled values (see
neurons.py); the planted demo keeps signs (its spectrum is exact and sparse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.engine import demos
from grok_tui.engine import fourier as fb
from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.panes.curves import PALETTE, SafePlot
from grok_tui.ui.panes.neurons import UNCLUSTERED, heatmap_scale, magnitude, pooled_top
from grok_tui.ui.widgets.heatmap import Heatmap

VIEWS = ("embedding", "spectra", "W_L", "basis", "planted", "embed dims")
VIEW_TITLES = {
    "embedding": "Fourier components of the embedding W_E (key frequencies stand out)",
    "spectra": "2D Fourier spectra: attention to x, and one neuron",
    "W_L": "neuron-logit map W_L in the Fourier basis, neurons sorted by cluster",
    "basis": "the Fourier basis, and one embedding dimension in it",
    "planted": "a planted function of (x, y) and its 2D spectrum: fft2d at work",
    "embed dims": "embedding dimensions as functions of the input token",
}
VIEW_KEYS = {
    "embedding": "v next view · z enlarge",
    "spectra": "h/H head · n/N neuron · c/C cluster · z enlarge · v next view",
    "W_L": "z enlarge · v next view",
    "basis": "b/B component · n/N dimension · z enlarge · v next view",
    "planted": "z enlarge · v next view",
    "embed dims": "n/N first dimension · z enlarge · v next view",
}
KEY_COLOUR = (255, 120, 60)
OTHER_COLOUR = (140, 140, 140)
LINE_COLOUR = (80, 160, 255)
N_DIMS = 4  # embedding dimensions drawn together in "embed dims"
SIDE_TEXT = 26  # cells kept for the words beside a pair of maps


# ---- plotting helpers ---------------------------------------------------------------------------


@dataclass
class Drawn:
    """What a plot shows (title, (label, xs, ys) per series, highlighted bar indices):
    kept per plot id in `FourierPane.plotted`, for tests and for the app's status line."""

    title: str
    series: list[tuple[str, list[float], list[float]]]
    highlight: set[int] = field(default_factory=set)


def _bar_width(xs: list[float], fraction: float = 0.8) -> float:
    """plotext widths are relative to a series' mean spacing: make every bar `fraction` wide."""
    if len(xs) < 2:
        return fraction
    spread = max(xs) - min(xs)
    return min(1.0, fraction * (len(xs) - 1) / spread) if spread > 0 else fraction


def bar_plot(
    plot: SafePlot,
    xs: list[float],
    ys: list[float],
    *,
    highlight: set[int],
    title: str,
    xlabel: str,
    ticks: list[tuple[float, str]],
) -> Drawn:
    """Bars, those at index in `highlight` in the key colour (two series: plotext takes one
    colour per series). Returns what it drew."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    for chosen, colour in ((False, OTHER_COLOUR), (True, KEY_COLOUR)):
        idx = [i for i in range(len(xs)) if (i in highlight) == chosen]
        if idx:
            bx = [xs[i] for i in idx]
            plt.bar(bx, [ys[i] for i in idx], color=colour, width=_bar_width(bx))
    if xs:
        plt.xlim(min(xs) - 0.5, max(xs) + 0.5)
    plt.ylim(0, max([*ys, 0.0]) * 1.05 or 1.0)
    if ticks:
        plt.xticks([t for t, _ in ticks], [label for _, label in ticks])
    plt.title(title)
    plt.xlabel(xlabel)
    plot.refresh()
    return Drawn(title, [("", list(xs), list(ys))], set(highlight))


def line_plot(
    plot: SafePlot,
    series: list[tuple[str, list[float], list[float], tuple[int, int, int]]],
    *,
    title: str,
    xlabel: str,
    ticks: list[int],
) -> Drawn:
    """Line series (braille) over integer x, with integer ticks and a zero line."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    for label, xs, ys, colour in series:
        plt.plot(xs, ys, color=colour, marker="braille", label=label or None)
    if series and series[0][1]:
        plt.hline(0.0, color=OTHER_COLOUR)
    if ticks:
        plt.xticks(ticks, [str(t) for t in ticks])
    plt.title(title)
    plt.xlabel(xlabel)
    plot.refresh()
    return Drawn(title, [(label, list(xs), list(ys)) for label, xs, ys, _ in series], set())


def token_ticks(p: int, width: int) -> list[int]:
    """Round x ticks over 0..p-1, about one per 10 columns."""
    count = max(2, min(12, width // 10))
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100) if (p - 1) / s <= count), 200)
    return list(range(0, p, step))


def spectrum_range(data: np.ndarray, width: int, height: int, keep_aspect: bool = True) -> float:
    """Top of the colour range of a magnitude map at this widget size, the [0, 0] constant
    left out (it dwarfs the rest of an uncentred spectrum and is drawn saturated)."""
    rest = np.array(data, dtype=np.float64, copy=True)
    if rest.size:
        rest[0, 0] = 0.0
    return pooled_top(rest, heatmap_scale(rest.shape, width, height, keep_aspect))


def natural_width(shape: tuple[int, int], height: int) -> int:
    """Cells a heatmap of `shape` uses at this height (gutter, pixels, x label), zoomed."""
    scale = heatmap_scale(shape, 10_000, height)
    dw = scale.display_shape(shape)[1] if scale is not None else shape[1]
    return len(str(max(shape[0] - 1, 0))) + 1 + dw + 2


def cluster_rows(snap: Any) -> list[tuple[int, int, int]]:
    """(frequency, first row, last row) of each cluster in `neuron_order` (-1 = unclustered)."""
    rows, start = [], 0
    for freq, members in snap.clusters.items():
        if len(members):
            rows.append((int(freq), start, start + len(members) - 1))
        start += len(members)
    return rows


def cluster_words(snap: Any) -> str:
    sizes = snap.cluster_sizes
    parts = [f"{k}: {sizes.get(k, 0)}" for k in snap.key_freqs]
    parts.append(f"unclustered: {sizes.get(UNCLUSTERED, 0)}")
    return "neurons per cluster  " + " · ".join(parts)


class FourierPlot(SafePlot):
    """A plot "enlarge" may maximise (Textual maximises only focusable widgets by default)."""

    ALLOW_MAXIMIZE: ClassVar[bool | None] = True


# ---- the pane -----------------------------------------------------------------------------------


class FourierPane(AnalysisPane):
    """Six sub-views of the model in the Fourier basis; see the module docstring."""

    ACTIONS: ClassVar[tuple[str, ...]] = (
        "view",
        "head",
        "neuron",
        "cluster",
        "component",
        "enlarge",
    )

    DEFAULT_CSS = """
    FourierPane { height: 1fr; }
    FourierPane #fourier-header { height: auto; max-height: 2; }
    FourierPane #fourier-body { height: 1fr; }
    FourierPane .fv { display: none; height: 1fr; }
    FourierPane.-view-embedding #fv-embedding { display: block; }
    FourierPane.-view-spectra #fv-spectra { display: block; }
    FourierPane.-view-W_L #fv-W_L { display: block; }
    FourierPane.-view-basis #fv-basis { display: block; }
    FourierPane.-view-planted #fv-planted { display: block; }
    FourierPane.-view-embed-dims #fv-embed-dims { display: block; }
    FourierPane SafePlot { height: 1fr; min-height: 4; }
    FourierPane Heatmap { width: 1fr; height: 1fr; }
    FourierPane .fv-side { width: 1fr; min-width: 16; height: 1fr; padding-left: 1; }
    FourierPane .fv-text { height: auto; max-height: 4; color: $text-muted; }
    FourierPane #wl-text { width: 30; height: 1fr; max-height: 100%; padding-left: 1; }
    FourierPane #basis-right { width: 1fr; }
    FourierPane #fourier-note { display: none; }
    FourierPane.-empty #fourier-note { display: block; }
    FourierPane.-empty #fourier-body { display: none; }
    FourierPane.-empty #fourier-header { display: none; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view = VIEWS[0]
        self.head = 0
        self.neuron = 0
        self.component = 1  # cos 1: the constant row is a flat line
        self.dim = 0  # the embedding dimension of "basis" and the first one of "embed dims"
        self.cursor_text = ""
        self._spectra_focus = "neuron"  # which map "enlarge" maximises in "spectra"
        self._drawn: dict[str, tuple[object, ...]] = {}  # sub-view -> key of what it shows
        self._demo: demos.PlantedDemo | None = None
        self._focus_before: Widget | None = None
        self._retried: tuple[object, ...] | None = None
        self.plotted: dict[str, Drawn] = {}  # plot id -> what it shows now

    # -- composition -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield PaneNote(self.note, id="fourier-note")
        yield Static("", id="fourier-header")
        with Vertical(id="fourier-body"):
            with Vertical(id="fv-embedding", classes="fv"):
                yield FourierPlot(id="embed-plot")
                yield Static("", id="embed-text", classes="fv-text")
            with Horizontal(id="fv-spectra", classes="fv"):
                yield self._map("attn-spectrum")
                yield self._map("neuron-spectrum")
                yield Static("", id="spectra-text", classes="fv-side")
            with Horizontal(id="fv-W_L", classes="fv"):
                yield self._map("wl-map", keep_aspect=False)
                yield Static("", id="wl-text")
            with Horizontal(id="fv-basis", classes="fv"):
                yield FourierPlot(id="basis-plot")
                with Vertical(id="basis-right"):
                    yield FourierPlot(id="dim-plot")
                    yield FourierPlot(id="dim-fft-plot")
            with Horizontal(id="fv-planted", classes="fv"):
                yield self._map("planted-values")
                yield self._map("planted-spectrum")
                yield Static("", id="planted-text", classes="fv-side")
            with Vertical(id="fv-embed-dims", classes="fv"):
                yield FourierPlot(id="dims-plot")
                yield Static("", id="dims-text", classes="fv-text")

    @staticmethod
    def _map(map_id: str, keep_aspect: bool = True) -> Heatmap:
        heatmap = Heatmap(id=map_id, show_cursor=False, keep_aspect=keep_aspect)
        heatmap.can_focus = False  # left/right stay with the app's checkpoint timeline
        return heatmap

    def on_mount(self) -> None:
        self.watch(self.screen, "maximized", self._maximized_changed, init=False)
        self.refresh_view()

    # -- public views of the state -------------------------------------------------------------
    def heatmap(self, map_id: str) -> Heatmap:
        return self.query_one(f"#{map_id}", Heatmap)

    def plot(self, plot_id: str) -> SafePlot:
        return self.query_one(f"#{plot_id}", SafePlot)

    @property
    def main_widget(self) -> Widget:
        """The picture "enlarge" maximises in the current sub-view."""
        ids = {
            "embedding": "embed-plot",
            "spectra": f"{'attn' if self._spectra_focus == 'attn' else 'neuron'}-spectrum",
            "W_L": "wl-map",
            "basis": "basis-plot",
            "planted": "planted-spectrum",
            "embed dims": "dims-plot",
        }
        return self.query_one(f"#{ids[self.view]}")

    @property
    def enlarged(self) -> bool:
        if not self.is_mounted:
            return False
        maximized = self.screen.maximized
        return maximized is not None and maximized in self.query("#fourier-body *")

    def demo(self, p: int) -> demos.PlantedDemo:
        """The planted demo for this p (computed once)."""
        if self._demo is None or self._demo.p != p:
            self._demo = demos.planted_demo(p)
        return self._demo

    def forget_drawn(self) -> None:
        self._drawn.clear()

    # -- drawing -----------------------------------------------------------------------------
    def refresh_view(self) -> None:
        """Show the current sub-view and redraw it if its inputs or size changed."""
        if not self.is_mounted:
            return
        for name in VIEWS:
            self.set_class(name == self.view, f"-view-{name.replace(' ', '-')}")
        if self.draw_empty():
            return
        snap = self.snapshot
        self._clamp(snap)
        self._update_header()
        draw = {
            "embedding": self._draw_embedding,
            "spectra": self._draw_spectra,
            "W_L": self._draw_wl,
            "basis": self._draw_basis,
            "planted": self._draw_planted,
            "embed dims": self._draw_dims,
        }[self.view]
        draw(snap)

    def _clamp(self, snap: Any) -> None:
        self.head = min(max(self.head, 0), snap.n_heads - 1)
        self.neuron = min(max(self.neuron, 0), snap.d_mlp - 1)
        self.component %= snap.p
        self.dim %= snap.W_E.shape[1]

    def _fresh(self, key: tuple[object, ...], widget: Widget) -> bool:
        """True (and remember the key) if the current sub-view must be redrawn.

        A sub-view that was hidden has no size until the next layout; colour ranges and plot
        ticks depend on it, so draw now, but again once laid out (the key is not kept).
        """
        if self._drawn.get(self.view) == key:
            return False
        if widget.size.width <= 0 or widget.size.height <= 0:
            self._drawn.pop(self.view, None)
            if self._retried != (self.view, key):  # once: a tiny terminal may keep it at 0
                self._retried = (self.view, key)
                self.call_after_refresh(self.refresh_view)
        else:
            self._drawn[self.view] = key
        return True

    def _update_header(self) -> None:
        pos = VIEWS.index(self.view) + 1
        text = Text()
        text.append(f"{pos}/{len(VIEWS)} ", style="bold reverse")
        text.append(f" {VIEW_TITLES[self.view]}", style="bold")
        text.append("\n" + (self.cursor_text or VIEW_KEYS[self.view]), style="dim")
        self.query_one("#fourier-header", Static).update(text)

    def _draw_embedding(self, snap: Any) -> None:
        plot = self.plot("embed-plot")
        width = plot.size.width
        per_component = width >= snap.p + 12
        if not self._fresh((self.generation, per_component, width // 10), plot):
            return
        p, keys = snap.p, set(int(k) for k in snap.key_freqs)
        if per_component:
            ys = [float(v) for v in snap.embed_fourier_sq]
            xs = [float(i) for i in range(p)]
            comp_freq = fb.component_freqs(p)
            highlight = {i for i in range(p) if int(comp_freq[i]) in keys}
            ticks = [(0.0, "c")] + [(2 * k - 0.5, str(k)) for k in sorted(keys)]
            title = "|W_E component|² (cos k, sin k side by side)"
        else:
            ys = [float(v) for v in snap.embed_freq_sq]
            xs = [float(k) for k in range(len(ys))]
            highlight = {k for k in keys if k < len(ys)}
            ticks = [(0.0, "c")] + [(float(k), str(k)) for k in sorted(keys)]
            title = "|W_E|² per frequency (cos² + sin²)"
        if not keys:
            ticks = [(float(x), str(int(x))) for x in xs[:: max(1, len(xs) // 8)]]
        self.plotted["embed-plot"] = bar_plot(
            plot,
            xs,
            ys,
            highlight=highlight,
            title=title,
            xlabel="frequency (c = constant)",
            ticks=ticks,
        )
        total = float(np.sum(snap.embed_fourier_sq))
        comp_freq = fb.component_freqs(p)
        in_keys = float(np.sum(snap.embed_fourier_sq[np.isin(comp_freq, list(keys))]))
        share = in_keys / total if total > 0 else 0.0
        text = Text()
        names = ", ".join(map(str, sorted(keys))) or "none yet"
        text.append(f"key frequencies {names}", style="bold")
        text.append(f" hold {share:.0%} of |W_E|²\n" + cluster_words(snap))
        self.query_one("#embed-text", Static).update(text)

    def _fit_pair(self, box_id: str, maps: list[tuple[Heatmap, tuple[int, int]]]) -> None:
        """Give two maps their natural width at this height (the second no wider than the
        first: a small array would zoom up to fill it) and the text beside them the rest (at
        least SIDE_TEXT cells while the maps keep 16)."""
        width, height = self.query_one(f"#{box_id}").size
        if width <= 0 or height <= 0:
            return
        wants = [natural_width(shape, height) for _, shape in maps]
        wants = [wants[0], *(min(w, wants[0]) for w in wants[1:])]
        room = max(width - SIDE_TEXT, 16 * len(maps))
        if sum(wants) > room:
            wants = [max(room // len(maps), 1)] * len(maps)
        changed = False
        for (heatmap, _), want in zip(maps, wants, strict=True):
            if heatmap.styles.width is None or heatmap.styles.width.value != want:
                heatmap.styles.width = want
                changed = True
        if changed:
            self._drawn.pop(self.view, None)
            self.call_after_refresh(self.refresh_view)  # colour ranges follow the new sizes

    def _draw_spectra(self, snap: Any) -> None:
        attn, neuron = self.heatmap("attn-spectrum"), self.heatmap("neuron-spectrum")
        p = snap.p
        self._fit_pair("fv-spectra", [(attn, (p, p)), (neuron, (p, p))])
        size = (attn.size.width, attn.size.height)
        if not self._fresh((self.generation, self.head, self.neuron, size), attn):
            return
        h, n = self.head, self.neuron
        a = magnitude(snap.attn_key0_fourier[h])
        attn.set_data(
            a,
            diverging=False,
            vmin=0.0,
            vmax=spectrum_range(a, *size),
            title=f"head {h} |attn|",
            x_label="y",
            y_label="x",
        )
        s = magnitude(snap.neuron_spectrum(n, centred=True))
        neuron.set_data(
            s,
            diverging=False,
            vmin=0.0,
            vmax=spectrum_range(s, *size),
            title=f"neuron {n} |act|",
            x_label="y",
            y_label="x",
        )
        freq, frac = int(snap.neuron_freq[n]), float(snap.neuron_frac[n])
        cluster = int(snap.neuron_cluster[n])
        where = "unclustered" if cluster == UNCLUSTERED else f"cluster {cluster}"
        text = Text()
        text.append(f"head {h}", style="bold")
        text.append(": attention from = to x, over (x, y)\n")
        text.append(f"neuron {n}", style="bold")
        text.append(f": freq {freq}, {frac:.0%} explained, {where}, centred\n\n")
        text.append(
            "Rows x, columns y: Const, cos 1, sin 1, cos 2, ... A neuron of frequency k "
            "lights the 3x3 block at rows and columns 0, 2k-1, 2k. The constant [0, 0] of "
            "attention is drawn saturated.",
            style="dim",
        )
        self.query_one("#spectra-text", Static).update(text)

    def _draw_wl(self, snap: Any) -> None:
        heatmap = self.heatmap("wl-map")
        size = (heatmap.size.width, heatmap.size.height)
        if not self._fresh((self.generation, size), heatmap):
            return
        data = magnitude(np.asarray(snap.W_L_fourier)[np.asarray(snap.neuron_order)])
        top = pooled_top(data, heatmap_scale(data.shape, *size, keep_aspect=False))
        heatmap.set_data(
            data,
            diverging=False,
            vmin=0.0,
            vmax=top,
            title="|W_L|: neurons (by cluster) x Fourier components",
            x_label="comp",
            y_label="row",
        )
        text = Text()
        text.append("rows by cluster\n", style="bold")
        for freq, first, last in cluster_rows(snap):
            name = "unclustered" if freq == UNCLUSTERED else f"freq {freq}"
            text.append(f"{first:>3}-{last:<3} {name} ({last - first + 1})\n")
        text.append(
            "\nColumns: Const, cos 1, sin 1, ...; cluster k writes to columns 2k-1 and 2k "
            "(the cos and sin of its frequency).",
            style="dim",
        )
        self.query_one("#wl-text", Static).update(text)

    def _draw_basis(self, snap: Any) -> None:
        basis_plot = self.plot("basis-plot")
        dim_plot, fft_plot = self.plot("dim-plot"), self.plot("dim-fft-plot")
        widths = (basis_plot.size.width // 10, dim_plot.size.width // 10)
        if not self._fresh((self.generation, self.component, self.dim, widths), basis_plot):
            return
        p, i, d = snap.p, self.component, self.dim
        names = snap.basis_names or tuple(fb.basis_names(p))
        xs = [float(x) for x in range(p)]
        row = fb.fourier_basis_np(p)[i]
        ticks = token_ticks(p, basis_plot.size.width)
        self.plotted["basis-plot"] = line_plot(
            basis_plot,
            [("", xs, [float(v) for v in row], LINE_COLOUR)],
            title=f"basis component {i}: {names[i]}  (b/B)",
            xlabel="x",
            ticks=ticks,
        )
        column = [float(v) for v in np.asarray(snap.W_E)[:, d]]
        self.plotted["dim-plot"] = line_plot(
            dim_plot,
            [("", xs, column, PALETTE[2])],
            title=f"W_E[:, {d}] over the token (n/N)",
            xlabel="token",
            ticks=token_ticks(p, dim_plot.size.width),
        )
        coeffs = np.asarray(snap.W_E_fourier)[:, d].astype(np.float64) ** 2
        per_freq = fb.freq_norms(coeffs)
        keys = set(int(k) for k in snap.key_freqs)
        fxs = [float(k) for k in range(len(per_freq))]
        fticks = [(0.0, "c")] + [(float(k), str(k)) for k in sorted(keys)]
        self.plotted["dim-fft-plot"] = bar_plot(
            fft_plot,
            fxs,
            [float(v) for v in per_freq],
            highlight={k for k in keys if k < len(per_freq)},
            title="its Fourier transform², per frequency",
            xlabel="frequency",
            ticks=fticks,
        )

    def _draw_planted(self, snap: Any) -> None:
        values, spectrum = self.heatmap("planted-values"), self.heatmap("planted-spectrum")
        demo = self.demo(snap.p)
        n = demo.span
        self._fit_pair("fv-planted", [(values, (demo.p, demo.p)), (spectrum, (n, n))])
        size = (spectrum.size.width, spectrum.size.height)
        if not self._fresh((demo.p, size), spectrum):
            return
        values.set_data(demo.values, diverging=True, title="f(x, y)", x_label="y", y_label="x")
        corner = demo.spectrum[:n, :n]
        top = pooled_top(np.abs(corner), heatmap_scale(corner.shape, *size))
        spectrum.set_data(
            corner,
            diverging=True,
            vmin=-top,
            vmax=top,
            title=f"fft2d(f) 0-{n - 1}",
            x_label="y",
            y_label="x",
        )
        text = Text()
        text.append(demo.formula + "\n\n", style="bold")
        text.append("\n".join(demo.describe()) + "\n\n")
        text.append(
            f"fft2d gives back exactly these, a dot at (x comp, y comp); every other "
            f"coefficient (to {demo.p - 1}) is 0. cos(w(x+y)) = cos·cos − sin·sin: two dots.",
            style="dim",
        )
        self.query_one("#planted-text", Static).update(text)

    def _draw_dims(self, snap: Any) -> None:
        plot = self.plot("dims-plot")
        if not self._fresh((self.generation, self.dim, plot.size.width // 10), plot):
            return
        p, d_model = snap.p, snap.W_E.shape[1]
        dims = [(self.dim + j) % d_model for j in range(min(N_DIMS, d_model))]
        xs = [float(x) for x in range(p)]
        w_e = np.asarray(snap.W_E)
        series = [
            (f"dim {d}", xs, [float(v) for v in w_e[:, d]], PALETTE[j % len(PALETTE)])
            for j, d in enumerate(dims)
        ]
        self.plotted["dims-plot"] = line_plot(
            plot,
            series,
            title=f"W_E[:, d] for d = {', '.join(map(str, dims))}",
            xlabel="input token",
            ticks=token_ticks(p, plot.size.width),
        )
        keys = ", ".join(map(str, snap.key_freqs)) or "none yet"
        self.query_one("#dims-text", Static).update(
            f"Once grokked, each of the {d_model} dimensions is a mix of waves at the key "
            f"frequencies ({keys}); view 4 shows one dimension's Fourier transform."
        )

    # -- keys --------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        snap = self.snapshot
        if name == "view":
            return self.step_view(step)
        if name == "enlarge":
            return self.toggle_enlarge()
        if snap is None:
            return None
        status: str | None = None
        if name == "head":
            self.head = (self.head + step) % snap.n_heads
            self._spectra_focus = "attn"
            status = f"head {self.head}"
        elif name == "neuron" and self.view in ("basis", "embed dims"):
            self.dim = (self.dim + step) % snap.W_E.shape[1]
            status = f"embedding dimension {self.dim}"
        elif name == "neuron":
            self.neuron = (self.neuron + step) % snap.d_mlp
            self._spectra_focus = "neuron"
            status = f"neuron {self.neuron}: freq {int(snap.neuron_freq[self.neuron])}"
        elif name == "cluster":
            status = self._next_cluster(snap, step)
        elif name == "component":
            self.component = (self.component + step) % snap.p
            names = snap.basis_names or tuple(fb.basis_names(snap.p))
            status = f"basis component {self.component}: {names[self.component]}"
        self._retarget_enlarged()
        self.refresh_view()
        return status

    def _next_cluster(self, snap: Any, step: int) -> str:
        """Select the best neuron (highest fraction explained) of the next cluster."""
        choices = [int(k) for k in snap.key_freqs] + [UNCLUSTERED]
        current = int(snap.neuron_cluster[self.neuron])
        pos = choices.index(current) if current in choices else -1
        for offset in range(1, len(choices) + 1):
            cluster = choices[(pos + step * offset) % len(choices)]
            members = np.asarray(snap.clusters.get(cluster, []), dtype=np.int64)
            if len(members):
                frac = np.asarray(snap.neuron_frac)[members]
                self.neuron = int(members[np.argmax(frac)])
                self._spectra_focus = "neuron"
                name = "unclustered" if cluster == UNCLUSTERED else f"cluster {cluster}"
                return f"{name}: neuron {self.neuron}, {len(members)} neurons"
        return "no clusters"

    def step_view(self, step: int) -> str:
        if self.enlarged:
            self.screen.minimize()
        self.view = VIEWS[(VIEWS.index(self.view) + step) % len(VIEWS)]
        self.cursor_text = ""
        self.refresh_view()
        return f"Fourier view {VIEWS.index(self.view) + 1}: {self.view}"

    def toggle_enlarge(self) -> str | None:
        """Maximise the sub-view's main picture (a heatmap gets focus and cursor)."""
        if not self.is_mounted:
            return None
        if self.enlarged:
            self.screen.minimize()
            return "restored"
        if self.snapshot is None:
            return None
        self._focus_before = self.screen.focused
        self._maximize(self.main_widget)
        return f"{self.view} enlarged" + (
            ": arrows move the cursor" if isinstance(self.main_widget, Heatmap) else ""
        )

    def _maximize(self, widget: Widget) -> None:
        if isinstance(widget, Heatmap):
            widget.can_focus = True
            widget.show_cursor = True
        self.screen.maximize(widget, container=False)
        if isinstance(widget, Heatmap):
            widget.focus()
        self._drawn.pop(self.view, None)  # colour ranges follow the new size
        self.call_after_refresh(self.refresh_view)

    def _retarget_enlarged(self) -> None:
        """An enlarged spectrum follows "head"/"neuron" to the map they changed."""
        if self.enlarged and self.screen.maximized is not self.main_widget:
            self._maximize(self.main_widget)

    def _maximized_changed(self, maximized: Widget | None) -> None:
        if maximized is not None and maximized in self.query("#fourier-body *"):
            return
        focused = self.screen.focused
        maps = list(self.query(Heatmap))
        for heatmap in maps:
            heatmap.show_cursor = False
            heatmap.can_focus = False
        if focused in maps:
            before = self._focus_before
            usable = before is not None and before.is_attached and before.focusable
            self.screen.set_focus(before if usable else None)
        self._focus_before = None
        self.cursor_text = ""
        self._drawn.pop(self.view, None)
        if self.snapshot is not None:
            self.call_after_refresh(self.refresh_view)

    # -- events ------------------------------------------------------------------------------
    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        snap = self.snapshot
        if snap is None or message.heatmap is not self.screen.maximized:
            return
        col, row = message.x, message.y
        value = "nan" if math.isnan(message.value) else f"{message.value:.4g}"
        names = snap.basis_names or tuple(fb.basis_names(snap.p))
        if message.heatmap.id == "wl-map":
            neuron = int(np.asarray(snap.neuron_order)[row])
            where = f"neuron {neuron} (row {row}), {names[col]}"
        elif message.heatmap.id == "planted-values":
            where = f"x={row} y={col}"
        else:
            where = f"x {names[row]}, y {names[col]}"
        self.cursor_text = f"{where}: {value}"
        self._update_header()

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self.refresh_view)
