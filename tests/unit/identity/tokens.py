"""Token builders and rejection assertions shared by the identity tests."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.devidp import DevIdP
from gateway.identity import RejectReason, TokenRejected, TokenVerifier

AUDIENCE = "wardgate"


def claims(idp: DevIdP, **overrides: Any) -> dict[str, Any]:
    """Valid access-token claims; an override of None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": idp.url,
        "sub": "agent-7",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        "client_id": "ci-runner",
        "groups": ["dba", "oncall"],
        "scope": "db:read db:write",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    """A token assembled by hand, for headers no honest library would write."""
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(body).encode()), b64(signature))
    )


def sign_with(key: rsa.RSAPrivateKey, body: dict[str, Any], kid: str) -> str:
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


def assert_rejected(verifier: TokenVerifier, token: str, reason: RejectReason) -> TokenRejected:
    """Verify must reject with ``reason``, and say nothing that contains the token."""
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    exc = caught.value
    assert exc.reason is reason, f"{exc.reason}: {exc}"
    assert_no_token_text(token, str(exc), repr(exc))
    assert (exc.__cause__ is None and exc.__suppress_context__) or exc.__context__ is None
    return exc


def assert_no_token_text(token: str, *texts: str) -> None:
    pieces = [p for p in token.strip().split(".") if len(p) >= 16]
    for text in texts:
        if len(token) >= 16:
            assert token not in text
        for piece in pieces:
            assert piece not in text
