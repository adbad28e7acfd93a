"""`wardgate policy apply FILE | show | history`."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from events.store import ConcurrencyConflict
from gateway.commands.common import opened_store, print_json, settings_from
from gateway.commands.operators import add_token_argument, operator_identity, require_group
from gateway.errors import UserError
from gateway.policy import PolicyError
from gateway.policy_admin import apply_policy, current_policy


def register(sub: Any) -> None:
    policy = sub.add_parser("policy", help="apply, show and audit the access policy")
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    apply = psub.add_parser(
        "apply",
        help="validate a policy file and make it current on every node (prints the diff)",
    )
    apply.add_argument("file", type=Path)
    apply.add_argument("--dry-run", action="store_true", help="validate and diff only")
    add_token_argument(apply)
    apply.set_defaults(func=cmd_apply)
    show = psub.add_parser("show", help="the current policy's source")
    show.add_argument("--json", action="store_true", help="the parsed policy as JSON")
    show.set_defaults(func=cmd_show)
    history = psub.add_parser("history", help="every applied change with its author and diff")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)


def cmd_apply(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        source = args.file.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc.strerror}") from None
    if args.dry_run:
        from gateway.policy import load_policy  # noqa: PLC0415

        try:
            load_policy(source)
        except PolicyError as exc:
            raise UserError(f"{args.file}: {exc}") from None
        print(f"{args.file}: valid")
        return 0
    identity = operator_identity(args, settings)
    require_group(identity, settings, "policy_groups", ["admins"], "apply policy")
    with opened_store(args) as store:
        try:
            applied = apply_policy(store, source, author=identity.subject)
        except PolicyError as exc:
            raise UserError(f"{args.file}: {exc}") from None
        except ConcurrencyConflict:
            raise UserError("another policy was applied at the same moment; try again") from None
    if not applied.changed:
        print(f"policy unchanged (version {applied.version}, {applied.digest[:12]})")
        return 0
    print(f"applied policy version {applied.version} ({applied.digest[:12]}) as {identity.subject}")
    print(applied.diff)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        stream, policy = current_policy(store)
        source = ""
        if stream.version:
            events = store.events_of(stream.id)
            source = getattr(events[-1], "source", "")
    if policy is None:
        print("no policy has been applied: every command is denied (wardgate policy apply FILE)")
        return 1
    if args.json:
        print_json(policy.to_dict())
    else:
        print(f"# version {stream.version}, digest {stream.digest[:12]}")
        print(source, end="" if source.endswith("\n") else "\n")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        from events.domain import POLICY_ID  # noqa: PLC0415

        events = store.events_of(POLICY_ID)
    rows: list[dict[str, Any]] = [
        {
            "version": e.originator_version,
            "author": e.actor,
            "at": dt.datetime.fromtimestamp(e.at, dt.UTC).isoformat(timespec="seconds"),
            "digest": getattr(e, "digest", ""),
            "diff": getattr(e, "diff", {}),
        }
        for e in events
    ]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no policy has been applied yet")
    for row in rows:
        print(f"version {row['version']}  {row['at']}  by {row['author']}  {row['digest'][:12]}")
        diff = row["diff"]
        for name in diff.get("added", []):
            print(f"  + rule {name}")
        for name in diff.get("removed", []):
            print(f"  - rule {name}")
        for change in diff.get("changed", []):
            print(f"  ~ rule {change['name']}")
        for change in diff.get("settings", []):
            print(f"  policy.{change['field']}: {change['old']!r} -> {change['new']!r}")
    return 0
