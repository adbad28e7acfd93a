"""The batching writer: group commit, fail-closed waits, retries of response events."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import trio

from events.domain import Session
from events.store import EventStore, StoreSettings, StoreUnavailable
from gateway.session import SessionLog
from gateway.writer import HEAVY_BATCH, EventWriter


@pytest.fixture
def sqlite_store(tmp_path: Path) -> EventStore:
    return EventStore(StoreSettings(url=f"sqlite:///{tmp_path / 'e.db'}"))


def _command(log: SessionLog) -> Session.CommandReceived:
    return log.event(Session.CommandReceived, seq=log.next_seq(), kind="COM_QUERY", text="SELECT 1")


def test_concurrent_writes_are_grouped_and_durable_when_write_returns(
    sqlite_store: EventStore,
) -> None:
    writer = EventWriter(sqlite_store)
    assert writer.inline
    durable_seen: list[bool] = []

    async def one(log: SessionLog) -> None:
        for _ in range(5):
            event = _command(log)
            await writer.write([event])
            stored = sqlite_store.events_of(log.id)
            durable_seen.append(stored[-1] == event)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as clients:
                for _ in range(50):
                    clients.start_soon(one, SessionLog(node="n1"))
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(durable_seen) == 250 and all(durable_seen)
    assert writer.stats.events == 250
    assert writer.stats.transactions < 250 / 5  # grouped, not one per write
    assert sqlite_store.verify().ok


def test_a_store_failure_fails_waiters_and_keeps_response_events(
    sqlite_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = EventWriter(sqlite_store)
    real_append = sqlite_store.append
    down = {"on": True}

    def flaky(events):  # type: ignore[no-untyped-def]
        if down["on"]:
            raise StoreUnavailable("event store sqlite:///x failed: disk I/O error")
        return real_append(events)

    monkeypatch.setattr(sqlite_store, "append", flaky)
    log = SessionLog(node="n1")
    response = log.event(Session.ResponseRecorded, seq=1, ok=True, rows=3)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            writer.submit([response])
            with pytest.raises(StoreUnavailable, match="disk I/O error"):
                await writer.write([_command(log)])
            assert not writer.healthy and writer.stats.failures >= 1
            down["on"] = False
            command = _command(log)
            await writer.write([command])
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

    trio.run(main)
    stored = sqlite_store.events_of(log.id)
    assert response in stored  # kept and retried, not lost
    assert writer.healthy and writer.stats.lost == 0


def test_a_conflict_fails_only_its_own_submission(sqlite_store: EventStore) -> None:
    writer = EventWriter(sqlite_store)
    taken = uuid.uuid4()
    sqlite_store.append(
        [
            Session.Closed(
                originator_id=taken, originator_version=1, at=0.0, actor="x", reason="client_quit"
            )
        ]
    )
    clash = Session.Closed(
        originator_id=taken, originator_version=1, at=0.0, actor="y", reason="error"
    )
    good = SessionLog(node="n1")
    results: dict[str, object] = {}

    async def submit(name: str, events: list[Session.Closed | Session.CommandReceived]) -> None:
        try:
            await writer.write(events)
            results[name] = "ok"
        except Exception as exc:
            results[name] = type(exc).__name__

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as clients:
                clients.start_soon(submit, "clash", [clash])
                clients.start_soon(submit, "good", [_command(good)])
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert results == {"clash": "ConcurrencyConflict", "good": "ok"}


def test_power_loss_durability_commits_off_the_trio_thread(tmp_path: Path) -> None:
    store = EventStore(StoreSettings(url=f"sqlite:///{tmp_path / 'f.db'}", durability="power-loss"))
    writer = EventWriter(store)
    assert not writer.inline
    log = SessionLog(node="n1")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.write([_command(log)])
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(store.events_of(log.id)) == 1


def test_recorded_bulk_output_is_stored_off_the_loop_thread(
    sqlite_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = EventWriter(sqlite_store)
    real_append = sqlite_store.append
    threads: list[tuple[int, bool]] = []

    def append(events: list[object]) -> object:
        heavy = any(isinstance(e, Session.OutputRecorded) for e in events)
        threads.append((threading.get_ident(), heavy))
        return real_append(events)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_store, "append", append)
    log = SessionLog(node="n1")
    big = "x" * (HEAVY_BATCH + 1)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.write([_command(log)])
            writer.submit(
                [log.event(Session.OutputRecorded, stream="pty", offset_ms=0, data=big, marks=[])]
            )
            await writer.write([_command(log)])
            nursery.cancel_scope.cancel()

    loop_thread = threading.get_ident()
    trio.run(main)
    assert [(t == loop_thread, heavy) for t, heavy in threads] == [(True, False), (False, True)]
    assert [type(e) for e in sqlite_store.events_of(log.id)] == [
        Session.CommandReceived,
        Session.OutputRecorded,
        Session.CommandReceived,
    ]
