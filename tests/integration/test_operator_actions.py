"""An operator ends a live session from another process; the gateway closes it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pymysql
import pytest

from events.domain import Session

from .harness import RunningGateway, running_gateway
from .policies import BASIC


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("ops"), policy=BASIC) as g:
        yield g


def test_an_operator_ends_a_live_session(gw: RunningGateway) -> None:
    conn = gw.connect(gw.token("agent-9"))
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    live = json.loads(gw.cli("sessions", "list", "--live", "--json").stdout)
    mine = [s for s in live if s.get("subject") == "agent-9"]
    assert len(mine) == 1, live
    session_id = mine[0]["session_id"]
    refused = gw.cli(
        "sessions", "end", session_id, "--reason", "x", token=gw.token("mallory", ("agents",))
    )
    assert refused.returncode == 1 and "may not end sessions" in refused.stderr
    ended = gw.cli(
        "sessions",
        "end",
        session_id[:8],
        "--reason",
        "suspicious activity",
        token=gw.token("olivia", ("oncall",)),
    )
    assert ended.returncode == 0, ended.stderr
    deadline = time.monotonic() + 10
    closed: list[Session.Closed] = []
    while not closed and time.monotonic() < deadline:
        store = gw.store()
        try:
            closed = [
                e
                for _, e in store.iter_events()
                if isinstance(e, Session.Closed) and str(e.originator_id) == session_id
            ]
        finally:
            store.close()
        time.sleep(0.1)
    assert closed and closed[0].reason == "killed"
    assert "olivia" in closed[0].detail and "suspicious activity" in closed[0].detail
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.execute("SELECT 1")
