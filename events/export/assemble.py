"""Folding events into finished rows: sessions, commands, approvals and policy changes.

Theory of operation
-------------------
:class:`RowAssembler` is fed events in notification order and keeps only the state of
*open* items. It hands a row to its sink the moment an item is complete:

* a session when it is closed;
* a command when its response is recorded, or when its session closes (nothing more can
  happen to it then);
* an approval when it is decided (approved by quorum, denied, expired or cancelled); a held
  command learns its approval's outcome as it happens;
* a policy change at once (one event each).

:meth:`RowAssembler.flush` hands out what is still open, marked ``complete = false``.
Memory is therefore bounded by what is open at one moment (live sessions and their
unanswered commands, pending approvals), never by the size of the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from events.domain import Approval, DomainEvent, Policy, Session, SessionControl
from events.export.rows import ApprovalRow, CommandRow, PolicyRow, SessionRow
from events.projections import id_text

# ------------------------------------------------------------------------- assembling


@dataclass(slots=True, kw_only=True)
class OpenCommand:
    seq: int
    kind: str
    text: str
    received_at: float
    sources: list[int]
    decision: str | None = None
    rule: str | None = None
    reason: str = ""
    statement_kinds: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    approval_id: str | None = None
    approval_status: str | None = None
    approvers: list[str] = field(default_factory=list)
    approval_decided_by: str | None = None
    forwarded_at: float | None = None
    response: Session.ResponseRecorded | None = None
    last_hash: str | None = None


@dataclass(slots=True, kw_only=True)
class OpenSession:
    accepted: Session.ConnectionAccepted
    id: str
    sources: list[int]
    last_hash: str | None
    auth: Session.Authenticated | None = None
    rejected: str | None = None
    commands: int = 0
    allowed: int = 0
    denied: int = 0
    reviewed: int = 0
    masked: dict[str, int] = field(default_factory=dict)
    termination: tuple[str, str] | None = None
    open_commands: dict[int, OpenCommand] = field(default_factory=dict)
    # Events export with --identity/--group: events seen before the identity is known.
    deferred: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subject(self) -> str | None:
        return self.auth.subject if self.auth is not None else None

    @property
    def groups(self) -> list[str]:
        return list(self.auth.groups) if self.auth is not None else []


@dataclass(slots=True, kw_only=True)
class OpenApproval:
    request: Approval.Requested
    id: str
    sources: list[int]
    last_hash: str | None
    approvers: list[str] = field(default_factory=list)
    window_seconds: float | None = None


Sink = Callable[[Any], None]


def _add_masked(into: dict[str, int], masked: dict[str, int]) -> None:
    for k, v in masked.items():
        into[k] = into.get(k, 0) + v


class RowAssembler:
    """Folds events, in notification order, into finished rows handed to the given sinks.

    Only the kinds with a sink are assembled (no command state without ``on_command``).
    """

    def __init__(
        self,
        *,
        on_session: Sink | None = None,
        on_command: Sink | None = None,
        on_approval: Sink | None = None,
        on_policy: Sink | None = None,
        keep_approvals: bool = False,
    ) -> None:
        self.on_session = on_session
        self.on_command = on_command
        self.on_approval = on_approval
        self.on_policy = on_policy
        self.sessions: dict[str, OpenSession] = {}
        self.approvals: dict[str, OpenApproval] = {}
        # approval id -> (session id, seq) of the held command waiting for it
        self._held: dict[str, tuple[str, int]] = {}
        self._track_approvals = keep_approvals or on_approval is not None or on_command is not None
        self._dispatch = self._build_dispatch()

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, nid: int, event: DomainEvent, chain: str | None) -> None:
        handler = self._dispatch.get(type(event))
        if handler is not None:
            handler(nid, event, chain)

    def _build_dispatch(self) -> dict[type, Callable[[int, Any, str | None], None]]:
        # One dict lookup per event: a chain of isinstance checks cost more than the fold.
        on_session: dict[type, Callable[[OpenSession, int, Any, str | None], None]] = {
            Session.Authenticated: self._authenticated,
            Session.AuthenticationRejected: self._rejected,
            Session.CommandReceived: self._received,
            Session.CommandDecided: self._decided,
            Session.CommandForwarded: self._forwarded,
            Session.ResponseRecorded: self._responded,
            Session.OutputRecorded: self._output,
            Session.Closed: self._closed,
        }

        def session_event(nid: int, e: DomainEvent, chain: str | None) -> None:
            s = self.sessions.get(id_text(e))
            if s is not None:  # else its start is not in the log: nothing to attach it to
                on_session[type(e)](s, nid, e, chain)

        dispatch: dict[type, Callable[[int, Any, str | None], None]] = dict.fromkeys(
            on_session, session_event
        )
        dispatch[Session.ConnectionAccepted] = self._accepted
        dispatch[SessionControl.TerminationRequested] = self._termination
        if self.on_policy is not None:
            dispatch[Policy.Applied] = self._policy
        if self._track_approvals:
            for cls in (
                Approval.Requested,
                Approval.Approved,
                Approval.Denied,
                Approval.Expired,
                Approval.Cancelled,
            ):
                dispatch[cls] = self._approval_event
        return dispatch

    def _policy(self, nid: int, e: Policy.Applied, chain: str | None) -> None:
        assert self.on_policy is not None
        self.on_policy(
            PolicyRow(
                version=e.originator_version,
                applied_at=e.at,
                author=e.actor,
                source=e.source,
                digest=e.digest,
                diff=e.diff,
                document=e.document,
                notification_id=nid,
                chain_hash=chain,
                source_ids=[nid],
            )
        )

    def _termination(
        self, nid: int, e: SessionControl.TerminationRequested, chain: str | None
    ) -> None:
        s = self.sessions.get(e.session_id)
        if s is not None:
            s.termination = (e.actor, e.reason)
            s.sources.append(nid)
            s.last_hash = chain

    def _accepted(self, nid: int, e: Session.ConnectionAccepted, chain: str | None) -> None:
        sid = id_text(e)
        self.sessions[sid] = OpenSession(accepted=e, id=sid, sources=[nid], last_hash=chain)

    def _authenticated(
        self, s: OpenSession, nid: int, e: Session.Authenticated, chain: str | None
    ) -> None:
        s.auth = e
        s.sources.append(nid)
        s.last_hash = chain

    def _rejected(
        self, s: OpenSession, nid: int, e: Session.AuthenticationRejected, chain: str | None
    ) -> None:
        s.rejected = e.reason
        s.sources.append(nid)
        s.last_hash = chain

    def _received(
        self, s: OpenSession, nid: int, e: Session.CommandReceived, chain: str | None
    ) -> None:
        s.commands += 1
        if self.on_command is not None:
            s.open_commands[e.seq] = OpenCommand(
                seq=e.seq,
                kind=e.kind,
                text=e.text,
                received_at=e.at,
                sources=[nid],
                last_hash=chain,
            )

    def _decided(
        self, s: OpenSession, nid: int, e: Session.CommandDecided, chain: str | None
    ) -> None:
        if e.action == "allow":
            s.allowed += 1
        elif e.action == "deny":
            s.denied += 1
        else:
            s.reviewed += 1
        c = s.open_commands.get(e.seq)
        if c is None:
            return
        c.decision, c.rule, c.reason = e.action, e.rule, e.reason
        c.statement_kinds, c.tables = list(e.statement_kinds), list(e.tables)
        c.approval_id = e.approval_id
        c.sources.append(nid)
        c.last_hash = chain
        if e.approval_id is not None:
            c.approval_status = Approval.PENDING
            self._held[e.approval_id] = (s.id, e.seq)

    def _forwarded(
        self, s: OpenSession, nid: int, e: Session.CommandForwarded, chain: str | None
    ) -> None:
        c = s.open_commands.get(e.seq)
        if c is not None:
            c.forwarded_at = e.at
            if e.approved_by and not c.approvers:
                c.approvers = list(e.approved_by)
            c.sources.append(nid)
            c.last_hash = chain

    def _responded(
        self, s: OpenSession, nid: int, e: Session.ResponseRecorded, chain: str | None
    ) -> None:
        if e.masked:
            _add_masked(s.masked, e.masked)
        c = s.open_commands.pop(e.seq, None)
        if c is not None:
            c.response = e
            c.sources.append(nid)
            c.last_hash = chain
            self._emit_command(s, c, complete=True)

    def _output(
        self, s: OpenSession, nid: int, e: Session.OutputRecorded, chain: str | None
    ) -> None:
        if e.masked:
            _add_masked(s.masked, e.masked)

    def _closed(self, s: OpenSession, nid: int, e: Session.Closed, chain: str | None) -> None:
        s.sources.append(nid)
        s.last_hash = chain
        del self.sessions[s.id]
        self._finish_session(s, e, complete=True)

    def _approval_event(self, nid: int, e: DomainEvent, chain: str | None) -> None:
        aid = id_text(e)
        if isinstance(e, Approval.Requested):
            self.approvals[aid] = OpenApproval(request=e, id=aid, sources=[nid], last_hash=chain)
            return
        a = self.approvals.get(aid)
        if a is None:
            return
        a.sources.append(nid)
        a.last_hash = chain
        status: str | None = None
        decided_by: str | None = None
        reason = ""
        match e:
            case Approval.Approved():
                a.approvers.append(e.actor)
                if e.window_seconds is not None:
                    a.window_seconds = max(a.window_seconds or 0.0, e.window_seconds)
                if len(a.approvers) >= a.request.quorum:
                    status, decided_by, reason = Approval.APPROVED, e.actor, e.reason
            case Approval.Denied():
                status, decided_by, reason = Approval.DENIED, e.actor, e.reason
            case Approval.Expired():
                status = Approval.EXPIRED
            case Approval.Cancelled():
                status, reason = Approval.CANCELLED, e.reason
        if status is None:
            return
        del self.approvals[aid]
        held = self._held.pop(aid, None)
        if held is not None:
            s = self.sessions.get(held[0])
            c = s.open_commands.get(held[1]) if s is not None else None
            if c is not None:
                c.approval_status, c.approval_decided_by = status, decided_by
                c.approvers = list(a.approvers)
        if self.on_approval is not None:
            self.on_approval(
                _approval_row(a, status, decided_by, e.at, reason, nid=nid, complete=True)
            )

    def flush(self) -> None:
        """Hand out every item still open, marked ``complete = false``; forget them."""
        sessions, self.sessions = self.sessions, {}
        for s in sessions.values():
            self._finish_session(s, None, complete=False)
        approvals, self.approvals = self.approvals, {}
        if self.on_approval is not None:
            for a in approvals.values():
                self.on_approval(
                    _approval_row(a, Approval.PENDING, None, None, "", nid=None, complete=False)
                )
        self._held.clear()

    # -- rows -------------------------------------------------------------------------------

    def _finish_session(
        self, s: OpenSession, closed: Session.Closed | None, *, complete: bool
    ) -> None:
        for c in s.open_commands.values():
            self._emit_command(s, c, complete=complete)
        s.open_commands.clear()
        if self.on_session is None:
            return
        a, auth = s.accepted, s.auth
        self.on_session(
            SessionRow(
                session_id=s.id,
                node=a.node,
                protocol=a.protocol,
                target=a.target,
                listener=a.listener,
                peer=a.peer,
                subject=s.subject,
                groups=s.groups,
                issuer=auth.issuer if auth is not None else "",
                client_user=auth.client_user if auth is not None else "",
                authenticated=auth is not None,
                rejected_reason=s.rejected,
                started_at=a.at,
                ended_at=closed.at if closed is not None else None,
                duration_s=round(closed.at - a.at, 6) if closed is not None else None,
                close_reason=closed.reason if closed is not None else None,
                close_detail=closed.detail if closed is not None else "",
                termination_requested_by=s.termination[0] if s.termination else None,
                termination_reason=s.termination[1] if s.termination else "",
                commands=s.commands,
                allowed=s.allowed,
                denied=s.denied,
                reviewed=s.reviewed,
                masked=dict(sorted(s.masked.items())),
                masked_total=sum(s.masked.values()),
                complete=complete,
                notification_id=s.sources[-1],
                chain_hash=s.last_hash,
                source_ids=list(s.sources),
            )
        )

    def _emit_command(self, s: OpenSession, c: OpenCommand, *, complete: bool) -> None:
        if self.on_command is None:
            return
        r = c.response
        a = s.accepted
        self.on_command(
            CommandRow(
                session_id=s.id,
                seq=c.seq,
                node=a.node,
                protocol=a.protocol,
                target=a.target,
                subject=s.subject,
                groups=s.groups,
                kind=c.kind,
                text=c.text,
                received_at=c.received_at,
                decision=c.decision,
                rule=c.rule,
                reason=c.reason,
                statement_kinds=c.statement_kinds,
                tables=c.tables,
                approval_id=c.approval_id,
                approval_status=c.approval_status,
                approvers=c.approvers,
                approval_decided_by=c.approval_decided_by,
                forwarded=c.forwarded_at is not None,
                forwarded_at=c.forwarded_at,
                responded_at=r.at if r is not None else None,
                ok=r.ok if r is not None else None,
                rows=r.rows if r is not None else 0,
                affected_rows=r.affected_rows if r is not None else 0,
                error_code=r.error_code if r is not None else None,
                error_message=r.error_message if r is not None else None,
                duration_ms=r.duration_ms if r is not None else None,
                truncated=r.truncated if r is not None else False,
                masked=dict(sorted(r.masked.items())) if r is not None else {},
                masked_total=sum(r.masked.values()) if r is not None else 0,
                complete=complete,
                notification_id=c.sources[-1],
                chain_hash=c.last_hash,
                source_ids=list(c.sources),
            )
        )


def _approval_row(
    a: OpenApproval,
    status: str,
    decided_by: str | None,
    decided_at: float | None,
    reason: str,
    *,
    nid: int | None,
    complete: bool,
) -> ApprovalRow:
    q = a.request
    return ApprovalRow(
        approval_id=a.id,
        session_id=q.session_id,
        command_seq=q.command_seq,
        node=q.node,
        protocol=q.protocol,
        target=q.target,
        subject=q.subject,
        groups=list(q.groups),
        command=q.command,
        normalized=q.normalized,
        rule=q.rule,
        approver_groups=list(q.approver_groups),
        quorum=q.quorum,
        requested_at=q.at,
        expires_at=q.expires_at,
        status=status,
        approvers=list(a.approvers),
        decided_by=decided_by,
        decided_at=decided_at,
        reason=reason,
        window_seconds=a.window_seconds,
        wait_s=round(decided_at - q.at, 6) if decided_at is not None else None,
        complete=complete,
        notification_id=nid if nid is not None else a.sources[-1],
        chain_hash=a.last_hash,
        source_ids=list(a.sources),
    )
