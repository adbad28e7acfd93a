"""Reports over the log: the compliance summary per identity and target, and one session.

Both are folds of the same rows the exports write (:class:`events.export.RowAssembler`), so
a number in a report can always be traced to exported rows and from there to stored events.

Counting rules for :func:`build_report` (window ``[since, until)``):

* sessions: those whose lifetime overlaps the window; their masking counts (responses and
  terminal output) are the report's masking counts;
* commands, decisions: commands received in the window;
* approvals: approvals requested in the window; "approved" means approved by quorum, and the
  median time to approve is taken over those, from request to the deciding approval.

Rows are keyed by the session's subject (``(unauthenticated)`` for sessions that never
authenticated) and by target.
"""

from __future__ import annotations

import re
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.utils import get_topic

from events.domain import Approval, DomainEvent, Session, SessionControl
from events.export import (
    ApprovalRow,
    CommandRow,
    ExportError,
    ExportFilter,
    Progress,
    RowAssembler,
    SessionRow,
    Traced,
    matches,
    traced_pages,
)
from events.recorders import ChainedSQLiteRecorder
from events.store import EventStore

UNAUTHENTICATED = "(unauthenticated)"

# ------------------------------------------------------------------------------ report


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLine:
    key: str
    sessions: int
    commands: int
    allowed: int
    denied: int
    reviewed: int
    approvals: int
    approved: int
    refused: int
    median_approve_s: float | None
    masked: int
    masked_by_kind: dict[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    since: float | None
    until: float | None
    events_read: int
    last_id: int
    by_identity: tuple[ReportLine, ...]
    by_target: tuple[ReportLine, ...]
    total: ReportLine


@dataclass(slots=True)
class _Tally:
    sessions: int = 0
    commands: int = 0
    allowed: int = 0
    denied: int = 0
    reviewed: int = 0
    approvals: int = 0
    approved: int = 0
    refused: int = 0
    waits: list[float] = field(default_factory=list)
    masked: dict[str, int] = field(default_factory=dict)

    def line(self, key: str) -> ReportLine:
        return ReportLine(
            key=key,
            sessions=self.sessions,
            commands=self.commands,
            allowed=self.allowed,
            denied=self.denied,
            reviewed=self.reviewed,
            approvals=self.approvals,
            approved=self.approved,
            refused=self.refused,
            median_approve_s=round(statistics.median(self.waits), 3) if self.waits else None,
            masked=sum(self.masked.values()),
            masked_by_kind=dict(sorted(self.masked.items())),
        )


class _Tallies:
    def __init__(self) -> None:
        self.by_identity: dict[str, _Tally] = {}
        self.by_target: dict[str, _Tally] = {}
        self.total = _Tally()

    def each(self, identity: str | None, target: str) -> tuple[_Tally, _Tally, _Tally]:
        who = identity or UNAUTHENTICATED
        i = self.by_identity.get(who) or self.by_identity.setdefault(who, _Tally())
        t = self.by_target.get(target) or self.by_target.setdefault(target, _Tally())
        return i, t, self.total

    def session(self, row: SessionRow) -> None:
        for t in self.each(row.subject, row.target):
            t.sessions += 1
            for kind, n in row.masked.items():
                t.masked[kind] = t.masked.get(kind, 0) + n

    def command(self, row: CommandRow) -> None:
        for t in self.each(row.subject, row.target):
            t.commands += 1
            if row.decision == "allow":
                t.allowed += 1
            elif row.decision == "deny":
                t.denied += 1
            elif row.decision == "review":
                t.reviewed += 1

    def approval(self, row: ApprovalRow) -> None:
        for t in self.each(row.subject, row.target):
            t.approvals += 1
            if row.status == Approval.APPROVED:
                t.approved += 1
                if row.wait_s is not None:
                    t.waits.append(row.wait_s)
            elif row.status != Approval.PENDING:
                t.refused += 1


def build_report(
    store: EventStore,
    *,
    since: float | None = None,
    until: float | None = None,
    progress: Progress | None = None,
) -> Report:
    """One streaming pass over the log; memory holds open items and the per-key tallies."""
    window = ExportFilter(since=since, until=until)
    window.check("sessions")
    tallies = _Tallies()

    def counted(accept: Callable[[Any], None]) -> Callable[[Any], None]:
        # The window means for each row what it means in the exports (``matches``).
        def sink(row: Any) -> None:
            if matches(window, row):
                accept(row)

        return sink

    assembler = RowAssembler(
        on_session=counted(tallies.session),
        on_command=counted(tallies.command),
        on_approval=counted(tallies.approval),
    )
    end = store.max_id()
    read = 0
    for page in traced_pages(store, end=end):
        for nid, event, digest in page:
            assembler.feed(nid, event, digest)
        read += len(page)
        if progress is not None:
            progress(read, end)
    assembler.flush()
    return Report(
        since=since,
        until=until,
        events_read=read,
        last_id=end,
        by_identity=tuple(t.line(k) for k, t in sorted(tallies.by_identity.items())),
        by_target=tuple(t.line(k) for k, t in sorted(tallies.by_target.items())),
        total=tallies.total.line("total"),
    )


# ----------------------------------------------------------------------- one session


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDetail:
    session: SessionRow
    commands: tuple[CommandRow, ...]
    approvals: tuple[ApprovalRow, ...]
    events: int


_HEX = re.compile(r"^[0-9a-f]{1,32}$")


def find_sessions(store: EventStore, prefix: str, *, limit: int = 10) -> list[str]:
    """Ids of sessions whose id (with or without dashes) starts with ``prefix``."""
    p = prefix.strip().lower().replace("-", "")
    if not _HEX.match(p):
        raise ExportError(f"not a session id or prefix: {prefix!r}")
    topic = get_topic(Session.ConnectionAccepted)
    r = store.recorder
    if isinstance(r, ChainedSQLiteRecorder):
        rows = r.query(
            "SELECT DISTINCT originator_id FROM stored_events "
            "WHERE topic = ? AND originator_id LIKE ? ORDER BY originator_id LIMIT ?",
            (topic, p + "%", limit),
        )
    else:
        from psycopg.sql import SQL  # noqa: PLC0415

        rows = r.query(
            SQL(
                "SELECT DISTINCT originator_id::text FROM {0} WHERE topic = %s "
                "AND replace(originator_id::text, '-', '') LIKE %s "
                "ORDER BY 1 LIMIT %s"
            ).format(r.events_table),
            (topic, p + "%", limit),
        )
    return [str(uuid.UUID(str(row[0]))) for row in rows]


def _traced_aggregate(store: EventStore, oid: uuid.UUID) -> list[Traced]:
    """One aggregate's events with their notification ids and chain hashes."""
    r = store.recorder
    if isinstance(r, ChainedSQLiteRecorder):
        ids = r.query(
            "SELECT e.rowid, c.hash FROM stored_events e LEFT JOIN wardgate_chain c "
            "ON c.notification_id = e.rowid WHERE e.originator_id = ? "
            "ORDER BY e.originator_version",
            (oid.hex,),
        )
    else:
        from psycopg.sql import SQL  # noqa: PLC0415

        ids = r.query(
            SQL(
                "SELECT e.notification_id, c.hash FROM {0} e LEFT JOIN {1} c "
                "ON c.notification_id = e.notification_id WHERE e.originator_id = %s "
                "ORDER BY e.originator_version"
            ).format(r.events_table, r.chain_table),
            (oid,),
        )
    events = store.events_of(oid)
    return [
        (int(nid), event, bytes(digest).hex() if digest is not None else None)
        for (nid, digest), event in zip(ids, events, strict=True)
    ]


def session_detail(store: EventStore, session_id: str) -> SessionDetail | None:
    """A session with its commands and approvals, folded as the exports fold them."""
    sid = uuid.UUID(session_id)
    traced = _traced_aggregate(store, sid)
    if not traced:
        return None
    approval_ids = {
        e.approval_id
        for _, e, _ in traced
        if isinstance(e, Session.CommandDecided) and e.approval_id is not None
    }
    for aid in sorted(approval_ids):
        traced += _traced_aggregate(store, uuid.UUID(aid))
    traced += _traced_aggregate(store, SessionControl.id_for(sid))
    traced.sort(key=lambda t: t[0])
    sessions: list[SessionRow] = []
    commands: list[CommandRow] = []
    approvals: list[ApprovalRow] = []
    assembler = RowAssembler(
        on_session=sessions.append, on_command=commands.append, on_approval=approvals.append
    )
    for nid, event, digest in traced:
        assembler.feed(nid, event, digest)
    assembler.flush()
    if not sessions:
        return None  # events of a session whose start is missing
    return SessionDetail(
        session=sessions[0],
        commands=tuple(sorted(commands, key=lambda c: c.seq)),
        approvals=tuple(approvals),
        events=sum(1 for _, e, _ in traced if _is_session_event(e)),
    )


def _is_session_event(e: DomainEvent) -> bool:
    return type(e).__qualname__.startswith("Session.")
