"""`wardgate approvals list | approve ID | deny ID --reason R`: from any process or node."""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from typing import Any

from events.domain import Approval, DomainError, short_id
from events.projections import ApprovalRecord, ApprovalsView, Projection
from events.store import ConcurrencyConflict, EventStore
from gateway.commands.common import opened_store, print_json, settings_from
from gateway.commands.operators import add_token_argument, operator_identity
from gateway.config import parse_duration
from gateway.errors import UserError

APPROVAL_EVENTS = (
    Approval.Requested,
    Approval.Approved,
    Approval.Denied,
    Approval.Expired,
    Approval.Cancelled,
    Approval.Used,
)


def register(sub: Any) -> None:
    approvals = sub.add_parser("approvals", help="list, approve and deny held commands")
    asub = approvals.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)
    list_ = asub.add_parser("list", help="pending approvals (with --all, decided ones too)")
    list_.add_argument("--all", action="store_true")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(func=cmd_list)
    approve = asub.add_parser("approve", help="approve a held command (ID or a unique prefix)")
    approve.add_argument("id")
    approve.add_argument("--reason", default="")
    approve.add_argument(
        "--for",
        dest="window",
        metavar="DURATION",
        help="also approve identical statements from the same identity on the same target "
        "for this long (e.g. 30m)",
    )
    add_token_argument(approve)
    approve.set_defaults(func=cmd_approve)
    deny = asub.add_parser("deny", help="deny a held command; the agent sees your reason")
    deny.add_argument("id")
    deny.add_argument("--reason", required=True)
    add_token_argument(deny)
    deny.set_defaults(func=cmd_deny)


def approvals_view(store: EventStore) -> ApprovalsView:
    view = ApprovalsView()
    after = 0
    while True:
        page = store.read_kinds(APPROVAL_EVENTS, after, 5000)
        for nid, event in page:
            Projection.handle(view, nid, event)
        if len(page) < 5000:
            return view
        after = page[-1][0]


def _row(a: ApprovalRecord, now: float) -> dict[str, Any]:
    return {
        "id": a.id,
        "short_id": short_id(a.id),
        "status": a.status,
        "subject": a.subject,
        "target": a.target,
        "protocol": a.protocol,
        "command": a.command,
        "rule": a.rule,
        "approver_groups": a.approver_groups,
        "quorum": a.quorum,
        "approvers": a.approvers,
        "requested_at": dt.datetime.fromtimestamp(a.requested_at, dt.UTC).isoformat(),
        "expires_in_s": max(0, round(a.expires_at - now)),
        "decided_by": a.decided_by,
        "reason": a.reason,
        "node": a.node,
    }


def cmd_list(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        view = approvals_view(store)
    now = time.time()
    records = list(view.approvals.values()) if args.all else view.pending()
    rows = [_row(a, now) for a in records]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no pending approvals" if not args.all else "no approvals")
        return 0
    for r in rows:
        left = f"{r['expires_in_s']}s left" if r["status"] == "pending" else r["status"]
        print(
            f"{r['short_id']}  {r['subject']} on {r['target']}  rule {r['rule']}  "
            f"{len(r['approvers'])}/{r['quorum']}  {left}\n    {r['command']}"
        )
    return 0


def _resolve(store: EventStore, ident: str) -> uuid.UUID:
    matches = approvals_view(store).find(ident)
    if not matches:
        raise UserError(f"no approval {ident!r}")
    if len(matches) > 1:
        raise UserError(f"{ident!r} matches {len(matches)} approvals; give more of the id")
    return uuid.UUID(matches[0].id)


def _decide(args: argparse.Namespace, verb: str) -> int:
    settings = settings_from(args)
    operator = operator_identity(args, settings)
    window = parse_duration(args.window) if getattr(args, "window", None) else None
    with opened_store(args) as store:
        aid = _resolve(store, args.id)
        for _ in range(3):
            approval = store.load(Approval, aid)
            assert approval is not None
            try:
                if verb == "approve":
                    event: Any = approval.approve(
                        subject=operator.subject,
                        groups=operator.groups,
                        reason=args.reason,
                        window_seconds=window,
                        now=time.time(),
                    )
                else:
                    event = approval.deny(
                        subject=operator.subject,
                        groups=operator.groups,
                        reason=args.reason,
                        now=time.time(),
                    )
            except DomainError as exc:
                raise UserError(str(exc)) from None
            try:
                store.append([event])
            except ConcurrencyConflict:
                continue  # someone decided at the same moment: look again
            approval.apply(event)
            state = approval.status
            done = (
                f"{verb}d {short_id(aid)} as {operator.subject}"
                if verb == "deny"
                else f"approved {short_id(aid)} as {operator.subject}"
            )
            if verb == "approve" and state == Approval.PENDING:
                assert approval.request is not None
                done += f" ({len(approval.approvers)}/{approval.request.quorum} approvals)"
            print(done)
            return 0
    raise UserError("the approval keeps changing under us; try again")


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, "deny")
