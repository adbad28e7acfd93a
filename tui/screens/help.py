"""Help: the keys of every screen (the footer shows those of the current one)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]wardgate console[/b]: live sessions, approvals, the audit log and the policy.

[b]Everywhere[/b]
  s  sessions      a  approvals      l  audit log      p  policy
  ?  this help     ctrl+p  command palette             q  quit

[b]Sessions[/b]
  /  filter (identity, target, protocol, id)   enter  open the session   esc  clear filter

[b]Session detail[/b]
  k  end the session (asks for a reason; only for the configured kill groups)
  esc  back to the sessions

[b]Approvals[/b]
  y  approve    n  deny (a reason is required)    w  approve for a window (e.g. 30m)
  The console refuses, with the domain's reason, approvals by the requester and by anyone
  outside the approver groups. A new request rings the bell and shows a notification.

[b]Audit log[/b]
  /  filter: identity:alice target:shop kind:Command decision:deny since:2h until:2026-09-21
  ]  older page   \\[  newer page   r  latest   enter  the event in full

[b]Policy[/b]
  enter / d  the diff of the selected version    c  the current source

Session replay comes with session recordings; it is not part of this console yet.
All times are UTC.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(HELP, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
