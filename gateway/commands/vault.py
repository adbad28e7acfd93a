"""`wardgate vault set NAME | list | delete NAME`: target credentials, never printed."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from gateway.commands.common import print_json, settings_from
from gateway.errors import UserError
from gateway.vault import KINDS, Vault, VaultError


def register(sub: Any) -> None:
    vault = sub.add_parser("vault", help="store target credentials, encrypted at rest")
    vsub = vault.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    set_ = vsub.add_parser(
        "set",
        help="add or replace a credential (the secret is read from a prompt, stdin or a file)",
        description="Store a target credential under NAME. The secret is never taken from "
        "the command line (it would land in shell history and the process list): it is "
        "prompted for, read from standard input with --stdin, or from --secret-file.",
    )
    set_.add_argument("name")
    set_.add_argument("--username", "-u", required=True, help="the login on the target")
    set_.add_argument("--kind", choices=KINDS, default="mysql")
    src = set_.add_mutually_exclusive_group()
    src.add_argument("--stdin", action="store_true", help="read the secret from standard input")
    src.add_argument("--secret-file", type=Path, help="read the secret from this file")
    set_.set_defaults(func=cmd_set)
    list_ = vsub.add_parser("list", help="names and kinds of stored credentials (no secrets)")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(func=cmd_list)
    delete = vsub.add_parser("delete", help="remove a credential")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_delete)


def _vault(args: argparse.Namespace, *, create: bool = False) -> Vault:
    try:
        return Vault.open(settings_from(args).data_dir, create=create)
    except VaultError as exc:
        raise UserError(str(exc)) from None


def cmd_set(args: argparse.Namespace) -> int:
    if args.secret_file:
        secret = args.secret_file.read_text()
        secret = secret if args.kind == "ssh-key" else secret.rstrip("\n")
    elif args.stdin:
        secret = sys.stdin.read()
        secret = secret if args.kind == "ssh-key" else secret.rstrip("\n")
    else:
        secret = getpass.getpass(f"secret for {args.name}: ")
    if not secret:
        raise UserError("an empty secret was given")
    try:
        _vault(args, create=True).set(
            name=args.name, kind=args.kind, username=args.username, secret=secret
        )
    except VaultError as exc:
        raise UserError(str(exc)) from None
    print(f"stored credential {args.name} ({args.kind})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    try:
        names = _vault(args).names()
    except VaultError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json([{"name": n, "kind": k} for n, k in names])
    else:
        for name, kind in names:
            print(f"{name}\t{kind}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    try:
        _vault(args).delete(args.name)
    except VaultError as exc:
        raise UserError(str(exc)) from None
    print(f"deleted credential {args.name}")
    return 0
