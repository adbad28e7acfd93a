#!/usr/bin/env python3
"""Approval release latency and classifier speed.

For SQLite and PostgreSQL in one run: a real gateway (in a thread) holds an UPDATE for
review; this process approves it by storing the Approval event directly (as the console or
`wardgate approvals approve` on another node would) and measures the time from that event
being durable to the held statement's result reaching the PyMySQL client. Also prints the
SQL classifier's rate on typical statements.

    .venv/bin/python scripts/bench_approvals.py [--approvals 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from events.domain import Approval
from events.projections import ApprovalsView, Projection
from events.store import EventStore
from gateway.policy import classify_sql
from tests.integration.harness import mariadb, running_gateway
from tests.integration.policies import BASIC

PG = "postgresql://postgres@127.0.0.1:5432/test"
DB = "wg_bench_appr"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def new_pending(store: EventStore, view: ApprovalsView) -> str | None:
    for nid, event in store.read_kinds(
        (
            Approval.Requested,
            Approval.Approved,
            Approval.Denied,
            Approval.Used,
            Approval.Cancelled,
            Approval.Expired,
        ),
        view.position,
        1000,
    ):
        Projection.handle(view, nid, event)
    pending = view.pending()
    return pending[0].id if pending else None


def run_backend(tmp: Path, store_url: str | None, approvals: int) -> list[float]:
    tmp.mkdir(parents=True, exist_ok=True)
    with running_gateway(tmp, policy=BASIC, database=DB, store_url=store_url, max_hold="30s") as gw:
        with mariadb(DB) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS payments")
            cur.execute("CREATE TABLE payments (id INT PRIMARY KEY, amount INT)")
            cur.execute("INSERT INTO payments VALUES (1, 0)")
        store = gw.store()
        view = ApprovalsView()
        new_pending(store, view)
        latencies: list[float] = []
        client = gw.connect(gw.token("agent-bench"), database=DB, autocommit=True)
        try:
            for i in range(approvals):
                done: dict[str, float] = {}

                def statement(n: int = i, done: dict[str, float] = done) -> None:
                    with client.cursor() as cur:
                        cur.execute(f"UPDATE payments SET amount = {n} WHERE id = 1")
                    done["at"] = time.perf_counter()

                worker = threading.Thread(target=statement)
                worker.start()
                aid = None
                while aid is None:
                    aid = new_pending(store, view)
                    if aid is None:
                        time.sleep(0.002)
                approval = store.load(Approval, uuid.UUID(aid))
                assert approval is not None
                event = approval.approve(
                    subject="bench-approver",
                    groups=["oncall"],
                    reason="",
                    window_seconds=None,
                    now=time.time(),
                )
                store.append([event])
                written = time.perf_counter()
                worker.join(30)
                latencies.append((done["at"] - written) * 1000)
                new_pending(store, view)
        finally:
            client.close()
            store.close()
        return latencies


def classifier_rate() -> float:
    texts = [
        f"SELECT id, name, email FROM customers WHERE id = {i} AND status = 'active'"
        if i % 3 == 0
        else f"UPDATE payments SET amount = {i} WHERE id = {i % 97}"
        if i % 3 == 1
        else f"INSERT INTO audit_log (actor, action, at) VALUES ('u{i}', 'login', NOW())"
        for i in range(50_000)
    ]
    started = time.process_time()
    for text in texts:
        classify_sql(text)
    return len(texts) / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--approvals", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run_backend(Path(tmp) / "s", None, args.approvals)
        schema = f"wg_bench_{uuid.uuid4().hex[:8]}"
        try:
            results["postgresql"] = run_backend(
                Path(tmp) / "p", f"{PG}?schema={schema}", args.approvals
            )
        finally:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"approval durable -> held result at the client, {args.approvals} approvals")
    print(f"{'backend':<12}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}   goal p95")
    for backend, goal in (("sqlite", 250), ("postgresql", 50)):
        lat = results[backend]
        print(
            f"{backend:<12}{statistics.median(lat):>10.1f}{pct(lat, 0.95):>10.1f}"
            f"{max(lat):>10.1f}   <= {goal} ms"
        )
    print(f"classifier: {classifier_rate():,.0f} typical statements/s (goal >= 50,000)")


if __name__ == "__main__":
    main()
