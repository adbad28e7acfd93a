"""IdentitySettings refuses weak or broken settings when built."""

from __future__ import annotations

import pytest

from gateway.identity import IdentitySettings, IdentitySettingsError

ISSUER = "https://company.okta.com/oauth2/default"


def build(**values: object) -> IdentitySettings:
    return IdentitySettings.from_mapping({"issuer": ISSUER, "audience": "wardgate", **values})


def test_defaults() -> None:
    settings = build()
    assert settings.leeway == 30.0
    assert settings.algorithms == ("RS256", "ES256", "PS256", "EdDSA")
    assert settings.groups_claim == "groups"
    assert settings.jwks_refresh_cooldown < 30  # PyJWKClient's 30 s would reject a new kid


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "RS384", "ES256K"])
def test_symmetric_none_and_unlisted_algorithms_are_refused(alg: str) -> None:
    with pytest.raises(IdentitySettingsError, match="never HS"):
        build(algorithms=["RS256", alg])


def test_algorithms_from_toml_list_become_a_tuple() -> None:
    assert build(algorithms=["ES256"]).algorithms == ("ES256",)


@pytest.mark.parametrize("leeway", [-1, 120.5, 600])
def test_leeway_over_two_minutes_is_refused(leeway: float) -> None:
    with pytest.raises(IdentitySettingsError, match="leeway"):
        build(leeway=leeway)


def test_leeway_at_the_limit_is_accepted() -> None:
    assert build(leeway=120).leeway == 120


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example", "ftp://idp.example", "idp.example", "https://idp.example?x=1", ""],
)
def test_bad_issuers(issuer: str) -> None:
    with pytest.raises(IdentitySettingsError, match="issuer"):
        build(issuer=issuer)


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:8900", "http://localhost:1", "http://[::1]:2"]
)
def test_plain_http_on_loopback_is_accepted(issuer: str) -> None:
    assert build(issuer=issuer).issuer == issuer


def test_plain_http_elsewhere_needs_explicit_opt_in() -> None:
    assert build(issuer="http://idp.lab", allow_insecure_http=True).issuer == "http://idp.lab"
    with pytest.raises(IdentitySettingsError, match="jwks_uri"):
        build(jwks_uri="http://keys.example/jwks")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"audience": ""}, "audience"),
        ({"groups_claim": "realm_access..roles"}, "groups_claim"),
        ({"required_scope": "a b"}, "required_scope"),
        ({"required_claims": "tenant"}, "required_claims"),
        ({"jwks_refresh_cooldown": 300}, "jwks_refresh_cooldown"),
        ({"http_timeout": 0}, "http_timeout"),
        ({"jwks_max_age": 0}, "jwks_max_age"),
        ({"colour": "blue"}, "unknown identity setting"),
    ],
)
def test_other_bad_settings(values: dict[str, object], match: str) -> None:
    with pytest.raises(IdentitySettingsError, match=match):
        build(**values)


def test_settings_are_frozen() -> None:
    settings = build()
    with pytest.raises(AttributeError):
        settings.leeway = 0  # type: ignore[misc]
