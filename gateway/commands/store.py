"""`wardgate audit verify` and `wardgate store info|train`."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.commands.common import opened_store, print_json


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="verify the integrity of the event log")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="check the hash chain of every stored event; exit 1 and name the first bad one",
        description="Walk the stored events and their hash chain in order. Detects modified, "
        "deleted, inserted and reordered events and names the first bad one. Prints the "
        "verified range and the head hash: record the head, and later pass it to --since "
        "to prove that nothing up to it changed.",
    )
    verify.add_argument("--since", metavar="HASH", help="start after this recorded head hash")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=cmd_verify)

    store = sub.add_parser("store", help="inspect and tune the event store")
    store_sub = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    info = store_sub.add_parser("info", help="backend, event count, head, dictionaries")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
    train = store_sub.add_parser(
        "train", help="train a zstd dictionary on recent events (new events shrink 3-5x)"
    )
    train.set_defaults(func=cmd_train)


def cmd_verify(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        report = store.verify(since=args.since)
    if args.json:
        problem = report.problem
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "first_id": report.first_id,
                "last_id": report.last_id,
                "head": report.head,
                "problem": None
                if problem is None
                else {
                    "kind": problem.kind,
                    "notification_id": problem.notification_id,
                    "detail": problem.detail,
                },
            }
        )
    else:
        print(report.render())
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        info = {
            "backend": store.backend,
            "url": store.settings.display,
            "events": store.max_id(),
            "durability": store.settings.durability,
            "encrypted": bool(store.settings.cipher_key),
            "chain_mode": store.chain_mode,
            "dictionaries": sorted(store.dictionaries()),
            "current_dictionary": store.compressor.current_dict_id,
        }
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            print(f"{key:>18}: {value}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    with opened_store(args) as store:
        dict_id = store.train_dictionary()
    if dict_id is None:
        print("not enough events yet to train a dictionary (need at least 500)")
        return 1
    print(f"trained dictionary {dict_id}; new events are compressed with it")
    return 0
