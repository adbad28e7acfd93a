"""One contract for the event store, run on SQLite and on the real local PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import pytest

from events.domain import Approval, DomainError, Policy, Session
from events.projections import (
    ApprovalsView,
    CommandLogView,
    PolicyView,
    SessionsView,
    catch_up,
)
from events.store import ConcurrencyConflict, EventStore, StoreSettings, StoreUnavailable

from .factories import session_events


def test_append_returns_increasing_ids_and_reads_back(store: EventStore) -> None:
    events = session_events(3)
    ids = store.append(events)
    assert len(ids) == len(events)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    more = store.append(session_events(1))
    assert min(more) > max(ids)
    read = store.read(0, 100)
    assert [nid for nid, _ in read] == ids + more
    assert read[2][1] == events[2]
    assert store.max_id() == more[-1]


def test_load_folds_an_aggregate(store: EventStore) -> None:
    sid = uuid.uuid4()
    store.append(session_events(5, sid=sid))
    session = store.load(Session, sid)
    assert session is not None
    assert session.commands == 5 and session.subject == "alice" and session.version == 22
    assert store.load(Session, uuid.uuid4()) is None


def _request(aid: uuid.UUID, now: float, quorum: int = 1) -> Approval.Requested:
    return Approval.request_new(
        approval_id=aid,
        at=now,
        actor="gateway:n1",
        session_id=uuid.uuid4(),
        command_seq=1,
        subject="agent-7",
        groups=["agents"],
        target="shop",
        protocol="mysql",
        command="UPDATE payments SET amount = 0",
        normalized="update payments set amount = ?",
        rule="payments-writes",
        approver_groups=["oncall"],
        quorum=quorum,
        expires_at=now + 60,
        node="n1",
    )


def test_two_operators_deciding_at_once_exactly_one_wins(store: EventStore) -> None:
    aid, now = uuid.uuid4(), time.time()
    store.append([_request(aid, now)])
    # Both load the same version and decide.
    a = store.load(Approval, aid)
    b = store.load(Approval, aid)
    assert a is not None and b is not None
    yes = a.approve(subject="bob", groups=["oncall"], reason="ok", window_seconds=None, now=now)
    no = b.deny(subject="carol", groups=["oncall"], reason="not now", now=now)
    store.append([yes])
    with pytest.raises(ConcurrencyConflict):
        store.append([no])
    final = store.load(Approval, aid)
    assert final is not None and final.status == Approval.APPROVED and final.decided_by == "bob"
    # The loser retries from the new state and gets a clear refusal.
    with pytest.raises(DomainError, match="already approved by bob"):
        final.deny(subject="carol", groups=["oncall"], reason="late", now=now)


def test_requester_cannot_approve_and_quorum_counts_distinct_people(store: EventStore) -> None:
    aid, now = uuid.uuid4(), time.time()
    store.append([_request(aid, now, quorum=2)])
    approval = store.load(Approval, aid)
    assert approval is not None
    with pytest.raises(DomainError, match="requester"):
        approval.approve(
            subject="agent-7", groups=["oncall"], reason="", window_seconds=None, now=now
        )
    with pytest.raises(DomainError, match="not in an approver group"):
        approval.approve(subject="eve", groups=["dev"], reason="", window_seconds=None, now=now)
    first = approval.approve(
        subject="bob", groups=["oncall"], reason="", window_seconds=None, now=now
    )
    store.append([first])
    approval.apply(first)
    assert approval.status == Approval.PENDING
    with pytest.raises(DomainError, match="already approved"):
        approval.approve(subject="bob", groups=["oncall"], reason="", window_seconds=None, now=now)
    second = approval.approve(
        subject="dan", groups=["oncall"], reason="", window_seconds=600, now=now
    )
    store.append([second])
    loaded = store.load(Approval, aid)
    assert loaded is not None and loaded.status == Approval.APPROVED
    assert loaded.approvers == ["bob", "dan"]


def test_expired_approval_cannot_be_approved(store: EventStore) -> None:
    aid, now = uuid.uuid4(), time.time()
    store.append([_request(aid, now)])
    approval = store.load(Approval, aid)
    assert approval is not None
    later = now + 61
    with pytest.raises(DomainError, match="expired"):
        approval.approve(
            subject="bob", groups=["oncall"], reason="", window_seconds=None, now=later
        )
    store.append([approval.expire(now=later, actor="gateway:n1")])
    loaded = store.load(Approval, aid)
    assert loaded is not None and loaded.status == Approval.EXPIRED


def test_projections_follow_the_log_and_rebuild_to_the_same_state(store: EventStore) -> None:
    sid = uuid.uuid4()
    now = time.time()
    aid = uuid.uuid4()
    store.append(session_events(2, sid=sid))
    store.append([_request(aid, now)])
    views = (SessionsView(), ApprovalsView(), PolicyView(), CommandLogView())
    catch_up(store, views)
    sessions, approvals, policy, commands = views
    assert [s.id for s in sessions.live()] == [str(sid)]
    assert sessions.get(str(sid)).commands == 2  # type: ignore[union-attr]
    assert [a.id for a in approvals.pending()] == [str(aid)]
    assert commands.total == 2 and commands.recent(1)[0].ok is True

    policy_event = Policy().apply_change(
        source="[defaults]\naction='deny'\n",
        document={"default": "deny"},
        diff={"added": []},
        digest="d1",
        actor="admin",
        at=now,
    )
    approval = store.load(Approval, aid)
    assert approval is not None
    decision = approval.approve(
        subject="bob", groups=["oncall"], reason="fine", window_seconds=1800, now=now
    )
    closed = Session.Closed(
        originator_id=sid, originator_version=23, at=now, actor="gateway:n1", reason="client_quit"
    )
    store.append([policy_event, decision, closed])
    read = catch_up(store, views)
    assert read == 3
    assert sessions.live() == [] and sessions.get(str(sid)).close_reason == "client_quit"  # type: ignore[union-attr]
    assert approvals.pending() == [] and approvals.get(str(aid)).decided_by == "bob"  # type: ignore[union-attr]
    assert approvals.window_for(
        subject="agent-7", target="shop", normalized="update payments set amount = ?", now=now + 1
    )
    assert policy.document == {"default": "deny"} and policy.history[0].author == "admin"

    fresh = (SessionsView(), ApprovalsView(), PolicyView(), CommandLogView())
    catch_up(store, fresh)
    assert [p.position for p in fresh] == [p.position for p in views] == [store.max_id()] * 4
    assert fresh[0].sessions == sessions.sessions
    assert fresh[1].approvals == approvals.approvals
    assert fresh[3].commands == commands.commands


def test_a_trained_dictionary_shrinks_events_and_old_ones_stay_readable(store: EventStore) -> None:
    for _ in range(40):
        store.append(session_events(5))
    before = store.mapper.to_stored_event(session_events(1)[2])
    old_first = store.read(0, 1)[0][1]
    dict_id = store.train_dictionary()
    assert dict_id
    after = store.mapper.to_stored_event(session_events(1)[2])
    assert len(after.state) * 2 < len(before.state)
    store.append(session_events(1))
    # Old (no dictionary) and new (dictionary) events decode, in this store and a new one.
    reopened = EventStore(store.settings)
    try:
        assert reopened.read(0, 1)[0][1] == old_first
        assert len(list(reopened.iter_events())) == 40 * 22 + 6
        assert reopened.read(store.max_id() - 1, 1)[0][1].actor == "alice"
    finally:
        reopened.close()


def test_encryption_at_rest_hides_event_content(store_url: str) -> None:
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # 32 bytes, base64
    s = EventStore(StoreSettings(url=store_url, cipher_key=key))
    try:
        s.append(session_events(1))
        raw = b"".join(e.state for e in s.recorder.raw_events())
        assert b"customers" not in raw
        # zstd frames would start with the magic number; encrypted states do not.
        assert not any(e.state.startswith(b"\x28\xb5\x2f\xfd") for e in s.recorder.raw_events())
        assert s.read(0, 10)[2][1].text.startswith("SELECT name")  # type: ignore[attr-defined]
        assert s.verify().ok
    finally:
        s.close()


def test_the_store_ignores_stray_library_settings_in_the_environment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.popo")
    monkeypatch.setenv("WARDGATE_PERSISTENCE_MODULE", "eventsourcing.popo")
    s = EventStore(StoreSettings(url=store_url))
    try:
        s.append(session_events(1))
    finally:
        s.close()
    again = EventStore(StoreSettings(url=store_url))
    try:
        assert again.max_id() == 6
    finally:
        again.close()


def test_unreachable_stores_fail_with_one_clear_line() -> None:
    with pytest.raises(StoreUnavailable) as err:
        EventStore(StoreSettings(url="postgresql://postgres@127.0.0.1:1/test"))
    assert "cannot open event store postgresql://postgres@127.0.0.1:1/test" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(StoreUnavailable, match="cannot open event store sqlite:///proc/"):
        EventStore(StoreSettings(url="sqlite:///proc/wardgate/events.db"))


def test_sqlite_files_are_private_and_durability_is_applied(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for durability, expected in (("process-crash", 1), ("power-loss", 2)):
        url = f"sqlite:///{data / f'{durability}.db'}"
        s = EventStore(StoreSettings(url=url, durability=durability))  # type: ignore[arg-type]
        try:
            s.append(session_events(1))
            with s.recorder.datastore.get_connection(commit=True) as conn:  # type: ignore[union-attr]
                level = conn._sqlite_conn.execute("PRAGMA synchronous").fetchone()[0]
            assert level == expected
        finally:
            s.close()
        assert stat.S_IMODE(os.stat(data / f"{durability}.db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    mode = sqlite3.connect(data / "power-loss.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
