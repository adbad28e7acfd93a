"""Building a session's events: the owning task numbers them, stamps time and actor."""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeVar

from events.domain import DomainEvent, build_event

E = TypeVar("E", bound=DomainEvent)


class SessionLog:
    """The event stream of one session, owned by the task that serves the connection.

    Only the owner appends to a ``Session`` aggregate, so versions are counted here and
    never conflict; operator requests about the session go to ``SessionControl``.
    """

    def __init__(self, *, node: str, session_id: uuid.UUID | None = None) -> None:
        self.id = session_id or uuid.uuid4()
        self.version = 0
        self.actor = f"gateway:{node}"
        self.node = node
        self.seq = 0

    def event(self, cls: type[E], **fields: Any) -> E:
        self.version += 1
        fields.setdefault("actor", self.actor)
        fields["originator_id"] = self.id
        fields["originator_version"] = self.version
        fields["at"] = time.time()
        return build_event(cls, fields)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq
