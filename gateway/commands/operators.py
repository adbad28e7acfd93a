"""Operator identity for CLI actions: the operator's own token, verified like an agent's."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from gateway.config import Settings
from gateway.errors import UserError
from gateway.identity import Identity, IdentityProviderUnavailable, TokenRejected, TokenVerifier
from gateway.identity_settings import IdentitySettings, IdentitySettingsError


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        help="the operator's OIDC token (default: $WARDGATE_TOKEN); never the agent's",
    )


def operator_identity(args: argparse.Namespace, settings: Settings) -> Identity:
    token = getattr(args, "token", None) or os.environ.get("WARDGATE_TOKEN")
    if not token:
        raise UserError("an operator token is required: --token or WARDGATE_TOKEN")
    section = dict(settings.section("identity"))
    if not section.get("issuer"):
        raise UserError("[identity] issuer is not set: operator tokens cannot be verified")
    try:
        verifier = TokenVerifier(IdentitySettings.from_mapping(section))
        return verifier.verify(token)
    except IdentitySettingsError as exc:
        raise UserError(f"[identity]: {exc}") from None
    except TokenRejected as exc:
        raise UserError(f"operator token rejected: {exc.message}") from None
    except IdentityProviderUnavailable as exc:
        raise UserError(f"cannot verify the operator token: {exc}") from None


def require_group(
    identity: Identity, settings: Settings, key: str, default: Sequence[str], action: str
) -> None:
    """Refuse unless the operator is in one of the groups ``[operators] <key>`` names."""
    groups = settings.section("operators").get(key, list(default))
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    if not set(groups) & identity.groups:
        raise UserError(
            f"{identity.subject} may not {action}: needs one of the groups {', '.join(groups)} "
            f"([operators] {key})"
        )
