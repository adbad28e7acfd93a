"""Upstream logins kept between sessions: reused after a clean quit, reset so that nothing
of one session reaches the next, never kept after an unclean end."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import RunningGateway, ensure_app_user, running_gateway

DB = "wg_pool"
OTHER = "wg_pool_other"
POLICY = """
version = 1

[policy]
name = "pool"
default = "allow"
unknown = "deny"
"""


def _gateway(tmp: Path, extra: str = "") -> Iterator[RunningGateway]:
    ensure_app_user(OTHER)
    with running_gateway(tmp, policy=POLICY, database=DB, extra=extra) as g:
        yield g


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from _gateway(tmp_path_factory.mktemp("pool"))


def _thread_id(conn: object) -> int:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])


def test_a_clean_quit_leaves_the_upstream_login_to_the_next_session(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn:
        first = _thread_id(conn)
    with gw.connect(database=DB) as conn:
        assert _thread_id(conn) == first  # no new upstream login
    # another login database is another login: not shared
    with gw.connect(database=OTHER) as conn:
        assert _thread_id(conn) != first


def test_nothing_of_a_session_reaches_the_next_one(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        first = _thread_id(conn)
        cur.execute("CREATE TABLE IF NOT EXISTS pool_rows (id INT PRIMARY KEY)")
        cur.execute("DELETE FROM pool_rows")
        conn.commit()
        cur.execute("SET @wg_secret = 'left behind'")
        cur.execute("CREATE TEMPORARY TABLE wg_tmp (x INT)")
        cur.execute("PREPARE wg_stmt FROM 'SELECT 1'")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO pool_rows VALUES (1)")  # never committed
        cur.execute(f"USE {OTHER}")  # the next session starts in the login database again
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        assert _thread_id(conn) == first
        cur.execute("SELECT @wg_secret, DATABASE(), @@in_transaction")
        assert cur.fetchone() == (None, DB, 0)
        cur.execute("SELECT COUNT(*) FROM pool_rows")
        assert cur.fetchone() == (0,)  # the open transaction was rolled back
        for statement in ("SELECT * FROM wg_tmp", "EXECUTE wg_stmt"):
            with pytest.raises(Exception, match=r"doesn't exist|Unknown prepared"):
                cur.execute(statement)


def test_a_session_that_ends_uncleanly_does_not_give_its_login_back(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn:
        first = _thread_id(conn)
    conn = gw.connect(database=DB)
    assert _thread_id(conn) == first
    # the client vanishes without COM_QUIT: its upstream is closed, not kept
    sock = conn._sock  # type: ignore[attr-defined]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    with gw.connect(database=DB) as again:
        assert _thread_id(again) != first


def test_no_pool_when_pool_size_is_zero(tmp_path: Path) -> None:
    for g in _gateway(tmp_path, extra="pool_size = 0"):
        with g.connect(database=DB) as conn:
            first = _thread_id(conn)
        with g.connect(database=DB) as conn:
            assert _thread_id(conn) != first


def test_a_login_without_database_is_reused_until_it_changes_database(
    gw: RunningGateway,
) -> None:
    with gw.connect() as conn:
        first = _thread_id(conn)
    with gw.connect() as conn, conn.cursor() as cur:
        assert _thread_id(conn) == first
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (None,)
        cur.execute(f"USE {DB}")  # no way back to "no database": this login is not kept
    with gw.connect() as conn, conn.cursor() as cur:
        assert _thread_id(conn) != first
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (None,)
