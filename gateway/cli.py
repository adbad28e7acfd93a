"""The `wardgate` command: the composition root.

It wires settings, the event store and the sub-command modules together. It is the only
module of `gateway` allowed to load the operator console (`tui`), and only lazily.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gateway.commands import COMMAND_MODULES
from gateway.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wardgate",
        description="Identity-aware access gateway: OIDC tokens in, vaulted credentials out.",
    )
    parser.add_argument("--config", help="settings file (TOML); default: $WARDGATE_CONFIG")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code: int = func(args)
    except UserError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
