"""Fourier: the model's weights and activations in the Fourier basis, six sub-views.

Nanda et al. 2023 found that the grokked model computes (x + y) mod p with waves of a few
key frequencies. This pane shows the evidence, one sub-view at a time ("view" cycles them):

  1 embedding  the norm of each Fourier component of W_E: a few key frequencies stand out
               (blog view 13), with the number of neurons in each frequency's cluster;
  2 spectra    2D spectra of attention to x (the selected head) and of the selected neuron
               (views 11, 12);
  3 W_L        the neuron-logit map with classes in the Fourier basis, neurons sorted by
               cluster: each cluster writes its own frequency's cos and sin;
  4 basis      the Fourier basis itself, one component at a time (view 8), and one
               embedding dimension with its 1D Fourier transform squared (view 9);
  5 planted    a planted 2D function and its 2D spectrum: fft2d at work (view 10);
  6 embed dims embedding dimensions as functions of the input token (view 7).

Keys: h head, n neuron, c cluster (as in every pane), b component, d embedding dimension,
z enlarge (the sub-view's main picture; in "spectra" the map last stepped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.ui.panes.base import AnalysisPane, PaneBody, PaneNote
from grok_tui.ui.widgets.heatmap import Heatmap, natural_width
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

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
    "basis": "b/B component · d/D dimension · z enlarge · v next view",
    "planted": "z enlarge · v next view",
    "embed dims": "d/D first dimension · z enlarge · v next view",
}
LINE_COLOUR = (80, 160, 255)
N_DIMS = 4  # embedding dimensions drawn together in "embed dims"
SIDE_TEXT = 26  # cells kept for the words beside a pair of maps


def cluster_words(snap: Any) -> str:
    sizes = snap.cluster_sizes
    parts = [f"{k}: {sizes.get(k, 0)}" for k in snap.key_freqs]
    parts.append(f"unclustered: {sizes.get(snap.UNCLUSTERED, 0)}")
    return "neurons per cluster  " + " · ".join(parts)


def freq_ticks(keys: set[int], n: int, components: bool = False) -> list[tuple[float, str]]:
    """x ticks of a per-frequency axis: c (the constant), regular round ones (so a bar
    between them can be read), and the key frequencies; a round tick closer than 3 to a key
    one gives way (their labels would run into each other). `components`: the axis has a
    bar per basis component (c, cos 1, sin 1, ...): frequency k sits between 2k-1 and 2k."""
    step = next((s for s in (1, 2, 5, 10, 20, 50, 100) if n / s <= 8), 100)
    regular = [x for x in range(step, n, step)]
    key_ticks = [k for k in sorted(keys) if 0 < k < n]
    shown = key_ticks + [x for x in regular if all(abs(x - k) >= 3 for k in key_ticks)]
    return [(0.0, "c")] + [(2 * k - 0.5 if components else float(k), str(k)) for k in sorted(shown)]


class FourierPane(AnalysisPane):
    """Six sub-views of the model in the Fourier basis; see the module docstring."""

    ACTIONS: ClassVar[tuple[str, ...]] = (
        "view",
        "head",
        "neuron",
        "cluster",
        "component",
        "dim",
        "enlarge",
    )
    VIEWS: ClassVar[tuple[str, ...]] = tuple(VIEW_TITLES)
    VIEW_NAMES: ClassVar[dict[str, str]] = {
        v: f"Fourier view {i}: {v}" for i, v in enumerate(VIEW_TITLES, 1)
    }

    DEFAULT_CSS = """
    FourierPane #fourier-header { height: auto; max-height: 2; }
    FourierPane #fourier-body { height: 1fr; }
    FourierPane .fv { display: none; height: 1fr; }
    FourierPane.-view-embedding #fv-embedding { display: block; }
    FourierPane.-view-spectra #fv-spectra { display: block; }
    FourierPane.-view-W_L #fv-W_L { display: block; }
    FourierPane.-view-basis #fv-basis { display: block; }
    FourierPane.-view-planted #fv-planted { display: block; }
    FourierPane.-view-embed-dims #fv-embed-dims { display: block; }
    FourierPane Plot { height: 1fr; min-height: 4; }
    FourierPane Heatmap { width: 1fr; height: 1fr; }
    FourierPane .fv-side { width: 1fr; min-width: 16; height: 1fr; padding-left: 1; }
    FourierPane .fv-text { height: auto; max-height: 4; color: $text-muted; }
    FourierPane #wl-text { width: 30; height: 1fr; max-height: 100%; padding-left: 1; }
    FourierPane #basis-right { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.component = 1  # cos 1: the constant row is a flat line
        self.dim = 0  # the embedding dimension of "basis" and the first one of "embed dims"
        self.spectra_focus = "neuron"  # which map "enlarge" maximises in "spectra"

    def compose(self) -> ComposeResult:
        yield PaneNote()
        yield Static("", id="fourier-header", classes="pane-body")
        with Vertical(id="fourier-body", classes="pane-body"):
            with Vertical(id="fv-embedding", classes="fv"):
                yield self.make_plot("embed-plot")
                yield Static("", id="embed-text", classes="fv-text")
            with PaneBody(id="fv-spectra", classes="fv"):
                yield self.make_heatmap("attn-spectrum")
                yield self.make_heatmap("neuron-spectrum")
                yield Static("", id="spectra-text", classes="fv-side")
            with Horizontal(id="fv-W_L", classes="fv"):
                yield self.make_heatmap("wl-map", keep_aspect=False)
                yield Static("", id="wl-text")
            with Horizontal(id="fv-basis", classes="fv"):
                yield self.make_plot("basis-plot")
                with Vertical(id="basis-right"):
                    yield self.make_plot("dim-plot")
                    yield self.make_plot("dim-fft-plot")
            with PaneBody(id="fv-planted", classes="fv"):
                yield self.make_heatmap("planted-values")
                yield self.make_heatmap("planted-spectrum")
                yield Static("", id="planted-text", classes="fv-side")
            with Vertical(id="fv-embed-dims", classes="fv"):
                yield self.make_plot("dims-plot")
                yield Static("", id="dims-text", classes="fv-text")

    # -- public views of the state -------------------------------------------------------------
    def heatmap(self, map_id: str) -> Heatmap:
        return self.query_one(f"#{map_id}", Heatmap)

    def plot(self, plot_id: str) -> Plot:
        return self.query_one(f"#{plot_id}", Plot)

    def figure(self, plot_id: str) -> Figure:
        """What a plot shows now."""
        return self.query_one(f"#{plot_id}", Plot).figure

    def enlarge_target(self) -> Widget | None:
        ids = {
            "embedding": "embed-plot",
            "spectra": f"{self.spectra_focus}-spectrum",
            "W_L": "wl-map",
            "basis": "basis-plot",
            "planted": "planted-spectrum",
            "embed dims": "dims-plot",
        }
        return self.query_one(f"#{ids[self.view]}")

    # -- keys --------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        if name in ("head", "neuron", "cluster"):
            self.spectra_focus = "attn" if name == "head" else "neuron"
        return super().pane_action(name, step)

    def other_action(self, snap: Snapshot, name: str, step: int) -> str | None:
        if name == "component":
            self.component = (self.component + step) % snap.p
            self.changed("component")
            return f"basis component {self.component}: {snap.basis_names[self.component]}"
        if name == "dim":
            self.dim = (self.dim + step) % snap.d_model
            self.changed("dim")
            return f"embedding dimension {self.dim}"
        return None

    # -- drawing -----------------------------------------------------------------------------
    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        for name in self.VIEWS:
            self.set_class(name == self.view, f"-view-{name.replace(' ', '-')}")
        self._update_header()
        draw = {
            "embedding": self._draw_embedding,
            "spectra": self._draw_spectra,
            "W_L": self._draw_wl,
            "basis": self._draw_basis,
            "planted": self._draw_planted,
            "embed dims": self._draw_dims,
        }[self.view]
        if changed - {"cursor", "enlarged"}:
            draw(snap, changed)

    def _update_header(self) -> None:
        pos = self.VIEWS.index(self.view) + 1
        text = Text()
        text.append(f"{pos}/{len(self.VIEWS)} ", style="bold reverse")
        title = VIEW_TITLES[self.view]
        snap = self.snapshot
        if snap is not None and snap.basis != "fourier" and self.view != "planted":
            title = title.replace("Fourier", snap.basis_label)
        text.append(f" {title}", style="bold")
        text.append("\n" + (self.cursor_text or VIEW_KEYS[self.view]), style="dim")
        self.query_one("#fourier-header", Static).update(text)

    def _draw_embedding(self, snap: Snapshot, changed: set[str]) -> None:
        keys = {int(k) for k in snap.key_freqs}
        width = self.query_one("#embed-plot").size.width
        if width >= snap.p + 12:  # room for one bar per component, cos and sin side by side
            ys = snap.embed_fourier_sq.tolist()
            highlight = set(snap.key_components().tolist())
            ticks = freq_ticks(keys, snap.p // 2 + 1, components=True)
            title = "|W_E component|² (cos k, sin k side by side)"
        else:
            ys = snap.embed_freq_sq.tolist()
            highlight = {k for k in keys if k < len(ys)}
            ticks = freq_ticks(keys, len(ys))
            title = "|W_E|² per frequency (cos² + sin²)"
        xs = [float(i) for i in range(len(ys))]
        self.query_one("#embed-plot", Plot).show(Figure(
            title, [("", xs, ys, LINE_COLOUR)], "frequency (c = constant)", style="bars",
            x_ticks=ticks, highlight=highlight,
        ))  # fmt: skip
        text = Text()
        names = ", ".join(map(str, sorted(keys))) or "none yet"
        text.append(f"key frequencies {names}", style="bold")
        text.append(f"; they hold {snap.embed_key_share():.0%} of |W_E|²\n" + cluster_words(snap))
        if snap.op_note:
            text.append("\n" + snap.op_note, style="dim")
        self.query_one("#embed-text", Static).update(text)

    def _fit_pair(self, box_id: str, maps: list[tuple[Heatmap, tuple[int, int]]]) -> None:
        """Give two maps their natural width at this height (the second no wider than the
        first: a small array would zoom up to fill it) and the text beside them the rest (at
        least SIDE_TEXT cells while the maps keep 16)."""
        width, height = self.query_one(f"#{box_id}").size
        if width <= 0 or height <= 0:
            return
        wants = [natural_width(shape, height, "y") + 1 for _, shape in maps]
        wants = [wants[0], *(min(w, wants[0]) for w in wants[1:])]
        room = max(width - SIDE_TEXT, 16 * len(maps))
        if sum(wants) > room:
            wants = [max(room // len(maps), 1)] * len(maps)
        for (heatmap, _), want in zip(maps, wants, strict=True):
            if heatmap.styles.width is None or heatmap.styles.width.value != want:
                heatmap.styles.width = want

    def _draw_spectra(self, snap: Snapshot, changed: set[str]) -> None:
        attn, neuron = self.heatmap("attn-spectrum"), self.heatmap("neuron-spectrum")
        p, h, n = snap.p, self.head, self.neuron
        self._fit_pair("fv-spectra", [(attn, (p, p)), (neuron, (p, p))])
        attn.set_data(snap.attn_spectrum(h), diverging=False, vmin=0.0, saturate_origin=True,
                      title=f"head {h} |attn|", x_label="y", y_label="x")  # fmt: skip
        neuron.set_data(snap.neuron_spectrum(n, centred=True, magnitude=True), diverging=False,
                        vmin=0.0, title=f"neuron {n} |act|", x_label="y", y_label="x")  # fmt: skip
        text = Text()
        text.append(f"head {h}", style="bold")
        text.append(": attention from = to x, over (x, y)\n")
        text.append(snap.describe_neuron(n), style="bold")
        text.append(", centred\n\n")
        text.append(
            ("" if snap.basis == "fourier" else f"{snap.basis_label} components. ")
            + "Rows x, columns y: Const, cos 1, sin 1, cos 2, ... A neuron of frequency k "
            "lights the 3x3 block at rows and columns 0, 2k-1, 2k. The constant [0, 0] of "
            "attention is drawn saturated.",
            style="dim",
        )
        self.query_one("#spectra-text", Static).update(text)

    def _draw_wl(self, snap: Snapshot, changed: set[str]) -> None:
        if not changed & {"snapshot", "view"}:
            return
        self.heatmap("wl-map").set_data(
            snap.W_L_by_cluster, diverging=False, vmin=0.0, x_label="comp", y_label="row",
            title=f"|W_L|: neurons (by cluster) x {snap.basis_label} components",
        )  # fmt: skip
        text = Text()
        text.append("rows by cluster\n", style="bold")
        for freq, first, last in snap.cluster_spans():
            name = "unclustered" if freq == snap.UNCLUSTERED else f"freq {freq}"
            text.append(f"{first:>3}-{last:<3} {name} ({last - first + 1})\n")
        text.append(
            "\nColumns: Const, cos 1, sin 1, ...; cluster k writes to columns 2k-1 and 2k "
            "(the cos and sin of its frequency).",
            style="dim",
        )
        self.query_one("#wl-text", Static).update(text)

    def _draw_basis(self, snap: Snapshot, changed: set[str]) -> None:
        p, i, d = snap.p, self.component, self.dim
        xs = [float(x) for x in range(p)]
        row = snap.fourier_basis[i].tolist()
        self.query_one("#basis-plot", Plot).show(Figure(
            f"basis component {i}: {snap.basis_names[i]}  (b/B)", [("", xs, row, LINE_COLOUR)],
            "x", zero_line=True, legend=False,
        ))  # fmt: skip
        column = snap.W_E[:, d].tolist()
        self.query_one("#dim-plot", Plot).show(Figure(
            f"W_E[:, {d}] over the token (d/D)", [("", xs, column, PALETTE[2])], "token",
            zero_line=True, legend=False,
        ))  # fmt: skip
        power = snap.embed_dim_power(d).tolist()
        keys = {int(k) for k in snap.key_freqs}
        self.query_one("#dim-fft-plot", Plot).show(Figure(
            f"its {snap.basis_label} transform², per frequency",
            [("", [float(k) for k in range(len(power))], power, LINE_COLOUR)], "frequency",
            style="bars", x_ticks=freq_ticks(keys, len(power)),
            highlight={k for k in keys if k < len(power)},
        ))  # fmt: skip

    def _draw_planted(self, snap: Snapshot, changed: set[str]) -> None:
        values, spectrum = self.heatmap("planted-values"), self.heatmap("planted-spectrum")
        demo = snap.planted
        n = demo.span
        self._fit_pair("fv-planted", [(values, (demo.p, demo.p)), (spectrum, (n, n))])
        values.set_data(demo.values, diverging=True, title="f(x, y)", x_label="y", y_label="x")
        spectrum.set_data(demo.spectrum[:n, :n], diverging=True, title=f"fft2d(f) 0-{n - 1}",
                          x_label="y", y_label="x")  # fmt: skip
        text = Text()
        text.append(demo.formula + "\n\n", style="bold")
        text.append("\n".join(demo.describe()) + "\n\n")
        text.append(
            f"fft2d gives back exactly these, a dot at (x comp, y comp); every other "
            f"coefficient (to {demo.p - 1}) is 0. cos(w(x+y)) = cos·cos − sin·sin: two dots.",
            style="dim",
        )
        self.query_one("#planted-text", Static).update(text)

    def _draw_dims(self, snap: Snapshot, changed: set[str]) -> None:
        p, d_model = snap.p, snap.d_model
        dims = [(self.dim + j) % d_model for j in range(min(N_DIMS, d_model))]
        xs = [float(x) for x in range(p)]
        series = [(f"dim {d}", xs, snap.W_E[:, d].tolist(), PALETTE[j % len(PALETTE)])
                  for j, d in enumerate(dims)]  # fmt: skip
        self.query_one("#dims-plot", Plot).show(Figure(
            f"W_E[:, d] for d = {', '.join(map(str, dims))}", series, "input token",
            zero_line=True,
        ))  # fmt: skip
        keys = ", ".join(map(str, snap.key_freqs)) or "none yet"
        self.query_one("#dims-text", Static).update(
            f"Once grokked, each of the {d_model} dimensions is a mix of waves at the key "
            f"frequencies ({keys}); view 4 shows one dimension's Fourier transform."
        )

    def describe_cursor(self, snap: Snapshot, heatmap: Heatmap, x: int, y: int) -> str:
        names = snap.basis_names
        if heatmap.id == "wl-map":
            return f"neuron {int(snap.neuron_order[y])} (row {y}), {names[x]}"
        if heatmap.id == "planted-values":
            return f"x={y} y={x}"
        return f"x {names[y]}, y {names[x]}"
