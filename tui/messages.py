"""Messages the data worker posts to the app: each carries one immutable value."""

from __future__ import annotations

from textual.message import Message

from tui.rows import ConsoleSnapshot


class SnapshotReady(Message):
    """A new snapshot of the log (already coalesced by the data layer)."""

    def __init__(self, snapshot: ConsoleSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class StoreProblem(Message):
    """The store could not be read; the console keeps trying."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ActionDone(Message):
    """An operator action finished: ``ok`` says whether it was stored."""

    def __init__(self, text: str, *, ok: bool) -> None:
        super().__init__()
        self.text = text
        self.ok = ok
