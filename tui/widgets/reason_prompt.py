"""A modal that asks for a reason (and, for window approvals, how long the window lasts)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.rows import parse_duration


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonAnswer:
    reason: str
    window_seconds: float | None = None


class ReasonPrompt(ModalScreen[ReasonAnswer | None]):
    """Enter submits, Escape cancels; an empty required reason is refused in place."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, *, required: bool, ask_window: bool = False, window: str = "30m"
    ) -> None:
        super().__init__()
        self.prompt_title = title
        self.required = required
        self.ask_window = ask_window
        self.default_window = window

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.prompt_title, id="prompt-title")
            if self.ask_window:
                yield Input(self.default_window, placeholder="window, e.g. 30m", id="window")
            placeholder = "reason (required)" if self.required else "reason (optional)"
            yield Input(placeholder=placeholder, id="reason")
            yield Label("", id="prompt-error")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        reason = self.query_one("#reason", Input).value.strip()
        error = self.query_one("#prompt-error", Label)
        window: float | None = None
        if self.ask_window:
            try:
                window = parse_duration(self.query_one("#window", Input).value)
            except ValueError as exc:
                error.update(str(exc))
                return
        if self.required and not reason:
            error.update("a reason is required")
            return
        self.dismiss(ReasonAnswer(reason=reason, window_seconds=window))

    def action_cancel(self) -> None:
        self.dismiss(None)
