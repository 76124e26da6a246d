"""Command palette providers built from a list of (name, callback, help) entries."""

from __future__ import annotations

from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ListedCommands(Provider):
    """A provider whose commands are `_commands()`: subclasses list them, this finds them."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        raise NotImplementedError

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
