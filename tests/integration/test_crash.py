"""A node killed with SIGKILL, again and again, under load: nothing runs unrecorded.

Agents insert uniquely marked rows through the node into MariaDB while the node is killed at
random moments and restarted. MariaDB's general log, filtered by the dedicated account the
gateway logs in with, is the witness of what reached the database: every marked statement
it shows must have its ``CommandForwarded`` in the store (the gateway stores a command's
events before it forwards a byte). After each restart the sessions the dead process left
open are closed as ``aborted``, and at the end the chain verifies.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from events.domain import Session
from events.projections import SessionsView, catch_up
from events.store import EventStore
from gateway.config import load_settings
from gateway.devidp import DevIdP

from ..conftest import drop_pg_schema, pg_url
from .harness import mariadb
from .nodes import Node, cli, free_port, store_credential, write_config

DB = "wg_crash"
USER, PASSWORD = "wg_crash", "wg-crash-Secret-1"
KILLS = 5
AGENTS = 4
POLICY = """
version = 1
[policy]
name = "crash"
default = "deny"
unknown = "deny"
[[rule]]
name = "marks"
action = "allow"
protocol = "mysql"
statements = ["INSERT", "SELECT", "SESSION"]
"""


@pytest.fixture(scope="module")
def general_log() -> Iterator[None]:
    """The dedicated account, and the general log on (into a table) for this test only."""
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB}`")
        for host in ("127.0.0.1", "localhost"):
            cur.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'")
            cur.execute(f"GRANT ALL ON `{DB}`.* TO '{USER}'@'{host}'")
        cur.execute(f"DROP TABLE IF EXISTS `{DB}`.marks")
        cur.execute(f"CREATE TABLE `{DB}`.marks (mark VARCHAR(64) PRIMARY KEY)")
        cur.execute("SELECT @@global.general_log, @@global.log_output")
        before = cur.fetchone()
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute("SET GLOBAL general_log = 1")
    try:
        yield
    finally:
        with mariadb() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL general_log = %s", (int(before[0]),))
            cur.execute("SET GLOBAL log_output = %s", (before[1],))


def executed_marks(run: str) -> set[str]:
    """The marks of every statement MariaDB received from the gateway's account."""
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log "
            "WHERE user_host LIKE %s AND command_type = 'Query' AND argument LIKE %s",
            (f"{USER}[%", f"%crashmark-{run}-%"),
        )
        return {_mark(str(text)) for (text,) in cur.fetchall()}


def _mark(text: str) -> str:
    start = text.index("crashmark-")
    return text[start : text.index("'", start)]


class Agents:
    """Threads that insert marked rows through the node, reconnecting after each crash."""

    def __init__(self, idp: DevIdP, port: int, run: str) -> None:
        self.idp, self.port, self.run = idp, port, run
        self.stop = threading.Event()
        self.sent = 0
        self.ok = 0
        self.threads = [threading.Thread(target=self._agent, args=(i,)) for i in range(AGENTS)]

    def _agent(self, number: int) -> None:
        n = 0
        token = self.idp.issue_token(f"agent-{number}", ["agents"])  # signing costs CPU
        while not self.stop.is_set():
            try:
                conn = pymysql.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="agent",
                    password=token,
                    database=DB,
                    autocommit=True,
                    connect_timeout=3,
                    read_timeout=10,
                )
            except pymysql.err.MySQLError:
                time.sleep(0.2)  # the node is down: retry until it is back
                continue
            try:
                with conn.cursor() as cur:
                    while not self.stop.is_set():
                        n += 1
                        self.sent += 1
                        cur.execute(
                            "INSERT INTO marks VALUES (%s)", (f"crashmark-{self.run}-{number}-{n}",)
                        )
                        self.ok += 1
            except pymysql.err.MySQLError:
                pass  # killed under us
            finally:
                with contextlib.suppress(Exception):  # a dead connection may fail to close
                    conn.close()

    def __enter__(self) -> Agents:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def recorded(store: EventStore, run: str) -> tuple[dict[str, bool], SessionsView]:
    """Every marked CommandReceived in the store, and whether it was forwarded."""
    received: dict[tuple[uuid.UUID, int], str] = {}
    forwarded: set[tuple[uuid.UUID, int]] = set()
    for _, e in store.iter_events():
        if isinstance(e, Session.CommandReceived) and f"crashmark-{run}-" in e.text:
            received[(e.originator_id, e.seq)] = _mark(e.text)
        elif isinstance(e, Session.CommandForwarded):
            forwarded.add((e.originator_id, e.seq))
    marks: dict[str, bool] = {}
    for key, mark in received.items():
        assert mark not in marks, f"{mark} recorded twice"
        marks[mark] = key in forwarded
    sessions = SessionsView()
    catch_up(store, [sessions])
    return marks, sessions


@pytest.mark.slow
@pytest.mark.mariadb
@pytest.mark.timeout(900)  # five restarts of a real process on a shared 2-core machine
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_under_load_loses_nothing(backend: str, general_log: None, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    schema = f"wg_crash_{run}"
    data = tmp_path / "data"
    data.mkdir()
    rng = random.Random(run)
    with DevIdP(tmp_path / "idp") as idp:
        policy = data / "policy.toml"
        policy.write_text(POLICY)
        store_credential(data, name="crash", username=USER, password=PASSWORD)
        config = write_config(
            tmp_path / "node.toml",
            node="crash",
            data_dir=data,
            idp=idp,
            policy_file=policy,
            store_url=pg_url(schema) if backend == "postgres" else None,
            port=free_port(),
            credential="crash",
        )
        settings = load_settings(config, env={})
        node = Node(config=config, log=tmp_path / "node.log")
        node.start()
        try:
            with Agents(idp, node.port, run) as agents:
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.3, 1.5))
                    node.kill()
                    with EventStore(settings.store) as store:
                        _, sessions = recorded(store, run)
                    left_open = {s.id for s in sessions.live()}
                    node.start()
                    # The witness first: whatever MariaDB has seen by now must already be
                    # in the store (agents keep running on the restarted node meanwhile).
                    executed = executed_marks(run)
                    with EventStore(settings.store) as store:
                        marks, sessions = recorded(store, run)
                        for sid in left_open:
                            closed = sessions.get(sid)
                            assert closed is not None and closed.close_reason == "aborted"
                    unrecorded = executed - {m for m, fwd in marks.items() if fwd}
                    assert not unrecorded, f"ran in MariaDB without CommandForwarded: {unrecorded}"
                time.sleep(0.5)
            assert agents.ok > 0, "no statement got through at all"
            node.stop()
            with EventStore(settings.store) as store:
                marks, _ = recorded(store, run)
            executed = executed_marks(run)
            assert executed, "the general log shows nothing: the witness is not working"
            assert not executed - {m for m, fwd in marks.items() if fwd}
            with mariadb(DB) as conn, conn.cursor() as cur:
                cur.execute("SELECT mark FROM marks WHERE mark LIKE %s", (f"crashmark-{run}-%",))
                stored_rows = {r[0] for r in cur.fetchall()}
            assert stored_rows <= executed
            verify = cli(config, "audit", "verify")
            assert verify.returncode == 0, verify.stdout + verify.stderr
            print(
                f"{backend}: {agents.sent} sent, {agents.ok} acknowledged, {len(executed)} "
                f"executed, {len(marks)} recorded over {node.starts} starts"
            )
        finally:
            node.stop()
            if backend == "postgres":
                drop_pg_schema(schema)
