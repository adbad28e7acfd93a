"""What every console screen shares: the header and footer, snapshots, actions in workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from textual import work
from textual.screen import Screen

from tui.data import ConsoleData, ConsoleError
from tui.messages import ActionDone, SnapshotReady
from tui.rows import ActionResult, ConsoleSnapshot

if TYPE_CHECKING:
    from tui.app import ConsoleApp


class ConsoleScreen(Screen[None]):
    """A screen that shows snapshots; subclasses implement :meth:`show`."""

    @property
    def console(self) -> ConsoleApp:
        return cast("ConsoleApp", self.app)

    @property
    def data(self) -> ConsoleData:
        return self.console.data

    def show(self, snapshot: ConsoleSnapshot) -> None:
        """Render ``snapshot``; each screen overrides this with what it shows of it (a
        screen without live data, such as help, keeps this default and shows nothing)."""
        return None

    def deliver(self, snapshot: ConsoleSnapshot) -> None:
        """Show ``snapshot`` once the screen's widgets exist (snapshots may arrive earlier)."""
        if self.is_mounted:
            self.show(snapshot)

    def show_latest(self) -> None:
        if self.console.snapshot is not None:
            self.deliver(self.console.snapshot)

    def on_screen_resume(self) -> None:
        self.show_latest()

    @work(thread=True, group="action", exit_on_error=False)
    def perform(self, action: Callable[[], ActionResult]) -> None:
        """Run an operator action off the UI thread; the outcome comes back as ActionDone."""
        try:
            result = action()
        except ConsoleError as exc:
            self.app.post_message(ActionDone(str(exc), ok=False))
            return
        self.app.post_message(ActionDone(result.message, ok=True))
        # The follower will fold our own event too; asking now makes the screen catch up
        # without waiting for the next poll.
        self.data.refresh()
        self.app.post_message(SnapshotReady(self.data.snapshot()))
