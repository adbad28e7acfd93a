"""Sessions: live sessions and recent history, filterable; Enter opens the session."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Label

from tui.data import short_id
from tui.rows import ConsoleSnapshot, SessionRow, clock_time, format_span
from tui.screens.base import ConsoleScreen
from tui.screens.session_detail import SessionDetailScreen
from tui.widgets.live_table import LiveTable, Row

LIVE_COLUMNS = (
    "session",
    "identity",
    "target",
    "proto",
    "age",
    "cmds",
    "denied",
    "pending",
    "state",
)
RECENT_COLUMNS = ("session", "identity", "target", "proto", "started", "lasted", "cmds", "ended")


def live_row(s: SessionRow, now: float) -> Row:
    pending = str(s.pending_approvals) if s.pending_approvals else ""
    return (
        s.id,
        (
            short_id(s.id),
            s.subject or "-",
            s.target,
            s.protocol,
            format_span(now - s.started_at),
            str(s.commands),
            str(s.denied) if s.denied else "",
            pending,
            s.state,
        ),
    )


def recent_row(s: SessionRow) -> Row:
    ended = s.closed_at or s.last_activity
    return (
        s.id,
        (
            short_id(s.id),
            s.subject or (f"({s.rejected})" if s.rejected else "-"),
            s.target,
            s.protocol,
            clock_time(s.started_at),
            format_span(ended - s.started_at),
            str(s.commands),
            s.state,
        ),
    )


class SessionsScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: identity, target, protocol, id...", id="session-filter")
        yield Label(
            "Live sessions (reading the event log...)", id="live-title", classes="section-title"
        )
        yield LiveTable(LIVE_COLUMNS, id="live-sessions")
        yield Label("Recent history", classes="section-title")
        yield LiveTable(RECENT_COLUMNS, id="recent-sessions")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#live-sessions", LiveTable).focus()
        self.call_after_refresh(self.show_latest)

    def show(self, snapshot: ConsoleSnapshot) -> None:
        text = self.query_one("#session-filter", Input).value
        live = [s for s in snapshot.live_sessions if s.matches(text)]
        recent = [s for s in snapshot.recent_sessions if s.matches(text)]
        more = snapshot.live_total - len(snapshot.live_sessions)
        title = f"Live sessions ({snapshot.live_total})" + (
            f", newest {len(snapshot.live_sessions)} shown" if more > 0 else ""
        )
        self.query_one("#live-title", Label).update(title)
        self.query_one("#live-sessions", LiveTable).sync([live_row(s, snapshot.now) for s in live])
        self.query_one("#recent-sessions", LiveTable).sync([recent_row(s) for s in recent])

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.console.snapshot is not None:
            self.show(self.console.snapshot)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#live-sessions", LiveTable).focus()

    def action_filter(self) -> None:
        self.query_one("#session-filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#session-filter", Input).value = ""
        self.query_one("#live-sessions", LiveTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(SessionDetailScreen(event.row_key.value))
