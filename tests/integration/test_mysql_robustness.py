"""The gateway under misbehaving clients and failing upstreams: killed clients, garbage,
stalled handshakes, an upstream that is down, tokens that expire mid-session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pymysql
import pytest

from events.domain import Session

from .harness import RunningGateway, mariadb, running_gateway

DB = "wg_robust"

POLICY = """
version = 1

[policy]
name = "robust"
default = "deny"
unknown = "deny"

[[rule]]
name = "reads"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SHOW", "SESSION"]
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    extra = f"""handshake_timeout = "1s"

[[mysql]]
name = "down"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{closed_port()}"
credential = "shop"
connect_timeout = "2s"
"""
    with running_gateway(
        tmp_path_factory.mktemp("robust"), policy=POLICY, database=DB, extra=extra
    ) as g:
        yield g


def events(gw: RunningGateway) -> list[object]:
    store = gw.store()
    try:
        return [e for _, e in store.iter_events()]
    finally:
        store.close()


def closed_reasons(gw: RunningGateway) -> list[str]:
    return [e.reason for e in events(gw) if isinstance(e, Session.Closed)]


def wait_for(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def sleeping_queries(marker: str) -> list[object]:
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
            (f"%{marker}%",),
        )
        return [r for r in cur.fetchall() if "PROCESSLIST" not in (r[1] or "")]


def test_a_killed_client_has_its_query_killed_upstream(gw: RunningGateway) -> None:
    marker = f"wg_kill_{os.getpid()}"
    script = (
        "import pymysql,sys\n"
        "c = pymysql.connect(host='127.0.0.1', port=int(sys.argv[1]), user='agent',"
        " password=sys.argv[2])\n"
        f'c.cursor().execute("SELECT SLEEP(30) AS {marker}")\n'
    )
    client = subprocess.Popen(
        [sys.executable, "-c", script, str(gw.ports["shop"]), gw.token()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: bool(sleeping_queries(marker))), "the query never started"
        closed_before = len(closed_reasons(gw))
        client.send_signal(signal.SIGKILL)
        client.wait(5)
        started = time.monotonic()
        assert wait_for(lambda: not sleeping_queries(marker), timeout=5), "query still running"
        assert time.monotonic() - started < 5
        assert wait_for(lambda: len(closed_reasons(gw)) > closed_before, timeout=5)
    finally:
        if client.poll() is None:
            client.kill()


def test_a_stalled_handshake_is_closed_after_the_timeout(gw: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.ports["shop"])) as sock:
        sock.settimeout(5)
        greeting = sock.recv(4096)
        assert greeting and greeting[4] == 10  # HandshakeV10
        started = time.monotonic()
        rest = b""
        while chunk := sock.recv(4096):  # nothing sent: the gateway gives up and closes
            rest += chunk
        assert 0.5 < time.monotonic() - started < 4
    assert wait_for(lambda: "the client stalled" in repr(events(gw)))


def test_garbage_gets_an_error_or_a_close_and_others_still_work(gw: RunningGateway) -> None:
    before = len(closed_reasons(gw))
    for garbage in (os.urandom(300), b"\xff" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", gw.ports["shop"])) as sock:
            sock.settimeout(5)
            sock.recv(4096)  # the greeting
            sock.sendall(garbage)
            answer = b""
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            assert answer == b"" or answer[4] == 0xFF  # an ERR packet, then the close
    assert wait_for(lambda: len(closed_reasons(gw)) >= before + 3)
    with gw.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 42")
        assert cur.fetchone() == (42,)


def test_an_unreachable_upstream_is_named_to_the_client(gw: RunningGateway) -> None:
    with pytest.raises(pymysql.err.OperationalError) as err:
        gw.connect(target="down")
    assert "wardgate: target down is unreachable" in err.value.args[1]
    assert wait_for(lambda: "upstream_error" in closed_reasons(gw))


def test_an_expired_token_ends_the_session(gw: RunningGateway) -> None:
    conn = gw.connect(token=gw.token(ttl=3))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
            time.sleep(4)
            with pytest.raises(pymysql.err.MySQLError) as err:
                cur.execute("SELECT 2")
            assert "your token expired" in str(err.value)
    finally:
        conn.close()
    assert wait_for(lambda: "token_expired" in closed_reasons(gw))
