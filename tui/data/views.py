"""The console's own projections and the translation of stored events into rows.

``PendingApprovals`` keeps each pending approval as the domain aggregate itself, so the
console can ask the domain, before the operator presses a key, whether they may decide it
(the refusal shown is the domain's own message; nothing is re-implemented here).
``SessionTailView`` keeps the last events and terminal output of the one watched session.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from events.domain import (
    Approval,
    DomainError,
    DomainEvent,
    Policy,
    Session,
    SessionControl,
    short_id,
)
from events.projections import (
    ApprovalRecord,
    ApprovalsView,
    PolicyView,
    Projection,
    SessionRecord,
    SessionsView,
    id_text,
)
from tui.rows import ApprovalRow, EventRow, Operator, SessionRow, SessionTail

TAIL_EVENTS = 500
TAIL_OUTPUT_CHARS = 64 * 1024


class PendingApprovals(Projection):
    """Pending approvals as live ``Approval`` aggregates, in request order."""

    def __init__(self) -> None:
        super().__init__()
        self.approvals: dict[str, Approval] = {}
        self.requested_count = 0
        self._order: dict[str, int] = {}

    def order_of(self, approval_id: str) -> int:
        """1 for the first request this console saw, 2 for the next... (0 if unknown)."""
        return self._order.get(approval_id, 0)

    def on_Approval_Requested(self, e: Approval.Requested) -> None:
        aid = id_text(e)
        approval = Approval(e.originator_id)
        approval.apply(e)
        self.approvals[aid] = approval
        self.requested_count += 1
        self._order[aid] = self.requested_count

    def _fold(self, e: DomainEvent) -> None:
        aid = id_text(e)
        approval = self.approvals.get(aid)
        if approval is None:
            return
        try:
            approval.apply(e)
        except DomainError:
            approval.status = ""  # a gap in its history: stop showing it as pending
        if approval.status != Approval.PENDING:
            del self.approvals[aid]
            self._order.pop(aid, None)

    on_Approval_Approved = _fold
    on_Approval_Denied = _fold
    on_Approval_Expired = _fold
    on_Approval_Cancelled = _fold

    def row(self, approval: Approval, operator: Operator, now: float) -> ApprovalRow:
        request = approval.request
        assert request is not None
        try:
            approval.approve(
                subject=operator.subject,
                groups=operator.groups,
                reason="",
                window_seconds=None,
                now=now,
            )
            refusal = None
        except DomainError as exc:
            refusal = str(exc)
        return ApprovalRow(
            id=str(approval.id),
            requested_at=request.at,
            session_id=request.session_id,
            subject=request.subject,
            target=request.target,
            protocol=request.protocol,
            command=request.command,
            rule=request.rule,
            approver_groups=tuple(request.approver_groups),
            quorum=request.quorum,
            approvers=tuple(approval.approvers),
            expires_at=request.expires_at,
            status=approval.status,
            refusal=refusal,
        )

    @staticmethod
    def row_of_record(a: ApprovalRecord) -> ApprovalRow:
        return ApprovalRow(
            id=a.id,
            requested_at=a.requested_at,
            session_id=a.session_id,
            subject=a.subject,
            target=a.target,
            protocol=a.protocol,
            command=a.command,
            rule=a.rule,
            approver_groups=tuple(a.approver_groups),
            quorum=a.quorum,
            approvers=tuple(a.approvers),
            expires_at=a.expires_at,
            status=a.status,
            decided_by=a.decided_by,
            reason=a.reason,
        )


class PolicyHistory(PolicyView):
    """The policy view, loadable from the policy stream itself before folding the log.

    The console may fold only the recent log (see ``ConsoleData.fold_horizon``); the policy
    and its whole history come from their own, short stream, and the changes the log then
    delivers again are skipped by version.
    """

    def on_Policy_Applied(self, e: Policy.Applied) -> None:
        if e.originator_version > self.version:
            super().on_Policy_Applied(e)


class SessionTailView(Projection):
    """The last events (and SSH output) of one session, fed with every event of the log."""

    def __init__(self, session_id: str, *, position: int) -> None:
        super().__init__()
        self.session_id = session_id
        self.position = position
        self.events: deque[EventRow] = deque(maxlen=TAIL_EVENTS)
        self.output: deque[str] = deque()
        self.output_chars = 0
        self.last_version = 0
        self.sessions: SessionsView | None = None

    def handler(self, cls: type) -> Callable[[Any], None] | None:
        if cls.__qualname__.startswith(("Session.", "SessionControl.")):
            return self._on
        return None

    def _on(self, event: DomainEvent) -> None:
        if isinstance(event, SessionControl.TerminationRequested):
            if event.session_id == self.session_id:
                self.add(0, event, self.sessions)
            return
        if id_text(event) == self.session_id:
            self.add(0, event, self.sessions)

    def add(self, nid: int, event: DomainEvent, sessions: SessionsView | None) -> None:
        self.sessions = sessions
        if isinstance(event, SessionControl.TerminationRequested):
            self.events.append(event_row(nid, event, sessions, None))
            return
        if event.originator_version <= self.last_version:
            return  # already loaded from the session's stream when watching began
        self.last_version = event.originator_version
        if isinstance(event, Session.OutputRecorded):
            self.output.append(event.data)
            self.output_chars += len(event.data)
            while self.output_chars > TAIL_OUTPUT_CHARS and len(self.output) > 1:
                self.output_chars -= len(self.output.popleft())
            return
        self.events.append(event_row(nid, event, sessions, None))

    def snapshot(self, sessions: SessionsView, pending: Mapping[str, int]) -> SessionTail:
        record = sessions.get(self.session_id)
        return SessionTail(
            session=session_row(record, pending, sessions.termination_requests) if record else None,
            events=tuple(self.events),
            output="".join(self.output),
            position=self.position,
        )


def session_row(
    s: SessionRecord, pending: Mapping[str, int], terminations: Mapping[str, tuple[str, str]]
) -> SessionRow:
    requested = terminations.get(s.id)
    return SessionRow(
        id=s.id,
        subject=s.subject or "",
        target=s.target,
        protocol=s.protocol,
        node=s.node,
        peer=s.peer,
        started_at=s.started_at,
        last_activity=s.last_activity,
        closed_at=s.closed_at,
        close_reason=s.close_reason,
        rejected=s.rejected,
        commands=s.commands,
        denied=s.denied,
        held=s.held,
        masked=s.masked,
        pending_approvals=pending.get(s.id, 0),
        termination_requested_by=requested[0] if requested else None,
    )


def summarize_diff(diff: Mapping[str, Any]) -> str:
    """One line for a policy change's structured diff (rules added, changed, removed)."""
    parts: list[str] = []
    for key, value in diff.items():
        if isinstance(value, list | tuple | dict):
            names = [str(v) for v in value]
            if names:
                parts.append(f"{key}: {', '.join(names)}")
        elif value not in (None, "", 0, False):
            parts.append(f"{key}: {value}")
    return "; ".join(parts) or "(no rule changes)"


def _summary(e: DomainEvent) -> tuple[str, str]:
    """(decision, one-line summary) of an event."""
    match e:
        case Session.ConnectionAccepted():
            return "", f"{e.protocol} connection to {e.target} from {e.peer} (node {e.node})"
        case Session.Authenticated():
            return "", f"authenticated as {e.subject} [{', '.join(e.groups)}]"
        case Session.AuthenticationRejected():
            return "rejected", f"authentication rejected ({e.reason}): {e.message}"
        case Session.CommandReceived():
            return "", f"#{e.seq} {e.kind}: {e.text}"
        case Session.CommandDecided():
            held = f", approval {short_id(e.approval_id)}" if e.approval_id else ""
            return e.action, f"#{e.seq} {e.action} by rule {e.rule}: {e.reason}{held}"
        case Session.CommandForwarded():
            by = f" (approved by {', '.join(e.approved_by)})" if e.approved_by else ""
            return "", f"#{e.seq} forwarded{by}"
        case Session.ResponseRecorded():
            masked = sum(e.masked.values())
            if not e.ok:
                return "", f"#{e.seq} error {e.error_code}: {e.error_message}"
            return "", (
                f"#{e.seq} ok: {e.rows} rows, {e.affected_rows} affected, "
                f"{e.duration_ms:.1f} ms, {masked} masked"
            )
        case Session.OutputRecorded():
            return "", f"{e.stream} +{e.offset_ms} ms: {e.data[:60]!r}"
        case Session.Closed():
            return "", f"closed ({e.reason}) {e.detail}".rstrip()
        case SessionControl.TerminationRequested():
            return "", f"end of session {short_id(e.session_id)} requested: {e.reason}"
        case Approval.Requested():
            return "review", (
                f"{e.subject} on {e.target}: {e.command} (rule {e.rule}, quorum {e.quorum})"
            )
        case Approval.Approved():
            window = f", window {e.window_seconds:g}s" if e.window_seconds else ""
            return "approved", f"approved{window}: {e.reason}".rstrip(": ")
        case Approval.Denied():
            return "denied", f"denied: {e.reason}"
        case Approval.Expired():
            return "expired", "expired"
        case Approval.Cancelled():
            return "cancelled", f"cancelled: {e.reason}"
        case Policy.Applied():
            return "", f"policy v{e.originator_version} applied: {summarize_diff(e.diff)}"
    return "", type(e).__name__


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def event_row(
    nid: int,
    e: DomainEvent,
    sessions: SessionsView | None,
    approvals: ApprovalsView | None,
) -> EventRow:
    aggregate, _, kind = type(e).__qualname__.rpartition(".")
    oid = id_text(e)
    subject = target = ""
    if isinstance(e, SessionControl.TerminationRequested):
        record = sessions.get(e.session_id) if sessions else None
    else:
        record = sessions.get(oid) if sessions and aggregate == "Session" else None
    if record is not None:
        subject, target = record.subject or "", record.target
    match e:
        case Session.ConnectionAccepted():
            target = e.target
        case Session.Authenticated() | Approval.Requested():
            subject = e.subject
            target = getattr(e, "target", target)
        case Approval.Approved() | Approval.Denied() | Approval.Expired() | Approval.Cancelled():
            a = approvals.get(oid) if approvals else None
            if a is not None:
                subject, target = a.subject, a.target
    if not subject and aggregate == "Session" and not e.actor.startswith("gateway:"):
        subject = e.actor
    decision, summary = _summary(e)
    fields = tuple(
        (k, _text(v))
        for k, v in vars(e).items()
        if k not in ("originator_id", "originator_version")
    )
    return EventRow(
        notification_id=nid,
        at=e.at,
        kind=kind,
        aggregate=aggregate,
        originator_id=oid,
        version=e.originator_version,
        actor=e.actor,
        subject=subject,
        target=target,
        decision=decision,
        summary=summary,
        fields=fields,
    )
