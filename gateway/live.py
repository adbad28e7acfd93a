"""The gateway's live views of the store: approvals, policy, operator requests.

Theory of operation
-------------------
One trio task follows the event store for the whole gateway. On PostgreSQL a worker
thread waits for a NOTIFY and reads the new events (network I/O). On SQLite the task polls
``PRAGMA data_version`` itself every 20 ms and reads what is new on the trio thread: both
are a few microseconds of local I/O, while two thread hops per commit of the gateway's own
writer cost more than the reading (the first catch-up, which may be long, runs in a
thread). The events are applied to the projections on the trio thread, so connection
tasks read the views without locks and never see a half-applied page. After each page the task replaces :attr:`LiveViews.changed`, an
event that tasks holding a command for approval wait on.

Decisions written anywhere (the console, ``wardgate approvals approve`` on another node)
reach the holding task within one poll (20 ms on SQLite) or one NOTIFY (PostgreSQL).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import trio

from events.domain import Approval, DomainEvent, Policy, Session, SessionControl
from events.follow import ChangeWaiter, SQLitePollWaiter, change_waiter
from events.projections import ApprovalsView, PolicyView, Projection, SessionsView
from events.store import EventStore, topic_of

log = logging.getLogger("wardgate.live")

FOLLOWED = tuple(
    topic_of(cls)
    for cls in (
        Approval.Requested,
        Approval.Approved,
        Approval.Denied,
        Approval.Expired,
        Approval.Cancelled,
        Approval.Used,
        Policy.Applied,
        SessionControl.TerminationRequested,
        Session.ConnectionAccepted,
        Session.Closed,
    )
)
"""What the gateway's views need: decisions, policy, operator requests, and which sessions
are open (for the crash recovery of this node)."""


INLINE_GAP = 20_000
"""Beyond this many new events (another process wrote a lot at once) the SQLite catch-up
runs in a thread rather than on the trio thread."""


class LiveViews:
    def __init__(self, store: EventStore, *, poll_timeout: float = 0.5) -> None:
        self.store = store
        self.approvals = ApprovalsView()
        self.policy = PolicyView()
        self.sessions = SessionsView(keep_closed=1000)
        self.projections: list[Projection] = [self.approvals, self.policy, self.sessions]
        self.changed = trio.Event()
        self.poll_timeout = poll_timeout
        self.listeners: list[Callable[[list[tuple[int, DomainEvent]]], None]] = []
        self.healthy = True

    @property
    def position(self) -> int:
        return min(p.position for p in self.projections)

    def _apply(self, page: list[tuple[int, DomainEvent]]) -> None:
        for p in self.projections:
            start, handler = p.position, p.handler
            for nid, event in page:
                if nid > start:
                    h = handler(type(event))
                    if h is not None:
                        h(event)
            p.position = max(start, page[-1][0])
        for listener in self.listeners:
            listener(page)

    def _read_all(self) -> tuple[list[list[tuple[int, DomainEvent]]], int]:
        """The new events of the followed kinds, and the log position they were read up to.

        Only these kinds are read and decoded: most of the log is the gateway's own session
        traffic, and decoding every event it just wrote cost a quarter of its CPU."""
        upto = self.store.max_id()
        pages = []
        after = self.position
        while after < upto:
            page = self.store.read(after, 2000, topics=FOLLOWED, upto=upto)
            if page:
                pages.append(page)
            if len(page) < 2000:
                break
            after = page[-1][0]
        return pages, upto

    async def catch_up(self) -> int:
        return self._caught_up(*await trio.to_thread.run_sync(self._read_all))

    def _caught_up(self, pages: list[list[tuple[int, DomainEvent]]], upto: int) -> int:
        for page in pages:
            self._apply(page)
        for p in self.projections:
            p.position = max(p.position, upto)
        if pages:
            self.changed.set()
            self.changed = trio.Event()
        return sum(len(p) for p in pages)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the store until cancelled; outages are waited out and logged."""
        await self.catch_up()
        task_status.started()
        waiter: ChangeWaiter | None = None
        try:
            while True:
                try:
                    if waiter is None:
                        waiter = await trio.to_thread.run_sync(change_waiter, self.store)
                    if isinstance(waiter, SQLitePollWaiter):
                        await trio.sleep(waiter.interval)
                        if waiter.changed():
                            if self.store.max_id() - self.position > INLINE_GAP:
                                await self.catch_up()  # a long way behind: in a thread
                            else:
                                self._caught_up(*self._read_all())
                        self.healthy = True
                        continue
                    await trio.to_thread.run_sync(
                        waiter.wait, self.poll_timeout, abandon_on_cancel=True
                    )
                    await self.catch_up()
                    self.healthy = True
                except Exception as exc:
                    if self.healthy:
                        log.warning("following the event store failed: %s", exc)
                    self.healthy = False
                    if waiter is not None:
                        with contextlib.suppress(Exception):
                            waiter.close()
                        waiter = None
                    await trio.sleep(0.5)
        finally:
            if waiter is not None:
                waiter.close()
