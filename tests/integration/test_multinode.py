"""Two gateway nodes and a console-side follower on ONE PostgreSQL store.

Node A and node B are `wardgate serve` processes with their own names and ports, sharing a
data directory (vault, status markers) as on one machine. What one node (or an operator
using a node's settings) writes, the other sees: approvals, policy, sessions.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from events.domain import Session
from events.follow import Follower
from events.projections import ApprovalsView, SessionsView
from events.store import EventStore, StoreSettings
from gateway.devidp import DevIdP

from ..conftest import drop_pg_schema, pg_url
from .harness import APP_PASSWORD, APP_USER, ensure_app_user, mariadb
from .nodes import Node, cli, cli_json, store_credential, write_config
from .policies import BASIC

DB = "wg_it_nodes"
FREEZE = (
    BASIC
    + """
[[rule]]
name = "freeze-ledger"
action = "deny"
protocol = "mysql"
tables = ["ledger"]
"""
)


@dataclass
class Deployment:
    idp: DevIdP
    a: Node
    b: Node
    store_url: str
    data: Path

    def connect(self, node: Node, subject: str = "agent-7") -> Any:
        return pymysql.connect(
            host="127.0.0.1",
            port=node.port,
            user="agent",
            password=self.idp.issue_token(subject, ["agents"]),
            database=DB,
            autocommit=True,
        )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    ensure_app_user(DB)
    schema = f"wg_nodes_{uuid.uuid4().hex[:10]}"
    url = pg_url(schema)
    tmp = tmp_path_factory.mktemp("multinode")
    data = tmp / "data"
    data.mkdir()
    idp = DevIdP(tmp / "idp")
    idp.start()
    nodes: list[Node] = []
    try:
        policy = data / "policy.toml"
        policy.write_text(BASIC)
        store_credential(data, name="shop", username=APP_USER, password=APP_PASSWORD)
        for name in ("A", "B"):
            config = write_config(
                tmp / f"{name}.toml",
                node=name,
                data_dir=data,
                idp=idp,
                policy_file=policy,
                store_url=url,
            )
            node = Node(config=config, log=tmp / f"{name}.log")
            node.start()  # one after the other: the first applies the initial policy
            nodes.append(node)
        yield Deployment(idp=idp, a=nodes[0], b=nodes[1], store_url=url, data=data)
    finally:
        for node in nodes:
            node.stop()
        idp.stop()
        drop_pg_schema(schema)


@pytest.fixture(autouse=True)
def ledger(deployment: Deployment) -> None:
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS ledger")
        cur.execute("CREATE TABLE ledger (id INT PRIMARY KEY, amount INT)")
        cur.execute("INSERT INTO ledger VALUES (1, 100)")


def test_approval_through_node_b_releases_a_command_held_on_node_a(
    deployment: Deployment,
) -> None:
    d = deployment
    sql = f"UPDATE ledger SET amount = 0 WHERE id = 1 /* {uuid.uuid4().hex} */"
    result: dict[str, Any] = {}

    def agent() -> None:
        try:
            with d.connect(d.a) as conn, conn.cursor() as cur:
                result["rows"] = cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            result["error"] = exc.args

    worker = threading.Thread(target=agent)
    worker.start()
    row: dict[str, Any] | None = None
    deadline = time.monotonic() + 8
    while row is None and time.monotonic() < deadline:
        listed = cli_json(d.b.config, "approvals", "list")
        assert isinstance(listed, list)
        row = next((r for r in listed if r["command"] == sql), None)
    assert row is not None, "node B's store view never showed the approval held on node A"
    assert row["node"] == "A"
    out = cli(
        d.b.config,
        "approvals",
        "approve",
        row["short_id"],
        "--reason",
        "approved through node B",
        token=d.idp.issue_token("bob", ["oncall"]),
    )
    assert out.returncode == 0, out.stderr
    worker.join(10)
    assert result.get("rows") == 1, result
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT amount FROM ledger WHERE id = 1")
        assert cur.fetchone() == (0,)
    store = EventStore(StoreSettings(url=d.store_url))
    try:
        forwarded = [
            e
            for _, e in store.iter_events()
            if isinstance(e, Session.CommandForwarded) and e.approved_by == ["bob"]
        ]
        assert forwarded, "the released command has no CommandForwarded naming its approver"
    finally:
        store.close()


def test_policy_applied_through_a_denies_on_b_within_a_second(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    with d.connect(d.b) as on_b, d.connect(d.a) as on_a:
        with on_b.cursor() as cur:
            assert cur.execute("SELECT amount FROM ledger") == 1  # allowed before
        frozen = tmp_path / "freeze.toml"
        frozen.write_text(FREEZE)
        out = cli(
            d.a.config, "policy", "apply", str(frozen), token=d.idp.issue_token("ann", ["admins"])
        )
        assert out.returncode == 0, out.stderr
        applied_at = time.monotonic()
        denied_after: float | None = None
        with on_b.cursor() as cur:
            while time.monotonic() - applied_at < 3:
                try:
                    cur.execute("SELECT amount FROM ledger")
                except pymysql.err.OperationalError as exc:
                    assert "freeze-ledger" in exc.args[1]
                    denied_after = time.monotonic() - applied_at
                    break
                time.sleep(0.02)
        assert denied_after is not None and denied_after < 1.0, denied_after
        with on_a.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match="freeze"):
            cur.execute("SELECT amount FROM ledger")
    restore = tmp_path / "basic.toml"
    restore.write_text(BASIC)
    out = cli(
        d.a.config, "policy", "apply", str(restore), token=d.idp.issue_token("ann", ["admins"])
    )
    assert out.returncode == 0, out.stderr


def test_sessions_show_their_node_everywhere(deployment: Deployment) -> None:
    d = deployment
    store = EventStore(StoreSettings(url=d.store_url))
    sessions, approvals = SessionsView(), ApprovalsView()
    follower = Follower(store, [sessions, approvals], idle_timeout=0.2)
    watcher = threading.Thread(target=follower.run, daemon=True)
    watcher.start()
    try:
        with d.connect(d.a, "agent-on-a") as ca, d.connect(d.b, "agent-on-b") as cb:
            for conn in (ca, cb):
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            # The console's data layer (a follower of the store) sees both nodes' sessions.
            deadline = time.monotonic() + 3
            by_subject: dict[str | None, str] = {}
            while time.monotonic() < deadline:
                by_subject = {s.subject: s.node for s in list(sessions.live())}
                if {"agent-on-a", "agent-on-b"} <= set(by_subject):
                    break
                time.sleep(0.05)
            assert by_subject.get("agent-on-a") == "A" and by_subject.get("agent-on-b") == "B"

            listed = cli_json(d.a.config, "sessions", "list", "--live")
            assert isinstance(listed, list)
            nodes = {r["subject"]: r["node"] for r in listed}
            assert nodes["agent-on-a"] == "A" and nodes["agent-on-b"] == "B"

            status = cli_json(d.b.config, "status")
            assert isinstance(status, dict)
            assert status["store"]["reachable"] and status["store"]["backend"] == "postgresql"
            running = {n["node"]: n for n in status["nodes"]}
            assert set(running) == {"A", "B"}
            assert running["A"]["listeners"] == d.a.ports
            assert running["B"]["listeners"] == d.b.ports
            for n in running.values():
                assert n["store"]["writable"] and n["store"]["following"]
                assert n["sessions"] >= 1
            assert running["A"]["policy_version"] == running["B"]["policy_version"]
    finally:
        follower.close()
        watcher.join(5)
        store.close()
