"""Holding commands until humans decide, and releasing them.

Theory of operation
-------------------
A command whose decision is ``review`` is held by the task that serves its session:

1. An ``Approval`` is requested (its own aggregate), in the same durable write as the
   session's CommandReceived and CommandDecided.
2. The task waits on :attr:`LiveViews.changed`: decisions come from any process or node
   through the event store (the console, ``wardgate approvals approve``).
3. Approved (quorum reached): the approval is *used*, an event stored together with
   CommandForwarded; using is optimistic-concurrency safe, so one approval runs one command.
   Denied: the client hears who denied and why. Past the approval's expiry: the holder
   stores Expired. Past the listener's ``max_hold`` (shorter than the expiry): the client
   gets an error carrying the approval id and is told to retry; an approval granted later
   runs the same normalized statement from the same identity on the same target once.
   An approval given "for a window" covers identical statements until the window ends.
4. The client goes away while held (the task is cancelled): the approval is cancelled.

A sweeper expires this node's pending approvals whose holder is gone.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from events.domain import Approval, DomainError, DomainEvent
from events.projections import ApprovalRecord
from events.store import ConcurrencyConflict, EventStore, StoreError
from gateway.live import LiveViews
from gateway.writer import EventWriter

log = logging.getLogger("wardgate.approvals")

APPROVED, DENIED, EXPIRED, TIMED_OUT, CANCELLED = (
    "approved",
    "denied",
    "expired",
    "timed_out",
    "cancelled",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldOutcome:
    status: str
    approval_id: str
    approvers: tuple[str, ...] = ()
    decided_by: str | None = None
    reason: str = ""
    use: DomainEvent | None = None
    """For an approved hold: the ``Approval.Used`` event to store with CommandForwarded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldRequest:
    session_id: uuid.UUID
    command_seq: int
    subject: str
    groups: Sequence[str]
    target: str
    protocol: str
    command: str
    normalized: str
    rule: str
    approver_groups: Sequence[str]
    quorum: int
    expiry_seconds: float


class ApprovalDesk:
    def __init__(
        self,
        *,
        store: EventStore,
        writer: EventWriter,
        views: LiveViews,
        node: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.writer = writer
        self.views = views
        self.node = node
        self.actor = f"gateway:{node}"
        self.clock = clock

    # -- earlier approvals ----------------------------------------------------------------

    def window(
        self, *, subject: str, target: str, normalized: str
    ) -> tuple[str, tuple[str, ...]] | None:
        found = self.views.approvals.window_for(
            subject=subject, target=target, normalized=normalized, now=self.clock()
        )
        return (found.approval_id, found.approvers) if found else None

    async def use_earlier(
        self, *, subject: str, target: str, normalized: str, session_id: uuid.UUID, seq: int
    ) -> HoldOutcome | None:
        """An approved, unused approval of this exact statement (a retry), ready to use."""
        record = self.views.approvals.unused_approval(
            subject=subject, target=target, normalized=normalized
        )
        if record is None:
            return None
        use = await self._use(uuid.UUID(record.id), session_id, seq)
        if use is None:
            return None
        return HoldOutcome(
            status=APPROVED,
            approval_id=record.id,
            approvers=tuple(record.approvers),
            decided_by=record.decided_by,
            reason=record.reason,
            use=use,
        )

    async def _use(
        self, approval_id: uuid.UUID, session_id: uuid.UUID, seq: int
    ) -> DomainEvent | None:
        approval = await trio.to_thread.run_sync(self.store.load, Approval, approval_id)
        if approval is None:
            return None
        try:
            return approval.use(
                session_id=session_id, command_seq=seq, now=self.clock(), actor=self.actor
            )
        except DomainError:
            return None

    # -- holding --------------------------------------------------------------------------

    def new_request(self, hold: HoldRequest) -> Approval.Requested:
        now = self.clock()
        return Approval.request_new(
            approval_id=uuid.uuid4(),
            at=now,
            actor=self.actor,
            session_id=hold.session_id,
            command_seq=hold.command_seq,
            subject=hold.subject,
            groups=hold.groups,
            target=hold.target,
            protocol=hold.protocol,
            command=hold.command,
            normalized=hold.normalized,
            rule=hold.rule,
            approver_groups=hold.approver_groups,
            quorum=max(1, hold.quorum),
            expires_at=now + hold.expiry_seconds,
            node=self.node,
        )

    async def wait(
        self, request: Approval.Requested, *, max_hold: float, session_id: uuid.UUID, seq: int
    ) -> HoldOutcome:
        """Wait for the decision on ``request`` (already stored). Cancelled: cancels it."""
        aid = str(request.originator_id)
        hold_until = self.clock() + max_hold
        try:
            while True:
                record = self.views.approvals.get(aid)
                if record is not None and record.status != Approval.PENDING:
                    return await self._outcome(record, session_id, seq)
                now = self.clock()
                if now >= request.expires_at:
                    return await self._expire(request.originator_id)
                if now >= hold_until:
                    return HoldOutcome(status=TIMED_OUT, approval_id=aid)
                changed = self.views.changed
                with trio.move_on_after(min(request.expires_at, hold_until) - now):
                    await changed.wait()
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._cancel(request.originator_id, "the client went away")
            raise

    async def _outcome(
        self, record: ApprovalRecord, session_id: uuid.UUID, seq: int
    ) -> HoldOutcome:
        outcome = HoldOutcome(
            status=record.status,
            approval_id=record.id,
            approvers=tuple(record.approvers),
            decided_by=record.decided_by,
            reason=record.reason,
        )
        if record.status != Approval.APPROVED:
            return outcome
        use = await self._use(uuid.UUID(record.id), session_id, seq)
        if use is None:
            return HoldOutcome(
                status=CANCELLED, approval_id=record.id, reason="the approval was already used"
            )
        return HoldOutcome(
            status=APPROVED,
            approval_id=record.id,
            approvers=outcome.approvers,
            decided_by=record.decided_by,
            reason=record.reason,
            use=use,
        )

    async def _decide_as_gateway(
        self, approval_id: uuid.UUID, make: Callable[[Approval], DomainEvent]
    ) -> Approval | None:
        """Store an event the gateway itself decides (expire, cancel); on a conflict reload
        and retry, since an operator may have decided first. Returns the final aggregate."""
        for _ in range(5):
            approval = await trio.to_thread.run_sync(self.store.load, Approval, approval_id)
            if approval is None or approval.status != Approval.PENDING:
                return approval
            try:
                event = make(approval)
            except DomainError:
                return approval
            try:
                await self.writer.write([event])
            except ConcurrencyConflict:
                continue
            approval.apply(event)
            return approval
        return None

    async def _expire(self, approval_id: uuid.UUID) -> HoldOutcome:
        now = self.clock()
        final = await self._decide_as_gateway(
            approval_id, lambda a: a.expire(now=now, actor=self.actor)
        )
        aid = str(approval_id)
        if final is not None and final.status == Approval.DENIED:
            return HoldOutcome(
                status=DENIED, approval_id=aid, decided_by=final.decided_by, reason=final.reason
            )
        return HoldOutcome(status=EXPIRED, approval_id=aid)

    async def _cancel(self, approval_id: uuid.UUID, reason: str) -> None:
        try:
            await self._decide_as_gateway(
                approval_id,
                lambda a: a.cancel(reason=reason, now=self.clock(), actor=self.actor),
            )
        except StoreError as exc:
            log.warning("could not cancel approval %s: %s", approval_id, exc)

    async def sweep(self, *, interval: float = 5.0) -> None:
        """Expire this node's pending approvals that nobody holds any more, forever."""
        while True:
            await trio.sleep(interval)
            now = self.clock()
            for record in self.views.approvals.pending():
                if record.node == self.node and record.expires_at <= now:
                    try:
                        await self._expire(uuid.UUID(record.id))
                    except StoreError as exc:
                        log.warning("could not expire approval %s: %s", record.id, exc)
