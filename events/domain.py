"""Domain events and aggregates, in the explicit style.

Theory of operation
-------------------
Every fact wardgate records is a frozen, past-tense event. Events carry the aggregate they
belong to (``originator_id``, ``originator_version``), the acting identity (``actor``: the
token's subject, or ``gateway:<node>`` for what the gateway does on its own) and a UTC
time (``at``, POSIX seconds). They hold only JSON-native values and never a secret: no
token, no password, no unmasked response data.

Aggregates are plain classes. *Commands* (methods such as :meth:`Approval.approve`) check
the current state and return new events without changing anything; :meth:`Aggregate.apply`
is the pure fold that moves the state on. Replaying history therefore never re-runs a
guard, and a command can be validated, stored and only then applied. Optimistic
concurrency comes from the store: two events with the same ``(originator_id,
originator_version)`` cannot both be stored, so of two operators deciding the same approval
at once exactly one wins.

Event classes are not slotted: the eventsourcing mapper rebuilds them through ``__dict__``.
Their topics (``events.domain:Session.Closed``) are stored with each event, so classes here
are never renamed or moved without an alias.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

JSON = Any
"""A JSON-native value: str, int, float, bool, None, list or dict of those."""

NAMESPACE = uuid.UUID("6f1d2a8e-4b7c-5d3e-9f10-7a6b5c4d3e2f")
POLICY_ID = uuid.uuid5(NAMESPACE, "policy")


class DomainError(Exception):
    """A command was refused by an aggregate's rules (the message says which)."""


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    originator_id: uuid.UUID
    originator_version: int
    at: float
    actor: str


E = TypeVar("E", bound=DomainEvent)
_Builder = Callable[[dict[str, Any]], Any]
_BUILDERS: dict[type, _Builder] = {}


def build_event(cls: type[E], fields: dict[str, Any]) -> E:
    """``cls(**fields)`` without the frozen dataclass ``__init__`` (one ``object.__setattr__``
    per field: the largest single cost of building the gateway's events per command).

    Same result: every field set, defaults filled (factories called), unknown or missing
    fields rejected by falling back to the real constructor, which raises."""
    builder = _BUILDERS.get(cls)
    if builder is None:
        builder = _BUILDERS[cls] = _builder(cls)
    event: E = builder(fields)
    return event


def _builder(cls: type[E]) -> _Builder:
    names = frozenset(f.name for f in dataclasses.fields(cls))
    defaults = {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }
    factories = [
        (f.name, f.default_factory)
        for f in dataclasses.fields(cls)
        if f.default_factory is not dataclasses.MISSING
    ]
    required = names - defaults.keys() - {name for name, _ in factories}
    new = object.__new__
    setattr_ = object.__setattr__

    def build(fields: dict[str, Any]) -> Any:
        keys = fields.keys()
        if not (required <= keys <= names):
            return cls(**fields)  # raises the usual TypeError
        state = dict(defaults)
        for name, factory in factories:
            if name not in fields:
                state[name] = factory()
        state.update(fields)
        event = new(cls)
        setattr_(event, "__dict__", state)
        return event

    return build


class Aggregate:
    """Base of the aggregates: an id, a version, and the fold over events."""

    def __init__(self, id: uuid.UUID) -> None:
        self.id = id
        self.version = 0

    def apply(self, event: DomainEvent) -> None:
        if event.originator_version != self.version + 1:
            raise DomainError(
                f"event version {event.originator_version} does not follow {self.version}"
            )
        self._apply(event)
        self.version = event.originator_version

    def _apply(self, event: DomainEvent) -> None:
        raise DomainError(f"{type(self).__name__} cannot apply {type(event).__name__}")

    @classmethod
    def project(cls, id: uuid.UUID, events: Iterable[DomainEvent]) -> Self:
        aggregate = cls(id)
        for event in events:
            aggregate.apply(event)
        return aggregate

    def _next(self) -> dict[str, Any]:
        return {"originator_id": self.id, "originator_version": self.version + 1}


# --------------------------------------------------------------------------------- Session


class Session(Aggregate):
    """One accepted connection, owned by the gateway task that serves it."""

    @dataclass(frozen=True, kw_only=True)
    class ConnectionAccepted(DomainEvent):
        node: str
        protocol: str
        target: str
        listener: str
        peer: str

    @dataclass(frozen=True, kw_only=True)
    class Authenticated(DomainEvent):
        subject: str
        groups: list[str]
        issuer: str
        token_id: str
        expires_at: float
        client_user: str

    @dataclass(frozen=True, kw_only=True)
    class AuthenticationRejected(DomainEvent):
        reason: str
        message: str
        client_user: str

    @dataclass(frozen=True, kw_only=True)
    class CommandReceived(DomainEvent):
        seq: int
        kind: str
        text: str
        params: list[JSON] | None = None

    @dataclass(frozen=True, kw_only=True)
    class CommandDecided(DomainEvent):
        seq: int
        action: str
        rule: str
        reason: str
        statement_kinds: list[str] = field(default_factory=list)
        tables: list[str] = field(default_factory=list)
        approval_id: str | None = None
        masking_profile: str | None = None

    @dataclass(frozen=True, kw_only=True)
    class CommandForwarded(DomainEvent):
        seq: int
        approved_by: list[str] = field(default_factory=list)

    @dataclass(frozen=True, kw_only=True)
    class ResponseRecorded(DomainEvent):
        seq: int
        ok: bool
        rows: int = 0
        affected_rows: int = 0
        error_code: int | None = None
        error_message: str | None = None
        duration_ms: float = 0.0
        masked: dict[str, int] = field(default_factory=dict)
        transcript: JSON = None
        truncated: bool = False

    @dataclass(frozen=True, kw_only=True)
    class OutputRecorded(DomainEvent):
        stream: str
        offset_ms: int
        data: str
        masked: dict[str, int] = field(default_factory=dict)
        # How ``data`` maps back to the bytes the agent saw (events.recording.chunk_bytes):
        # "utf-8" (the text is the bytes decoded) or "latin-1" (one character per byte).
        encoding: str = "utf-8"
        # Timing inside the chunk: [byte offset in the chunk, ms after offset_ms] pairs.
        marks: list[list[int]] = field(default_factory=list)

    @dataclass(frozen=True, kw_only=True)
    class TerminalResized(DomainEvent):
        """The terminal (PTY) size from ``offset_ms`` on; the first one gives the initial size."""

        offset_ms: int
        columns: int
        lines: int

    @dataclass(frozen=True, kw_only=True)
    class Closed(DomainEvent):
        reason: str
        detail: str = ""

    CLOSE_REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "client_quit",
            "token_expired",
            "killed",
            "error",
            "auth_failed",
            "upstream_error",
            "shutdown",
            "aborted",
        }
    )

    def __init__(self, id: uuid.UUID) -> None:
        super().__init__(id)
        self.protocol = ""
        self.target = ""
        self.node = ""
        self.subject: str | None = None
        self.commands = 0
        self.closed_reason: str | None = None

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case Session.ConnectionAccepted():
                self.protocol, self.target, self.node = event.protocol, event.target, event.node
            case Session.Authenticated():
                self.subject = event.subject
            case Session.CommandReceived():
                self.commands += 1
            case Session.Closed():
                self.closed_reason = event.reason
            case (
                Session.AuthenticationRejected()
                | Session.CommandDecided()
                | Session.CommandForwarded()
                | Session.ResponseRecorded()
                | Session.OutputRecorded()
                | Session.TerminalResized()
            ):
                pass
            case _:
                super()._apply(event)

    def close(self, *, reason: str, detail: str, actor: str, at: float) -> Session.Closed:
        if self.closed_reason is not None:
            raise DomainError(f"session {self.id} is already closed ({self.closed_reason})")
        if reason not in self.CLOSE_REASONS:
            raise DomainError(f"unknown close reason {reason!r}")
        return Session.Closed(**self._next(), at=at, actor=actor, reason=reason, detail=detail)


class SessionControl(Aggregate):
    """Operator requests about a session (ending it), kept apart from the session itself.

    The gateway task owns the ``Session`` stream and its versions; an operator writing there
    would race it. Requests go to this aggregate (id derived from the session id) instead.
    """

    @dataclass(frozen=True, kw_only=True)
    class TerminationRequested(DomainEvent):
        session_id: str
        reason: str

    @staticmethod
    def id_for(session_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"control:{session_id}")

    def __init__(self, id: uuid.UUID) -> None:
        super().__init__(id)
        self.requests = 0

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, SessionControl.TerminationRequested):
            self.requests += 1
        else:
            super()._apply(event)

    def request_termination(
        self, *, session_id: uuid.UUID, reason: str, actor: str, at: float
    ) -> SessionControl.TerminationRequested:
        if not reason.strip():
            raise DomainError("a reason is required to end a session")
        return SessionControl.TerminationRequested(
            **self._next(), at=at, actor=actor, session_id=str(session_id), reason=reason
        )


# ------------------------------------------------------------------------------- Recording


class RecordingIndex(Aggregate):
    """The seek index of a session's recording: where its chunks and keyframes are.

    Kept apart from the ``Session`` stream so that opening an hour-long recording reads a few
    hundred small events instead of every output chunk; written by the gateway's
    ``SessionRecorder`` (the only writer while the session runs). See docs/RECORDING.md.
    """

    @dataclass(frozen=True, kw_only=True)
    class Started(DomainEvent):
        session_id: str
        started_at: float
        pty: bool
        columns: int
        lines: int

    @dataclass(frozen=True, kw_only=True)
    class ChunksIndexed(DomainEvent):
        """Session events that carry output: [session version, stream, offset_ms, end_ms,
        length in bytes] each (``stream`` is "resize" for a TerminalResized, length 0); and
        keyframes stored since the last index: [keyframe version, after_version, offset_ms,
        position, within] each (``within`` absent in older indexes: 0)."""

        entries: list[list[JSON]]
        keyframes: list[list[int]] = field(default_factory=list)

    @staticmethod
    def id_for(session_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"recording:{session_id}")

    def __init__(self, id: uuid.UUID) -> None:
        super().__init__(id)
        self.chunks = 0

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case RecordingIndex.ChunksIndexed():
                self.chunks += len(event.entries)
            case RecordingIndex.Started():
                pass
            case _:
                super()._apply(event)


class RecordingKeyframes(Aggregate):
    """Screen keyframes of a terminal recording (a stream apart: they are big, read one by one)."""

    @dataclass(frozen=True, kw_only=True)
    class ScreenKeyframe(DomainEvent):
        """The emulated screen right after session version ``after_version`` (ground state),
        or after its first ``within`` bytes (0: all of them); ``offset_ms`` is the recorded
        time of the last byte shown, ``position`` counts the terminal bytes up to there."""

        after_version: int
        offset_ms: int
        position: int
        screen: dict[str, JSON]
        within: int = 0

    @staticmethod
    def id_for(session_id: uuid.UUID) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"keyframes:{session_id}")

    def __init__(self, id: uuid.UUID) -> None:
        super().__init__(id)
        self.keyframes = 0

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, RecordingKeyframes.ScreenKeyframe):
            self.keyframes += 1
        else:
            super()._apply(event)


# -------------------------------------------------------------------------------- Approval


class Approval(Aggregate):
    """A held command waiting for humans: requested, then approved, denied, expired or cancelled."""

    @dataclass(frozen=True, kw_only=True)
    class Requested(DomainEvent):
        session_id: str
        command_seq: int
        subject: str
        groups: list[str]
        target: str
        protocol: str
        command: str
        normalized: str
        rule: str
        approver_groups: list[str]
        quorum: int
        expires_at: float
        node: str

    @dataclass(frozen=True, kw_only=True)
    class Approved(DomainEvent):
        reason: str = ""
        window_seconds: float | None = None

    @dataclass(frozen=True, kw_only=True)
    class Denied(DomainEvent):
        reason: str

    @dataclass(frozen=True, kw_only=True)
    class Expired(DomainEvent):
        pass

    @dataclass(frozen=True, kw_only=True)
    class Cancelled(DomainEvent):
        reason: str

    @dataclass(frozen=True, kw_only=True)
    class Used(DomainEvent):
        """The approved command ran (once): in the session that held it, or on a retry."""

        session_id: str
        command_seq: int

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    def __init__(self, id: uuid.UUID) -> None:
        super().__init__(id)
        self.status = ""
        self.request: Approval.Requested | None = None
        self.approvers: list[str] = []
        self.window_seconds: float | None = None
        self.decided_by: str | None = None
        self.reason = ""
        self.used_by: tuple[str, int] | None = None

    def _apply(self, event: DomainEvent) -> None:
        match event:
            case Approval.Requested():
                self.request, self.status = event, Approval.PENDING
            case Approval.Approved():
                self.approvers.append(event.actor)
                if event.window_seconds is not None:
                    self.window_seconds = max(self.window_seconds or 0.0, event.window_seconds)
                assert self.request is not None
                if len(self.approvers) >= self.request.quorum:
                    self.status, self.decided_by = Approval.APPROVED, event.actor
                    self.reason = event.reason
            case Approval.Denied():
                self.status, self.decided_by, self.reason = (
                    Approval.DENIED,
                    event.actor,
                    event.reason,
                )
            case Approval.Expired():
                self.status = Approval.EXPIRED
            case Approval.Cancelled():
                self.status, self.reason = Approval.CANCELLED, event.reason
            case Approval.Used():
                self.used_by = (event.session_id, event.command_seq)
            case _:
                super()._apply(event)

    @classmethod
    def request_new(
        cls,
        *,
        approval_id: uuid.UUID,
        at: float,
        actor: str,
        session_id: uuid.UUID,
        command_seq: int,
        subject: str,
        groups: Sequence[str],
        target: str,
        protocol: str,
        command: str,
        normalized: str,
        rule: str,
        approver_groups: Sequence[str],
        quorum: int,
        expires_at: float,
        node: str,
    ) -> Approval.Requested:
        if quorum < 1:
            raise DomainError("an approval needs a quorum of at least 1")
        if not approver_groups:
            raise DomainError("an approval needs at least one approver group")
        return Approval.Requested(
            originator_id=approval_id,
            originator_version=1,
            at=at,
            actor=actor,
            session_id=str(session_id),
            command_seq=command_seq,
            subject=subject,
            groups=sorted(groups),
            target=target,
            protocol=protocol,
            command=command,
            normalized=normalized,
            rule=rule,
            approver_groups=sorted(approver_groups),
            quorum=quorum,
            expires_at=expires_at,
            node=node,
        )

    def _check_decider(self, subject: str, groups: Iterable[str], now: float) -> Requested:
        request = self.request
        if request is None:
            raise DomainError(f"approval {self.id} does not exist")
        if self.status != Approval.PENDING:
            who = f" by {self.decided_by}" if self.decided_by else ""
            raise DomainError(f"approval {short_id(self.id)} is already {self.status}{who}")
        if now >= request.expires_at:
            raise DomainError(f"approval {short_id(self.id)} has expired")
        if subject == request.subject:
            raise DomainError("the requester cannot decide their own command")
        if not set(groups) & set(request.approver_groups):
            raise DomainError(
                f"{subject} is not in an approver group ({', '.join(request.approver_groups)})"
            )
        return request

    def approve(
        self,
        *,
        subject: str,
        groups: Iterable[str],
        reason: str,
        window_seconds: float | None,
        now: float,
    ) -> Approval.Approved:
        self._check_decider(subject, groups, now)
        if subject in self.approvers:
            raise DomainError(f"{subject} has already approved {short_id(self.id)}")
        if window_seconds is not None and window_seconds <= 0:
            raise DomainError("an approval window must be positive")
        return Approval.Approved(
            **self._next(), at=now, actor=subject, reason=reason, window_seconds=window_seconds
        )

    def deny(
        self, *, subject: str, groups: Iterable[str], reason: str, now: float
    ) -> Approval.Denied:
        if not reason.strip():
            raise DomainError("a reason is required to deny")
        self._check_decider(subject, groups, now)
        return Approval.Denied(**self._next(), at=now, actor=subject, reason=reason)

    def expire(self, *, now: float, actor: str) -> Approval.Expired:
        if self.status != Approval.PENDING or self.request is None:
            raise DomainError(f"approval {short_id(self.id)} is not pending")
        if now < self.request.expires_at:
            raise DomainError(f"approval {short_id(self.id)} has not expired yet")
        return Approval.Expired(**self._next(), at=now, actor=actor)

    def use(
        self, *, session_id: uuid.UUID, command_seq: int, now: float, actor: str
    ) -> Approval.Used:
        """Consume an approval that is not a window: it runs one command, once."""
        if self.status != Approval.APPROVED:
            raise DomainError(f"approval {short_id(self.id)} is {self.status}, not approved")
        if self.used_by is not None and not self.window_seconds:
            raise DomainError(f"approval {short_id(self.id)} was already used")
        return Approval.Used(
            **self._next(), at=now, actor=actor, session_id=str(session_id), command_seq=command_seq
        )

    def cancel(self, *, reason: str, now: float, actor: str) -> Approval.Cancelled:
        if self.status != Approval.PENDING:
            raise DomainError(f"approval {short_id(self.id)} is not pending")
        return Approval.Cancelled(**self._next(), at=now, actor=actor, reason=reason)


# ---------------------------------------------------------------------------------- Policy


class Policy(Aggregate):
    """The one policy stream: each applied change with its author, source and diff."""

    @dataclass(frozen=True, kw_only=True)
    class Applied(DomainEvent):
        source: str
        document: dict[str, JSON]
        diff: dict[str, JSON]
        digest: str

    def __init__(self, id: uuid.UUID = POLICY_ID) -> None:
        super().__init__(id)
        self.document: dict[str, JSON] | None = None
        self.digest = ""

    def _apply(self, event: DomainEvent) -> None:
        if isinstance(event, Policy.Applied):
            self.document, self.digest = event.document, event.digest
        else:
            super()._apply(event)

    def apply_change(
        self,
        *,
        source: str,
        document: dict[str, JSON],
        diff: dict[str, JSON],
        digest: str,
        actor: str,
        at: float,
    ) -> Policy.Applied:
        if digest == self.digest:
            raise DomainError("the policy is unchanged")
        return Policy.Applied(
            **self._next(),
            at=at,
            actor=actor,
            source=source,
            document=document,
            diff=diff,
            digest=digest,
        )


def short_id(value: uuid.UUID | str) -> str:
    """The first 8 hex digits: what operators type and read."""
    return str(value).replace("-", "")[:8]


AGGREGATES: tuple[type[Aggregate], ...] = (
    Session,
    SessionControl,
    Approval,
    Policy,
    RecordingIndex,
    RecordingKeyframes,
)
