"""A scrollable view of policy text: the current source, or a unified diff between versions."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.containers import VerticalScroll
from textual.widgets import Label, Static


class PolicyText(VerticalScroll):
    shown = ""
    """The text on display (plain), for tests and copy."""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Label("", id="policy-text-title", classes="section-title")
        yield Static("", id="policy-text-body")

    def show(self, title: str, text: str, *, lexer: str) -> None:
        self.shown = text
        self.query_one("#policy-text-title", Label).update(title)
        body = Syntax(text or "(empty)", lexer, theme="ansi_dark", word_wrap=True)
        self.query_one("#policy-text-body", Static).update(body)
