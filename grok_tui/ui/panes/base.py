"""What every analysis pane shares: the snapshot, the selection, the keys, enlarging.

A pane is its layout plus which arrays and titles it shows. The base class holds:

- reactive state the pane draws from: `snapshot` and `note` (what to show, or why there is
  nothing), the shared selection `head`, `neuron`, `cluster` (bound to the run screen's, so a
  choice made in one pane is the one every pane shows) and the pane's own `view`;
- one redraw path: every change is collected and `redraw(changed)` runs once per refresh
  with the names that changed, so a pane redraws only what depends on them;
- the keys: the shared selection keys (see ui/selection.py), `view`, and `enlarge`, which
  maximises the pane's main picture (a heatmap gets the focus and a cursor, so the arrow
  keys move it; the value under it is described by `describe_cursor`). The enlarged picture
  follows the selection; escape, the key again or another pane restores the layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.ui import selection
from grok_tui.ui.widgets.heatmap import Heatmap
from grok_tui.ui.widgets.plot import Plot

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

PANE_ACTIONS = ("head", "neuron", "cluster", "view", "enlarge", "component", "dim")
PANE_ACTIONS += ("target", "ablate", "mode", "clear")  # the Ablate pane's (panes/ablations.py)


class AnalysisPane(Vertical):
    """Base class; subclasses set ACTIONS, VIEWS, compose their widgets and `redraw`."""

    ACTIONS: ClassVar[tuple[str, ...]] = ()  # the PANE_ACTIONS this pane answers
    VIEWS: ClassVar[tuple[str, ...]] = ("default",)
    VIEW_NAMES: ClassVar[dict[str, str]] = {}

    DEFAULT_CSS = """
    AnalysisPane { height: 1fr; }
    AnalysisPane > PaneNote { display: none; }
    AnalysisPane.-empty > PaneNote { display: block; }
    AnalysisPane.-empty > .pane-body { display: none; }
    """

    snapshot: reactive[Snapshot | None] = reactive(None, init=False)
    note: reactive[str] = reactive("no checkpoint selected", init=False)
    head: reactive[int] = reactive(0, init=False)
    neuron: reactive[int] = reactive(0, init=False)
    cluster: reactive[int | None] = reactive(None, init=False)
    view: reactive[str] = reactive("", init=False)
    cursor_text: reactive[str] = reactive("", init=False)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.set_reactive(AnalysisPane.view, self.VIEWS[0])
        self.bound_to_screen = False  # the run screen binds the selection: keys change its
        self._changed: set[str] = {"snapshot"}
        self._redraw_pending = False
        self._focus_before: Widget | None = None

    # -- reactive plumbing ---------------------------------------------------------------------
    def watch_snapshot(self) -> None:
        self.changed("snapshot")

    def watch_note(self) -> None:
        self.changed("snapshot")

    def watch_head(self) -> None:
        self.changed("head")

    def watch_neuron(self) -> None:
        self.changed("neuron")

    def watch_cluster(self) -> None:
        self.changed("cluster")

    def watch_view(self) -> None:
        self.changed("view")

    def watch_cursor_text(self) -> None:
        self.changed("cursor")

    def changed(self, name: str) -> None:
        """Note a change; one redraw follows, with every name noted since the last."""
        self._changed.add(name)
        if self.is_mounted and not self._redraw_pending:
            self._redraw_pending = True
            self.call_later(self._run_redraw)

    def on_mount(self) -> None:
        self.watch(self.screen, "maximized", self._maximized_changed, init=False)
        self.changed("snapshot")

    def on_resize(self) -> None:
        self.changed("size")

    def _run_redraw(self) -> None:
        self._redraw_pending = False
        changed, self._changed = self._changed, set()
        if not self.is_mounted:
            return
        snap = self.snapshot
        self.set_class(snap is None, "-empty")
        if snap is None:
            self.query_one(PaneNote).update(Text(self.note, style="italic"))
            if self.enlarged:
                self.screen.minimize()
            return
        head, neuron = selection.clamp(snap, self.head, self.neuron)
        if (head, neuron) != (self.head, self.neuron):
            self.set_reactive(AnalysisPane.head, head)
            self.set_reactive(AnalysisPane.neuron, neuron)
        if "snapshot" in changed:
            changed |= {"head", "neuron", "cluster", "view", "size"}

        self.redraw(snap, changed)
        self._follow_enlarged()

    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        """Draw what depends on the `changed` names (snapshot, head, neuron, cluster, view,
        size, cursor, enlarged)."""
        raise NotImplementedError

    def show_snapshot(self, snapshot: Snapshot | None, note: str = "") -> None:
        """Show a snapshot (None: nothing to draw, `note` says why)."""
        self.snapshot = snapshot
        self.note = note

    # -- keys ------------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        """Handle one of ACTIONS (step +1/-1); return a short status text, or None."""
        snap = self.snapshot
        if name not in self.ACTIONS:
            return None
        if name == "view":
            return self.step_view(step)
        if snap is None:
            return None
        if name == "enlarge":
            return self.toggle_enlarge()
        if name == "head":
            self.select(head=selection.step_head(snap, self.head, step))
            return self.head_words(snap, self.head)
        if name == "neuron":
            self.select(neuron=selection.step_neuron(snap, self.neuron, self.cluster, step))
            return snap.describe_neuron(self.neuron)
        if name == "cluster":
            cluster, neuron = selection.step_cluster(snap, self.cluster, self.neuron, step)
            self.select(cluster=cluster, neuron=neuron)
            return f"{snap.describe_cluster(cluster)}; {snap.describe_neuron(neuron)}"
        return self.other_action(snap, name, step)

    def select(self, **values: Any) -> None:
        """Change the shared selection: the screen's when bound to it (every pane follows)."""
        owner = self.screen if self.bound_to_screen else self
        for name, value in values.items():
            setattr(owner, name, value)

    def head_words(self, snap: Snapshot, head: int) -> str:
        return f"head {head}"

    def other_action(self, snap: Snapshot, name: str, step: int) -> str | None:
        """A pane's own keys (component, dim)."""
        return None

    def step_view(self, step: int) -> str:
        if self.enlarged:
            self.screen.minimize()
        views = self.VIEWS
        self.view = views[(views.index(self.view) + step) % len(views)]
        return self.VIEW_NAMES.get(self.view, self.view)

    # -- enlarging -------------------------------------------------------------------------------
    def enlarge_target(self) -> Widget | None:
        """The picture "enlarge" maximises in the current view."""
        return None

    @property
    def enlarged(self) -> bool:
        """True while one of this pane's pictures fills the screen."""
        if not self.is_mounted:
            return False
        maximized = self.screen.maximized
        return maximized is not None and self in maximized.ancestors

    def toggle_enlarge(self) -> str | None:
        if not self.is_mounted:
            return None
        if self.enlarged:
            self.screen.minimize()
            return "restored"
        target = self.enlarge_target()
        if target is None:
            return None
        self._focus_before = self.screen.focused
        self._maximize(target)
        keys = ": arrows move the cursor, z or escape restores"
        return f"{self.enlarged_name()} enlarged" + (keys if isinstance(target, Heatmap) else "")

    def enlarged_name(self) -> str:
        return self.view

    def _maximize(self, target: Widget, cursor: tuple[int, int] | None = None) -> None:
        for heatmap in self.query(Heatmap):
            if heatmap is not target:
                heatmap.show_cursor = False
                heatmap.can_focus = False
        if isinstance(target, Heatmap):
            target.can_focus = True
            target.show_cursor = True
            if cursor is not None:
                target.set_cursor(*cursor)
        self.screen.maximize(target, container=False)
        if isinstance(target, Heatmap):
            target.focus()
        self.changed("enlarged")

    def _follow_enlarged(self) -> None:
        """An enlarged picture follows the selection to the picture it now means."""
        if not self.enlarged:
            return
        target, current = self.enlarge_target(), self.screen.maximized
        if target is not None and target is not current:
            cursor = current.cursor if isinstance(current, Heatmap) else None
            self._maximize(target, cursor)

    def _maximized_changed(self, maximized: Widget | None) -> None:
        """Back to the layout (the key, escape, another pane): cursors off, focus back."""
        if maximized is not None and self in maximized.ancestors:
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
        self.changed("enlarged")

    def on_heatmap_cursor_moved(self, message: Heatmap.CursorMoved) -> None:
        snap = self.snapshot
        if snap is None or message.heatmap is not self.screen.maximized:
            return
        value = "nan" if message.value != message.value else f"{message.value:.4g}"
        where = self.describe_cursor(snap, message.heatmap, message.x, message.y)
        self.cursor_text = f"{where}: {value}"

    def describe_cursor(self, snap: Snapshot, heatmap: Heatmap, x: int, y: int) -> str:
        """Where the cursor is, in words (x is the column, y the row)."""
        return f"x={y} y={x}"

    # -- building blocks -------------------------------------------------------------------------
    @staticmethod
    def make_heatmap(map_id: str | None = None, **options: Any) -> Heatmap:
        """A heatmap as panes hold them: no cursor and not focusable until enlarged, so the
        arrow keys stay with the run screen's checkpoint timeline."""
        heatmap = Heatmap(id=map_id, show_cursor=False, **options)
        heatmap.can_focus = False
        return heatmap

    @staticmethod
    def make_plot(plot_id: str | None = None) -> Plot:
        return Plot(id=plot_id)


class PaneBody(Horizontal):
    """A pane's pictures, side by side. Hidden while the pane shows its note, so it tells the
    pane when it gets a size (the pane's own size does not change then)."""

    DEFAULT_CLASSES = "pane-body"

    def on_resize(self) -> None:
        for ancestor in self.ancestors:
            if isinstance(ancestor, AnalysisPane):
                ancestor.changed("size")
                return


class PaneNote(Static):
    """A one-line message in place of a pane's pictures."""

    DEFAULT_CSS = """
    PaneNote { height: auto; padding: 1 2; color: $text-muted; text-style: italic; }
    """
