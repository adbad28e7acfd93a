"""The one batching task between trio and the event store (group commit).

Theory of operation
-------------------
Every connection task hands its events to :class:`EventWriter` through one unbounded
memory channel. The writer task takes everything queued at that moment and saves it in
ONE store transaction, then wakes the submitters that wait. The cost that matters is per
transaction (about 120-140 µs of CPU for an SQLite commit), not per event, so under load
the batches grow and the cost per command falls.

* :meth:`EventWriter.write` waits until the events are durable: the gateway forwards a
  command only after its CommandReceived/Decided/Forwarded events are stored (fail closed).
  If the store fails, every waiter of that batch gets :class:`StoreUnavailable`.
* :meth:`EventWriter.submit` does not wait (response events): they ride on the next
  transaction. They do not wake the writer: they wait in a list until the next ``write``
  (under load, within a fraction of a millisecond) or at most ``flush_after`` (when idle),
  so one command costs one transaction, not two. If their transaction fails they are kept
  and retried with the next batch (bounded: past ``max_backlog`` events the oldest are
  counted as lost and reported).
* On SQLite with the default durability the commit runs inline on the trio thread: a
  WAL commit with ``synchronous=NORMAL`` is a 20-60 µs stall, while a thread hop costs as
  much as the commit itself. With ``power-loss`` durability (an fsync) or on PostgreSQL
  (network round trips) the commit runs in a worker thread, and so does a batch carrying
  more than ``HEAVY_BATCH`` of recorded output (bulk terminal output recorded whole): its
  compression, hashing and insert release the GIL, so the relay goes on meanwhile.
* A concurrency conflict can only come from an aggregate someone else also writes; the
  writer then saves each submission on its own, so one conflict fails only its own
  submitter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from events.domain import DomainEvent
from events.store import ConcurrencyConflict, EventStore, StoreError, StoreUnavailable

log = logging.getLogger("wardgate.writer")


HEAVY_BATCH = 128 * 1024
"""Recorded output (characters) from which an inline writer commits in a thread: zstd, the
chain's SHA-256 and SQLite release the GIL on data that size, so the data path goes on
relaying while the batch is stored, and the hop costs little next to the work."""


def _recorded_bytes(events: Sequence[DomainEvent]) -> int:
    total = 0
    for event in events:
        data = getattr(event, "data", None)
        if isinstance(data, str):
            total += len(data)
    return total


@dataclass(slots=True)
class _Submission:
    events: Sequence[DomainEvent]
    done: trio.Event | None
    error: BaseException | None = None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class WriterStats:
    transactions: int = 0
    events: int = 0
    failures: int = 0
    lost: int = 0
    queue_depth: int = 0
    last_lag_ms: float = 0.0
    last_error: str = ""


class EventWriter:
    def __init__(
        self, store: EventStore, *, max_backlog: int = 100_000, flush_after: float = 0.02
    ) -> None:
        self.store = store
        self.flush_after = flush_after
        self._deferred: list[_Submission] = []
        self.inline = store.backend == "sqlite" and store.settings.durability == "process-crash"
        self.max_backlog = max_backlog
        self._send, self._receive = trio.open_memory_channel[_Submission](math.inf)
        self._backlog: list[_Submission] = []
        self._armed = trio.Event()
        self.stats = WriterStats()
        self.healthy = True

    async def write(self, events: Sequence[DomainEvent]) -> None:
        """Store ``events`` and return when they are durable; raises StoreError if not."""
        submission = _Submission(events, trio.Event())
        self._send.send_nowait(submission)
        self.stats.queue_depth += 1
        assert submission.done is not None
        await submission.done.wait()
        if submission.error is not None:
            raise submission.error

    def submit(self, events: Sequence[DomainEvent]) -> None:
        """Queue ``events`` to ride on the next transaction; does not wait (at most
        ``flush_after`` when no write comes to carry them)."""
        self._deferred.append(_Submission(events, None))
        if not self._armed.is_set():
            self._armed.set()
        self.stats.queue_depth += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain the channel until cancelled; each wake-up saves all that is queued at once."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flusher)
            task_status.started()
            await self._drain()

    async def _flusher(self) -> None:
        """Deferred events wait at most ``flush_after`` for a write to ride with: this task
        wakes the writer for them when none came (one timer per ``flush_after`` of activity,
        not a timeout scope around every wait of the writer)."""
        while True:
            await self._armed.wait()
            await trio.sleep(self.flush_after)
            self._armed = trio.Event()
            if self._deferred:
                self._send.send_nowait(_Submission((), None))

    async def _drain(self) -> None:
        receive = self._receive
        while True:
            batch = self._backlog
            self._backlog = []
            # Under load something is already queued; otherwise wait (kept response events
            # are retried every half second).
            try:
                first: _Submission | None = receive.receive_nowait()
                await trio.lowlevel.cancel_shielded_checkpoint()  # others queue theirs too
            except trio.WouldBlock:
                first = None
                if batch:
                    with trio.move_on_after(0.5):
                        first = await receive.receive()
                else:
                    first = await receive.receive()
                if first is not None:
                    await trio.lowlevel.cancel_shielded_checkpoint()  # the same for them
            if first is not None:
                # Deferred events first: a session's submitted events precede its later
                # writes (versions must be stored in order).
                batch += self._deferred
                self._deferred = []
                batch.append(first)
            while True:
                try:
                    batch.append(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            if self._deferred:
                batch += self._deferred
                self._deferred = []
            if batch:
                await self._commit(batch)

    async def _save(self, events: list[DomainEvent]) -> None:
        if self.inline and _recorded_bytes(events) < HEAVY_BATCH:
            self.store.append(events)
        else:
            await trio.to_thread.run_sync(self.store.append, events)

    async def _commit(self, batch: list[_Submission]) -> None:
        events = [e for s in batch for e in s.events]
        self.stats.queue_depth = max(0, self.stats.queue_depth - len(batch))
        if not events:  # a flush that found nothing left, or write([]) with nothing queued
            for s in batch:
                if s.done is not None:
                    s.done.set()
            return
        self.stats.last_lag_ms = (time.monotonic() - batch[0].queued_at) * 1000
        try:
            await self._save(events)
        except ConcurrencyConflict:
            await self._commit_one_by_one(batch)
            return
        except StoreError as exc:
            self._failed(batch, exc)
            return
        self.healthy = True
        self.stats.transactions += 1
        self.stats.events += len(events)
        for s in batch:
            if s.done is not None:
                s.done.set()

    async def _commit_one_by_one(self, batch: list[_Submission]) -> None:
        for s in batch:
            try:
                await self._save(list(s.events))
            except StoreError as exc:
                if isinstance(exc, ConcurrencyConflict) or s.done is not None:
                    s.error = exc
                else:
                    self._keep([s])
            else:
                self.stats.transactions += 1
                self.stats.events += len(s.events)
            if s.done is not None:
                s.done.set()

    def _failed(self, batch: list[_Submission], exc: StoreError) -> None:
        self.healthy = False
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        log.warning("event store write failed: %s", exc)
        error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(str(exc))
        waiting = [s for s in batch if s.done is not None]
        for s in waiting:
            s.error = error
            assert s.done is not None
            s.done.set()
        self._keep([s for s in batch if s.done is None])

    def _keep(self, submissions: list[_Submission]) -> None:
        self._backlog.extend(submissions)
        excess = sum(len(s.events) for s in self._backlog) - self.max_backlog
        while excess > 0 and self._backlog:
            dropped = self._backlog.pop(0)
            self.stats.lost += len(dropped.events)
            excess -= len(dropped.events)
            log.error("event backlog full: %d response events lost", len(dropped.events))
