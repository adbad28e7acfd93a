"""A small, hand-made event log whose exports and report numbers are known in advance.

T0 is 2026-01-01T00:00:00Z. The story:

* policy v1 by admin at T0-100; v2 by admin at T0+5000;
* S1 alice (dev), mysql to shop on n1, T0..T0+100, closed client_quit: an allowed SELECT
  (masked email=2), a denied DROP (error response), an UPDATE held for approval A1 which bob
  approves 30 s later, then forwarded and answered;
* S2 bob (dba, oncall), ssh to billing on n2, T0+3600..T0+3700: a held ``rm -rf`` whose
  approval A2 carol denies after 60 s (never forwarded, no response), an allowed ``uptime``
  whose output masked ip=3; carol asks to end the session and it is killed;
* S3 a rejected token against shop at T0+7200, closed auth_failed;
* S4 alice, mysql to billing, from T0+86400, still open: commands with tricky SQL text
  (all allowed, answered), and one more held for A3 (quorum 2: bob approved, still pending).
"""

from __future__ import annotations

import uuid
from typing import Any

from events.domain import Approval, DomainEvent, Policy, Session, SessionControl

T0 = 1767225600.0  # 2026-01-01T00:00:00Z
NS = uuid.UUID("0b7e7a52-6a3c-4f0e-9a55-3d3f1c2b4a10")
S1, S2, S3, S4 = (uuid.uuid5(NS, f"s{i}") for i in range(1, 5))
A1, A2, A3 = (uuid.uuid5(NS, f"a{i}") for i in range(1, 4))

TRICKY = [
    "SELECT 'a,b', \"q\"\"x\" FROM t\nWHERE note = 'line1\r\nline2' -- done",
    '=HYPERLINK("http://evil.example","click")',
    "+1+2",
    "-- leading comment\nSELECT 1",
    "@SUM(A1:A9)",
    "'quoted from the start'",
    "\tSELECT 'tab first'",
    "SELECT 'ünïcödé, \"quotes\"; semicolons;'",
]


class Stream:
    """Numbers one aggregate's events (versions) with explicit times."""

    def __init__(self, oid: uuid.UUID) -> None:
        self.oid, self.version = oid, 0

    def __call__(self, cls: type[Any], at: float, actor: str, **fields: Any) -> Any:
        self.version += 1
        return cls(
            originator_id=self.oid,
            originator_version=self.version,
            at=at,
            actor=actor,
            **fields,
        )


def _accepted(s: Stream, at: float, *, node: str, protocol: str, target: str) -> DomainEvent:
    return s(
        Session.ConnectionAccepted,
        at,
        f"gateway:{node}",
        node=node,
        protocol=protocol,
        target=target,
        listener="127.0.0.1:3307",
        peer="127.0.0.1:50000",
    )


def _auth(s: Stream, at: float, subject: str, groups: list[str]) -> DomainEvent:
    return s(
        Session.Authenticated,
        at,
        subject,
        subject=subject,
        groups=groups,
        issuer="http://idp",
        token_id=f"jti-{subject}",
        expires_at=at + 600,
        client_user="agent",
    )


def _command(
    s: Stream,
    at: float,
    subject: str,
    seq: int,
    text: str,
    action: str,
    *,
    approval: uuid.UUID | None = None,
    approved_by: list[str] | None = None,
    forwarded_at: float | None = None,
    response: dict[str, Any] | None = None,
) -> list[DomainEvent]:
    out: list[DomainEvent] = [
        s(Session.CommandReceived, at, subject, seq=seq, kind="COM_QUERY", text=text),
        s(
            Session.CommandDecided,
            at,
            "gateway:n1",
            seq=seq,
            action=action,
            rule=f"rule-{action}",
            reason=f"matched rule-{action}",
            approval_id=str(approval) if approval else None,
        ),
    ]
    if forwarded_at is not None:
        out.append(
            s(
                Session.CommandForwarded,
                forwarded_at,
                "gateway:n1",
                seq=seq,
                approved_by=approved_by or [],
            )
        )
    if response is not None:
        when = response.pop("at", (forwarded_at or at) + 0.01)
        out.append(s(Session.ResponseRecorded, when, "gateway:n1", seq=seq, **response))
    return out


def _request(
    aid: uuid.UUID,
    at: float,
    sid: uuid.UUID,
    seq: int,
    subject: str,
    groups: list[str],
    target: str,
    command: str,
    quorum: int = 1,
) -> DomainEvent:
    return Approval.request_new(
        approval_id=aid,
        at=at,
        actor="gateway:n1",
        session_id=sid,
        command_seq=seq,
        subject=subject,
        groups=groups,
        target=target,
        protocol="mysql",
        command=command,
        normalized=command.lower(),
        rule="rule-review",
        approver_groups=["oncall"],
        quorum=quorum,
        expires_at=at + 900,
        node="n1",
    )


def policy_events() -> list[DomainEvent]:
    p = Stream(Policy().id)
    return [
        p(
            Policy.Applied,
            T0 - 100,
            "admin",
            source="v1",
            document={"v": 1},
            diff={"added": ["r1"]},
            digest="d1",
        ),
        p(
            Policy.Applied,
            T0 + 5000,
            "admin",
            source="v2",
            document={"v": 2},
            diff={"changed": ["r1"]},
            digest="d2",
        ),
    ]


def crafted_batches() -> list[list[DomainEvent]]:
    """The log as the gateway would append it, in batches (notification order)."""
    pol = policy_events()
    s1, a1 = Stream(S1), Stream(A1)
    batches: list[list[DomainEvent]] = [[pol[0]]]
    batches.append(
        [
            _accepted(s1, T0, node="n1", protocol="mysql", target="shop"),
            _auth(s1, T0 + 0.5, "alice", ["dev"]),
        ]
    )
    batches.append(
        _command(
            s1,
            T0 + 1,
            "alice",
            1,
            "SELECT name, email FROM customers",
            "allow",
            forwarded_at=T0 + 1,
            response={"ok": True, "rows": 2, "masked": {"email": 2}},
        )
    )
    batches.append(
        _command(
            s1,
            T0 + 2,
            "alice",
            2,
            "DROP TABLE customers",
            "deny",
            response={"ok": False, "error_code": 1142, "error_message": "denied by policy"},
        )
    )
    update = "UPDATE payments SET amount = 0 WHERE id = 7"
    held = _command(s1, T0 + 10, "alice", 3, update, "review", approval=A1)
    batches.append([*held, _request(A1, T0 + 10, S1, 3, "alice", ["dev"], "shop", update)])
    a1.version = 1
    batches.append([a1(Approval.Approved, T0 + 40, "bob", reason="ok, ticket 42")])
    batches.append(
        [
            s1(Session.CommandForwarded, T0 + 40.1, "gateway:n1", seq=3, approved_by=["bob"]),
            s1(Session.ResponseRecorded, T0 + 40.2, "gateway:n1", seq=3, ok=True, affected_rows=1),
            s1(Session.Closed, T0 + 100, "gateway:n1", reason="client_quit"),
        ]
    )

    s2, a2, c2 = Stream(S2), Stream(A2), Stream(SessionControl.id_for(S2))
    batches.append(
        [
            _accepted(s2, T0 + 3600, node="n2", protocol="ssh", target="billing"),
            _auth(s2, T0 + 3600.5, "bob", ["dba", "oncall"]),
        ]
    )
    rm = "rm -rf /tmp/x"
    batches.append(
        [
            *_command(s2, T0 + 3600, "bob", 1, rm, "review", approval=A2),
            _request(A2, T0 + 3600, S2, 1, "bob", ["dba", "oncall"], "billing", rm),
        ]
    )
    a2.version = 1
    batches.append([a2(Approval.Denied, T0 + 3660, "carol", reason="not during business hours")])
    batches.append(
        [
            *_command(
                s2,
                T0 + 3670,
                "bob",
                2,
                "uptime",
                "allow",
                forwarded_at=T0 + 3670,
                response={"ok": True},
            ),
            s2(
                Session.OutputRecorded,
                T0 + 3671,
                "gateway:n2",
                stream="stdout",
                offset_ms=10,
                data="up 3 days, from ***.***.***.***",
                masked={"ip": 3},
            ),
        ]
    )
    batches.append(
        [
            c2(
                SessionControl.TerminationRequested,
                T0 + 3690,
                "carol",
                session_id=str(S2),
                reason="incident 7",
            )
        ]
    )
    batches.append(
        [s2(Session.Closed, T0 + 3700, "gateway:n2", reason="killed", detail="by carol")]
    )

    s3 = Stream(S3)
    batches.append(
        [
            _accepted(s3, T0 + 7200, node="n1", protocol="mysql", target="shop"),
            s3(
                Session.AuthenticationRejected,
                T0 + 7200.1,
                "gateway:n1",
                reason="expired",
                message="token expired",
                client_user="mallory",
            ),
            s3(Session.Closed, T0 + 7200.2, "gateway:n1", reason="auth_failed"),
        ]
    )
    batches.append([pol[1]])

    s4, a3 = Stream(S4), Stream(A3)
    day = T0 + 86400
    batch4: list[DomainEvent] = [
        _accepted(s4, day, node="n1", protocol="mysql", target="billing"),
        _auth(s4, day + 0.5, "alice", ["dev"]),
    ]
    for i, text in enumerate(TRICKY, start=1):
        batch4 += _command(
            s4,
            day + i,
            "alice",
            i,
            text,
            "allow",
            forwarded_at=day + i,
            response={"ok": True, "rows": 1},
        )
    seq = len(TRICKY) + 1
    batch4 += _command(s4, day + 100, "alice", seq, "DELETE FROM invoices", "review", approval=A3)
    batch4.append(
        _request(
            A3, day + 100, S4, seq, "alice", ["dev"], "billing", "DELETE FROM invoices", quorum=2
        )
    )
    batches.append(batch4)
    a3.version = 1
    batches.append([a3(Approval.Approved, day + 130, "bob", reason="one of two")])
    return batches


def crafted_events() -> list[DomainEvent]:
    return [e for batch in crafted_batches() for e in batch]
