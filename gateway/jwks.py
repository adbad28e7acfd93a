"""The issuer's signing keys: OIDC discovery, the JWKS document, and the cache in front of them.

Theory of operation
-------------------
Keys come from exactly one place: the JWKS of the configured issuer. Its address is either
configured (``jwks_uri``) or read once from ``{issuer}/.well-known/openid-configuration``, whose
``issuer`` must equal ours and whose ``jwks_uri`` must sit on the issuer's own origin. Nothing a
token says (``jku``, ``x5u``, ``jwk``) ever picks where keys come from; that is decided here,
before any token is seen.

``KeyCache`` holds the last good key set. A lookup that finds its ``kid`` never does I/O, so
verification with cached keys is pure CPU and keeps working when the IdP is down. A lookup that
misses triggers one refresh; concurrent misses share it (a lock plus a generation counter). Two
short cool-downs bound the traffic an attacker can cause with made-up ``kid`` values or while
the IdP is down: after a refresh that still did not find the wanted key, and after a failed
fetch, no refresh is attempted for ``cooldown`` seconds. A successful warm-up or a refresh that
found its key starts no cool-down, so a key rotated in a second after start is picked up at once
(PyJWKClient's 30 s cool-down would reject it: NOTES.md).

Keys older than ``max_age`` are refreshed on the next verification that may block, so a key the
issuer withdraws stops being accepted; if that refresh fails the old set is kept (fail soft for
keys we already trust, fail closed for keys we do not know).

This module does blocking I/O (urllib with a timeout) and imports no trio.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import PyJWK, PyJWTError
from jwt.algorithms import AllowedPublicKeys

log = logging.getLogger("wardgate.identity")

# A JWKS or discovery document larger than this is not one.
MAX_DOCUMENT_BYTES = 1 << 20
MIN_RSA_BITS = 2048

# The key type and curve each accepted algorithm needs; a published key is matched against it so
# that a token can never make us use a key with an algorithm it was not made for.
_KEY_SHAPE: Mapping[str, tuple[str, frozenset[str | None]]] = {
    "RS256": ("RSA", frozenset({None})),
    "PS256": ("RSA", frozenset({None})),
    "ES256": ("EC", frozenset({"P-256"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}


class KeySourceError(Exception):
    """The issuer's discovery document or JWKS could not be fetched or is unusable."""


class UnknownKeyError(Exception):
    """No key with the wanted ``kid`` is published, even after a refresh."""


class RefreshNeeded(Exception):
    """Raised by non-blocking lookups when only a fetch could answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """One public key of the issuer, as parsed from its JWKS."""

    kid: str | None
    kty: str
    curve: str | None
    published_alg: str | None
    public_key: AllowedPublicKeys

    def fits(self, alg: str) -> bool:
        """True when this key may verify a signature made with ``alg``."""
        shape = _KEY_SHAPE.get(alg)
        if shape is None or (self.published_alg is not None and self.published_alg != alg):
            return False
        kty, curves = shape
        return self.kty == kty and self.curve in curves

    def signature_length(self) -> int:
        """The exact byte length of a signature by this key (JWS raw form)."""
        key = self.public_key
        if isinstance(key, rsa.RSAPublicKey):
            return (key.key_size + 7) // 8
        if isinstance(key, ec.EllipticCurvePublicKey):
            return 2 * ((key.curve.key_size + 7) // 8)
        if isinstance(key, ed448.Ed448PublicKey):
            return 114
        return 64  # Ed25519


def parse_jwks(document: object) -> tuple[SigningKey, ...]:
    """The usable signing keys of a JWKS document; other entries are skipped with a log line."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySourceError("JWKS document has no 'keys' list")
    keys: list[SigningKey] = []
    for entry in document["keys"]:
        key = _parse_jwk(entry)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _parse_jwk(entry: object) -> SigningKey | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    kty = entry.get("kty")
    curve = entry.get("crv")
    alg = entry.get("alg")
    if entry.get("use", "sig") != "sig" or kty not in ("RSA", "EC", "OKP"):
        return None
    if "d" in entry or "k" in entry:
        # A private or symmetric key in a public document is a broken IdP, not a key to trust.
        log.warning("JWKS entry kid=%r carries private material; ignored", kid)
        return None
    infer = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[kty]
    try:
        jwk = PyJWK(entry, algorithm=alg if isinstance(alg, str) else infer)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        log.warning("JWKS entry kid=%r skipped: %s", kid, exc)
        return None
    public: Any = jwk.key
    if not isinstance(
        public,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return None
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        log.warning("JWKS entry kid=%r skipped: RSA key of %d bits", kid, public.key_size)
        return None
    return SigningKey(
        kid=kid if isinstance(kid, str) else None,
        kty=kty,
        curve=curve if isinstance(curve, str) else None,
        published_alg=alg if isinstance(alg, str) else None,
        public_key=public,
    )


def fetch_json(url: str, timeout: float) -> object:
    """GET a JSON document with a timeout and a size cap; any failure is a KeySourceError."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise KeySourceError(f"refusing to fetch {url!r}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise KeySourceError(f"GET {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KeySourceError(f"GET {url} failed: {reason}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise KeySourceError(f"GET {url} returned more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise KeySourceError(f"GET {url} did not return JSON") from None


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def same_origin(a: str, b: str) -> bool:
    pa, pb = urllib.parse.urlsplit(a), urllib.parse.urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def jwks_uri_from_discovery(issuer: str, document: object) -> str:
    """The ``jwks_uri`` of a discovery document, checked against the issuer we trust."""
    if not isinstance(document, dict):
        raise KeySourceError("discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        raise KeySourceError(
            f"discovery document names issuer {document.get('issuer')!r}, expected {issuer!r}"
        )
    uri = document.get("jwks_uri")
    if not isinstance(uri, str) or not uri:
        raise KeySourceError("discovery document has no jwks_uri")
    if not same_origin(uri, issuer):
        raise KeySourceError(
            f"discovery jwks_uri {uri!r} is not on the issuer's origin; configure jwks_uri "
            "explicitly if this is intended"
        )
    return uri


class KeyCache:
    """The issuer's public keys, fetched on demand and shared by all verifying threads."""

    def __init__(
        self,
        *,
        issuer: str,
        jwks_uri: str | None,
        timeout: float,
        max_age: float,
        cooldown: float,
        fetch: Callable[[str, float], object] = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._jwks_uri = jwks_uri
        self._timeout = timeout
        self._max_age = max_age
        self._cooldown = cooldown
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: tuple[SigningKey, ...] = ()
        self._fetched_at: float | None = None
        self._generation = 0
        self._quiet_until = float("-inf")
        self._last_error: str | None = None
        self.fetches = 0  # successful JWKS fetches, for operators and tests

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        return self._keys

    def refresh(self) -> None:
        """Fetch discovery (once) and the JWKS now; raises KeySourceError and keeps the old set."""
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        try:
            if self._jwks_uri is None:
                document = self._fetch(discovery_url(self._issuer), self._timeout)
                self._jwks_uri = jwks_uri_from_discovery(self._issuer, document)
            keys = parse_jwks(self._fetch(self._jwks_uri, self._timeout))
        except KeySourceError as exc:
            self._last_error = str(exc)
            self._quiet_until = self._clock() + self._cooldown
            log.warning("identity provider keys unavailable: %s", exc)
            raise
        self._keys = keys
        self._fetched_at = self._clock()
        self._generation += 1
        self._last_error = None
        self.fetches += 1
        log.info("loaded %d signing key(s) from %s", len(keys), self._jwks_uri)

    def lookup(self, kid: str | None, *, may_fetch: bool) -> SigningKey:
        """The key named ``kid``; fetches when needed and allowed.

        Raises UnknownKeyError (not published, checked by a refresh or within the cool-down after
        one), KeySourceError (a fetch was needed and failed, now or within the cool-down), or
        RefreshNeeded (a fetch is due and ``may_fetch`` is false).
        """
        generation = self._generation
        cached = _find(self._keys, kid)
        if cached is not None and not self._stale():
            return cached
        if not may_fetch:
            raise RefreshNeeded
        if cached is not None:
            return self._revalidate(cached)
        return self._fetch_unknown(kid, generation)

    def fresh_generation(self) -> int | None:
        """The current key set's generation while it is fresh (None once it is stale): what
        was verified under a generation stays trusted only while it is current."""
        return None if self._stale() else self._generation

    def seconds_since_fetch(self) -> float | None:
        return None if self._fetched_at is None else self._clock() - self._fetched_at

    def _revalidate(self, cached: SigningKey) -> SigningKey:
        # The set is stale. One thread refreshes; the others keep using the key they trust rather
        # than queue behind a fetch that may take the whole timeout.
        if not self._lock.acquire(blocking=False):
            return cached
        try:
            if self._stale() and self._clock() >= self._quiet_until:
                try:
                    self._refresh_locked()
                except KeySourceError:
                    return cached  # fail soft for a key we already trust
            current = _find(self._keys, cached.kid)
        finally:
            self._lock.release()
        if current is None:
            log.warning("signing key kid=%r was withdrawn by the issuer", cached.kid)
            raise UnknownKeyError
        return current

    def _fetch_unknown(self, kid: str | None, generation: int) -> SigningKey:
        with self._lock:
            if self._generation == generation:  # nobody refreshed while we waited for the lock
                if self._clock() < self._quiet_until:
                    if self._last_error is not None:
                        raise KeySourceError(
                            f"{self._last_error} (next attempt within {self._cooldown:g} s)"
                        )
                    raise UnknownKeyError  # cooling down after a refresh that missed
                self._refresh_locked()
            found = _find(self._keys, kid)
            if found is None:
                self._quiet_until = max(self._quiet_until, self._clock() + self._cooldown)
                raise UnknownKeyError
            return found

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._max_age


def _find(keys: tuple[SigningKey, ...], kid: str | None) -> SigningKey | None:
    if kid is None:
        # A token without kid is only unambiguous when the issuer publishes a single key.
        return keys[0] if len(keys) == 1 else None
    for key in keys:
        if key.kid == kid:
            return key
    return None
