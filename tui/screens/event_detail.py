"""One event in full: every field as stored (masked values stay masked: that is what is stored)."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.rows import EventRow, date_time


class EventDetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, row: EventRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        r = self.row
        with VerticalScroll(id="event-detail"):
            yield Label(
                f"#{r.notification_id} {r.aggregate}.{r.kind} at {date_time(r.at)} UTC",
                classes="section-title",
            )
            lines = [
                f"[b]aggregate[/b]  {r.originator_id} v{r.version}",
                f"[b]actor[/b]      {escape(r.actor)}",
            ]
            lines += [
                f"[b]{escape(k)}[/b]  {escape(_value(k, v))}" for k, v in r.fields if k != "actor"
            ]
            yield Static("\n".join(lines), id="event-fields")

    def action_close(self) -> None:
        self.dismiss(None)


def _value(name: str, text: str) -> str:
    """Times as UTC dates next to their stored value; everything else exactly as stored."""
    if name in ("at", "expires_at"):
        try:
            return f"{date_time(float(text))} UTC ({text})"
        except ValueError:
            return text
    return text
