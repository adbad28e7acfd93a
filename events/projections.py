"""Projections: disposable read models folded from the event log, each with its position.

Theory of operation
-------------------
A projection applies events in notification order and remembers the id of the last one it
applied (``position``). It can always be thrown away and rebuilt from zero; ``catch_up``
feeds several projections from one read of the log, each only the events past its own
position, so a projection restored from elsewhere at a later position never applies an event
twice. Projections hold bounded state: live items in full, finished ones up to a cap, oldest
evicted first (exports and history read the log itself, not these views).

The views here answer the questions the gateway, the console and the CLI ask: which
sessions are live, which approvals are pending (and which were decided, by whom), what the
current policy is, and who ran what where with which decision.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from events.domain import Approval, DomainEvent, Policy, Session, SessionControl


class EventSource(Protocol):
    def read(self, after: int = 0, limit: int = 1000) -> list[tuple[int, DomainEvent]]: ...


class Projection:
    """Base: dispatches on the event class; subclasses define ``on_<Outer>_<Event>`` methods."""

    def __init__(self) -> None:
        self.position = 0
        self._handlers: dict[type, Callable[[Any], None] | None] = {}

    def handler(self, cls: type) -> Callable[[Any], None] | None:
        try:
            return self._handlers[cls]
        except KeyError:
            found = getattr(self, f"on_{cls.__qualname__.replace('.', '_')}", None)
            self._handlers[cls] = found
            return found

    def handle(self, notification_id: int, event: DomainEvent) -> None:
        if notification_id <= self.position:
            return
        h = self.handler(type(event))
        if h is not None:
            h(event)
        self.position = notification_id


_ID_TEXT: dict[uuid.UUID, str] = {}


def id_text(event: DomainEvent) -> str:
    """``str(event.originator_id)``, memoized: projections key their records by it."""
    oid = event.originator_id
    text = _ID_TEXT.get(oid)
    if text is None:
        if len(_ID_TEXT) > 8192:
            _ID_TEXT.clear()
        text = _ID_TEXT[oid] = str(oid)
    return text


def catch_up(source: EventSource, projections: Sequence[Projection], *, batch: int = 2000) -> int:
    """Bring ``projections`` up to the end of the log; returns how many events were read.

    Each projection gets only the events past its own position; positions move at the end
    of each page (handlers do not fail: they fold facts that already happened).
    """
    if not projections:
        return 0
    after = min(p.position for p in projections)
    count = 0
    while True:
        page = source.read(after, batch)
        if not page:
            return count
        for p in projections:
            start = p.position
            handler = p.handler
            for nid, event in page:
                if nid > start:
                    h = handler(type(event))
                    if h is not None:
                        h(event)
            p.position = max(start, page[-1][0])
        count += len(page)
        if len(page) < batch:
            return count
        after = page[-1][0]


class _Finished:
    """Ids of finished items in the order they finished; past ``cap``, the oldest go.

    Live items are never evicted, and eviction costs O(1) per finished item (a scan over
    all items on every new one made catch-up quadratic)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.order: deque[str] = deque()

    def add(self, key: str, items: dict[str, Any]) -> None:
        self.order.append(key)
        while len(self.order) > self.cap:
            items.pop(self.order.popleft(), None)


# -------------------------------------------------------------------------------- sessions


@dataclass(kw_only=True)
class SessionRecord:
    id: str
    node: str
    protocol: str
    target: str
    peer: str
    started_at: float
    subject: str | None = None
    groups: list[str] = field(default_factory=list)
    expires_at: float | None = None
    closed_at: float | None = None
    close_reason: str | None = None
    close_detail: str = ""
    rejected: str | None = None
    commands: int = 0
    denied: int = 0
    held: int = 0
    masked: int = 0
    last_activity: float = 0.0

    @property
    def live(self) -> bool:
        return self.closed_at is None


class SessionsView(Projection):
    def __init__(self, *, keep_closed: int = 10_000) -> None:
        super().__init__()
        self.keep_closed = keep_closed
        self.sessions: OrderedDict[str, SessionRecord] = OrderedDict()
        self._finished = _Finished(keep_closed)
        self.termination_requests: dict[str, tuple[str, str]] = {}

    def live(self) -> list[SessionRecord]:
        return [s for s in self.sessions.values() if s.live]

    def recent(self, limit: int = 100) -> list[SessionRecord]:
        return list(reversed(list(self.sessions.values())[-limit:]))

    def get(self, session_id: str) -> SessionRecord | None:
        return self.sessions.get(session_id)

    def _touch(self, event: DomainEvent) -> SessionRecord | None:
        record = self.sessions.get(id_text(event))
        if record is not None:
            record.last_activity = event.at
        return record

    def on_Session_ConnectionAccepted(self, e: Session.ConnectionAccepted) -> None:
        sid = id_text(e)
        self.sessions[sid] = SessionRecord(
            id=sid,
            node=e.node,
            protocol=e.protocol,
            target=e.target,
            peer=e.peer,
            started_at=e.at,
            last_activity=e.at,
        )

    def on_Session_Authenticated(self, e: Session.Authenticated) -> None:
        if r := self._touch(e):
            r.subject, r.groups, r.expires_at = e.subject, list(e.groups), e.expires_at

    def on_Session_AuthenticationRejected(self, e: Session.AuthenticationRejected) -> None:
        if r := self._touch(e):
            r.rejected = e.reason

    def on_Session_CommandReceived(self, e: Session.CommandReceived) -> None:
        if r := self._touch(e):
            r.commands += 1

    def on_Session_CommandDecided(self, e: Session.CommandDecided) -> None:
        if r := self._touch(e):
            if e.action == "deny":
                r.denied += 1
            elif e.action == "review":
                r.held += 1

    def on_Session_ResponseRecorded(self, e: Session.ResponseRecorded) -> None:
        if r := self._touch(e):
            r.masked += sum(e.masked.values())

    def on_Session_OutputRecorded(self, e: Session.OutputRecorded) -> None:
        if r := self._touch(e):
            r.masked += sum(e.masked.values())

    def on_Session_Closed(self, e: Session.Closed) -> None:
        if (r := self._touch(e)) and r.closed_at is None:
            r.closed_at, r.close_reason, r.close_detail = e.at, e.reason, e.detail
            self._finished.add(r.id, self.sessions)

    def on_SessionControl_TerminationRequested(
        self, e: SessionControl.TerminationRequested
    ) -> None:
        self.termination_requests[e.session_id] = (e.actor, e.reason)


# ------------------------------------------------------------------------------- approvals


@dataclass(kw_only=True)
class ApprovalRecord:
    id: str
    requested_at: float
    session_id: str
    command_seq: int
    subject: str
    target: str
    protocol: str
    command: str
    normalized: str
    rule: str
    approver_groups: list[str]
    quorum: int
    expires_at: float
    node: str
    status: str = Approval.PENDING
    approvers: list[str] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str = ""
    window_seconds: float | None = None
    used: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalWindow:
    subject: str
    target: str
    normalized: str
    until: float
    approval_id: str
    approvers: tuple[str, ...]


class ApprovalsView(Projection):
    def __init__(self, *, keep_decided: int = 10_000) -> None:
        super().__init__()
        self.keep_decided = keep_decided
        self._finished = _Finished(keep_decided)
        self.approvals: OrderedDict[str, ApprovalRecord] = OrderedDict()
        self.windows: list[ApprovalWindow] = []

    def pending(self) -> list[ApprovalRecord]:
        return [a for a in self.approvals.values() if a.status == Approval.PENDING]

    def get(self, approval_id: str) -> ApprovalRecord | None:
        return self.approvals.get(approval_id)

    def find(self, prefix: str) -> list[ApprovalRecord]:
        """Approvals whose id (with or without dashes) starts with ``prefix``."""
        p = prefix.replace("-", "").lower()
        return [a for a in self.approvals.values() if a.id.replace("-", "").startswith(p)]

    def window_for(
        self, *, subject: str, target: str, normalized: str, now: float
    ) -> ApprovalWindow | None:
        self.windows = [w for w in self.windows if w.until > now]
        for w in self.windows:
            if (w.subject, w.target, w.normalized) == (subject, target, normalized):
                return w
        return None

    def on_Approval_Requested(self, e: Approval.Requested) -> None:
        aid = id_text(e)
        self.approvals[aid] = ApprovalRecord(
            id=aid,
            requested_at=e.at,
            session_id=e.session_id,
            command_seq=e.command_seq,
            subject=e.subject,
            target=e.target,
            protocol=e.protocol,
            command=e.command,
            normalized=e.normalized,
            rule=e.rule,
            approver_groups=list(e.approver_groups),
            quorum=e.quorum,
            expires_at=e.expires_at,
            node=e.node,
        )

    def _decide(self, e: DomainEvent, status: str, reason: str) -> ApprovalRecord | None:
        record = self.approvals.get(id_text(e))
        if record is not None:
            if record.status == Approval.PENDING:
                self._finished.add(record.id, self.approvals)
            record.status, record.decided_at, record.reason = status, e.at, reason
            record.decided_by = e.actor if status in (Approval.APPROVED, Approval.DENIED) else None
        return record

    def on_Approval_Approved(self, e: Approval.Approved) -> None:
        record = self.approvals.get(id_text(e))
        if record is None:
            return
        record.approvers.append(e.actor)
        if e.window_seconds is not None:
            record.window_seconds = max(record.window_seconds or 0.0, e.window_seconds)
        if len(record.approvers) >= record.quorum:
            self._decide(e, Approval.APPROVED, e.reason)
            if record.window_seconds:
                self.windows.append(
                    ApprovalWindow(
                        subject=record.subject,
                        target=record.target,
                        normalized=record.normalized,
                        until=e.at + record.window_seconds,
                        approval_id=record.id,
                        approvers=tuple(record.approvers),
                    )
                )

    def on_Approval_Denied(self, e: Approval.Denied) -> None:
        self._decide(e, Approval.DENIED, e.reason)

    def on_Approval_Expired(self, e: Approval.Expired) -> None:
        self._decide(e, Approval.EXPIRED, "")

    def on_Approval_Cancelled(self, e: Approval.Cancelled) -> None:
        self._decide(e, Approval.CANCELLED, e.reason)

    def on_Approval_Used(self, e: Approval.Used) -> None:
        record = self.approvals.get(id_text(e))
        if record is not None:
            record.used = True

    def unused_approval(
        self, *, subject: str, target: str, normalized: str
    ) -> ApprovalRecord | None:
        """An approved, not yet used approval for exactly this statement (a retry after a
        hold timed out runs on it)."""
        for record in reversed(self.approvals.values()):
            if (
                record.status == Approval.APPROVED
                and not record.used
                and (record.subject, record.target, record.normalized)
                == (subject, target, normalized)
            ):
                return record
        return None


# ---------------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyChange:
    version: int
    author: str
    at: float
    digest: str
    diff: dict[str, Any]


class PolicyView(Projection):
    def __init__(self) -> None:
        super().__init__()
        self.document: dict[str, Any] | None = None
        self.source = ""
        self.digest = ""
        self.version = 0
        self.history: list[PolicyChange] = []

    def on_Policy_Applied(self, e: Policy.Applied) -> None:
        self.document, self.source, self.digest = e.document, e.source, e.digest
        self.version = e.originator_version
        self.history.append(
            PolicyChange(
                version=e.originator_version, author=e.actor, at=e.at, digest=e.digest, diff=e.diff
            )
        )


# ----------------------------------------------------------------------------- command log


@dataclass(kw_only=True)
class CommandRecord:
    session_id: str
    seq: int
    at: float
    subject: str
    target: str
    protocol: str
    kind: str
    text: str
    action: str | None = None
    rule: str | None = None
    approval_id: str | None = None
    approvers: list[str] = field(default_factory=list)
    forwarded: bool = False
    ok: bool | None = None
    rows: int = 0
    affected_rows: int = 0
    error: str | None = None
    duration_ms: float | None = None
    masked: dict[str, int] = field(default_factory=dict)


class CommandLogView(Projection):
    def __init__(self, *, keep: int = 50_000) -> None:
        super().__init__()
        self.keep = keep
        self.total = 0
        self.commands: OrderedDict[tuple[str, int], CommandRecord] = OrderedDict()
        self._sessions: dict[str, tuple[str, str, str]] = {}

    def recent(self, limit: int = 100) -> list[CommandRecord]:
        return list(reversed(list(self.commands.values())[-limit:]))

    def of_session(self, session_id: str) -> list[CommandRecord]:
        return [c for (sid, _), c in self.commands.items() if sid == session_id]

    def on_Session_ConnectionAccepted(self, e: Session.ConnectionAccepted) -> None:
        self._sessions[id_text(e)] = ("", e.target, e.protocol)

    def on_Session_Authenticated(self, e: Session.Authenticated) -> None:
        sid = id_text(e)
        _, target, protocol = self._sessions.get(sid, ("", "", ""))
        self._sessions[sid] = (e.subject, target, protocol)

    def on_Session_Closed(self, e: Session.Closed) -> None:
        self._sessions.pop(id_text(e), None)

    def on_Session_CommandReceived(self, e: Session.CommandReceived) -> None:
        sid = id_text(e)
        subject, target, protocol = self._sessions.get(sid, (e.actor, "", ""))
        self.commands[(sid, e.seq)] = CommandRecord(
            session_id=sid,
            seq=e.seq,
            at=e.at,
            subject=subject or e.actor,
            target=target,
            protocol=protocol,
            kind=e.kind,
            text=e.text,
        )
        self.total += 1
        while len(self.commands) > self.keep:
            self.commands.popitem(last=False)

    def _record(self, e: DomainEvent, seq: int) -> CommandRecord | None:
        return self.commands.get((id_text(e), seq))

    def on_Session_CommandDecided(self, e: Session.CommandDecided) -> None:
        if r := self._record(e, e.seq):
            r.action, r.rule, r.approval_id = e.action, e.rule, e.approval_id

    def on_Session_CommandForwarded(self, e: Session.CommandForwarded) -> None:
        if r := self._record(e, e.seq):
            r.forwarded, r.approvers = True, list(e.approved_by)

    def on_Session_ResponseRecorded(self, e: Session.ResponseRecorded) -> None:
        if r := self._record(e, e.seq):
            r.ok, r.rows, r.affected_rows = e.ok, e.rows, e.affected_rows
            r.error = e.error_message
            r.duration_ms, r.masked = e.duration_ms, dict(e.masked)


def all_views() -> tuple[SessionsView, ApprovalsView, PolicyView, CommandLogView]:
    return SessionsView(), ApprovalsView(), PolicyView(), CommandLogView()
