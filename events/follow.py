"""Keeping projections current from another process.

Theory of operation
-------------------
A :class:`ChangeWaiter` blocks until the store may hold new events, or a timeout passes.
SQLite has no notifications: a dedicated connection polls ``PRAGMA data_version``, which
changes whenever another connection commits (a 20 ms poll gives about 10 ms median
latency). PostgreSQL's recorder NOTIFYs its channel in every insert transaction: the waiter
LISTENs on its own connection (about 3 ms between processes). A waiter may wake without
news (a timeout, a commit of something else): callers always just catch up, which is cheap
when nothing is new.

:class:`Follower` joins a waiter with :func:`events.projections.catch_up`; it is synchronous
and meant for a thread (the gateway uses a trio thread, the console a worker).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from events.projections import Projection, catch_up
from events.recorders import ChainedSQLiteRecorder
from events.store import EventStore, StoreUnavailable, pg_conninfo


class ChangeWaiter(Protocol):
    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class SQLitePollWaiter:
    def __init__(self, recorder: ChainedSQLiteRecorder, *, interval: float = 0.02) -> None:
        self.interval = interval
        try:
            self._conn: sqlite3.Connection = recorder.data_version_probe()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot watch the event store: {exc}") from None
        self._version = self._read()

    def _read(self) -> int:
        try:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"watching the event store failed: {exc}") from None
        return int(row[0])

    def changed(self) -> bool:
        """Whether another connection committed since the last look (does not block)."""
        version = self._read()
        if version != self._version:
            self._version = version
            return True
        return False

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.changed():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.interval, left))

    def close(self) -> None:
        self._conn.close()


class PostgresListenWaiter:
    """LISTEN on a connection of its own. Any failure of it (the server restarting, the
    network, :meth:`close` from another thread to interrupt a wait) is raised as
    :class:`StoreUnavailable`, so followers wait the outage out instead of dying."""

    def __init__(self, store: EventStore) -> None:
        import psycopg  # noqa: PLC0415
        from psycopg.sql import SQL, Identifier  # noqa: PLC0415

        self._errors = psycopg.Error
        recorder: Any = store.recorder
        try:
            self._conn = psycopg.connect(
                pg_conninfo(store.settings), autocommit=True, connect_timeout=5
            )
            self._conn.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot listen to the event store {store.settings.display}: {_first_line(exc)}"
            ) from None

    def wait(self, timeout: float) -> bool:
        got = False
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                got = True
        except self._errors as exc:
            raise StoreUnavailable(
                f"listening to the event store failed: {_first_line(exc)}"
            ) from None
        return got

    def close(self) -> None:
        self._conn.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def change_waiter(store: EventStore, *, interval: float = 0.02) -> ChangeWaiter:
    if isinstance(store.recorder, ChainedSQLiteRecorder):
        return SQLitePollWaiter(store.recorder, interval=interval)
    return PostgresListenWaiter(store)


class Follower:
    """Keeps ``projections`` current; ``on_change`` runs after each catch-up that read events."""

    def __init__(
        self,
        store: EventStore,
        projections: Sequence[Projection],
        *,
        on_change: Callable[[int], None] | None = None,
        idle_timeout: float = 1.0,
    ) -> None:
        self.store = store
        self.projections = list(projections)
        self.on_change = on_change
        self.idle_timeout = idle_timeout
        self._waiter: ChangeWaiter | None = None
        self.stopping = threading.Event()

    def step(self, timeout: float | None = None) -> int:
        """Wait for a change (at most ``timeout``), then catch up; returns events read."""
        waiter = self._waiter  # close() may clear the attribute from another thread
        if waiter is None:
            self._waiter = change_waiter(self.store)
        else:
            waiter.wait(self.idle_timeout if timeout is None else timeout)
        count = catch_up(self.store, self.projections)
        if count and self.on_change is not None:
            self.on_change(count)
        return count

    def run(self) -> None:
        """Follow until :meth:`stop`; a store outage is waited out, not raised."""
        while not self.stopping.is_set():
            try:
                self.step()
            except StoreUnavailable:
                # Also how close() from another thread ends a wait: its connection is gone.
                self._drop_waiter()
                self.stopping.wait(0.5)

    def _drop_waiter(self) -> None:
        if self._waiter is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                self._waiter.close()
            self._waiter = None

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._drop_waiter()
