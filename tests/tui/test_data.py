"""ConsoleData against a real SQLite store: snapshots, actions, tails, audit pages."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from events.domain import Approval, Session, SessionControl
from events.store import EventStore
from tui.data import ConsoleData, ConsoleError
from tui.rows import AuditFilter, ConsoleSnapshot, Operator

from .fixtures import T0, command, open_session, policy_events, request, seed, sid, store_at

DBA = Operator(subject="alice", groups=frozenset({"dba", "oncall"}))
DBA2 = Operator(subject="bob", groups=frozenset({"dba"}))
OUTSIDER = Operator(subject="mallory", groups=frozenset({"dev"}))
REQUESTER = Operator(subject="ci-bot", groups=frozenset({"dba"}))
APPROVAL = str(sid("agent-1-approval-2"))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = store_at(tmp_path)
    seed(s)
    yield s
    s.close()


def console(store: EventStore, op: Operator = DBA, now: float = T0) -> ConsoleData:
    data = ConsoleData(store, op, kill_groups=frozenset({"oncall"}), clock=lambda: now)
    data.refresh()
    return data


def test_snapshot_shows_sessions_approvals_and_policy(store: EventStore) -> None:
    snap = console(store).snapshot()
    assert [s.subject for s in snap.live_sessions] == ["ops-agent", "ci-bot", "report-bot"]
    assert [s.state for s in snap.recent_sessions] == ["client_quit"]
    agent1 = next(s for s in snap.live_sessions if s.subject == "ci-bot")
    assert (agent1.commands, agent1.held, agent1.pending_approvals) == (2, 1, 1)
    (pending,) = snap.pending
    assert (pending.id, pending.subject, pending.progress, pending.refusal) == (
        APPROVAL,
        "ci-bot",
        "0/1",
        None,
    )
    assert snap.policy.version == 2 and snap.policy.author == "dave"
    assert [h.diff_summary for h in snap.policy.history] == [
        "added: writes-need-review",
        "added: reads",
    ]
    assert snap.announced == ()  # what was pending at start is not news


def test_refusals_come_from_the_domain(store: EventStore) -> None:
    assert console(store, REQUESTER).snapshot().pending[0].refusal == (
        "the requester cannot decide their own command"
    )
    assert console(store, OUTSIDER).snapshot().pending[0].refusal == (
        "mallory is not in an approver group (dba)"
    )
    late = console(store, DBA, now=T0 + 3600).snapshot().pending[0].refusal
    assert late is not None and "has expired" in late
    with pytest.raises(ConsoleError, match="requester cannot decide"):
        console(store, REQUESTER).approve(APPROVAL, "mine")
    with pytest.raises(ConsoleError, match="not in an approver group"):
        console(store, OUTSIDER).deny(APPROVAL, "no")


def test_approve_stores_the_event_and_a_second_console_sees_it(store: EventStore) -> None:
    other = ConsoleData(store.settings, DBA2, clock=lambda: T0)
    other.start()
    try:
        result = console(store).approve(APPROVAL[:8], "looks right")
        assert result.message == f"approved {APPROVAL.replace('-', '')[:8]}"
        stored = store.events_of(sid("agent-1-approval-2"))
        assert isinstance(stored[-1], Approval.Approved)
        assert (stored[-1].actor, stored[-1].reason, stored[-1].window_seconds) == (
            "alice",
            "looks right",
            None,
        )
        assert store.read(result.notification_ids[0] - 1, 1)[0][1] == stored[-1]
        deadline = time.monotonic() + 5
        while other.snapshot().pending and time.monotonic() < deadline:
            time.sleep(0.02)
        snap = other.snapshot()
        assert snap.pending == ()
        assert snap.decided[0].decided_by == "alice" and snap.decided[0].status == "approved"
    finally:
        other.close()


def test_window_approval_and_deny_with_reason(store: EventStore) -> None:
    console(store).approve(APPROVAL, "batch fix", window_seconds=1800)
    approved = store.events_of(sid("agent-1-approval-2"))[-1]
    assert isinstance(approved, Approval.Approved) and approved.window_seconds == 1800
    store.append(
        [
            request(
                "agent-2",
                2,
                subject="report-bot",
                target="billing",
                at=T0,
                text="DELETE FROM invoices",
            )
        ]
    )
    data = console(store)
    with pytest.raises(ConsoleError, match="a reason is required to deny"):
        data.deny(str(sid("agent-2-approval-2")), "  ")
    assert data.deny(str(sid("agent-2-approval-2")), "too broad").message.startswith("denied ")
    denied = store.events_of(sid("agent-2-approval-2"))[-1]
    assert isinstance(denied, Approval.Denied)
    assert (denied.actor, denied.reason) == ("alice", "too broad")


def test_a_race_is_decided_by_the_store_and_reported_with_the_winner(store: EventStore) -> None:
    slow = console(store, DBA2)
    real_load = store.load
    calls = {"n": 0}

    def load_then_lose_the_race(cls, oid):  # type: ignore[no-untyped-def]
        stale = real_load(cls, oid)
        calls["n"] += 1
        if calls["n"] == 1:  # alice, on her own connection, decides in between
            with EventStore(store.settings) as hers:
                console(hers).deny(APPROVAL, "not today")
        return stale

    slow.store.load = load_then_lose_the_race  # type: ignore[method-assign]
    with pytest.raises(ConsoleError, match="already denied by alice"):
        slow.approve(APPROVAL, "ok")
    assert calls["n"] == 2  # the conflict made it reload
    kinds = [type(e).__name__ for e in store.events_of(sid("agent-1-approval-2"))]
    assert kinds == ["Requested", "Denied"]


def test_quorum_of_two_needs_two_operators(store: EventStore) -> None:
    store.append(
        [
            request(
                "agent-2",
                5,
                subject="report-bot",
                target="billing",
                at=T0,
                text="DROP TABLE x",
                quorum=2,
            )
        ]
    )
    aid = str(sid("agent-2-approval-5"))
    first = console(store).approve(aid, "")
    assert first.message.endswith("(1 of 2)")
    with pytest.raises(ConsoleError, match="alice has already approved"):
        console(store).approve(aid, "")
    data = console(store, DBA2)
    assert next(p for p in data.snapshot().pending if p.id == aid).progress == "1/2"
    assert data.approve(aid, "second").message.startswith("approved")


def test_end_session_needs_a_kill_group_and_a_live_session(store: EventStore) -> None:
    with pytest.raises(ConsoleError, match="not in a group that may end sessions"):
        console(store, DBA2).end_session(str(sid("agent-2")), "runaway")
    with pytest.raises(ConsoleError, match="already closed"):
        console(store).end_session(str(sid("old-1")), "x")
    with pytest.raises(ConsoleError, match="a reason is required"):
        console(store).end_session(str(sid("agent-2")), "")
    data = console(store)
    assert data.end_session(str(sid("agent-2"))[:8], "runaway query").message.startswith(
        "asked the gateway to end session"
    )
    (event,) = store.events_of(SessionControl.id_for(sid("agent-2")))
    assert isinstance(event, SessionControl.TerminationRequested)
    assert (event.actor, event.reason, event.session_id) == (
        "alice",
        "runaway query",
        str(sid("agent-2")),
    )
    data.refresh()
    row = next(s for s in data.snapshot().live_sessions if s.subject == "report-bot")
    assert (row.state, row.termination_requested_by) == ("ending", "alice")


def test_watched_session_tail_follows_new_events(store: EventStore) -> None:
    data = console(store)
    tail = data.watch(str(sid("shell-1")))
    assert tail is not None and "load 0.10" in tail.output
    tail = data.watch(str(sid("agent-1")))
    assert tail is not None
    assert [e.kind for e in tail.events][:3] == [
        "ConnectionAccepted",
        "Authenticated",
        "CommandReceived",
    ]
    store.append(command("agent-1", 9, 3, "SELECT 1", at=T0, subject="ci-bot"))
    data.refresh()
    watched = data.snapshot().watched
    assert watched is not None and watched.session is not None
    assert watched.events[-1].summary.startswith("#3 ok: 3 rows")
    assert len([e for e in watched.events if e.kind == "CommandReceived"]) == 3  # no doubles


def test_audit_pages_backwards_with_filters(store: EventStore) -> None:
    data = console(store)
    total = store.max_id()
    first = data.audit_page(limit=5, chunk=3)
    assert [r.notification_id for r in first.rows] == list(range(total, total - 5, -1))
    second = data.audit_page(before=first.next_before, limit=100)
    assert second.rows[0].notification_id == total - 5 and second.next_before == 0
    assert len(first.rows) + len(second.rows) == total
    decided = data.audit_page(filter=AuditFilter(decision="review"))
    assert {r.kind for r in decided.rows} == {"CommandDecided", "Requested"}
    mine = data.audit_page(filter=AuditFilter(identity="report-bot", kind="CommandReceived"))
    assert [r.summary for r in mine.rows] == ["#1 COM_QUERY: SELECT SUM(total) FROM invoices"]
    by_target = data.audit_page(filter=AuditFilter(target="web-1"))
    assert {r.kind for r in by_target.rows} == {
        "ConnectionAccepted",
        "Authenticated",
        "OutputRecorded",
    }
    window = data.audit_page(filter=AuditFilter(since=T0 - 100, until=T0 - 70))
    assert {r.at for r in window.rows} <= set(range(int(T0 - 100), int(T0 - 70)))
    assert window.rows
    detail = dict(decided.rows[-1].fields)
    assert detail["action"] == "review" and detail["rule"] == "writes-need-review"


def test_policy_source_diff(store: EventStore) -> None:
    diff = console(store).policy_source_diff(2)
    assert '+name = "writes-need-review"' in diff and "v2 by dave" in diff
    with pytest.raises(ConsoleError, match="no policy version 7"):
        console(store).policy_source_diff(7)


WRITER = textwrap.dedent(
    """
    import sys
    from events.store import EventStore, StoreSettings
    from tests.tui.fixtures import request, open_session, T0
    store = EventStore(StoreSettings(url=sys.argv[1]))
    events = open_session("late", subject="late-bot", target="shop", at=T0)
    events.append(request("late", 1, subject="late-bot", target="shop", at=T0, text="TRUNCATE t"))
    store.append(events)
    store.close()
    """
)


def test_follow_announces_a_request_written_by_another_process(store: EventStore) -> None:
    data = console(store)
    got: list[ConsoleSnapshot] = []
    stop = threading.Event()
    thread = threading.Thread(target=data.follow, args=(got.append,), kwargs={"stop": stop})
    thread.start()
    try:
        subprocess.run([sys.executable, "-c", WRITER, store.settings.url], check=True, timeout=60)
        written = time.monotonic()
        while time.monotonic() - written < 5 and not any(s.announced for s in got):
            time.sleep(0.01)
        announced = [a for s in got for a in s.announced]
        assert [a.subject for a in announced] == ["late-bot"]
        assert time.monotonic() - written < 1.0
    finally:
        stop.set()
        thread.join(5)
    assert any(s.subject == "late-bot" for s in got[-1].live_sessions)


def test_closed_session_event_is_folded(store: EventStore) -> None:
    store.append(
        [
            Session.Closed(
                originator_id=sid("agent-2"),
                originator_version=7,
                at=T0,
                actor="gateway:n1",
                reason="killed",
            )
        ]
    )
    snap = console(store).snapshot()
    assert "report-bot" not in [s.subject for s in snap.live_sessions]
    assert snap.recent_sessions[0].state == "killed"


def test_start_folds_only_the_horizon_but_all_of_the_policy(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    old = sid("old-1")
    store.append(
        [
            *policy_events(),
            *open_session("old-1", subject="ci-bot", target="shop", at=T0 - 7200),
            Session.Closed(
                originator_id=old, originator_version=3, at=T0 - 7000, actor="n1", reason="error"
            ),
            *open_session("new-1", subject="report-bot", target="billing", at=T0 - 100),
        ]
    )
    data = ConsoleData(store, DBA, clock=lambda: T0, fold_horizon=3000)
    data.refresh()
    snap = data.snapshot()
    assert [s.subject for s in snap.live_sessions] == ["report-bot"]
    assert snap.recent_sessions == ()  # old-1 ended two hours ago: only in the audit log
    assert [v.version for v in snap.policy.history] == [2, 1]
    everything = ConsoleData(store, DBA, clock=lambda: T0, fold_horizon=None)
    everything.refresh()
    assert [s.state for s in everything.snapshot().recent_sessions] == ["error"]
    assert everything.snapshot().policy.history == snap.policy.history
    store.close()
