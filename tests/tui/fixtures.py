"""Deterministic console fixture data: fixed ids, a fixed clock, a small realistic log."""

from __future__ import annotations

import uuid
from pathlib import Path

from events.domain import POLICY_ID, Approval, DomainEvent, Policy, Session
from events.store import EventStore, StoreSettings

T0 = 1_790_000_000.0
"""The frozen 'now' of the console in tests (2026-09-21 UTC)."""

NS = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def sid(name: str) -> uuid.UUID:
    return uuid.uuid5(NS, name)


def store_at(tmp_path: Path) -> EventStore:
    return EventStore(StoreSettings(url=f"sqlite:///{tmp_path / 'data' / 'events.db'}"))


def open_session(
    name: str,
    *,
    subject: str,
    target: str,
    protocol: str = "mysql",
    at: float,
    groups: tuple[str, ...] = ("agents",),
) -> list[DomainEvent]:
    s = sid(name)
    return [
        Session.ConnectionAccepted(
            originator_id=s,
            originator_version=1,
            at=at,
            actor="gateway:n1",
            node="n1",
            protocol=protocol,
            target=target,
            listener="127.0.0.1:3307",
            peer="127.0.0.1:40001",
        ),
        Session.Authenticated(
            originator_id=s,
            originator_version=2,
            at=at,
            actor=subject,
            subject=subject,
            groups=list(groups),
            issuer="http://127.0.0.1:8900",
            token_id="jti-" + name,
            expires_at=at + 3600,
            client_user="agent",
        ),
    ]


def command(
    name: str, version: int, seq: int, text: str, *, at: float, subject: str, action: str = "allow"
) -> list[DomainEvent]:
    s = sid(name)
    base = {"originator_id": s, "at": at, "actor": subject, "seq": seq}
    events: list[DomainEvent] = [
        Session.CommandReceived(**base, originator_version=version, kind="COM_QUERY", text=text),
        Session.CommandDecided(
            **base,
            originator_version=version + 1,
            action=action,
            rule="reads" if action == "allow" else "writes-need-review",
            reason=f"matched rule {'reads' if action == 'allow' else 'writes-need-review'}",
            approval_id=str(sid(f"{name}-approval-{seq}")) if action == "review" else None,
        ),
    ]
    if action == "allow":
        events += [
            Session.CommandForwarded(**base, originator_version=version + 2),
            Session.ResponseRecorded(
                **base,
                originator_version=version + 3,
                ok=True,
                rows=3,
                duration_ms=1.5,
                masked={"email": 3},
            ),
        ]
    return events


def request(
    name: str,
    seq: int,
    *,
    subject: str,
    target: str,
    text: str,
    at: float,
    quorum: int = 1,
    approver_groups: tuple[str, ...] = ("dba",),
    expires_in: float = 900.0,
) -> Approval.Requested:
    return Approval.request_new(
        approval_id=sid(f"{name}-approval-{seq}"),
        at=at,
        actor="gateway:n1",
        session_id=sid(name),
        command_seq=seq,
        subject=subject,
        groups=["agents"],
        target=target,
        protocol="mysql",
        command=text,
        normalized=text.lower(),
        rule="writes-need-review",
        approver_groups=list(approver_groups),
        quorum=quorum,
        expires_at=at + expires_in,
        node="n1",
    )


POLICY_V1 = """[[rule]]
name = "reads"
match = "SELECT"
action = "allow"
"""

POLICY_V2 = (
    POLICY_V1
    + """
[[rule]]
name = "writes-need-review"
match = "UPDATE|DELETE"
action = "review"
approvers = ["dba"]
"""
)


def policy_events(now: float = T0) -> list[DomainEvent]:
    return [
        Policy.Applied(
            originator_id=POLICY_ID,
            originator_version=1,
            at=now - 86400,
            actor="carol",
            source=POLICY_V1,
            document={"rules": ["reads"]},
            diff={"added": ["reads"]},
            digest="d1",
        ),
        Policy.Applied(
            originator_id=POLICY_ID,
            originator_version=2,
            at=now - 3600,
            actor="dave",
            source=POLICY_V2,
            document={"rules": ["reads", "writes-need-review"]},
            diff={"added": ["writes-need-review"], "changed": [], "removed": []},
            digest="d2",
        ),
    ]


def seed(store: EventStore, now: float = T0) -> None:
    """Two live sessions (one with a held UPDATE), one SSH session, one closed session."""
    events: list[DomainEvent] = policy_events(now)
    events += open_session("agent-1", subject="ci-bot", target="shop", at=now - 300)
    events += command(
        "agent-1", 3, 1, "SELECT id, email FROM customers", at=now - 290, subject="ci-bot"
    )
    events += command(
        "agent-1",
        7,
        2,
        "UPDATE orders SET state = 'void' WHERE id = 7",
        at=now - 60,
        subject="ci-bot",
        action="review",
    )
    events.append(
        request(
            "agent-1",
            2,
            subject="ci-bot",
            target="shop",
            at=now - 60,
            text="UPDATE orders SET state = 'void' WHERE id = 7",
        )
    )
    events += open_session("agent-2", subject="report-bot", target="billing", at=now - 1200)
    events += command(
        "agent-2", 3, 1, "SELECT SUM(total) FROM invoices", at=now - 1100, subject="report-bot"
    )
    events += open_session(
        "shell-1", subject="ops-agent", target="web-1", protocol="ssh", at=now - 90
    )
    s = sid("shell-1")
    events.append(
        Session.OutputRecorded(
            originator_id=s,
            originator_version=3,
            at=now - 80,
            actor="ops-agent",
            stream="stdout",
            offset_ms=10_000,
            data="$ uptime\r\n 12:00 up 3 days, load 0.10\r\n",
        )
    )
    events += open_session("old-1", subject="ci-bot", target="shop", at=now - 7200)
    events.append(
        Session.Closed(
            originator_id=sid("old-1"),
            originator_version=3,
            at=now - 7000,
            actor="gateway:n1",
            reason="client_quit",
        )
    )
    store.append(events)
