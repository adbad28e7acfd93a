#!/usr/bin/env python3
"""Export benchmark: fill a temporary SQLite store with realistic events, then export them.

Fills the store with interleaved sessions (MySQL and SSH, allowed, denied and held commands,
approvals, masked responses and terminal output), appended in batches of about 1000 events.
Then each export runs in its own child process, which reports its wall time and its peak
resident memory (``resource.getrusage``): events/s (goal >= 50,000) and peak MB (goal < 200).

    .venv/bin/python scripts/bench_export.py [--events 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from events.domain import Approval, DomainEvent, Session  # noqa: E402
from events.store import EventStore, StoreSettings  # noqa: E402

CHILD = """
import json, resource, sys, time
from events.export import ExportFilter, export
from events.store import EventStore, StoreSettings
url, kind, fmt, path = sys.argv[1:5]
store = EventStore(StoreSettings(url=url))
started = time.perf_counter()
with open(path, "w", encoding="utf-8", newline="") as out:
    summary = export(store, kind, out, fmt=fmt)
elapsed = time.perf_counter() - started
store.close()
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": elapsed, "events": summary.events_read, "rows": summary.rows,
                  "cpu": usage.ru_utime + usage.ru_stime, "peak_kb": usage.ru_maxrss}))
"""

QUERIES = [
    "SELECT id, name, email FROM customers WHERE id = {n}",
    "SELECT * FROM orders WHERE customer_id = {n} ORDER BY created_at DESC LIMIT 20",
    "UPDATE carts SET updated_at = NOW() WHERE id = {n}",
    "SELECT count(*) FROM events WHERE day = '2026-01-{d:02d}'",
    "INSERT INTO audit_notes (who, note) VALUES ('agent', 'checked order {n}, ok')",
]
SHELL = ["uptime", "df -h /var", "tail -n 50 /var/log/app.log", "systemctl status app"]
SUBJECTS = [f"agent-{i}" for i in range(40)] + ["alice", "bob", "carol"]
TARGETS = ["shop", "billing", "reporting", "web-1", "web-2"]


class LiveSession:
    def __init__(self, rng: random.Random, now: float) -> None:
        self.id, self.v, self.seq = uuid.uuid4(), 0, 0
        self.subject = rng.choice(SUBJECTS)
        self.target = rng.choice(TARGETS)
        self.protocol = "ssh" if self.target.startswith("web") else "mysql"
        self.left = rng.randint(3, 40)
        self.actor = "gateway:n1"
        self.started = now

    def ev(self, cls: type[DomainEvent], at: float, actor: str, **fields: object) -> DomainEvent:
        self.v += 1
        return cls(originator_id=self.id, originator_version=self.v, at=at, actor=actor, **fields)


def session_start(s: LiveSession, now: float) -> list[DomainEvent]:
    return [
        s.ev(
            Session.ConnectionAccepted,
            now,
            s.actor,
            node="n1",
            protocol=s.protocol,
            target=s.target,
            listener="0.0.0.0:3307",
            peer="10.0.0.7:51234",
        ),
        s.ev(
            Session.Authenticated,
            now,
            s.subject,
            subject=s.subject,
            groups=["agents", "dev"],
            issuer="https://idp.example",
            token_id=uuid.uuid4().hex,
            expires_at=now + 900,
            client_user="agent",
        ),
    ]


def command(s: LiveSession, rng: random.Random, now: float) -> list[DomainEvent]:
    s.seq += 1
    seq = s.seq
    text = (
        rng.choice(SHELL)
        if s.protocol == "ssh"
        else rng.choice(QUERIES).format(n=rng.randint(1, 10**6), d=rng.randint(1, 28))
    )
    roll = rng.random()
    action = "deny" if roll < 0.05 else "review" if roll < 0.07 else "allow"
    out = [s.ev(Session.CommandReceived, now, s.subject, seq=seq, kind="COM_QUERY", text=text)]
    aid = uuid.uuid4() if action == "review" else None
    out.append(
        s.ev(
            Session.CommandDecided,
            now,
            s.actor,
            seq=seq,
            action=action,
            rule=f"{action}-rule",
            reason=f"matched {action}-rule",
            statement_kinds=["SELECT"],
            tables=["customers"],
            approval_id=str(aid) if aid else None,
        )
    )
    if action == "deny":
        out.append(
            s.ev(
                Session.ResponseRecorded,
                now,
                s.actor,
                seq=seq,
                ok=False,
                error_code=1142,
                error_message="denied by policy",
            )
        )
        return out
    approved_by: list[str] = []
    if aid is not None:
        out.append(
            Approval.request_new(
                approval_id=aid,
                at=now,
                actor=s.actor,
                session_id=s.id,
                command_seq=seq,
                subject=s.subject,
                groups=["agents"],
                target=s.target,
                protocol=s.protocol,
                command=text,
                normalized=text.lower(),
                rule="review-rule",
                approver_groups=["oncall"],
                quorum=1,
                expires_at=now + 600,
                node="n1",
            )
        )
        if rng.random() < 0.2:
            out.append(
                Approval.Denied(
                    originator_id=aid,
                    originator_version=2,
                    at=now + 20,
                    actor="carol",
                    reason="not now",
                )
            )
            return out
        out.append(
            Approval.Approved(
                originator_id=aid, originator_version=2, at=now + 15, actor="bob", reason="ok"
            )
        )
        approved_by = ["bob"]
    out.append(s.ev(Session.CommandForwarded, now, s.actor, seq=seq, approved_by=approved_by))
    if s.protocol == "ssh":
        out.append(
            s.ev(
                Session.OutputRecorded,
                now,
                s.actor,
                stream="stdout",
                offset_ms=seq * 100,
                data="load average: 0.10 0.20 0.30 host 10.***.***.*** ok\r\n" * 3,
                masked={"ip": 3},
            )
        )
    out.append(
        s.ev(
            Session.ResponseRecorded,
            now,
            s.actor,
            seq=seq,
            ok=True,
            rows=rng.randint(0, 50),
            duration_ms=round(rng.random() * 5, 3),
            masked={"email": rng.randint(0, 3)} if s.protocol == "mysql" else {},
        )
    )
    return out


def fill(store: EventStore, total: int, batch: int = 1000) -> float:
    rng = random.Random(7)
    now = time.time() - 30 * 86400
    live: list[LiveSession] = []
    pending: list[DomainEvent] = []
    written = 0
    started = time.perf_counter()
    while written < total:
        now += rng.random() * 2
        if len(live) < 20:
            s = LiveSession(rng, now)
            live.append(s)
            pending += session_start(s, now)
        s = rng.choice(live)
        pending += command(s, rng, now)
        s.left -= 1
        if s.left == 0:
            live.remove(s)
            pending.append(s.ev(Session.Closed, now, s.actor, reason="client_quit"))
        if len(pending) >= batch:
            chunk = pending[: total - written]
            store.append(chunk)
            written += len(chunk)
            pending = []
            if written % 100_000 < batch:
                print(f"  filled {written:,} events", file=sys.stderr)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", help="use (and keep) this directory instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        url = f"sqlite:///{base / 'bench.db'}"
        store = EventStore(StoreSettings(url=url))
        have = store.max_id()
        if have < args.events:
            seconds = fill(store, args.events - have)
            print(
                f"fill: {args.events - have:,} events in {seconds:.1f} s "
                f"({(args.events - have) / seconds:,.0f} events/s)"
            )
        store.close()
        for kind, fmt in (("events", "jsonl"), ("events", "csv"), ("commands", "csv")):
            path = base / f"{kind}.{fmt}"
            result = subprocess.run(
                [sys.executable, "-c", CHILD, url, kind, fmt, str(path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(result.stdout)
            size = path.stat().st_size / 1e6
            print(
                f"export {kind:>8} {fmt:>5}: {r['events']:,} events -> {r['rows']:,} rows, "
                f"{size:,.0f} MB in {r['seconds']:.1f} s = {r['events'] / r['seconds']:,.0f} events/s "
                f"({r['events'] / r['cpu']:,.0f} per CPU second), "
                f"peak RSS {r['peak_kb'] / 1024:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
