"""Small builders of domain events for tests."""

from __future__ import annotations

import time
import uuid

from events.domain import DomainEvent, Session


def session_events(
    n_commands: int, *, sid: uuid.UUID | None = None, subject: str = "alice"
) -> list[DomainEvent]:
    sid = sid or uuid.uuid4()
    now = time.time()
    events: list[DomainEvent] = [
        Session.ConnectionAccepted(
            originator_id=sid,
            originator_version=1,
            at=now,
            actor="gateway:n1",
            node="n1",
            protocol="mysql",
            target="shop",
            listener="127.0.0.1:3307",
            peer="127.0.0.1:5555",
        ),
        Session.Authenticated(
            originator_id=sid,
            originator_version=2,
            at=now,
            actor=subject,
            subject=subject,
            groups=["dev"],
            issuer="http://idp",
            token_id="jti-1",
            expires_at=now + 600,
            client_user="agent",
        ),
    ]
    v = 2
    for seq in range(1, n_commands + 1):
        base = {"originator_id": sid, "at": now, "actor": subject, "seq": seq}
        events += [
            Session.CommandReceived(
                **base,
                originator_version=v + 1,
                kind="COM_QUERY",
                text=f"SELECT name, email FROM customers WHERE id = {seq}",
            ),
            Session.CommandDecided(
                **base,
                originator_version=v + 2,
                action="allow",
                rule="reads",
                reason="matched rule reads",
                statement_kinds=["SELECT"],
                tables=["customers"],
            ),
            Session.CommandForwarded(**base, originator_version=v + 3),
            Session.ResponseRecorded(
                **base,
                originator_version=v + 4,
                ok=True,
                rows=1,
                duration_ms=0.4,
                masked={"email": 1},
            ),
        ]
        v += 4
    return events
