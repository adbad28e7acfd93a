"""Each kind of tampering with the stored log is detected and named, on both backends."""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from events.integrity import GENESIS, RawEvent, link
from events.store import EventStore, StoreSettings

from .factories import session_events


@contextmanager
def raw_db(store: EventStore) -> Iterator[tuple[Any, str, str, str]]:
    """(connection, events table, chain table, id column) of the store, for an attacker."""
    url = store.settings.url
    if store.backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
        try:
            yield conn, "stored_events", "wardgate_chain", "rowid"
        finally:
            conn.close()
        return
    parts = urllib.parse.urlsplit(url)
    schema = dict(urllib.parse.parse_qsl(parts.query))["schema"]
    with psycopg.connect(
        urllib.parse.urlunsplit(parts._replace(query="")), autocommit=True
    ) as conn:
        yield conn, f'"{schema}".wardgate_events', f'"{schema}".wardgate_chain', "notification_id"


def q(store: EventStore, sql: str) -> str:
    return sql if store.backend == "sqlite" else sql.replace("?", "%s")


@pytest.fixture
def filled(store: EventStore) -> EventStore:
    for _ in range(3):
        store.append(session_events(4))  # 18 events each: ids 1..54
    assert store.verify().ok and store.verify().checked == 54
    return store


def state_of(conn: Any, store: EventStore, table: str, col: str, nid: int) -> bytes:
    cur = conn.execute(q(store, f"SELECT state FROM {table} WHERE {col} = ?"), (nid,))
    return bytes(cur.fetchone()[0])


def test_a_modified_event_is_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        state = bytearray(state_of(conn, filled, events, col, 20))
        state[-1] ^= 0x01
        conn.execute(
            q(filled, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (bytes(state), 20)
        )
    report = filled.verify()
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("modified", 20)
    assert report.checked == 19
    assert "event #20" in report.render()


def test_a_modified_topic_or_version_is_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        conn.execute(
            q(
                filled,
                f"UPDATE {events} SET originator_version = originator_version + 100 "
                f"WHERE {col} = ?",
            ),
            (33,),
        )
    report = filled.verify()
    assert report.problem is not None and report.problem.notification_id == 33


def test_a_deleted_event_is_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        conn.execute(q(filled, f"DELETE FROM {events} WHERE {col} = ?"), (7,))
    report = filled.verify()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("deleted", 7)


def test_a_deleted_event_with_its_chain_entry_breaks_the_next_link(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, chain, col):
        conn.execute(q(filled, f"DELETE FROM {events} WHERE {col} = ?"), (7,))
        conn.execute(q(filled, f"DELETE FROM {chain} WHERE notification_id = ?"), (7,))
    report = filled.verify()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("modified", 8)


def test_an_inserted_event_is_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        # A copy of event 3 under a new aggregate id, appended at the end, no chain entry.
        cur = conn.execute(
            q(
                filled,
                f"SELECT originator_id, originator_version, topic, state FROM {events} "
                f"WHERE {col} = ?",
            ),
            (3,),
        )
        _oid, version, topic, state = cur.fetchone()
        forged = (
            "0" * 31 + "1" if filled.backend == "sqlite" else "00000000-0000-0000-0000-000000000001"
        )
        conn.execute(
            q(
                filled,
                f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)",
            ),
            (forged, version, topic, state),
        )
    report = filled.verify()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("inserted", 55)


def test_an_event_replaced_in_the_middle_is_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        other = state_of(conn, filled, events, col, 12)
        conn.execute(q(filled, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (other, 16))
    report = filled.verify()
    assert report.problem is not None and report.problem.notification_id == 16


def test_swapped_events_are_named(filled: EventStore) -> None:
    with raw_db(filled) as (conn, events, _, col):
        a = state_of(conn, filled, events, col, 40)
        b = state_of(conn, filled, events, col, 41)
        conn.execute(q(filled, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (b, 40))
        conn.execute(q(filled, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (a, 41))
    report = filled.verify()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("modified", 40)


def test_a_truncated_tail_is_caught_by_a_recorded_head(filled: EventStore) -> None:
    head = filled.verify().head
    assert filled.verify(since=head).ok  # nothing new after the recorded head
    filled.append(session_events(1))
    later = filled.verify(since=head)
    assert later.ok and later.checked == 6
    with raw_db(filled) as (conn, events, chain, col):
        conn.execute(q(filled, f"DELETE FROM {events} WHERE {col} > ?"), (50,))
        conn.execute(q(filled, f"DELETE FROM {chain} WHERE notification_id > ?"), (50,))
    assert filled.verify().ok  # a clean prefix on its own looks fine...
    report = filled.verify(since=head)  # ...but the head the auditor recorded is gone
    assert report.problem is not None and report.problem.kind == "missing-head"


def test_a_keyed_chain_cannot_be_rebuilt_without_the_key(store_url: str) -> None:
    keyed = EventStore(StoreSettings(url=store_url, integrity_key=b"k" * 32))
    try:
        keyed.append(session_events(2))
        assert keyed.chain_mode == "hmac-sha256" and keyed.verify().ok
        # The attacker edits an event and recomputes the chain with plain SHA-256.
        with raw_db(keyed) as (conn, events, chain, col):
            cur = conn.execute(
                f"SELECT {col}, originator_id, originator_version, topic, state FROM {events} "
                f"ORDER BY {col}"
            )
            rows = cur.fetchall()
            prev = GENESIS
            for nid, oid, version, topic, stored in rows:
                state = bytes(stored) + b"x" if nid == 3 else bytes(stored)
                if nid == 3:
                    conn.execute(
                        q(keyed, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (state, nid)
                    )
                text = (
                    str(oid)
                    if keyed.backend == "postgresql"
                    else f"{oid[:8]}-{oid[8:12]}-{oid[12:16]}-{oid[16:20]}-{oid[20:]}"
                )
                prev = link(
                    prev,
                    RawEvent(
                        notification_id=nid,
                        originator_id=text,
                        originator_version=version,
                        topic=topic,
                        state=bytes(state),
                    ),
                    None,
                )
                conn.execute(
                    q(keyed, f"UPDATE {chain} SET hash = ? WHERE notification_id = ?"), (prev, nid)
                )
        report = keyed.verify()
        assert report.problem is not None and report.problem.notification_id == 1
    finally:
        keyed.close()
