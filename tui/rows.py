"""The console's immutable view of the world: what the data layer hands to screens.

Everything here is a frozen value built by :mod:`tui.data` from projections and stored
events; widgets only read them. Nothing here imports the event store, so screens and their
tests can build rows directly.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

# ------------------------------------------------------------------------------ identity


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """Who is at the console: the verified token's subject and groups."""

    subject: str
    groups: frozenset[str] = frozenset()
    expires_at: float | None = None
    """When the operator's token expires: the console refuses actions after that."""

    @property
    def display(self) -> str:
        groups = ", ".join(sorted(self.groups)) or "no groups"
        return f"{self.subject} ({groups})"


# -------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    id: str
    subject: str
    target: str
    protocol: str
    node: str
    peer: str
    started_at: float
    last_activity: float
    closed_at: float | None
    close_reason: str | None
    rejected: str | None
    commands: int
    denied: int
    held: int
    masked: int
    pending_approvals: int
    termination_requested_by: str | None = None

    @property
    def live(self) -> bool:
        return self.closed_at is None

    @property
    def state(self) -> str:
        if self.live:
            return "ending" if self.termination_requested_by else "live"
        return self.close_reason or "closed"

    def matches(self, text: str) -> bool:
        """Case-insensitive substring match on what an operator would type."""
        needle = text.strip().lower()
        if not needle:
            return True
        hay = " ".join((self.id, self.subject, self.target, self.protocol, self.node, self.state))
        return all(word in hay.lower() for word in needle.split())


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRow:
    id: str
    requested_at: float
    session_id: str
    subject: str
    target: str
    protocol: str
    command: str
    rule: str
    approver_groups: tuple[str, ...]
    quorum: int
    approvers: tuple[str, ...]
    expires_at: float
    status: str
    decided_by: str | None = None
    reason: str = ""
    refusal: str | None = None
    """Why the operator at this console may not decide it (the domain's words), or None."""

    @property
    def progress(self) -> str:
        return f"{len(self.approvers)}/{self.quorum}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRow:
    """One stored event, flattened for the audit and session-detail screens."""

    notification_id: int
    at: float
    kind: str
    aggregate: str
    originator_id: str
    version: int
    actor: str
    subject: str
    target: str
    decision: str
    summary: str
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyVersion:
    version: int
    author: str
    at: float
    digest: str
    diff_summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyState:
    version: int
    digest: str
    source: str
    author: str
    at: float | None
    history: tuple[PolicyVersion, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSnapshot:
    """Everything the live screens show, as of ``position`` in the event log."""

    position: int
    now: float
    live_sessions: tuple[SessionRow, ...]
    recent_sessions: tuple[SessionRow, ...]
    pending: tuple[ApprovalRow, ...]
    decided: tuple[ApprovalRow, ...]
    policy: PolicyState
    announced: tuple[ApprovalRow, ...] = ()
    """Approvals requested since the previous snapshot (the console rings for them)."""
    live_total: int = 0
    watched: SessionTail | None = None
    """The session the detail screen follows, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTail:
    """The last events of one session, for the detail screen."""

    session: SessionRow | None
    events: tuple[EventRow, ...]
    output: str
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    identity: str = ""
    target: str = ""
    kind: str = ""
    decision: str = ""
    since: float | None = None
    until: float | None = None

    def accepts(self, row: EventRow) -> bool:
        if self.identity and self.identity.lower() not in (row.subject + " " + row.actor).lower():
            return False
        if self.target and self.target.lower() not in row.target.lower():
            return False
        if self.kind and self.kind.lower() not in row.kind.lower():
            return False
        if self.decision and self.decision.lower() != row.decision.lower():
            return False
        if self.since is not None and row.at < self.since:
            return False
        return not (self.until is not None and row.at >= self.until)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditPage:
    rows: tuple[EventRow, ...]
    before: int
    """The page holds matching events with notification id below this."""
    next_before: int
    """Where the next (older) page starts; 0 when the log's start was reached."""
    scanned: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    """What an operator action did, in a sentence, and the events it stored."""

    message: str
    notification_ids: tuple[int, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------------------- formatting

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` in seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (try 90s, 30m, 2h)")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def format_span(seconds: float) -> str:
    """A short human span: 42s, 5m10s, 3h04m, 2d03h (negative spans read as 0s)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(at: float) -> str:
    """``HH:MM:SS`` in UTC (the console shows UTC everywhere, like the log)."""
    return time.strftime("%H:%M:%S", time.gmtime(at))


def date_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def parse_time(text: str) -> float:
    """``2026-09-21T10:00[:00]`` / ``2026-09-21 10:00`` / ``2026-09-21`` (UTC) in POSIX seconds."""
    value = text.strip().replace("T", " ")
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(value, layout)))
        except ValueError:
            continue
    raise ValueError(f"not a time: {text!r} (use 2026-09-21T10:00, UTC)")


_FILTER_KEYS = ("identity", "target", "kind", "decision", "since", "until")


def parse_audit_filter(text: str, *, now: float) -> AuditFilter:
    """``identity:alice target:shop kind:Command decision:deny since:2h until:2026-09-21``.

    A bare word filters by identity; ``since``/``until`` take a UTC time or a span back from
    ``now`` (``since:2h``). Raises ValueError naming the bad token.
    """
    values: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if not sep:
            key, value = "identity", token
        key = key.lower()
        if key not in _FILTER_KEYS or not value:
            raise ValueError(f"unknown filter {token!r}; use {', '.join(_FILTER_KEYS)}")
        values[key] = value
    bounds: dict[str, float] = {}
    for key in ("since", "until"):
        if key in values:
            raw = values.pop(key)
            try:
                bounds[key] = now - parse_duration(raw)
            except ValueError:
                bounds[key] = parse_time(raw)
    return AuditFilter(
        identity=values.get("identity", ""),
        target=values.get("target", ""),
        kind=values.get("kind", ""),
        decision=values.get("decision", ""),
        since=bounds.get("since"),
        until=bounds.get("until"),
    )
