"""A follower in one process sees what another process appends, on both backends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from events.follow import Follower, change_waiter
from events.projections import SessionsView
from events.store import EventStore, StoreUnavailable

from .factories import session_events

WRITER = textwrap.dedent(
    """
    import sys, time
    from events.store import EventStore, StoreSettings
    from tests.events.factories import session_events
    store = EventStore(StoreSettings(url=sys.argv[1]))
    for _ in range(int(sys.argv[2])):
        store.append(session_events(1))
        time.sleep(0.05)
    store.close()
    """
)


def test_waiter_wakes_on_another_process_commit_and_times_out_otherwise(store: EventStore) -> None:
    waiter = change_waiter(store)
    try:
        started = time.monotonic()
        assert waiter.wait(0.2) is False
        assert time.monotonic() - started >= 0.19
        proc = subprocess.Popen([sys.executable, "-c", WRITER, store.settings.url, "1"])
        assert waiter.wait(10.0) is True
        proc.wait(10)
    finally:
        waiter.close()


def test_follower_keeps_a_projection_current_across_processes(store: EventStore) -> None:
    view = SessionsView()
    seen: list[int] = []
    follower = Follower(store, [view], on_change=seen.append, idle_timeout=0.1)
    follower.step()
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", WRITER, store.settings.url, "5"], check=True, timeout=60
        )
        assert proc.returncode == 0
        deadline = time.monotonic() + 5
        while len(view.sessions) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(view.sessions) == 5
        assert sum(seen) == 30
        assert view.position == store.max_id()
    finally:
        follower.stop()
        thread.join(5)
        follower.close()


def test_follower_waits_out_a_store_outage(store: EventStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    view = SessionsView()
    follower = Follower(store, [view], idle_timeout=0.05)
    follower.step()
    real_read = store.read
    outage = {"on": True, "failures": 0}

    def flaky_read(after: int = 0, limit: int = 1000):  # type: ignore[no-untyped-def]
        if outage["on"]:
            outage["failures"] += 1
            raise StoreUnavailable("event store down")
        return real_read(after, limit)

    monkeypatch.setattr(store, "read", flaky_read)
    store.append(session_events(1))
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive() and outage["failures"] >= 1 and not view.sessions
    outage["on"] = False
    deadline = time.monotonic() + 5
    while not view.sessions and time.monotonic() < deadline:
        time.sleep(0.02)
    follower.stop()
    thread.join(5)
    assert len(view.sessions) == 1 and not thread.is_alive()
