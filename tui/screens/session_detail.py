"""Session detail: the live tail of one session, and ending it (for the kill groups)."""

from __future__ import annotations

import re
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Label, Log

from tui.data import short_id
from tui.rows import ConsoleSnapshot, EventRow, SessionTail, clock_time
from tui.screens.base import ConsoleScreen
from tui.widgets.live_table import LiveTable, Row
from tui.widgets.reason_prompt import ReasonAnswer, ReasonPrompt
from tui.widgets.session_summary import SessionSummary

# Terminal control sequences: the tail shows text; faithful rendering is the replay's job.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")

TAIL_COLUMNS = ("time", "event", "decision", "detail")


def tail_row(e: EventRow) -> Row:
    return (f"{e.originator_id}:{e.version}", (clock_time(e.at), e.kind, e.decision, e.summary))


class SessionDetailScreen(ConsoleScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("k", "end_session", "End session"),
    ]

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.tail: SessionTail | None = None
        self._output = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(f"Session {short_id(self.session_id)}", classes="section-title")
        yield SessionSummary(id="session-summary")
        yield LiveTable(TAIL_COLUMNS, id="session-events")
        yield Log(id="session-output", max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#session-output", Log).display = False
        self.query_one("#session-events", LiveTable).focus()
        self.start_watching()
        self.call_after_refresh(self.show_latest)

    def on_unmount(self) -> None:
        self.data.watch(None)

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def start_watching(self) -> None:
        tail = self.data.watch(self.session_id)
        if tail is not None:
            self.app.call_from_thread(self.show_tail, tail)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "end_session":
            if not self.data.may_end_sessions:
                return None  # hidden: this operator is in no kill group
            session = self.tail.session if self.tail else None
            return session is not None and session.live  # dimmed once the session ended
        return True

    def show(self, snapshot: ConsoleSnapshot) -> None:
        if not self.query("#session-summary"):
            return  # a snapshot before the widgets exist: on_mount shows the latest after
        watched = snapshot.watched
        if watched is not None and watched.session and watched.session.id == self.session_id:
            self.show_tail(watched, now=snapshot.now)

    def show_tail(self, tail: SessionTail, now: float | None = None) -> None:
        was_live = (
            self.tail is not None and self.tail.session is not None and self.tail.session.live
        )
        self.tail = tail
        moment = now if now is not None else self.data.clock()
        summary = self.query_one("#session-summary", SessionSummary)
        summary.show(tail.session, moment, may_end=self.data.may_end_sessions)
        self.query_one("#session-events", LiveTable).sync([tail_row(e) for e in tail.events])
        if tail.output != self._output:
            log = self.query_one("#session-output", Log)
            log.display = True
            text = _CONTROL.sub("", tail.output.replace("\r\n", "\n"))
            if tail.output.startswith(self._output) and self._output:
                log.write(_CONTROL.sub("", tail.output[len(self._output) :].replace("\r\n", "\n")))
            else:
                log.clear()
                log.write(text)
            self._output = tail.output
        if was_live != (tail.session is not None and tail.session.live):
            self.refresh_bindings()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_end_session(self) -> None:
        def answered(answer: ReasonAnswer | None) -> None:
            if answer is not None:
                self.perform(lambda: self.data.end_session(self.session_id, answer.reason))

        self.app.push_screen(
            ReasonPrompt(f"End session {short_id(self.session_id)}: why?", required=True),
            answered,
        )
