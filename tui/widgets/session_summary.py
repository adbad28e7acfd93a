"""The header block of the session detail screen: who, where, since when, what state."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from tui.rows import SessionRow, date_time, format_span


class SessionSummary(Static):
    def show(self, session: SessionRow | None, now: float, *, may_end: bool) -> None:
        if session is None:
            self.update("This session is not in the console's view (too old, or not yet seen).")
            return
        lines = [
            f"[b]{escape(session.subject or '-')}[/b] on [b]{escape(session.target)}[/b] "
            f"({session.protocol}) from {escape(session.peer)} via node {escape(session.node)}",
            f"started {date_time(session.started_at)} UTC, "
            + (
                f"live for {format_span(now - session.started_at)}"
                if session.live
                else f"ended {date_time(session.closed_at or 0.0)} ({session.state})"
            ),
            f"{session.commands} commands, {session.denied} denied, {session.held} held, "
            f"{session.masked} values masked, {session.pending_approvals} pending approvals",
        ]
        if session.termination_requested_by:
            lines.append(f"[b]end requested by {escape(session.termination_requested_by)}[/b]")
        elif session.live and may_end:
            lines.append("press [b]k[/b] to end this session")
        self.update("\n".join(lines))
