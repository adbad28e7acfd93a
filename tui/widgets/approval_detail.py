"""The full text of the selected approval, and whether this operator may decide it."""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from tui.rows import ApprovalRow, date_time, format_span


class ApprovalDetail(Static):
    def show(self, row: ApprovalRow | None, now: float) -> None:
        if row is None:
            self.update("No approval selected.")
            return
        approvers = ", ".join(row.approvers) or "nobody yet"
        lines = [
            f"[b]{escape(row.subject)}[/b] on [b]{escape(row.target)}[/b] ({row.protocol}), "
            f"rule [b]{escape(row.rule)}[/b], requested {date_time(row.requested_at)} UTC",
            escape(row.command),
            f"approvers: {', '.join(row.approver_groups)}; quorum {row.progress} ({approvers}); "
            f"expires in {format_span(row.expires_at - now)}",
        ]
        if row.refusal:
            lines.append(f"[b]you may not decide this:[/b] {escape(row.refusal)}")
        else:
            lines.append("y approve   n deny   w approve for a window")
        self.update("\n".join(lines))
