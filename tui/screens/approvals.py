"""Approvals: the pending queue; approve, deny with a reason, approve for a window."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Label

from tui.data import short_id
from tui.rows import ApprovalRow, ConsoleSnapshot, format_span
from tui.screens.base import ConsoleScreen
from tui.widgets.approval_detail import ApprovalDetail
from tui.widgets.live_table import LiveTable, Row
from tui.widgets.reason_prompt import ReasonAnswer, ReasonPrompt

PENDING_COLUMNS = ("approval", "who", "what", "target", "rule", "quorum", "left", "you")
DECIDED_COLUMNS = ("approval", "who", "what", "target", "status", "by", "reason")


def pending_row(a: ApprovalRow, now: float) -> Row:
    return (
        a.id,
        (
            short_id(a.id),
            a.subject,
            a.command[:48],
            a.target,
            a.rule,
            a.progress,
            format_span(a.expires_at - now),
            "may decide" if a.refusal is None else "no",
        ),
    )


def decided_row(a: ApprovalRow) -> Row:
    return (
        a.id,
        (
            short_id(a.id),
            a.subject,
            a.command[:40],
            a.target,
            a.status,
            a.decided_by or "",
            a.reason[:40],
        ),
    )


class ApprovalsScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "approve", "Approve"),
        Binding("n", "deny", "Deny"),
        Binding("w", "approve_window", "Approve for a window"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Pending approvals", id="pending-title", classes="section-title")
        yield LiveTable(PENDING_COLUMNS, id="pending")
        yield ApprovalDetail(id="approval-detail")
        yield Label("Recently decided", classes="section-title")
        yield LiveTable(DECIDED_COLUMNS, id="decided")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pending", LiveTable).focus()
        self.call_after_refresh(self.show_latest)

    def show(self, snapshot: ConsoleSnapshot) -> None:
        self.query_one("#pending-title", Label).update(
            f"Pending approvals ({len(snapshot.pending)})"
        )
        self.query_one("#pending", LiveTable).sync(
            [pending_row(a, snapshot.now) for a in snapshot.pending]
        )
        self.query_one("#decided", LiveTable).sync([decided_row(a) for a in snapshot.decided])
        self._show_detail()

    def selected(self) -> ApprovalRow | None:
        snap = self.console.snapshot
        key = self.query_one("#pending", LiveTable).selected_key
        if snap is None or key is None:
            return None
        return next((a for a in snap.pending if a.id == key), None)

    def _show_detail(self) -> None:
        snap = self.console.snapshot
        now = snap.now if snap else self.data.clock()
        self.query_one("#approval-detail", ApprovalDetail).show(self.selected(), now)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _decidable(self) -> ApprovalRow | None:
        """The selected approval, if this operator may decide it (else say why not)."""
        row = self.selected()
        if row is None:
            self.notify("no pending approval selected", severity="warning")
            return None
        if row.refusal is not None:
            # The console refuses before asking; the domain would refuse the same way.
            self.notify(row.refusal, title="cannot decide", severity="error")
            return None
        return row

    def action_approve(self) -> None:
        self._ask("Approve {id}", required=False, window=False, deny=False)

    def action_deny(self) -> None:
        self._ask("Deny {id}: why?", required=True, window=False, deny=True)

    def action_approve_window(self) -> None:
        self._ask(
            "Approve {id} and the same command for a window",
            required=False,
            window=True,
            deny=False,
        )

    def _ask(self, title: str, *, required: bool, window: bool, deny: bool) -> None:
        row = self._decidable()
        if row is None:
            return
        approval_id = row.id

        def answered(answer: ReasonAnswer | None) -> None:
            if answer is None:
                return
            if deny:
                self.perform(lambda: self.data.deny(approval_id, answer.reason))
            else:
                self.perform(
                    lambda: self.data.approve(approval_id, answer.reason, answer.window_seconds)
                )

        prompt = ReasonPrompt(
            title.format(id=f"{short_id(row.id)} ({row.command[:40]})"),
            required=required,
            ask_window=window,
        )
        self.app.push_screen(prompt, answered)
