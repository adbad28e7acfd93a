"""`wardgate tui`: the operator console.

The operator's token is verified here, with the gateway's own verifier, and only the
resulting plain identity (subject, groups, expiry) crosses into the console: ``tui`` never
imports ``gateway``. The console is imported inside :func:`run_tui`, so loading the CLI does
not load Textual, and the layering contract stays a one-way street.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from events.store import EventStore, StoreError
from gateway.commands.common import settings_from
from gateway.errors import UserError
from gateway.identity import IdentityProviderUnavailable, TokenRejected, TokenVerifier
from gateway.identity_settings import IdentitySettings, IdentitySettingsError

DEFAULT_KILL_GROUPS: tuple[str, ...] = ()
"""No one may end sessions from the console until ``[console] kill_groups`` names groups."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="the operator console (sessions, approvals, audit log, policy)",
        description=(
            "Open the operator console. The operator token (--token or $WARDGATE_TOKEN) is "
            "verified against [identity]; its subject and groups decide what you may approve. "
            "Ending sessions needs a group listed in [console] kill_groups. At start the "
            "console folds the last [console] fold_hours (default 24) of the log."
        ),
    )
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="settings file (TOML); default: $WARDGATE_CONFIG",
    )
    parser.add_argument("--token", help="operator access token (default: $WARDGATE_TOKEN)")
    parser.set_defaults(func=run_tui)


def kill_groups(console: Mapping[str, Any]) -> frozenset[str]:
    """``[console] kill_groups``: a list, or a comma-separated string (from the environment)."""
    value = console.get("kill_groups", list(DEFAULT_KILL_GROUPS))
    if isinstance(value, str):
        return frozenset(g.strip() for g in value.split(",") if g.strip())
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return frozenset(value)
    raise UserError("[console] kill_groups must be a list of group names")


def fold_horizon(console: Mapping[str, Any]) -> float | None:
    """``[console] fold_hours``: how much recent log the console folds at start (default 24).

    It must exceed the longest token lifetime (a session ends when its token does) and the
    longest approval expiry; ``"all"`` folds the whole log.
    """
    value = console.get("fold_hours", 24)
    if value == "all":
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise UserError('[console] fold_hours must be a number of hours or "all"') from None
    if hours <= 0:
        raise UserError('[console] fold_hours must be positive (or "all")')
    return hours * 3600.0


def run_tui(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    token = args.token or os.environ.get("WARDGATE_TOKEN")
    if not token:
        raise UserError("the console needs an operator token: --token or $WARDGATE_TOKEN")
    try:
        verifier = TokenVerifier(IdentitySettings.from_mapping(settings.section("identity")))
        identity = verifier.verify(token)
    except IdentitySettingsError as exc:
        raise UserError(f"[identity] settings: {exc}") from None
    except TokenRejected as exc:
        raise UserError(f"operator token rejected ({exc.reason.value}): {exc.message}") from None
    except IdentityProviderUnavailable as exc:
        raise UserError(f"identity provider unavailable: {exc}") from None
    groups = kill_groups(settings.section("console"))
    horizon = fold_horizon(settings.section("console"))

    from tui.app import ConsoleApp  # noqa: PLC0415 (lazy: only this command needs Textual)
    from tui.data import ConsoleData  # noqa: PLC0415
    from tui.rows import Operator  # noqa: PLC0415

    try:
        store = EventStore(settings.store)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    operator = Operator(
        subject=identity.subject, groups=identity.groups, expires_at=identity.expires_at
    )
    data = ConsoleData(store, operator, kill_groups=groups, fold_horizon=horizon)
    try:
        ConsoleApp(data).run()
    finally:
        data.close()
        store.close()
    return 0
