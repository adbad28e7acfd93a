"""Audit: the event stream, newest first, paged by notification id, with filters."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Label

from tui.rows import (
    AuditFilter,
    AuditPage,
    ConsoleSnapshot,
    EventRow,
    date_time,
    parse_audit_filter,
)
from tui.screens.base import ConsoleScreen
from tui.screens.event_detail import EventDetailScreen
from tui.widgets.live_table import LiveTable, Row

AUDIT_COLUMNS = ("#", "time (UTC)", "event", "identity", "target", "decision", "summary")
PAGE = 100


def audit_row(e: EventRow) -> Row:
    return (
        str(e.notification_id),
        (
            str(e.notification_id),
            date_time(e.at),
            e.kind,
            e.subject or e.actor,
            e.target,
            e.decision,
            e.summary[:90],
        ),
    )


class AuditScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("right_square_bracket", "older", "Older", key_display="]"),
        Binding("left_square_bracket", "newer", "Newer", key_display="["),
        Binding("r", "latest", "Latest"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = AuditFilter()
        self.page: AuditPage | None = None
        self.newer: list[int | None] = []  # the `before` of each page above this one
        self._shown_position = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="filter: identity:alice target:shop kind:Command decision:deny since:2h until:2026-09-21",
            id="audit-filter",
        )
        yield Label("Audit log", id="audit-title", classes="section-title")
        yield LiveTable(AUDIT_COLUMNS, id="audit")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit", LiveTable).focus()
        self.call_after_refresh(self.show_latest)

    def show(self, snapshot: ConsoleSnapshot) -> None:
        # New events appear on their own only on the first page; older pages stay put.
        if not self.newer and snapshot.position != self._shown_position:
            self._shown_position = snapshot.position
            self.load(None)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def load(self, before: int | None) -> None:
        page = self.data.audit_page(before=before, filter=self.filter, limit=PAGE)
        self.app.call_from_thread(self._show_page, page)

    def _show_page(self, page: AuditPage) -> None:
        self.page = page
        where = "newest" if not self.newer else f"page {len(self.newer) + 1}"
        more = "" if page.next_before else ", start of log"
        self.query_one("#audit-title", Label).update(
            f"Audit log: {len(page.rows)} events ({where}{more}; scanned {page.scanned})"
        )
        self.query_one("#audit", LiveTable).sync([audit_row(e) for e in page.rows])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.filter = parse_audit_filter(event.value, now=self.data.clock())
        except ValueError as exc:
            self.notify(str(exc), title="filter", severity="error")
            return
        self.newer = []
        self.query_one("#audit", LiveTable).focus()
        self.load(None)

    def action_filter(self) -> None:
        self.query_one("#audit-filter", Input).focus()

    def action_older(self) -> None:
        if self.page is None or not self.page.next_before:
            self.notify("this is the start of the log")
            return
        self.newer.append(None if not self.newer else self.page.before)
        self.load(self.page.next_before)

    def action_newer(self) -> None:
        if not self.newer:
            self.load(None)
            return
        self.load(self.newer.pop())

    def action_latest(self) -> None:
        self.newer = []
        self.load(None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if self.page is None:
            return
        row = next(
            (r for r in self.page.rows if str(r.notification_id) == event.row_key.value), None
        )
        if row is not None:
            self.app.push_screen(EventDetailScreen(row))
