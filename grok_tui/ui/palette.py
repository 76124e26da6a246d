"""Textual's command palette, guarded against crashes found by a key storm (Textual 8.2.8).

1. PageUp or PageDown before the command list has laid out its lines (just after ctrl+p,
   the list still hidden) raises `KeyError: 0` in `OptionList._move_page`, which looks up
   the highlighted option's line in a map that is still empty; the same when Tab has
   focused the list itself.
2. Enter, Enter in quick succession: the first selects a command and dismisses the
   palette; the second arrives before the screen is popped, dismisses it again, runs the
   command a second time, and the second pop raises `ScreenStackError`.
3. A search still running (or the "no matches" timer) when the palette goes away updates
   the command list after it is gone: `NoMatches` in `_watch__list_visible`.
4. ctrl+p while the palette just dismissed is still being removed pushes a second screen
   with the same id: `DuplicateIds` (ours has no id; `is_open` goes by its CSS class).
5. A search worker that starts after the palette's widgets are gone (typing, then the
   palette removed before the worker runs) looks up its list first: `NoMatches` in
   `_gather_commands`.
6. A selection handled after a dialog was pushed over the palette (a queued ctrl+p, a
   command scheduled by an earlier palette) dismissed it from below: Textual popped the
   dialog above instead, and the palette stayed, marked dismissed, deaf to escape, with `q`
   typed into its input (`dismiss_once.py`).

All are Textual's (8.2.8 is the newest release); the guards sit here until it fixes them.
`PaletteGuard` makes an app open this palette everywhere Textual would open its own (ctrl+p,
the "Theme" command's theme picker, `search_commands`). `tests/test_key_storm.py` drives
the real terminal through all of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from rich.align import Align
from rich.text import Text
from textual import on, work
from textual.app import App
from textual.await_complete import AwaitComplete
from textual.command import CommandList, CommandListItem, CommandPalette, SimpleProvider
from textual.css.query import NoMatches
from textual.widget import AwaitMount
from textual.widgets import Button, Input
from textual.widgets.option_list import Option

from grok_tui.ui.dismiss_once import DismissOnce


class SafeCommandPalette(DismissOnce, CommandPalette):
    """The command palette, dismissed at most once and only from the top of the stack,
    paging only a list that is shown."""

    @classmethod
    def open(cls, app: App[Any]) -> None:
        """Push a palette unless one is on the stack, showing or under a dialog (no id: one
        being removed may linger): dialogs never stack deeper than one of each."""
        if app.use_command_palette and not any(
            s.has_class("--textual-command-palette") for s in app.screen_stack
        ):
            app.push_screen(cls())

    def on_mount(self) -> None:
        # Keys reach the list through the input's bindings (guarded below); focused
        # itself (Tab), its own PageUp/PageDown would hit crash 1 unguarded.
        for command_list in self.query(CommandList):  # none if dismissed at once
            command_list.can_focus = False

    def _start_no_matches_countdown(self, search_value: str) -> None:
        """Textual's countdown to "No matches found", with a callback that checks the
        list is still there when it fires (crash 3)."""
        self._stop_no_matches_countdown()

        def show_no_matches() -> None:
            if self._gone():
                return
            if search_value:
                text = Align.center(Text("No matches found", style="not bold"))
                option = Option(text, disabled=True, id=self._NO_MATCHES)
                self.query_one(CommandList).add_option(option)
            self._list_visible = bool(search_value)

        self._no_matches_timer = self.set_timer(self._NO_MATCHES_COUNTDOWN, show_no_matches)

    def dismiss(self, result: Any = None) -> AwaitComplete:
        if self._dismissed or not self.on_top:
            return AwaitComplete()  # already on its way out, or a dialog above it
        self._cancel_gather_commands()  # no search may update the list once it is gone
        self._stop_no_matches_countdown()
        return super().dismiss(result)

    def _gone(self) -> bool:
        """Dismissed, or its widgets already removed (however the screen went)."""
        return self._dismissed or not self.query(CommandList)

    def _watch__list_visible(self) -> None:
        if not self._gone():
            super()._watch__list_visible()

    async def _watch__show_busy(self) -> None:
        if not self._gone():
            await super()._watch__show_busy()

    @work(exclusive=True, group=CommandPalette._GATHER_COMMANDS_GROUP)
    async def _gather_commands(self, search_value: str) -> None:
        """Textual's search, skipped once the palette is gone (crash 5)."""
        if self._gone():
            return
        with contextlib.suppress(NoMatches):  # removed while the search ran
            await CommandPalette._gather_commands.__wrapped__(self, search_value)  # type: ignore[attr-defined]

    def _refresh_command_list(self, command_list: Any, commands: Any, clear_current: bool) -> None:
        if not self._gone():
            super()._refresh_command_list(command_list, commands, clear_current)

    @on(Input.Submitted)
    @on(Button.Pressed)
    def _select_or_command(self, event: Any = None) -> None:
        if event is not None:
            event.stop()
            event.prevent_default()  # Textual would call the base class's handler too
        if self._dismissed or not self.on_top:
            return  # a second Enter after the command was chosen: never run it twice;
            # or a selection handled once a dialog is over the palette: stale, dropped
        super()._select_or_command(None)

    def _action_command_list(self, action: str) -> None:
        if self._dismissed:
            return
        if action in ("page_up", "page_down"):
            if not self._list_visible or not self.query_one(CommandList).option_count:
                return  # nothing laid out to page through yet
            with contextlib.suppress(KeyError):  # laid out a moment after being shown
                super()._action_command_list(action)
            return
        super()._action_command_list(action)


class PaletteGuard:
    """Mixin for an App: every command palette it opens is a SafeCommandPalette."""

    def action_command_palette(self) -> None:
        SafeCommandPalette.open(self)  # type: ignore[arg-type]

    def search_commands(
        self, commands: Sequence[CommandListItem], placeholder: str = "Search for commands…"
    ) -> AwaitMount:
        app: App[Any] = self  # type: ignore[assignment]
        provider = SimpleProvider(app.screen, commands)
        return app.push_screen(SafeCommandPalette(providers=[provider], placeholder=placeholder))

    def search_themes(self) -> None:
        from textual.theme import ThemeProvider

        app: App[Any] = self  # type: ignore[assignment]
        app.push_screen(
            SafeCommandPalette(providers=[ThemeProvider], placeholder="Search for themes…")
        )
