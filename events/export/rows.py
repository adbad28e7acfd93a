"""Export rows: their schemas, the filters that select them, and how times are written."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from events.domain import Approval

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
ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "at", "actor"})


_SECONDS: dict[int, str] = {}


def iso(at: float) -> str:
    """UTC ISO 8601 with microseconds and a ``Z``: what every time in an export looks like."""
    whole, micros = divmod(round(at * 1_000_000), 1_000_000)
    base = _SECONDS.get(whole)
    if base is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECONDS[whole] = base
    return f"{base}.{micros:06d}Z"


def row_dict(row: Any) -> dict[str, Any]:
    """A row as the export writes it: schema order, times as ISO text."""
    out: dict[str, Any] = {}
    for name in SCHEMAS[_KIND_OF[type(row)]]:
        value = getattr(row, name)
        out[name] = iso(value) if name in TIME_FIELDS and value is not None else value
    return out


_KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in ROW_TYPES.items()}


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
