"""Command palette providers built from a list of (name, callback, help) entries."""

from __future__ import annotations

from typing import Any, TypeVar

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

S = TypeVar("S", bound=Screen[Any])


class ListedCommands(Provider):
    """A provider whose commands are `_commands()`: subclasses list them, this finds them."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        raise NotImplementedError

    def screen_under_dialogs(self, kind: type[S]) -> S | None:
        """The screen the palette acts on: the top one that is not a dialog (the palette
        itself, go to epoch), if it is a `kind`."""
        for screen in reversed(self.app.screen_stack):
            if not screen.is_modal:
                return screen if isinstance(screen, kind) else None
        return None

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
