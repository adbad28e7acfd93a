"""The MySQL proxy end to end: PyMySQL through the gateway to the real MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from events.domain import Session

from .harness import RunningGateway, mariadb, running_gateway
from .policies import BASIC

DB = "wg_it"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("mysql"), policy=BASIC, database=DB) as g:
        with mariadb(DB) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS items")
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))")
            cur.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        yield g


def test_select_through_the_gateway(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM items ORDER BY id")
        assert cur.fetchall() == ((1, "one"), (2, "two"), (3, "three"))
        cur.execute("SELECT VERSION()")
        assert "MariaDB" in cur.fetchone()[0]


def test_drop_is_denied_with_the_rule_name(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.OperationalError) as err:
            cur.execute("DROP TABLE items")
        code, message = err.value.args
        assert code == 1227
        assert "wardgate: denied by rule no-drop" in message
        cur.execute("SELECT COUNT(*) FROM items")  # the session goes on
        assert cur.fetchone() == (3,)
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'items'")
        assert cur.fetchone() == ("items",)


def test_a_bad_token_is_refused_and_recorded(gw: RunningGateway) -> None:
    with pytest.raises(pymysql.err.OperationalError) as err:
        gw.connect(token="not-a-jwt")
    assert err.value.args[0] == 1045
    assert "token rejected" in err.value.args[1]
    store = gw.store()
    try:
        rejected = [
            e for _, e in store.iter_events() if isinstance(e, Session.AuthenticationRejected)
        ]
        assert rejected and rejected[-1].reason == "malformed"
        assert not any("not-a-jwt" in repr(e) for _, e in store.iter_events())
    finally:
        store.close()


def test_events_record_the_commands_and_decisions(gw: RunningGateway, tmp_path: Path) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM items WHERE id = 2")
        assert cur.fetchone() == ("two",)
    store = gw.store()
    try:
        # A session's last response and its Closed ride on the next transaction (at most
        # the writer's flush_after later): wait for them rather than race them.
        deadline = time.monotonic() + 10
        while True:
            events = [e for _, e in store.iter_events()]
            ours = {
                e.originator_id
                for e in events
                if isinstance(e, Session.CommandReceived) and e.text.startswith("SELECT name")
            }
            closed = any(isinstance(e, Session.Closed) and e.originator_id in ours for e in events)
            if closed or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        texts = [e.text for e in events if isinstance(e, Session.CommandReceived)]
        assert "SELECT name FROM items WHERE id = 2" in texts
        responses = [e for e in events if isinstance(e, Session.ResponseRecorded)]
        assert any(r.rows == 1 and r.ok for r in responses)
        assert store.verify().ok
    finally:
        store.close()
