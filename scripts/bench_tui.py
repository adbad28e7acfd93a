"""Console benchmark: start-up, approval latency across processes, key latency under load.

    python scripts/bench_tui.py [--store DIR] [--sessions 10000] [--events-per-session 100]

1. Builds (once; reused when DIR already holds it) a SQLite store of sessions x events
   (1,000,000 events and 10,000 sessions by default) with batched appends.
2. Start-up: from nothing to the first painted screen, and to the first screen with data
   (the console folds the log from its start), headless.
3. Approval latency: another process writes an Approval.Requested every 0.3 s; the time from
   its append returning to the row being in the approvals table on screen (goal p95 < 1 s).
4. Key-to-screen latency while another process writes 1,000 events/s: switching screens
   (s/a) and moving the cursor, until the screen shows the result.

Runs headless (Textual's test driver): terminal output time is not included. The machine
is shared: run it once, read medians and p95, not single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from events.domain import DomainEvent, Session  # noqa: E402
from events.store import EventStore, StoreSettings  # noqa: E402

NS = uuid.UUID("0b3f1c5e-8d2a-4e7b-9c61-5a4f3e2d1c0b")
DAYS = 10
"""The generated sessions spread evenly over the last DAYS days, in log order."""


def url_of(directory: Path) -> str:
    return f"sqlite:///{directory / 'events.db'}"


def session_events(
    n: int, per_session: int, *, now: float, live: bool, spacing: float
) -> list[DomainEvent]:
    sid = uuid.uuid5(NS, f"session-{n}")
    subject = f"agent-{n % 50}"
    at = now - DAYS * 86400 + n * spacing
    events: list[DomainEvent] = [
        Session.ConnectionAccepted(
            originator_id=sid,
            originator_version=1,
            at=at,
            actor="gateway:n1",
            node="n1",
            protocol="mysql",
            target=f"db-{n % 7}",
            listener="127.0.0.1:3307",
            peer="127.0.0.1:40000",
        ),
        Session.Authenticated(
            originator_id=sid,
            originator_version=2,
            at=at,
            actor=subject,
            subject=subject,
            groups=["agents"],
            issuer="http://127.0.0.1:8900",
            token_id=f"jti-{n}",
            expires_at=at + 3600,
            client_user="agent",
        ),
    ]
    v, seq = 2, 0
    while len(events) + 4 <= per_session - 1:
        seq += 1
        base = {"originator_id": sid, "at": at, "actor": subject, "seq": seq}
        events += [
            Session.CommandReceived(
                **base,
                originator_version=v + 1,
                kind="COM_QUERY",
                text=f"SELECT id, name, email FROM customers WHERE id = {seq}",
            ),
            Session.CommandDecided(
                **base, originator_version=v + 2, action="allow", rule="reads", reason="reads"
            ),
            Session.CommandForwarded(**base, originator_version=v + 3),
            Session.ResponseRecorded(
                **base, originator_version=v + 4, ok=True, rows=1, masked={"email": 1}
            ),
        ]
        v += 4
    while len(events) < per_session - 1:
        v += 1
        events.append(
            Session.OutputRecorded(
                originator_id=sid,
                originator_version=v,
                at=at,
                actor=subject,
                stream="stdout",
                offset_ms=v,
                data="ok\r\n",
            )
        )
    v += 1
    if live:
        events.append(
            Session.OutputRecorded(
                originator_id=sid,
                originator_version=v,
                at=at,
                actor=subject,
                stream="stdout",
                offset_ms=v,
                data="$ ",
            )
        )
    else:
        events.append(
            Session.Closed(
                originator_id=sid,
                originator_version=v,
                at=at + 60,
                actor="gateway:n1",
                reason="client_quit",
            )
        )
    return events


def build(directory: Path, sessions: int, per_session: int) -> None:
    store = EventStore(StoreSettings(url=url_of(directory)))
    try:
        want = sessions * per_session
        have = store.max_id()
        if have >= want:
            print(f"store: reusing {have:,} events in {directory}")
            return
        if have:
            raise SystemExit(f"{directory} holds a partial store ({have:,} events): remove it")
        started = time.perf_counter()
        now = time.time()
        batch: list[DomainEvent] = []
        for n in range(sessions):
            batch += session_events(
                n, per_session, now=now, live=n >= sessions - 100, spacing=DAYS * 86400 / sessions
            )
            if len(batch) >= 2000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
        took = time.perf_counter() - started
        print(
            f"store: wrote {store.max_id():,} events in {took:.1f} s ({store.max_id() / took:,.0f}/s)"
        )
    finally:
        store.close()


REQUESTER = """
import sys, time, uuid
sys.path.insert(0, sys.argv[2])
from events.domain import Approval
from events.store import EventStore, StoreSettings
store = EventStore(StoreSettings(url=sys.argv[1]))
for i in range(int(sys.argv[3])):
    time.sleep(0.3)
    now = time.time()
    store.append([Approval.request_new(
        approval_id=uuid.uuid4(), at=now, actor="gateway:n1", session_id=uuid.uuid4(),
        command_seq=1, subject="bench-agent", groups=["agents"], target="db-1", protocol="mysql",
        command=f"UPDATE t SET x = {i}", normalized="update t set x = ?", rule="writes",
        approver_groups=["dba"], quorum=1, expires_at=now + 900, node="n1")])
    print(repr(time.time()), flush=True)
store.close()
"""

LOAD = """
import sys, time, uuid
sys.path.insert(0, sys.argv[2])
from events.domain import Session
from events.store import EventStore, StoreSettings
store = EventStore(StoreSettings(url=sys.argv[1]))
deadline = time.monotonic() + float(sys.argv[3])
sid, v, written = uuid.uuid4(), 0, 0
tick = time.monotonic()
while time.monotonic() < deadline:
    batch = []
    for _ in range(50):
        v += 1
        batch.append(Session.OutputRecorded(originator_id=sid, originator_version=v, at=time.time(),
                     actor="load", stream="stdout", offset_ms=v, data="x" * 80))
    store.append(batch)
    written += 50
    tick += 0.05
    time.sleep(max(0.0, tick - time.monotonic()))
print(written, flush=True)
store.close()
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name}: n={len(ms)} median {statistics.median(ms):.0f} ms, p95 {pct(ms, 0.95):.0f} ms, "
        f"max {max(ms):.0f} ms"
    )


async def run(directory: Path, requests: int, horizon: float | None) -> None:
    from textual import events

    from tui.app import ConsoleApp
    from tui.data import ConsoleData
    from tui.rows import Operator
    from tui.widgets.live_table import LiveTable

    t0 = time.perf_counter()
    data = ConsoleData(
        StoreSettings(url=url_of(directory)),
        Operator(subject="bench-op", groups=frozenset({"dba"})),
        fold_horizon=horizon,
    )
    app = ConsoleApp(data)
    async with app.run_test(size=(160, 48)) as pilot:
        first_paint = time.perf_counter() - t0
        while app.snapshot is None:
            await pilot.pause(0.01)
        await pilot.pause()
        with_data = time.perf_counter() - t0
        print(
            f"start-up: first paint {first_paint:.2f} s; sessions on screen {with_data:.2f} s "
            f"(folded {data.folded:,} of {data.position:,} events; {app.snapshot.live_total} live sessions)"
        )

        await pilot.press("a")
        table = app.screen.query_one("#pending", LiveTable)
        seen = set(table._keys)
        writer = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the writer runs alongside)
            [sys.executable, "-c", REQUESTER, url_of(directory), str(ROOT), str(requests)],
            stdout=subprocess.PIPE,
            text=True,
        )
        appeared: list[float] = []
        deadline = time.time() + requests * 0.3 + 10
        while len(appeared) < requests and time.time() < deadline:
            keys = set(table._keys)
            appeared += [time.time()] * len(keys - seen)
            seen = keys
            await pilot.pause(0.005)
        out, _ = writer.communicate(timeout=30)
        written = [float(line) for line in out.split()]
        report(
            "approval request -> on screen (other process)",
            [a - w for a, w in zip(appeared, written, strict=False)],
        )

        load = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-c", LOAD, url_of(directory), str(ROOT), "12"],
            stdout=subprocess.PIPE,
            text=True,
        )
        await pilot.pause(1.0)
        switches: list[float] = []
        moves: list[float] = []

        def send(key: str) -> float:
            # As a terminal would: into the driver's queue, no test-harness waiting.
            assert app._driver is not None
            app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
            return time.perf_counter()

        for i in range(20):
            key, screen = ("s", "SessionsScreen") if i % 2 else ("a", "ApprovalsScreen")
            t = send(key)
            while type(app.screen).__name__ != screen or not app.screen.is_mounted:  # noqa: ASYNC110 (polling is the measurement)
                await asyncio.sleep(0.001)
            switches.append(time.perf_counter() - t)
            if screen == "SessionsScreen":
                live = app.screen.query_one("#live-sessions", LiveTable)
                before = live.cursor_row
                t = send("down" if before == 0 else "up")
                while live.cursor_row == before:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                moves.append(time.perf_counter() - t)
            await asyncio.sleep(0.2)
        out, _ = load.communicate(timeout=30)
        print(f"load writer: {int(out)} events in 12 s ({int(out) / 12:.0f}/s)")
        report("key -> screen switched, under load", switches)
        report("key -> cursor moved, under load", moves)
    data.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("/tmp/wardgate-bench-tui"))
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events-per-session", type=int, default=100)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--fold-hours", default="24", help='log folded at start, in hours, or "all" (default 24)'
    )
    args = parser.parse_args()
    build(args.store, args.sessions, args.events_per_session)
    horizon = None if args.fold_hours == "all" else float(args.fold_hours) * 3600
    asyncio.run(run(args.store, args.requests, horizon))


if __name__ == "__main__":
    main()
