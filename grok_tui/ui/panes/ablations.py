"""Ablate: knock out parts of the model from the selection, and watch what it loses.

The target comes from the shared selection (h head, n neuron, c cluster, as in every pane):
t/T cycles what kind of part, a toggles it in the list of ablations, o switches their mode
(zero or mean), X clears the list. The kinds:

  head          the selected head's output at the last position;
  neuron        the selected neuron's activation;
  cluster       every neuron of the selected cluster (the analysis' clusters);
  freq          the selected cluster's frequency (or the selected neuron's) removed from
                the logits, the paper's excluded loss;
  only freq     the logits restricted to that frequency (the restricted loss);
  key set       every key frequency removed;
  only key set  the logits restricted to the key frequencies.

Every ablation in the list applies together (engine/measures/ablate.py). The pane shows the
train/test loss and accuracy at the selected checkpoint, intact beside ablated, and the
replay: the ablated losses at every checkpoint (bright) over the intact ones (faint), drawn
as the engine's thread computes them. The numbers come from the session's ablation thread
(engine/measures/ablate_service.py); this pane only says what to ablate and draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from grok_tui.engine.measures.ablate_service import Ablation, AblationUpdate
from grok_tui.ui.panes.base import AnalysisPane, PaneNote
from grok_tui.ui.widgets.plot import PALETTE, Figure, Plot, faint

if TYPE_CHECKING:
    from grok_tui.engine.measures.analysis import Snapshot

KINDS = ("head", "neuron", "cluster", "freq", "only freq", "key set", "only key set")
MODES = ("zero", "mean")
SCORE_ROWS = (
    ("train loss", "train_loss"),
    ("test loss", "test_loss"),
    ("train acc", "train_acc"),
    ("test acc", "test_acc"),
)
TRAIN_COLOUR, TEST_COLOUR = PALETTE[0], PALETTE[1]


@dataclass(frozen=True)
class Item:
    """One entry of the ablation list: what it removes (`part`: head, neuron, cluster, freq,
    keep) and which ones."""

    part: str
    values: tuple[int, ...]

    def words(self) -> str:
        listed = ",".join(map(str, self.values))
        if self.part == "freq":
            return f"−freq {listed}"
        if self.part == "keep":
            return f"only freq {listed}"
        return f"{self.part} {listed}"


def combine(items: list[Item], mode: str) -> Ablation:
    """The one ablation every item of the list makes together."""

    def values(part: str) -> list[int]:
        return [v for item in items if item.part == part for v in item.values]

    keep = values("keep") if any(item.part == "keep" for item in items) else None
    return Ablation.of(
        values("head"), values("neuron"), values("cluster"), values("freq"), keep, mode
    )


def target_of(snap: Snapshot, kind: str, head: int, neuron: int, cluster: int | None) -> Item:
    """The part the selection names for a kind; ValueError (a sentence) if it names none."""
    if kind == "head":
        return Item("head", (head,))
    if kind == "neuron":
        return Item("neuron", (neuron,))
    if kind == "cluster":
        if cluster is None:
            raise ValueError("no cluster selected (c selects one)")
        return Item("cluster", (cluster,))
    if kind in ("freq", "only freq"):
        clustered = cluster is not None and cluster != snap.UNCLUSTERED
        freq = cluster if clustered else int(snap.neuron_freq[neuron])
        return Item("freq" if kind == "freq" else "keep", (int(freq),))
    keys = tuple(int(k) for k in snap.key_freqs)
    if not keys:
        raise ValueError("no key frequencies at this checkpoint")
    return Item("freq" if kind == "key set" else "keep", keys)


class AblationsPane(AnalysisPane):
    """The list of ablations, the scores they leave at the checkpoint, and their replay."""

    ACTIONS: ClassVar[tuple[str, ...]] = (
        "head",
        "neuron",
        "cluster",
        "target",
        "ablate",
        "mode",
        "clear",
        "enlarge",
    )

    DEFAULT_CSS = """
    AblationsPane #ablate-body { height: 1fr; }
    AblationsPane #ablate-text { width: 44; height: 1fr; }
    AblationsPane #ablate-text > Static { height: auto; }
    AblationsPane #ablate-replay { width: 1fr; height: 1fr; min-height: 6; }
    """

    class Changed(Message):
        """The list of ablations or their mode changed: ask for the new set's numbers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = KINDS[0]
        self.items: list[Item] = []
        self.mode = MODES[0]
        self.update: AblationUpdate | None = None  # the newest numbers of the current set

    def compose(self) -> ComposeResult:
        yield PaneNote()
        with Horizontal(id="ablate-body", classes="pane-body"):
            with Vertical(id="ablate-text"):
                yield Static("", id="ablate-target")
                yield Static("", id="ablate-list")
                yield Static("", id="ablate-scores")
            yield self.make_plot("ablate-replay")

    # -- what the engine is asked ----------------------------------------------------------------
    def ablation(self) -> Ablation:
        return combine(self.items, self.mode)

    def show_update(self, update: AblationUpdate) -> None:
        """Numbers from the ablation thread; those of another set (stale) are dropped."""
        if update.ablation != self.ablation():
            return
        self.update = update
        self.changed("ablation")

    def _set_changed(self) -> None:
        self.update = None
        self.changed("ablation")
        self.post_message(self.Changed())

    # -- keys ------------------------------------------------------------------------------------
    def pane_action(self, name: str, step: int) -> str | None:
        if name == "mode":
            self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
            self._set_changed()
            return f"ablation mode: {self.mode}"
        if name == "clear":
            had = len(self.items)
            self.items = []
            self._set_changed()
            return f"{had} ablation(s) cleared: the intact model" if had else "nothing ablated"
        return super().pane_action(name, step)

    def other_action(self, snap: Snapshot, name: str, step: int) -> str | None:
        if name == "target":
            self.kind = KINDS[(KINDS.index(self.kind) + step) % len(KINDS)]
            self.changed("target")
            return f"target: {self._target_words(snap)}"
        if name == "ablate":
            try:
                item = self._target(snap)
            except ValueError as exc:
                return str(exc)
            if item in self.items:
                self.items.remove(item)
                verb = "restored"
            else:
                self.items.append(item)
                verb = "ablated"
            self._set_changed()
            return f"{item.words()} {verb}"
        return None

    def _target(self, snap: Snapshot) -> Item:
        return target_of(snap, self.kind, self.head, self.neuron, self.cluster)

    def _target_words(self, snap: Snapshot) -> str:
        try:
            item = self._target(snap)
        except ValueError as exc:
            return f"{self.kind}: {exc}"
        words = item.words()
        words = words if words.startswith(self.kind) else f"{self.kind}: {words}"
        return words + (" [ablated]" if item in self.items else "")

    def enlarge_target(self) -> Widget | None:
        return self.query_one("#ablate-replay", Plot)

    def enlarged_name(self) -> str:
        return "replay"

    # -- drawing ---------------------------------------------------------------------------------
    def redraw(self, snap: Snapshot, changed: set[str]) -> None:
        self.query_one("#ablate-target", Static).update(self._target_text(snap))
        self.query_one("#ablate-list", Static).update(self._list_text())
        self.query_one("#ablate-scores", Static).update(self._scores_text())
        if changed & {"snapshot", "ablation", "size"}:
            self.query_one("#ablate-replay", Plot).show(self.replay_figure())

    def _target_text(self, snap: Snapshot) -> Text:
        text = Text()
        text.append("target ", style="dim")
        text.append(self._target_words(snap), style="bold")
        text.append("\nt/T kind · h n c select · a toggle", style="dim")
        return text

    def _list_text(self) -> Text:
        text = Text()
        text.append(f"ablated ({self.mode}; o mode, X clear): ", style="dim")
        if not self.items:
            text.append("nothing", style="italic")
        for i, item in enumerate(self.items):
            text.append(("" if i == 0 else " · ") + item.words(), style="bold")
        return text

    def _scores_text(self) -> Text:
        update, text = self.update, Text()
        if update is None:
            text.append("\ncomputing…", style="italic dim")
            return text
        if update.error:
            text.append(f"\n{update.error}\n", style="bold red")
            text.append(self._progress_words(update), style="dim")
            return text
        point = update.point
        if point is None:
            text.append("\ncomputing…", style="italic dim")
            return text
        text.append(f"\n{'epoch ' + format(point.epoch, ','):<16}", style="bold")
        text.append(f"{'intact':>11}{'ablated':>11}\n", style="dim")
        for label, key in SCORE_ROWS:
            base, ablated = point.base[key], point.ablated[key]
            text.append(f"{label:<16}{_score(key, base):>11}")
            shown = _score(key, ablated)
            changed = self.items and _score(key, base) != shown
            text.append(" " * (11 - len(shown)))  # unstyled: an SVG export keeps it
            text.append(f"{shown}\n", style="bold" if changed else "")
        text.append(self._progress_words(update), style="dim")
        return text

    @staticmethod
    def _progress_words(update: AblationUpdate) -> str:
        if update.replay_error:
            return f"replay: {update.replay_error}"
        if not update.total:
            return "replay: ablate something (a) to replay it"
        if not update.replay_done:
            return f"replay: {len(update.replay)}/{update.total} checkpoints…"
        return f"replay: {update.total} checkpoints"

    def replay_figure(self) -> Figure:
        """The ablated train and test losses per checkpoint (bright) over the intact (faint)."""
        update = self.update
        replay = update.replay if update is not None else []
        xs = [float(r.epoch) for r in replay]
        series = []
        for split, colour in (("train", TRAIN_COLOUR), ("test", TEST_COLOUR)):
            key = f"{split}_loss"
            series.append((f"intact {split}", xs, [r.base[key] for r in replay], faint(colour)))
        for split, colour in (("train", TRAIN_COLOUR), ("test", TEST_COLOUR)):
            key = f"{split}_loss"
            series.append((f"ablated {split}", xs, [r.ablated[key] for r in replay], colour))
        progress = ""
        if update is not None and update.total and not update.replay_done:
            progress = "" if update.replay_error else f" ({len(replay)}/{update.total}…)"
        return Figure(
            f"replay: ablated losses over training{progress}",
            series,
            "epoch",
            log_y=True,
            selected=None if update is None or update.epoch is None else float(update.epoch),
        )


def _score(key: str, value: float) -> str:
    return f"{value:.1%}" if key.endswith("acc") else f"{value:.4g}"
