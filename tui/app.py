"""The operator console: modes for each screen, one follower worker, typed messages.

Theory of operation
-------------------
The app holds no state of its own beyond the last :class:`~tui.rows.ConsoleSnapshot`. One
thread worker runs :meth:`ConsoleData.follow`, which blocks on the store's change signal and
posts at most one ``SnapshotReady`` per ``min_interval``; the app keeps it and hands it to the
screen on top. A screen coming back into view pulls the last snapshot. Operator actions run
in thread workers of their own (``ConsoleScreen.perform``) and answer with ``ActionDone``.

Screens are modes (sessions, approvals, audit, policy), each with its own stack, so the
session detail pushed in the sessions mode stays there while the operator looks at
approvals. Session replay arrives with the recording work: it will be a fifth mode,
``replay``, opened from the session detail screen (``MODES`` and ``REPLAY_MODE`` below).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui.data import ConsoleData
from tui.messages import ActionDone, SnapshotReady, StoreProblem
from tui.rows import ConsoleSnapshot
from tui.screens.approvals import ApprovalsScreen
from tui.screens.audit import AuditScreen
from tui.screens.base import ConsoleScreen
from tui.screens.help import HelpScreen
from tui.screens.policy import PolicyScreen
from tui.screens.sessions import SessionsScreen

STYLES = Path(__file__).parent / "styles"

REPLAY_MODE = "replay"
"""Reserved for the session replay screen (recordings issue); not registered yet."""


class ConsoleApp(App[None]):
    TITLE = "wardgate console"
    CSS_PATH = [str(p) for p in sorted(STYLES.glob("*.tcss"))]
    MODES: ClassVar[dict[str, type[Screen[None]]]] = {  # type: ignore[assignment]
        "sessions": SessionsScreen,
        "approvals": ApprovalsScreen,
        "audit": AuditScreen,
        "policy": PolicyScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "switch_mode('sessions')", "Sessions"),
        Binding("a", "switch_mode('approvals')", "Approvals"),
        Binding("l", "switch_mode('audit')", "Audit log"),
        Binding("p", "switch_mode('policy')", "Policy"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self, data: ConsoleData, *, follow: bool = True, min_interval: float = 0.15
    ) -> None:
        super().__init__()
        self.data = data
        self.follow = follow
        self.min_interval = min_interval
        self.snapshot: ConsoleSnapshot | None = None
        self.stopping = threading.Event()
        self.sub_title = f"operator {data.operator.display}"

    def on_mount(self) -> None:
        self.switch_mode("sessions")
        self.load()

    def on_unmount(self) -> None:
        self.stopping.set()

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def load(self) -> None:
        """Fold the log (the first time, from its start), then follow it until exit."""
        try:
            self.data.refresh()
            self.post_message(SnapshotReady(self.data.snapshot()))
        except Exception as exc:  # a store that cannot be read must not kill the console
            self.post_message(StoreProblem(str(exc)))
        if self.follow:
            self.data.follow(
                self._post_snapshot,
                stop=self.stopping,
                min_interval=self.min_interval,
                on_error=self._post_problem,
            )

    def _post_snapshot(self, snapshot: ConsoleSnapshot) -> None:
        self.post_message(SnapshotReady(snapshot))

    def _post_problem(self, text: str) -> None:
        self.post_message(StoreProblem(text))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap = self.snapshot = message.snapshot
        for request in snap.announced:
            self.bell()
            self.notify(
                f"{request.subject} on {request.target}: {request.command[:80]}",
                title="approval requested",
                timeout=10,
            )
        if isinstance(self.screen, ConsoleScreen):
            self.screen.deliver(snap)

    def on_store_problem(self, message: StoreProblem) -> None:
        self.notify(message.text, title="event store", severity="error", timeout=5)

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error", timeout=8)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, title, text in (
            ("sessions", "Sessions", "live sessions and recent history (s)"),
            (
                "approvals",
                "Approvals",
                "pending approvals: approve, deny, approve for a window (a)",
            ),
            ("audit", "Audit log", "the event stream with filters and event detail (l)"),
            ("policy", "Policy", "current policy source, history, diffs and authors (p)"),
        ):
            yield SystemCommand(title, text, partial(self.switch_mode, mode))
        yield SystemCommand("Help", "keys of every screen (?)", self.action_help)
