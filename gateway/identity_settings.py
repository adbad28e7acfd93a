"""Settings of token verification, validated when built so that a weak setting never starts."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields

MAX_TOKEN_BYTES = 16 * 1024
MAX_LEEWAY_SECONDS = 120.0
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "PS256", "EdDSA")
LOOPBACK_NAMES = frozenset({"localhost"})


class IdentitySettingsError(ValueError):
    """A setting that would weaken or break verification; the message names the setting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentitySettings:
    """How tokens are verified. Durations are in seconds.

    ``groups_claim`` is a claim name or a dotted path (``realm_access.roles``); its value may be
    a list of strings or one space-separated string. ``required_claims`` are checked in addition
    to exp, iat, iss, aud and sub, which are always required. Plain ``http`` issuers are accepted
    only on loopback unless ``allow_insecure_http`` is set.
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    leeway: float = 30.0
    required_claims: tuple[str, ...] = ()
    groups_claim: str = "groups"
    require_groups: bool = True
    required_scope: str | None = None
    jwks_uri: str | None = None
    jwks_max_age: float = 600.0
    jwks_refresh_cooldown: float = 2.0
    http_timeout: float = 5.0
    allow_insecure_http: bool = False

    def __post_init__(self) -> None:
        _check_url("issuer", self.issuer, self.allow_insecure_http)
        if self.jwks_uri is not None:
            _check_url("jwks_uri", self.jwks_uri, self.allow_insecure_http)
        if not isinstance(self.audience, str) or not self.audience:
            raise IdentitySettingsError("audience must be a non-empty string")
        if isinstance(self.algorithms, str) or not self.algorithms:
            raise IdentitySettingsError("algorithms must be a non-empty list")
        for alg in self.algorithms:
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise IdentitySettingsError(
                    f"algorithm {alg!r} is not allowed: only asymmetric "
                    f"{', '.join(ASYMMETRIC_ALGORITHMS)} (never HS* or none)"
                )
        if not 0 <= self.leeway <= MAX_LEEWAY_SECONDS:
            raise IdentitySettingsError(
                f"leeway must be between 0 and {MAX_LEEWAY_SECONDS:g} s, not {self.leeway:g}"
            )
        if not self.groups_claim or not all(self.groups_claim.split(".")):
            raise IdentitySettingsError(f"groups_claim {self.groups_claim!r} is not a claim path")
        if isinstance(self.required_claims, str) or not all(
            isinstance(name, str) and name for name in self.required_claims
        ):
            raise IdentitySettingsError("required_claims must be a list of claim names")
        if self.required_scope is not None and (
            not self.required_scope or " " in self.required_scope
        ):
            raise IdentitySettingsError("required_scope must be one scope name")
        _check_range("jwks_max_age", self.jwks_max_age, 1.0, 86_400.0)
        _check_range("jwks_refresh_cooldown", self.jwks_refresh_cooldown, 0.0, 60.0)
        _check_range("http_timeout", self.http_timeout, 0.1, 60.0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> IdentitySettings:
        """Build from a TOML table (lists become tuples); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise IdentitySettingsError(f"unknown identity setting(s): {', '.join(unknown)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        try:
            return cls(**converted)  # type: ignore[arg-type]
        except TypeError as exc:
            raise IdentitySettingsError(str(exc)) from None


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(name: str, url: object, allow_http: bool) -> None:
    if not isinstance(url, str) or not url:
        raise IdentitySettingsError(f"{name} must be a URL")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise IdentitySettingsError(f"{name} {url!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise IdentitySettingsError(f"{name} {url!r} must not have a query or fragment")
    if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise IdentitySettingsError(
            f"{name} {url!r} uses plain http on a non-loopback host; use https "
            "(or set allow_insecure_http for a lab)"
        )


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, int | float) or not low <= value <= high:
        raise IdentitySettingsError(f"{name} must be between {low:g} and {high:g} s, not {value!r}")
