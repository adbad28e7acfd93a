"""Compliance exports: the event log as rows of events, sessions, commands, approvals, policy.

Theory of operation
-------------------
An export reads the log once, in notification order, page by page (``store.read``), up to
the last event stored when it started; it never holds the log. Beside each page it walks the
chain table (``recorder.chain_entries``) with the same ids, so every row carries the
notification id and the chain hash of the event it comes from, which ``wardgate audit
verify`` checks.

``events`` rows are the stored events themselves, one each. The other kinds combine several
events. :class:`RowAssembler` keeps only the state of *open* items and hands a row out the
moment an item is complete:

* a session when it is closed;
* a command when its response is recorded, or when its session closes (nothing more can
  happen to it then);
* an approval when it is decided (approved by quorum, denied, expired or cancelled);
* a policy change at once (one event each).

At the end, items still open are handed out with ``complete = false``. Memory is therefore
bounded by what is open at one moment (live sessions and their unanswered commands, pending
approvals), never by the size of the log. Filters apply to finished rows (see
``docs/EXPORTS.md`` for the exact meaning of each filter per kind).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TextIO

from events.domain import Approval, DomainEvent, Policy, Session, SessionControl
from events.projections import id_text
from events.store import EventStore

KINDS: tuple[str, ...] = ("events", "sessions", "commands", "approvals", "policy")
FORMATS: tuple[str, ...] = ("jsonl", "csv")
DECISIONS: tuple[str, ...] = ("allow", "deny", "review")
PAGE = 5000


class ExportError(ValueError):
    """A bad export request (filter value, kind, format); the message is one line."""


# ---------------------------------------------------------------------------- filters


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_time(text: str, *, now: float) -> float:
    """POSIX seconds from ``7d`` / ``12h`` / ``30m`` (that long before ``now``) or ISO 8601.

    A date alone is midnight UTC; a date-time without an offset is UTC.
    """
    value = text.strip()
    m = _RELATIVE.match(value.lower())
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ExportError(
            f"not a time: {text!r} (use an ISO date or date-time, or 7d, 12h, 30m)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportFilter:
    """What to keep. Times are POSIX seconds, ``since`` inclusive, ``until`` exclusive."""

    since: float | None = None
    until: float | None = None
    identity: str | None = None
    group: str | None = None
    target: str | None = None
    decision: str | None = None

    def check(self, kind: str) -> None:
        if kind not in KINDS:
            raise ExportError(f"unknown export kind {kind!r} (one of {', '.join(KINDS)})")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ExportError(
                f"--decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}"
            )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ExportError("--from must be before --to")
        if kind == "policy":
            for name in ("group", "target", "decision"):
                if getattr(self, name) is not None:
                    raise ExportError(f"--{name} does not apply to policy exports")

    def in_window(self, at: float) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def overlaps(self, start: float, end: float | None) -> bool:
        return (self.until is None or start < self.until) and (
            self.since is None or end is None or end >= self.since
        )

    @property
    def needs_context(self) -> bool:
        return self.identity is not None or self.group is not None or self.target is not None


# ------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    session_id: str
    node: str
    protocol: str
    target: str
    listener: str
    peer: str
    subject: str | None
    groups: list[str]
    issuer: str
    client_user: str
    authenticated: bool
    rejected_reason: str | None
    started_at: float
    ended_at: float | None
    duration_s: float | None
    close_reason: str | None
    close_detail: str
    termination_requested_by: str | None
    termination_reason: str
    commands: int
    allowed: int
    denied: int
    reviewed: int
    masked: dict[str, int]
    masked_total: int
    complete: bool
    notification_id: int
    chain_hash: str | None
    source_ids: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRow:
    session_id: str
    seq: int
    node: str
    protocol: str
    target: str
    subject: str | None
    groups: list[str]
    kind: str
    text: str
    received_at: float
    decision: str | None
    rule: str | None
    reason: str
    statement_kinds: list[str]
    tables: list[str]
    approval_id: str | None
    approval_status: str | None
    approvers: list[str]
    approval_decided_by: str | None
    forwarded: bool
    forwarded_at: float | None
    responded_at: float | None
    ok: bool | None
    rows: int
    affected_rows: int
    error_code: int | None
    error_message: str | None
    duration_ms: float | None
    truncated: bool
    masked: dict[str, int]
    masked_total: int
    complete: bool
    notification_id: int
    chain_hash: str | None
    source_ids: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRow:
    approval_id: str
    session_id: str
    command_seq: int
    node: str
    protocol: str
    target: str
    subject: str
    groups: list[str]
    command: str
    normalized: str
    rule: str
    approver_groups: list[str]
    quorum: int
    requested_at: float
    expires_at: float
    status: str
    approvers: list[str]
    decided_by: str | None
    decided_at: float | None
    reason: str
    window_seconds: float | None
    wait_s: float | None
    complete: bool
    notification_id: int
    chain_hash: str | None
    source_ids: list[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyRow:
    version: int
    applied_at: float
    author: str
    source: str
    digest: str
    diff: dict[str, Any]
    document: dict[str, Any]
    notification_id: int
    chain_hash: str | None
    source_ids: list[int]


EVENT_FIELDS: tuple[str, ...] = (
    "notification_id",
    "chain_hash",
    "at",
    "type",
    "originator_id",
    "originator_version",
    "actor",
    "data",
)
ROW_TYPES: dict[str, type[Any]] = {
    "sessions": SessionRow,
    "commands": CommandRow,
    "approvals": ApprovalRow,
    "policy": PolicyRow,
}
SCHEMAS: dict[str, tuple[str, ...]] = {
    "events": EVENT_FIELDS,
    **{kind: tuple(f.name for f in fields(cls)) for kind, cls in ROW_TYPES.items()},
}
TIME_FIELDS = frozenset(
    {
        "at",
        "started_at",
        "ended_at",
        "received_at",
        "forwarded_at",
        "responded_at",
        "requested_at",
        "expires_at",
        "decided_at",
        "applied_at",
    }
)
_BASE = frozenset({"originator_id", "originator_version", "at", "actor"})


def iso(at: float) -> str:
    """UTC ISO 8601 with microseconds and a ``Z``: what every time in an export looks like."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def row_dict(row: Any) -> dict[str, Any]:
    """A row as the export writes it: schema order, times as ISO text."""
    out: dict[str, Any] = {}
    for name in SCHEMAS[_KIND_OF[type(row)]]:
        value = getattr(row, name)
        out[name] = iso(value) if name in TIME_FIELDS and value is not None else value
    return out


_KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in ROW_TYPES.items()}


# ------------------------------------------------------------------------- assembling


@dataclass(slots=True, kw_only=True)
class _OpenCommand:
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
class _OpenSession:
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
    open_commands: dict[int, _OpenCommand] = field(default_factory=dict)
    # Events export with --identity/--group: events seen before the identity is known.
    deferred: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subject(self) -> str | None:
        return self.auth.subject if self.auth is not None else None

    @property
    def groups(self) -> list[str]:
        return list(self.auth.groups) if self.auth is not None else []


@dataclass(slots=True, kw_only=True)
class _OpenApproval:
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
        self.sessions: dict[str, _OpenSession] = {}
        self.approvals: dict[str, _OpenApproval] = {}
        # approval id -> (session id, seq) of the held command waiting for it
        self._held: dict[str, tuple[str, int]] = {}
        self._track_approvals = keep_approvals or on_approval is not None or on_command is not None

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, nid: int, event: DomainEvent, chain: str | None) -> None:
        t = type(event)
        if t.__qualname__.startswith("Session."):
            self._session_event(nid, event, chain)
        elif t.__qualname__.startswith("Approval."):
            if self._track_approvals:
                self._approval_event(nid, event, chain)
        elif isinstance(event, Policy.Applied):
            if self.on_policy is not None:
                self.on_policy(
                    PolicyRow(
                        version=event.originator_version,
                        applied_at=event.at,
                        author=event.actor,
                        source=event.source,
                        digest=event.digest,
                        diff=event.diff,
                        document=event.document,
                        notification_id=nid,
                        chain_hash=chain,
                        source_ids=[nid],
                    )
                )
        elif isinstance(event, SessionControl.TerminationRequested):
            s = self.sessions.get(event.session_id)
            if s is not None:
                s.termination = (event.actor, event.reason)
                s.sources.append(nid)
                s.last_hash = chain

    def _session_event(self, nid: int, e: DomainEvent, chain: str | None) -> None:
        if isinstance(e, Session.ConnectionAccepted):
            sid = str(e.originator_id)
            self.sessions[sid] = _OpenSession(accepted=e, id=sid, sources=[nid], last_hash=chain)
            return
        s = self.sessions.get(str(e.originator_id))
        if s is None:
            return  # a session whose start is not in the log: nothing to attach it to
        match e:
            case Session.CommandReceived():
                s.commands += 1
                if self.on_command is not None:
                    s.open_commands[e.seq] = _OpenCommand(
                        seq=e.seq,
                        kind=e.kind,
                        text=e.text,
                        received_at=e.at,
                        sources=[nid],
                        last_hash=chain,
                    )
            case Session.CommandDecided():
                if e.action == "allow":
                    s.allowed += 1
                elif e.action == "deny":
                    s.denied += 1
                else:
                    s.reviewed += 1
                if (c := s.open_commands.get(e.seq)) is not None:
                    c.decision, c.rule, c.reason = e.action, e.rule, e.reason
                    c.statement_kinds, c.tables = list(e.statement_kinds), list(e.tables)
                    c.approval_id = e.approval_id
                    c.sources.append(nid)
                    c.last_hash = chain
                    if e.approval_id is not None:
                        c.approval_status = Approval.PENDING
                        self._held[e.approval_id] = (s.id, e.seq)
            case Session.CommandForwarded():
                if (c := s.open_commands.get(e.seq)) is not None:
                    c.forwarded_at = e.at
                    if e.approved_by and not c.approvers:
                        c.approvers = list(e.approved_by)
                    c.sources.append(nid)
                    c.last_hash = chain
            case Session.ResponseRecorded():
                _add_masked(s.masked, e.masked)
                if (c := s.open_commands.pop(e.seq, None)) is not None:
                    c.response = e
                    c.sources.append(nid)
                    c.last_hash = chain
                    self._emit_command(s, c, complete=True)
            case Session.OutputRecorded():
                _add_masked(s.masked, e.masked)
            case Session.Authenticated():
                s.auth = e
                s.sources.append(nid)
                s.last_hash = chain
            case Session.AuthenticationRejected():
                s.rejected = e.reason
                s.sources.append(nid)
                s.last_hash = chain
            case Session.Closed():
                s.sources.append(nid)
                s.last_hash = chain
                del self.sessions[s.id]
                self._finish_session(s, e, complete=True)

    def _approval_event(self, nid: int, e: DomainEvent, chain: str | None) -> None:
        aid = str(e.originator_id)
        if isinstance(e, Approval.Requested):
            self.approvals[aid] = _OpenApproval(request=e, id=aid, sources=[nid], last_hash=chain)
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
        self, s: _OpenSession, closed: Session.Closed | None, *, complete: bool
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

    def _emit_command(self, s: _OpenSession, c: _OpenCommand, *, complete: bool) -> None:
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
    a: _OpenApproval,
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


# ---------------------------------------------------------------------------- matching


def matches(f: ExportFilter, row: Any) -> bool:
    """Whether a finished row passes the filter (rules per kind in ``docs/EXPORTS.md``)."""
    match row:
        case SessionRow():
            decided = {"allow": row.allowed, "deny": row.denied, "review": row.reviewed}
            return (
                f.overlaps(row.started_at, row.ended_at)
                and (f.identity is None or row.subject == f.identity)
                and (f.group is None or f.group in row.groups)
                and (f.target is None or row.target == f.target)
                and (f.decision is None or decided[f.decision] > 0)
            )
        case CommandRow():
            return (
                f.in_window(row.received_at)
                and (f.identity is None or row.subject == f.identity)
                and (f.group is None or f.group in row.groups)
                and (f.target is None or row.target == f.target)
                and (f.decision is None or row.decision == f.decision)
            )
        case ApprovalRow():
            people = {row.subject, *row.approvers, row.decided_by}
            return (
                f.in_window(row.requested_at)
                and (f.identity is None or f.identity in people)
                and (f.group is None or f.group in row.groups)
                and (f.target is None or row.target == f.target)
                and (f.decision is None or row.status in _APPROVAL_OUTCOMES[f.decision])
            )
        case PolicyRow():
            return f.in_window(row.applied_at) and (f.identity is None or row.author == f.identity)
    raise TypeError(f"not an export row: {type(row).__name__}")


# What a --decision means for approvals: the outcome for the held command.
_APPROVAL_OUTCOMES: dict[str, frozenset[str]] = {
    "allow": frozenset({Approval.APPROVED}),
    "deny": frozenset({Approval.DENIED, Approval.EXPIRED, Approval.CANCELLED}),
    "review": frozenset(
        {Approval.PENDING, Approval.APPROVED, Approval.DENIED, Approval.EXPIRED, Approval.CANCELLED}
    ),
}


# ------------------------------------------------------------------------------ reading

Traced = tuple[int, DomainEvent, str | None]


def traced_pages(
    store: EventStore, *, after: int = 0, end: int | None = None, page: int = PAGE
) -> Iterator[list[Traced]]:
    """Pages of (notification id, event, chain hash hex) up to ``end`` (default: the head now).

    The chain table is walked beside the events, a page at a time; an event without a
    chain entry gets ``None`` (``wardgate audit verify`` reports it as inserted).
    """
    end = store.max_id() if end is None else end
    chain = store.recorder.chain_entries(after)
    try:
        entry = next(chain, None)
        while after < end:
            batch = store.read(after, page)
            if not batch:
                return
            out: list[Traced] = []
            for nid, event in batch:
                if nid > end:
                    break
                while entry is not None and entry.notification_id < nid:
                    entry = next(chain, None)
                digest = (
                    entry.hash.hex() if entry is not None and entry.notification_id == nid else None
                )
                out.append((nid, event, digest))
            if out:
                yield out
            after = batch[-1][0]
            if len(batch) < page:
                return
    finally:
        close = getattr(chain, "close", None)  # a generator: release its cursor now
        if close is not None:
            close()


# ------------------------------------------------------------------------------ writing


_FORMULA_START = frozenset("=+-@\t\r'")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def csv_cell(value: Any) -> str:
    """One CSV cell: empty for null, true/false, numbers as such, lists and objects as JSON.

    Text that a spreadsheet could run as a formula (first character ``= + - @``, tab or
    carriage return) gets a leading ``'``; so does text that already starts with ``'``, so
    that dropping the first character of any cell starting with ``'`` restores the value.
    """
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else _dumps(value)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


def csv_value(cell: str) -> str:
    """The text a ``csv_cell`` was made from (undoes the formula guard)."""
    return cell[1:] if cell.startswith("'") else cell


class RowWriter:
    """Writes row dicts as JSON Lines or CSV (RFC 4180: header, CRLF, quoted as needed)."""

    def __init__(self, out: TextIO, fmt: str, columns: Sequence[str]) -> None:
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        self.out, self.fmt, self.columns = out, fmt, tuple(columns)
        self._csv = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(self.columns)

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._csv is None:
            self.out.write("".join([_dumps(r) + "\n" for r in rows]))
        else:
            self._csv.writerows([[csv_cell(v) for v in r.values()] for r in rows])


# ------------------------------------------------------------------------------ driving


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    kind: str
    events_read: int
    rows: int
    incomplete: int
    last_id: int


Progress = Callable[[int, int], None]
"""Called after each page with (events read so far, events to read)."""


def export(
    store: EventStore,
    kind: str,
    out: TextIO,
    *,
    fmt: str = "jsonl",
    filt: ExportFilter | None = None,
    progress: Progress | None = None,
    page: int = PAGE,
) -> ExportSummary:
    """Stream one kind of export of the whole log (up to its head now) into ``out``."""
    f = filt or ExportFilter()
    f.check(kind)
    writer = RowWriter(out, fmt, SCHEMAS[kind])
    end = store.max_id()
    pending: list[dict[str, Any]] = []
    counts = {"rows": 0, "incomplete": 0}

    def keep(row: Any) -> None:
        if matches(f, row):
            pending.append(row_dict(row))
            counts["rows"] += 1
            counts["incomplete"] += 0 if getattr(row, "complete", True) else 1

    selector: _EventSelector | None = None
    assembler: RowAssembler | None = None
    feed: Callable[[int, DomainEvent, str | None], None]
    if kind == "events":
        selector = _EventSelector(f, pending)
        feed = selector.feed
    else:
        assembler = RowAssembler(
            on_session=keep if kind == "sessions" else None,
            on_command=keep if kind == "commands" else None,
            on_approval=keep if kind == "approvals" else None,
            on_policy=keep if kind == "policy" else None,
        )
        feed = assembler.feed
    read = 0
    for batch in traced_pages(store, end=end, page=page):
        for nid, event, digest in batch:
            feed(nid, event, digest)
        read += len(batch)
        writer.write(pending)
        pending.clear()
        if progress is not None:
            progress(read, end)
    if assembler is not None:
        assembler.flush()
        writer.write(pending)
    if selector is not None:
        counts["rows"] = selector.rows
    out.flush()
    return ExportSummary(
        kind=kind,
        events_read=read,
        rows=counts["rows"],
        incomplete=counts["incomplete"],
        last_id=end,
    )


def event_row(nid: int, e: DomainEvent, digest: str | None) -> dict[str, Any]:
    """One ``events`` row: the envelope, and the event's own fields under ``data``."""
    return {
        "notification_id": nid,
        "chain_hash": digest,
        "at": iso(e.at),
        "type": type(e).__qualname__,
        "originator_id": id_text(e),
        "originator_version": e.originator_version,
        "actor": e.actor,
        "data": {k: v for k, v in e.__dict__.items() if k not in _BASE},
    }


class _EventSelector:
    """The ``events`` export: one row per stored event that passes the filter.

    With ``--identity``, ``--group`` or ``--target`` an event is judged by the aggregate it
    belongs to (its session or approval), whose context a :class:`RowAssembler` keeps. A
    session's first events come before its identity is known: with ``--identity`` or
    ``--group`` they wait (one session's worth at most) and are written when it
    authenticates, or dropped when it is rejected or closes unauthenticated.
    """

    def __init__(self, f: ExportFilter, out: list[dict[str, Any]]) -> None:
        self.f, self.out = f, out
        self.rows = 0
        self.context = RowAssembler(keep_approvals=True) if f.needs_context else None

    def _emit(self, row: dict[str, Any]) -> None:
        self.out.append(row)
        self.rows += 1

    def _lookup(self, e: DomainEvent) -> _OpenSession | _OpenApproval | None:
        assert self.context is not None
        if isinstance(e, SessionControl.TerminationRequested):
            return self.context.sessions.get(e.session_id)
        oid = id_text(e)
        return self.context.sessions.get(oid) or self.context.approvals.get(oid)

    def _who(
        self, row: dict[str, Any], subject: str | None, groups: Sequence[str], target: str | None
    ) -> bool:
        f = self.f
        return (
            (f.identity is None or f.identity in (subject, row["actor"]))
            and (f.group is None or f.group in groups)
            and (f.target is None or f.target == target)
        )

    def feed(self, nid: int, event: DomainEvent, chain: str | None) -> None:
        e, digest, f = event, chain, self.f
        wanted = f.in_window(e.at) and (
            f.decision is None or (isinstance(e, Session.CommandDecided) and e.action == f.decision)
        )
        ctx = self.context
        if ctx is None:
            if wanted:
                self._emit(event_row(nid, e, digest))
            return
        owner = self._lookup(e)  # before feeding: a closing event removes its owner
        ctx.feed(nid, e, digest)
        owner = owner or self._lookup(e)
        row = event_row(nid, e, digest) if wanted else None
        if isinstance(owner, _OpenApproval):
            q = owner.request
            if row is not None and self._who(row, q.subject, q.groups, q.target):
                self._emit(row)
            return
        if not isinstance(owner, _OpenSession):
            if row is not None and self._who(row, None, (), None):
                self._emit(row)
            return
        known = owner.auth is not None or owner.rejected is not None
        if not known and (f.identity is not None or f.group is not None):
            if isinstance(e, Session.Closed):
                owner.deferred.clear()
            elif row is not None:
                owner.deferred.append(row)
            return
        subject, groups, target = owner.subject, owner.groups, owner.accepted.target
        if owner.deferred:
            for early in owner.deferred:
                if self._who(early, subject, groups, target):
                    self._emit(early)
            owner.deferred.clear()
        if row is not None and self._who(row, subject, groups, target):
            self._emit(row)
