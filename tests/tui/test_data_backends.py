"""The console's data layer on both backends (SQLite file, the local PostgreSQL)."""

from __future__ import annotations

import time

import pytest

from events.domain import Approval
from events.store import EventStore
from tui.data import ConsoleData, ConsoleError
from tui.rows import Operator

from .fixtures import T0, seed, sid

ALICE = Operator(subject="alice", groups=frozenset({"dba"}))
BOB = Operator(subject="bob", groups=frozenset({"dba"}))
APPROVAL = str(sid("agent-1-approval-2"))


def test_a_decision_reaches_another_console_and_the_loser_learns_who_won(
    store: EventStore,
) -> None:
    seed(store)
    watcher = ConsoleData(store.settings, BOB, clock=lambda: T0)  # its own store connection
    watcher.start()
    try:
        assert [p.id for p in watcher.snapshot().pending] == [APPROVAL]
        alice = ConsoleData(store, ALICE, clock=lambda: T0)
        alice.refresh()
        alice.deny(APPROVAL, "not during the freeze")
        deadline = time.monotonic() + 5
        while watcher.snapshot().pending and time.monotonic() < deadline:
            time.sleep(0.02)
        decided = watcher.snapshot().decided[0]
        assert (decided.status, decided.decided_by, decided.reason) == (
            "denied",
            "alice",
            "not during the freeze",
        )
        with pytest.raises(ConsoleError, match="already denied by alice"):
            watcher.approve(APPROVAL, "too late")
        kinds = [type(e) for e in store.events_of(sid("agent-1-approval-2"))]
        assert kinds == [Approval.Requested, Approval.Denied]
    finally:
        watcher.close()
