"""Who is calling: verification of OIDC JWT access tokens into an ``Identity``.

Theory of operation
-------------------
Every connection and every operator action presents a short-lived access token. ``verify`` runs
the checks cheapest-first and stops at the first failure, which becomes a ``TokenRejected`` with
a stable ``reason`` code and a message precise enough for an operator to fix the cause:

1. size (over 16 KiB is refused before any parsing) and shape (three base64url segments);
2. header: ``alg`` must be one of the configured asymmetric algorithms (so ``none`` and the
   HS256-with-the-public-key confusion never reach a key), ``typ`` absent, ``JWT`` or
   ``at+jwt``, and no ``jku``/``x5u``/``jwk``: keys come only from the issuer's JWKS (jwks.py);
3. key: looked up by ``kid`` in the cache, which refreshes on a miss and fails closed when the
   IdP cannot be reached; the key's type must fit ``alg``; the signature must have the exact
   length that key produces (a truncated token is told apart from a forged one);
4. PyJWT verifies the signature and the registered claims (exp, nbf, iat with leeway; iss; aud);
   on a claim failure the already verified payload is read again only to word the message;
5. our own claims: a non-empty ``sub``, the groups claim (name or dotted path; list or
   space-separated string), the required scope (``scope`` string or ``scp`` list), extra
   required claims.

The token itself is never logged, never put in a message, and never kept: ``Identity.token_id``
is the ``jti`` or a SHA-256 fingerprint prefix.

``verify`` is synchronous and blocks only when keys must be fetched. ``verify_async`` is the
small trio-facing helper: it verifies inline when the keys are cached and moves to a worker
thread only when a fetch is due.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt
import trio
from jwt.exceptions import InvalidSubjectError
from jwt.utils import base64url_decode

from gateway.identity_settings import (
    MAX_TOKEN_BYTES,
    IdentitySettings,
    IdentitySettingsError,
)
from gateway.jwks import KeyCache, KeySourceError, RefreshNeeded, SigningKey, UnknownKeyError

__all__ = [
    "MAX_TOKEN_BYTES",
    "Identity",
    "IdentityProviderUnavailable",
    "IdentitySettings",
    "IdentitySettingsError",
    "RejectReason",
    "TokenRejected",
    "TokenVerifier",
]

log = logging.getLogger("wardgate.identity")

ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk")
REGISTERED_CLAIMS = ["exp", "iat", "iss", "aud"]


class RejectReason(StrEnum):
    """Stable machine codes for rejected tokens (recorded in AuthenticationRejected events)."""

    TOKEN_TOO_LARGE = "token_too_large"  # noqa: S105 (a reason code, not a secret)
    MALFORMED = "malformed"
    ALGORITHM_NONE = "algorithm_none"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    WRONG_TYPE = "wrong_type"
    UNTRUSTED_KEY_REFERENCE = "untrusted_key_reference"
    UNKNOWN_KEY = "unknown_key"
    KEY_MISMATCH = "key_mismatch"
    IDP_UNREACHABLE = "idp_unreachable"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    MISSING_CLAIM = "missing_claim"
    MISSING_SUBJECT = "missing_subject"
    MISSING_GROUPS = "missing_groups"
    MISSING_SCOPE = "missing_scope"


class TokenRejected(Exception):
    """A token that does not prove an identity; ``reason`` is stable, the message is for people."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"TokenRejected(reason={self.reason.value!r}, message={self.message!r})"


RECENT_SECONDS = 30.0
"""How long a verified token is trusted without verifying its signature again: at most
until it expires, and only while the issuer's key set it was verified under is current and
fresh (a refresh or a stale set means a full verification)."""
RECENT_MAX = 10_000


class IdentityProviderUnavailable(Exception):
    """``warm()`` could not load the issuer's keys (the gateway may still start and retry)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """A verified caller. Holds no part of the token."""

    subject: str
    groups: frozenset[str]
    expires_at: float
    issuer: str
    token_id: str
    client_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience; safe to share between threads."""

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings
        self._recent: dict[bytes, tuple[float, int, Identity]] = {}
        self.keys = KeyCache(
            issuer=settings.issuer,
            jwks_uri=settings.jwks_uri,
            timeout=settings.http_timeout,
            max_age=settings.jwks_max_age,
            cooldown=settings.jwks_refresh_cooldown,
        )

    def __repr__(self) -> str:
        return (
            f"TokenVerifier(issuer={self.settings.issuer!r}, audience={self.settings.audience!r})"
        )

    def warm(self) -> None:
        """Fetch discovery and the JWKS now (at start), so the first connection needs no I/O."""
        try:
            self.keys.refresh()
        except KeySourceError as exc:
            raise IdentityProviderUnavailable(
                f"cannot load signing keys of issuer {self.settings.issuer}: {exc}"
            ) from None

    def verify(self, token: str) -> Identity:
        """The identity a token proves, or TokenRejected. Blocks only when keys must be fetched."""
        return self._verify(token, may_fetch=True)

    async def verify_async(self, token: str) -> Identity:
        """``verify`` for trio code: inline with cached keys, in a worker thread to fetch them."""
        try:
            return self._verify(token, may_fetch=False)
        except RefreshNeeded:
            return await trio.to_thread.run_sync(self.verify, token, abandon_on_cancel=True)

    def _verify(self, token: str, *, may_fetch: bool) -> Identity:
        # Agents open many connections with one token (pools, CI steps): a token verified
        # in the last RECENT_SECONDS is not verified again. Only its SHA-256 digest is
        # kept, in memory, with the identity it proved; never past the token's expiry.
        # A refresh of the issuer's keys (or their going stale) ends that trust at once.
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = time.time()
        generation = self.keys.fresh_generation()
        recent = self._recent.get(digest)
        if recent is not None and now < recent[0] and recent[1] == generation:
            return recent[2]
        try:
            identity = self._check(token, may_fetch=may_fetch)
        except TokenRejected as exc:
            log.debug("token rejected: %s", exc.reason.value)
            raise
        if len(self._recent) >= RECENT_MAX:
            self._recent.clear()
        generation = self.keys.fresh_generation()
        if generation is not None:
            self._recent[digest] = (
                min(now + RECENT_SECONDS, identity.expires_at),
                generation,
                identity,
            )
        return identity

    def _check(self, token: str, *, may_fetch: bool) -> Identity:
        raw = _check_size(token)
        header = _check_header(raw, self.settings.algorithms)
        alg: str = header["alg"]
        key = self._key_for(header.get("kid"), alg, may_fetch=may_fetch)
        _check_signature_length(raw, key, alg)
        claims = self._decode(raw, key, alg)
        return self._identity(raw, claims)

    def _key_for(self, kid: object, alg: str, *, may_fetch: bool) -> SigningKey:
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected(RejectReason.MALFORMED, "token header 'kid' is not a string")
        try:
            key = self.keys.lookup(kid, may_fetch=may_fetch)
        except UnknownKeyError:
            age = self.keys.seconds_since_fetch()
            when = "never fetched" if age is None else f"fetched {age:.0f} s ago"
            named = f"signing key kid={kid!r}" if kid else "a token without kid (several keys)"
            raise TokenRejected(
                RejectReason.UNKNOWN_KEY,
                f"{named} is not published by issuer {self.settings.issuer} (keys {when})",
            ) from None
        except KeySourceError as exc:
            raise TokenRejected(
                RejectReason.IDP_UNREACHABLE,
                f"signing key kid={kid!r} is not cached and the identity provider is "
                f"unreachable, so the token cannot be checked (failing closed): {exc}",
            ) from None
        if not key.fits(alg):
            raise TokenRejected(
                RejectReason.KEY_MISMATCH,
                f"token says alg {alg} but key kid={kid!r} is a {key.kty} key"
                + (f" published for {key.published_alg}" if key.published_alg else ""),
            )
        return key

    def _decode(self, raw: str, key: SigningKey, alg: str) -> dict[str, Any]:
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                raw,
                key.public_key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway,
                options={"require": REGISTERED_CLAIMS},
            )
        except jwt.InvalidSignatureError:
            raise TokenRejected(
                RejectReason.BAD_SIGNATURE, f"signature does not verify with key kid={key.kid!r}"
            ) from None
        except jwt.ExpiredSignatureError:
            exp = _unverified_claims(raw).get("exp")
            raise TokenRejected(
                RejectReason.EXPIRED,
                f"token expired at {_when(exp)} (now {_when(_now())}, leeway {s.leeway:g} s)",
            ) from None
        except jwt.ImmatureSignatureError:
            body = _unverified_claims(raw)
            name = "nbf" if _number(body.get("nbf"), default=0) > _now() + s.leeway else "iat"
            raise TokenRejected(
                RejectReason.NOT_YET_VALID,
                f"token {name} is {_when(body.get(name))}, in the future (now {_when(_now())}, "
                f"leeway {s.leeway:g} s): check the clocks of the IdP and this host",
            ) from None
        except jwt.InvalidIssuerError:
            iss = _unverified_claims(raw).get("iss")
            raise TokenRejected(
                RejectReason.WRONG_ISSUER,
                f"token issued by {_quote(iss)}, expected {s.issuer!r}",
            ) from None
        except jwt.InvalidAudienceError:
            aud = _unverified_claims(raw).get("aud")
            raise TokenRejected(
                RejectReason.WRONG_AUDIENCE,
                f"token audience is {_quote(aud)}, expected {s.audience!r}",
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(
                RejectReason.MISSING_CLAIM, f"token has no '{exc.claim}' claim"
            ) from None
        except InvalidSubjectError:
            raise TokenRejected(
                RejectReason.MISSING_SUBJECT, "token 'sub' claim is not a string"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(
                RejectReason.MALFORMED, f"token payload is malformed ({type(exc).__name__})"
            ) from None
        return claims

    def _identity(self, raw: str, claims: dict[str, Any]) -> Identity:
        s = self.settings
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip():
            raise TokenRejected(RejectReason.MISSING_SUBJECT, "token has no subject ('sub')")
        for name in s.required_claims:
            if _lookup_path(claims, name) is None:
                raise TokenRejected(RejectReason.MISSING_CLAIM, f"token has no '{name}' claim")
        groups = _string_set(_lookup_path(claims, s.groups_claim))
        if groups is None:
            if s.require_groups:
                raise TokenRejected(
                    RejectReason.MISSING_GROUPS,
                    f"token has no usable groups claim '{s.groups_claim}' (a list of strings "
                    "or a space-separated string)",
                )
            groups = frozenset()
        scopes = _string_set(claims.get("scope", claims.get("scp"))) or frozenset()
        if s.required_scope is not None and s.required_scope not in scopes:
            raise TokenRejected(
                RejectReason.MISSING_SCOPE,
                f"token lacks the required scope {s.required_scope!r} "
                f"(has: {' '.join(sorted(scopes)) or 'none'})",
            )
        jti = claims.get("jti")
        client_id = next(
            (v for k in ("client_id", "cid", "azp") if isinstance(v := claims.get(k), str)), None
        )
        return Identity(
            subject=subject,
            groups=groups,
            expires_at=float(claims["exp"]),
            issuer=s.issuer,
            token_id=jti if isinstance(jti, str) and jti else token_fingerprint(raw),
            client_id=client_id,
            scopes=scopes,
        )


def token_fingerprint(token: str) -> str:
    """A stable, non-reversible name for a token without ``jti`` (64-bit SHA-256 prefix)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def _check_size(token: object) -> str:
    if isinstance(token, bytes | bytearray):
        if len(token) > MAX_TOKEN_BYTES:
            raise _too_large(len(token))
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise TokenRejected(RejectReason.MALFORMED, "token is not ASCII") from None
    if not isinstance(token, str):
        raise TokenRejected(RejectReason.MALFORMED, "token is not a string")
    if len(token) > MAX_TOKEN_BYTES:  # checked in characters first: no encoding of a huge string
        raise _too_large(len(token))
    size = len(token.encode("utf-8"))
    if size > MAX_TOKEN_BYTES:
        raise _too_large(size)
    token = token.strip()
    if not token:
        raise TokenRejected(RejectReason.MALFORMED, "token is empty")
    if token.count(".") != 2:
        raise TokenRejected(
            RejectReason.MALFORMED,
            f"token has {token.count('.') + 1} segment(s), a signed JWT has 3",
        )
    return token


def _too_large(size: int) -> TokenRejected:
    return TokenRejected(
        RejectReason.TOKEN_TOO_LARGE,
        f"token is {size} bytes, more than the {MAX_TOKEN_BYTES} allowed",
    )


def _check_header(raw: str, algorithms: tuple[str, ...]) -> dict[str, Any]:
    try:
        header = json.loads(base64url_decode(raw.split(".", 1)[0]))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        header = None
    if not isinstance(header, dict):
        raise TokenRejected(RejectReason.MALFORMED, "token header is not base64url-encoded JSON")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRejected(RejectReason.MALFORMED, "token header has no 'alg'")
    if alg.lower() == "none":
        raise TokenRejected(RejectReason.ALGORITHM_NONE, "unsigned token (alg 'none') refused")
    if alg not in algorithms:
        raise TokenRejected(
            RejectReason.ALGORITHM_NOT_ALLOWED,
            f"token alg {_quote(alg)} is not allowed (allowed: {', '.join(algorithms)})",
        )
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise TokenRejected(
            RejectReason.WRONG_TYPE, f"token typ {_quote(typ)} is not 'JWT' or 'at+jwt'"
        )
    for name in FORBIDDEN_HEADERS:
        if name in header:
            raise TokenRejected(
                RejectReason.UNTRUSTED_KEY_REFERENCE,
                f"token header names its own key source ('{name}'); keys come only from the "
                "issuer's JWKS",
            )
    return header


def _check_signature_length(raw: str, key: SigningKey, alg: str) -> None:
    segment = raw.rsplit(".", 1)[1]
    try:
        signature = base64url_decode(segment)
    except ValueError:  # binascii.Error is a ValueError
        raise TokenRejected(
            RejectReason.MALFORMED, "token signature is not base64url: truncated or damaged"
        ) from None
    want = key.signature_length()
    if len(signature) != want:
        raise TokenRejected(
            RejectReason.MALFORMED,
            f"token signature is {len(signature)} bytes, {alg} with key kid={key.kid!r} makes "
            f"{want}: the token is truncated or damaged",
        )


def _unverified_claims(raw: str) -> dict[str, Any]:
    # Only called after PyJWT verified the signature and failed a claim check: safe to read.
    try:
        claims: dict[str, Any] = jwt.decode(raw, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return {}
    return claims


def _lookup_path(claims: dict[str, Any], path: str) -> object:
    if path in claims:  # a claim name may itself contain dots (URIs as claim names)
        return claims[path]
    node: object = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _string_set(value: object) -> frozenset[str] | None:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None


def _now() -> float:
    return datetime.now(tz=UTC).timestamp()


def _number(value: object, *, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def _when(value: object) -> str:
    if not isinstance(value, int | float):
        return _quote(value)
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
