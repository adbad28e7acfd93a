#!/usr/bin/env python3
"""Event store benchmark: both backends in one run.

Prints, for SQLite and PostgreSQL: batched append events/s (100 events per transaction),
single-event transactions/s with each durability setting, projection catch-up events/s,
and cross-process follower latency p50/p95 (a writer process appends one event every
20 ms; this process follows and measures commit-to-projection time).

    .venv/bin/python scripts/bench_events.py [--events 50000] [--samples 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from events.domain import SessionControl
from events.follow import Follower
from events.projections import CommandLogView, Projection, SessionsView, catch_up
from events.store import EventStore, StoreSettings
from tests.events.factories import session_events

PG = "postgresql://postgres@127.0.0.1:5432/test"

WRITER = textwrap.dedent(
    """
    import sys, time, uuid
    from events.store import EventStore, StoreSettings
    from events.domain import SessionControl
    store = EventStore(StoreSettings(url=sys.argv[1]))
    for i in range(int(sys.argv[2])):
        sid = uuid.uuid4()
        store.append([SessionControl.TerminationRequested(
            originator_id=sid, originator_version=1, at=time.time(), actor="bench",
            session_id=str(sid), reason="latency probe")])
        time.sleep(0.02)
    store.close()
    """
)


class LatencyProbe(Projection):
    def __init__(self) -> None:
        super().__init__()
        self.latencies: list[float] = []

    def on_SessionControl_TerminationRequested(
        self, e: SessionControl.TerminationRequested
    ) -> None:
        self.latencies.append((time.time() - e.at) * 1000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_backend(url: str, n_events: int, samples: int) -> dict[str, float]:
    out: dict[str, float] = {}
    store = EventStore(StoreSettings(url=url))
    batches = [session_events(24)[:100] for _ in range(n_events // 100)]
    for batch in batches:  # fresh ids per batch
        sid = uuid.uuid4()
        for i, e in enumerate(batch):
            object.__setattr__(e, "originator_id", sid)
            object.__setattr__(e, "originator_version", i + 1)
    started = time.perf_counter()
    for batch in batches:
        store.append(batch)
    out["append_batched_eps"] = len(batches) * 100 / (time.perf_counter() - started)

    started = time.perf_counter()
    n_single = 1000
    for _ in range(n_single):
        store.append(session_events(0)[:1])
    out["append_single_tps"] = n_single / (time.perf_counter() - started)

    if store.backend == "sqlite":
        full = EventStore(StoreSettings(url=url, durability="power-loss"))
        started = time.perf_counter()
        for _ in range(n_single):
            full.append(session_events(0)[:1])
        out["append_single_tps_power_loss"] = n_single / (time.perf_counter() - started)
        full.close()

    views = [SessionsView(), CommandLogView()]
    started = time.perf_counter()
    read = catch_up(store, views)
    out["catch_up_eps"] = read / (time.perf_counter() - started)

    # Cross-process follower latency: measured when the projection applies each event.
    probe = LatencyProbe()
    catch_up(store, [probe])
    probe.latencies.clear()
    follower = Follower(store, [probe], idle_timeout=0.5)
    follower.step()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(samples)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    while writer.poll() is None:
        follower.step(0.5)
    follower.step(0.2)
    follower.close()
    lat = probe.latencies
    out["follow_p50_ms"] = statistics.median(lat)
    out["follow_p95_ms"] = pct(lat, 0.95)
    out["follow_samples"] = len(lat)
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = bench_backend(f"sqlite:///{tmp}/bench.db", args.events, args.samples)
    schema = f"wg_bench_{uuid.uuid4().hex[:8]}"
    try:
        results["postgresql"] = bench_backend(f"{PG}?schema={schema}", args.events, args.samples)
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    goals = {
        "append_batched_eps": ("batched append, events/s (100/txn)", 20_000, None),
        "append_single_tps": ("single-event transactions/s", None, None),
        "append_single_tps_power_loss": ("  same, durability=power-loss", None, None),
        "catch_up_eps": ("projection catch-up, events/s", 50_000, 50_000),
        "follow_p50_ms": ("follower latency p50, ms", None, None),
        "follow_p95_ms": ("follower latency p95, ms", -50, -10),
    }
    print(f"{'metric':<40}{'sqlite':>14}{'postgresql':>14}   goal (sqlite / postgresql)")
    for key, (label, g_sqlite, g_pg) in goals.items():
        row = f"{label:<40}"
        for backend in ("sqlite", "postgresql"):
            value = results[backend].get(key)
            row += f"{value:>14,.1f}" if value is not None else f"{'-':>14}"

        def fmt(g: float | None) -> str:
            if g is None:
                return "-"
            return f"<= {-g:g}" if g < 0 else f">= {g:,.0f}"

        if g_sqlite is not None or g_pg is not None:
            row += f"   {fmt(g_sqlite)} / {fmt(g_pg)}"
        print(row)


if __name__ == "__main__":
    main()
