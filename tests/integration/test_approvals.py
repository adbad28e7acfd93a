"""Held commands end to end: PyMySQL holds, operators decide from other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from events.domain import Approval, Session, short_id
from gateway.commands.approvals import approvals_view

from .harness import RunningGateway, mariadb, running_gateway
from .policies import BASIC

DB = "wg_it_appr"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(
        tmp_path_factory.mktemp("appr"), policy=BASIC, database=DB, max_hold="15s"
    ) as g:
        yield g


@pytest.fixture(autouse=True)
def table(gw: RunningGateway) -> None:
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS payments")
        cur.execute("CREATE TABLE payments (id INT PRIMARY KEY, amount INT)")
        cur.execute("INSERT INTO payments VALUES (1, 100), (2, 200)")


def pending(gw: RunningGateway, command: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The pending approvals of ``command`` (each test holds its own statement), read from
    the store the way `wardgate approvals list` does (without a process per poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = gw.store()
        try:
            view = approvals_view(store)
        finally:
            store.close()
        rows = [
            {
                "id": a.id,
                "short_id": short_id(a.id),
                "subject": a.subject,
                "rule": a.rule,
                "command": a.command,
            }
            for a in view.pending()
            if a.command == command
        ]
        if rows:
            return rows
        time.sleep(0.05)
    raise AssertionError("no pending approval appeared")


def gateway_sees(gw: RunningGateway, approval_id: str, status: str, timeout: float = 10) -> None:
    """Wait until the gateway's own live view has the decision (its follower polls)."""
    context = gw.started.context
    assert context is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = context.views.approvals.get(approval_id)
        if record is not None and record.status == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"the gateway never saw approval {approval_id} {status}")


def run_in_thread(gw: RunningGateway, sql: str, subject: str = "agent-7") -> dict[str, Any]:
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            with (
                gw.connect(gw.token(subject), database=DB, autocommit=True) as conn,
                conn.cursor() as cur,
            ):
                result["rows"] = cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            result["error"] = exc.args

    t = threading.Thread(target=work)
    t.start()
    result["thread"] = t
    return result


def amount(pid: int) -> int:
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT amount FROM payments WHERE id = %s", (pid,))
        return int(cur.fetchone()[0])


def test_update_held_then_approved_from_another_process(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = 0 WHERE id = 1"
    job = run_in_thread(gw, sql)
    [row] = pending(gw, sql)
    assert row["subject"] == "agent-7" and row["rule"] == "hold-writes"
    listed = gw.cli("approvals", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["short_id"] for r in json.loads(listed.stdout) if r["command"] == sql] == [
        row["short_id"]
    ]
    assert amount(1) == 100  # nothing ran yet
    out = gw.cli(
        "approvals",
        "approve",
        row["short_id"],
        "--reason",
        "ticket 42",
        token=gw.token("bob", ("oncall",)),
    )
    assert out.returncode == 0, out.stderr
    job["thread"].join(40)
    assert job.get("rows") == 1, job
    assert amount(1) == 0
    store = gw.store()
    try:
        forwarded = [e for _, e in store.iter_events() if isinstance(e, Session.CommandForwarded)]
        assert forwarded[-1].approved_by == ["bob"]
        used = [e for _, e in store.iter_events() if isinstance(e, Approval.Used)]
        assert str(used[-1].originator_id) == row["id"]
    finally:
        store.close()


def test_denied_with_a_reason(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = 1 WHERE id = 2"
    job = run_in_thread(gw, sql)
    [row] = pending(gw, sql)
    out = gw.cli(
        "approvals",
        "deny",
        row["short_id"],
        "--reason",
        "not during the freeze",
        token=gw.token("carol", ("oncall",)),
    )
    assert out.returncode == 0, out.stderr
    job["thread"].join(40)
    code, message = job["error"]
    assert code == 1227
    assert "denied by carol: not during the freeze" in message
    assert amount(2) == 200


def test_expired_without_a_decision(gw: RunningGateway) -> None:
    job = run_in_thread(gw, "DELETE FROM payments WHERE id = 2")
    job["thread"].join(40)
    assert "expired without a decision" in job["error"][1]
    assert amount(2) == 200


def test_requester_cannot_approve_even_in_the_approver_group(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = 5 WHERE id = 1"
    job = run_in_thread(gw, sql, subject="dave")
    [row] = pending(gw, sql)
    out = gw.cli("approvals", "approve", row["short_id"], token=gw.token("dave", ("oncall",)))
    assert out.returncode == 1
    assert "requester cannot decide their own command" in out.stderr
    job["thread"].join(40)  # max_hold passes: the client is told to retry
    assert "held for approval" in job["error"][1]
    assert amount(1) == 100


def test_two_approvers_race_and_exactly_one_decision_counts(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = 7 WHERE id = 1"
    job = run_in_thread(gw, sql)
    [row] = pending(gw, sql)
    env = {**os.environ, "WARDGATE_CONFIG": str(gw.data_dir / "wardgate.toml")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "approvals",
                verb,
                row["id"],
                "--reason",
                "race",
                "--token",
                gw.token(who, ("oncall",)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for verb, who in (("approve", "erin"), ("deny", "frank"))
    ]
    results = [(*p.communicate(timeout=60), p.returncode) for p in procs]
    winners = [r for r in results if r[2] == 0]
    losers = [r for r in results if r[2] != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "already" in losers[0][1]
    job["thread"].join(40)
    store = gw.store()
    try:
        decisions = [
            e
            for e in store.events_of(uuid.UUID(row["id"]))
            if isinstance(e, Approval.Approved | Approval.Denied)
        ]
        assert len(decisions) == 1
    finally:
        store.close()
    if isinstance(decisions[0], Approval.Approved):
        assert job.get("rows") == 1 and amount(1) == 7
    else:
        assert "denied by frank" in job["error"][1] and amount(1) == 100


def test_retry_after_max_hold_runs_once_approved(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = 9 WHERE id = 2"
    job = run_in_thread(gw, sql)
    [row] = pending(gw, sql)
    job["thread"].join(40)
    assert row["short_id"] in job["error"][1] and "retry" in job["error"][1]
    out = gw.cli("approvals", "approve", row["short_id"], token=gw.token("bob", ("oncall",)))
    assert out.returncode == 0, out.stderr
    gateway_sees(gw, row["id"], "approved")
    with gw.connect(database=DB, autocommit=True) as conn, conn.cursor() as cur:
        assert cur.execute("update payments set amount = 9 where id = 2") == 1  # same statement
        with pytest.raises(pymysql.err.OperationalError, match="held for approval"):
            cur.execute("UPDATE payments SET amount = 9 WHERE id = 2")  # used up: held again
    assert amount(2) == 9


def test_window_approval_covers_identical_statements(gw: RunningGateway) -> None:
    sql = "UPDATE payments SET amount = amount + 1 WHERE id = 1"
    job = run_in_thread(gw, sql)
    [row] = pending(gw, sql)
    out = gw.cli(
        "approvals",
        "approve",
        row["short_id"],
        "--for",
        "10m",
        token=gw.token("bob", ("oncall",)),
    )
    assert out.returncode == 0, out.stderr
    job["thread"].join(40)
    with gw.connect(database=DB, autocommit=True) as conn, conn.cursor() as cur:
        for _ in range(3):
            assert cur.execute("UPDATE payments SET amount = amount + 1 WHERE id = 1") == 1
    assert amount(1) == 104
