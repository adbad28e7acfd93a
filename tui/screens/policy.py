"""Policy: the current source, and its history (who applied what, when) with diffs."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Label

from tui.data import ConsoleError
from tui.rows import ConsoleSnapshot, PolicyVersion, date_time
from tui.screens.base import ConsoleScreen
from tui.widgets.live_table import LiveTable, Row
from tui.widgets.policy_text import PolicyText

HISTORY_COLUMNS = ("version", "applied (UTC)", "author", "changes")


def history_row(v: PolicyVersion) -> Row:
    return (str(v.version), (f"v{v.version}", date_time(v.at), v.author, v.diff_summary[:40]))


class PolicyScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "current", "Current source"),
        Binding("d", "diff", "Diff of selected"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[int, str] | None = None  # (version, "source" | "diff")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("Policy", id="policy-title", classes="section-title")
        with Horizontal(id="policy-panes"):
            yield LiveTable(HISTORY_COLUMNS, id="policy-history")
            yield PolicyText(id="policy-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#policy-history", LiveTable).focus()
        self.call_after_refresh(self.show_latest)

    def show(self, snapshot: ConsoleSnapshot) -> None:
        p = snapshot.policy
        title = (
            f"Policy v{p.version} ({p.digest[:12]}), applied {date_time(p.at)} UTC by {p.author}"
            if p.at is not None
            else "No policy has been applied yet"
        )
        self.query_one("#policy-title", Label).update(title)
        self.query_one("#policy-history", LiveTable).sync([history_row(v) for v in p.history])
        if self._shown is None or (self._shown[1] == "source" and self._shown[0] != p.version):
            self._show_source(snapshot)

    def _show_source(self, snapshot: ConsoleSnapshot) -> None:
        p = snapshot.policy
        self._shown = (p.version, "source")
        self.query_one("#policy-text", PolicyText).show(
            f"Current source (v{p.version})", p.source, lexer="toml"
        )

    def action_current(self) -> None:
        if self.console.snapshot is not None:
            self._show_source(self.console.snapshot)

    def action_diff(self) -> None:
        key = self.query_one("#policy-history", LiveTable).selected_key
        if key is not None:
            self.load_diff(int(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.load_diff(int(event.row_key.value))

    @work(thread=True, exclusive=True, group="policy-diff", exit_on_error=False)
    def load_diff(self, version: int) -> None:
        try:
            diff = self.data.policy_source_diff(version)
        except ConsoleError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self._show_diff, version, diff)

    def _show_diff(self, version: int, diff: str) -> None:
        self._shown = (version, "diff")
        self.query_one("#policy-text", PolicyText).show(
            f"Changes in v{version}", diff, lexer="diff"
        )
