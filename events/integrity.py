"""Hash chaining of the stored event log, and its verification.

Theory of operation
-------------------
Every stored event gets a chain entry, written in the same transaction as the event:

    hash[n] = H(hash[prev] || n || originator_id || version || topic || stored state)

where ``n`` is the event's notification id (its position in the application sequence),
``prev`` the stored event before it, and ``H`` SHA-256, or HMAC-SHA-256 when an integrity
key is configured. The hash covers the bytes exactly as stored (compressed, and encrypted
when encryption is on), so an auditor can verify without the cipher key.

Inserts are serialized by the store (SQLite has one writer; eventsourcing's PostgreSQL
recorder takes a table lock per insert), so one chain covers all writers and all nodes.

``verify`` walks the events and the chain side by side in notification order and stops at
the first problem: a modified event (its hash differs), a deleted event (a chain entry with
no event), an inserted event (an event with no chain entry, or whose hash does not follow),
or a reordered pair (hashes no longer follow). Without a key, someone who can write to the
database could rebuild the whole chain after tampering; the key prevents that, and so does
recording the head hash elsewhere: ``verify(since=HEAD)`` proves nothing up to a recorded
head changed, and fails when that head is gone.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator
from dataclasses import dataclass

GENESIS = hashlib.sha256(b"wardgate event chain v1").digest()
U64 = _U64 = struct.Struct(">Q")
"""How the chain encodes numbers and lengths (big-endian, 8 bytes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RawEvent:
    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    notification_id: int
    hash: bytes


def link(prev: bytes, event: RawEvent, key: bytes | None) -> bytes:
    """The chain hash of ``event`` following ``prev`` (the writers build the same message
    from cached parts: ``events.recorders._chain``)."""
    oid = event.originator_id.encode()
    topic = event.topic.encode()
    message = b"".join(
        (
            prev,
            _U64.pack(event.notification_id),
            _U64.pack(len(oid)),
            oid,
            _U64.pack(event.originator_version),
            _U64.pack(len(topic)),
            topic,
            _U64.pack(len(event.state)),
            event.state,
        )
    )
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).digest()
    return hashlib.sha256(message).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    kind: str  # modified | deleted | inserted | broken | missing-head
    notification_id: int
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    ok: bool
    checked: int
    first_id: int | None
    last_id: int | None
    head: str
    problem: Problem | None

    def render(self) -> str:
        if self.problem is not None:
            p = self.problem
            return f"FAILED at event #{p.notification_id}: {p.kind}: {p.detail}"
        if self.checked == 0:
            return f"OK: no events to verify; head {self.head}"
        return (
            f"OK: verified {self.checked} events (#{self.first_id}..#{self.last_id}); "
            f"head {self.head}"
        )


def verify(
    pairs: Iterator[tuple[RawEvent | None, ChainEntry | None]],
    *,
    key: bytes | None,
    since: bytes | None = None,
) -> VerifyReport:
    """Verify ``pairs`` (events and chain entries merged by notification id, in order).

    With ``since``, verification starts after the chain entry whose hash is ``since``;
    everything before it is taken as recorded.
    """
    prev = GENESIS
    checked = 0
    first: int | None = None
    last: int | None = None
    waiting_for_head = since is not None

    def report(problem: Problem | None) -> VerifyReport:
        return VerifyReport(
            ok=problem is None,
            checked=checked,
            first_id=first,
            last_id=last,
            head=prev.hex(),
            problem=problem,
        )

    for event, entry in pairs:
        nid = event.notification_id if event is not None else entry.notification_id  # type: ignore[union-attr]
        if waiting_for_head:
            if entry is not None and entry.hash == since:
                waiting_for_head = False
                prev = entry.hash
            continue
        if event is None:
            return report(
                Problem(kind="deleted", notification_id=nid, detail="chain entry without event")
            )
        if entry is None:
            return report(
                Problem(kind="inserted", notification_id=nid, detail="event without chain entry")
            )
        expected = link(prev, event, key)
        if not hmac.compare_digest(expected, entry.hash):
            detail = (
                "stored event does not match its chain hash "
                "(modified, reordered, or an event before it was removed or inserted)"
            )
            return report(Problem(kind="modified", notification_id=nid, detail=detail))
        prev = entry.hash
        checked += 1
        first = nid if first is None else first
        last = nid
    if waiting_for_head:
        return report(
            Problem(
                kind="missing-head",
                notification_id=0,
                detail="the recorded head hash is not in the chain: "
                "the log up to it was changed or truncated",
            )
        )
    return report(None)


def merge_by_id(
    events: Iterator[RawEvent], entries: Iterator[ChainEntry]
) -> Iterator[tuple[RawEvent | None, ChainEntry | None]]:
    """Merge two id-ordered streams into pairs, ``None`` where one side has no row."""
    event = next(events, None)
    entry = next(entries, None)
    while event is not None or entry is not None:
        if entry is None or (event is not None and event.notification_id < entry.notification_id):
            yield event, None
            event = next(events, None)
        elif event is None or entry.notification_id < event.notification_id:
            yield None, entry
            entry = next(entries, None)
        else:
            yield event, entry
            event, entry = next(events, None), next(entries, None)
