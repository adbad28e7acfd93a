"""Every way a token is refused, each with its own reason code, against a real dev IdP issuer."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.devidp import DevIdP
from gateway.identity import (
    MAX_TOKEN_BYTES,
    IdentitySettings,
    RejectReason,
    TokenVerifier,
)

from .tokens import AUDIENCE, assert_rejected, b64, claims, sign_with, unsigned


def test_valid_token_gives_identity(idp: DevIdP, verifier: TokenVerifier) -> None:
    body = claims(idp)
    identity = verifier.verify(idp.sign(body))
    assert identity.subject == "agent-7"
    assert identity.groups == frozenset({"dba", "oncall"})
    assert identity.expires_at == float(body["exp"])
    assert identity.issuer == idp.url
    assert identity.token_id == body["jti"]
    assert identity.client_id == "ci-runner"
    assert identity.scopes == frozenset({"db:read", "db:write"})


def test_token_id_without_jti_is_a_fingerprint_not_the_token(
    idp: DevIdP, verifier: TokenVerifier
) -> None:
    token = idp.sign(claims(idp, jti=None))
    identity = verifier.verify(token)
    assert identity.token_id.startswith("sha256:")
    assert identity.token_id[7:] == hashlib.sha256(token.encode()).hexdigest()[:16]
    assert token not in repr(identity)


def test_expired(idp: DevIdP, verifier: TokenVerifier) -> None:
    now = int(time.time())
    token = idp.sign(claims(idp, iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    exc = assert_rejected(verifier, token, RejectReason.EXPIRED)
    assert "expired at" in str(exc) and "leeway 30 s" in str(exc)


def test_expired_within_leeway_is_accepted(idp: DevIdP, verifier: TokenVerifier) -> None:
    now = int(time.time())
    verifier.verify(idp.sign(claims(idp, iat=now - 600, exp=now - 10)))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(idp: DevIdP, verifier: TokenVerifier, claim: str) -> None:
    token = idp.sign(claims(idp, **{claim: int(time.time()) + 600}))
    exc = assert_rejected(verifier, token, RejectReason.NOT_YET_VALID)
    assert f"token {claim} is" in str(exc)


def test_nbf_in_future_within_leeway_is_accepted(idp: DevIdP, verifier: TokenVerifier) -> None:
    verifier.verify(idp.sign(claims(idp, nbf=int(time.time()) + 20)))


def test_wrong_issuer(idp: DevIdP, verifier: TokenVerifier) -> None:
    token = idp.sign(claims(idp, iss="https://evil.example"))
    exc = assert_rejected(verifier, token, RejectReason.WRONG_ISSUER)
    assert "https://evil.example" in str(exc) and idp.url in str(exc)


def test_wrong_audience(idp: DevIdP, verifier: TokenVerifier) -> None:
    exc = assert_rejected(
        verifier, idp.sign(claims(idp, aud="billing-api")), RejectReason.WRONG_AUDIENCE
    )
    assert "billing-api" in str(exc)


def test_audience_list_containing_ours_is_accepted(idp: DevIdP, verifier: TokenVerifier) -> None:
    verifier.verify(idp.sign(claims(idp, aud=["billing-api", AUDIENCE])))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(idp: DevIdP, verifier: TokenVerifier, alg: str) -> None:
    token = unsigned({"alg": alg, "typ": "JWT", "kid": idp.current_kid}, claims(idp))
    assert_rejected(verifier, token, RejectReason.ALGORITHM_NONE)


def test_hs256_signed_with_the_public_key(idp: DevIdP, verifier: TokenVerifier) -> None:
    # The classic confusion: HMAC keyed with the issuer's public key, which anyone can fetch.
    jwk = idp.jwks()["keys"][0]
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    assert isinstance(public, rsa.RSAPublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}).encode())
    payload = b64(json.dumps(claims(idp)).encode())
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64(mac)}"
    exc = assert_rejected(verifier, token, RejectReason.ALGORITHM_NOT_ALLOWED)
    assert "'HS256'" in str(exc)


def test_unknown_kid_after_refresh(
    idp: DevIdP, verifier: TokenVerifier, stranger_key: rsa.RSAPrivateKey
) -> None:
    before = verifier.keys.fetches
    token = sign_with(stranger_key, claims(idp), kid="never-published")
    exc = assert_rejected(verifier, token, RejectReason.UNKNOWN_KEY)
    assert "never-published" in str(exc)
    assert verifier.keys.fetches == before + 1  # it did look again before refusing
    # A second made-up kid within the cool-down is refused without hitting the IdP again.
    other = sign_with(stranger_key, claims(idp), kid="also-made-up")
    assert_rejected(verifier, other, RejectReason.UNKNOWN_KEY)
    assert verifier.keys.fetches == before + 1


def test_bad_signature_from_another_key(
    idp: DevIdP, verifier: TokenVerifier, stranger_key: rsa.RSAPrivateKey
) -> None:
    token = sign_with(stranger_key, claims(idp), kid=idp.current_kid)
    assert_rejected(verifier, token, RejectReason.BAD_SIGNATURE)


def test_bad_signature_after_tampering_with_claims(idp: DevIdP, verifier: TokenVerifier) -> None:
    header, _, signature = idp.sign(claims(idp)).split(".")
    forged = b64(json.dumps(claims(idp, groups=["superuser"])).encode())
    assert_rejected(verifier, f"{header}.{forged}.{signature}", RejectReason.BAD_SIGNATURE)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "   ",
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.###.$$$",
        b64(b"not json") + "." + b64(b"{}") + ".",
        b64(b'["a list"]') + "." + b64(b"{}") + ".",
    ],
)
def test_malformed(verifier: TokenVerifier, token: str) -> None:
    assert_rejected(verifier, token, RejectReason.MALFORMED)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated(idp: DevIdP, verifier: TokenVerifier, keep: float) -> None:
    token = idp.sign(claims(idp))
    exc = assert_rejected(verifier, token[: int(len(token) * keep)], RejectReason.MALFORMED)
    assert str(exc)


def test_truncated_signature_is_named_as_such(idp: DevIdP, verifier: TokenVerifier) -> None:
    exc = assert_rejected(verifier, idp.sign(claims(idp))[:-8], RejectReason.MALFORMED)
    assert "truncated" in str(exc)


def test_signed_payload_that_is_not_json(idp: DevIdP, verifier: TokenVerifier) -> None:
    key = idp._keys[-1].private_key
    token = jwt.api_jws.encode(b"garbage", key, algorithm="RS256", headers={"kid": idp.current_kid})
    assert_rejected(verifier, token, RejectReason.MALFORMED)


def test_unsigned_garbage_payload_fails_on_the_signature(
    idp: DevIdP, verifier: TokenVerifier
) -> None:
    header = b64(json.dumps({"alg": "RS256", "kid": idp.current_kid}).encode())
    token = f"{header}.{b64(b'garbage')}.{b64(bytes(256))}"
    assert_rejected(verifier, token, RejectReason.BAD_SIGNATURE)


@pytest.mark.parametrize("sub", [None, "", "   ", 42])
def test_missing_subject(idp: DevIdP, verifier: TokenVerifier, sub: object) -> None:
    assert_rejected(verifier, idp.sign(claims(idp, sub=sub)), RejectReason.MISSING_SUBJECT)


@pytest.mark.parametrize("groups", [None, 7, ["ok", 3], {"a": 1}])
def test_missing_groups(idp: DevIdP, verifier: TokenVerifier, groups: object) -> None:
    exc = assert_rejected(
        verifier, idp.sign(claims(idp, groups=groups)), RejectReason.MISSING_GROUPS
    )
    assert "'groups'" in str(exc)


def test_groups_optional_when_not_required(idp: DevIdP, settings: IdentitySettings) -> None:
    lenient = TokenVerifier(_with(settings, require_groups=False))
    assert lenient.verify(idp.sign(claims(idp, groups=None))).groups == frozenset()


def test_groups_as_space_separated_string(idp: DevIdP, verifier: TokenVerifier) -> None:
    identity = verifier.verify(idp.sign(claims(idp, groups="dba  readers")))
    assert identity.groups == frozenset({"dba", "readers"})


def test_groups_from_dotted_path(idp: DevIdP, settings: IdentitySettings) -> None:
    keycloak_style = TokenVerifier(_with(settings, groups_claim="realm_access.roles"))
    body = claims(idp, groups=None, realm_access={"roles": ["db-admin"]})
    assert keycloak_style.verify(idp.sign(body)).groups == frozenset({"db-admin"})
    assert_rejected(keycloak_style, idp.sign(claims(idp)), RejectReason.MISSING_GROUPS)


def test_missing_required_scope(idp: DevIdP, settings: IdentitySettings) -> None:
    strict = TokenVerifier(_with(settings, required_scope="wardgate:connect"))
    exc = assert_rejected(strict, idp.sign(claims(idp)), RejectReason.MISSING_SCOPE)
    assert "wardgate:connect" in str(exc)
    assert_rejected(strict, idp.sign(claims(idp, scope=None)), RejectReason.MISSING_SCOPE)
    # Okta puts scopes in an `scp` list.
    strict.verify(idp.sign(claims(idp, scope=None, scp=["wardgate:connect"])))


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "iss"])
def test_missing_registered_claim(idp: DevIdP, verifier: TokenVerifier, claim: str) -> None:
    exc = assert_rejected(
        verifier, idp.sign(claims(idp, **{claim: None})), RejectReason.MISSING_CLAIM
    )
    assert f"'{claim}'" in str(exc)


def test_missing_configured_claim(idp: DevIdP, settings: IdentitySettings) -> None:
    strict = TokenVerifier(_with(settings, required_claims=("tenant",)))
    assert_rejected(strict, idp.sign(claims(idp)), RejectReason.MISSING_CLAIM)
    strict.verify(idp.sign(claims(idp, tenant="acme")))


def test_token_over_16_kib_is_refused_before_parsing(
    idp: DevIdP, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = idp.sign(claims(idp, padding="x" * MAX_TOKEN_BYTES))
    monkeypatch.setattr("gateway.identity.base64url_decode", _must_not_parse)
    monkeypatch.setattr(jwt, "decode", _must_not_parse)
    exc = assert_rejected(verifier, token, RejectReason.TOKEN_TOO_LARGE)
    assert str(MAX_TOKEN_BYTES) in str(exc)
    assert_rejected(verifier, "x" * (MAX_TOKEN_BYTES + 1), RejectReason.TOKEN_TOO_LARGE)
    # Multi-byte characters count as their UTF-8 bytes.
    assert_rejected(verifier, "é" * (MAX_TOKEN_BYTES // 2 + 1), RejectReason.TOKEN_TOO_LARGE)


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+jwt", None])
def test_accepted_types(idp: DevIdP, verifier: TokenVerifier, typ: str | None) -> None:
    token = jwt.encode(
        claims(idp),
        idp._keys[-1].private_key,
        algorithm="RS256",
        headers={"kid": idp.current_kid, "typ": typ},
    )
    verifier.verify(token)


@pytest.mark.parametrize("typ", ["dpop+jwt", "logout+jwt", "JWS", 5])
def test_wrong_type(idp: DevIdP, verifier: TokenVerifier, typ: object) -> None:
    assert_rejected(verifier, idp.sign(claims(idp), {"typ": typ}), RejectReason.WRONG_TYPE)


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "http://127.0.0.1:9/evil-jwks.json"},
        {"x5u": "http://127.0.0.1:9/evil.pem"},
        {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
    ],
)
def test_token_named_key_sources_are_refused(
    idp: DevIdP, verifier: TokenVerifier, header: dict[str, object]
) -> None:
    before = verifier.keys.fetches
    assert_rejected(verifier, idp.sign(claims(idp), header), RejectReason.UNTRUSTED_KEY_REFERENCE)
    assert verifier.keys.fetches == before


def test_key_of_the_wrong_type_for_alg(idp: DevIdP, verifier: TokenVerifier) -> None:
    # ES256 header pointing at the issuer's RSA key.
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(idp), ec_key, algorithm="ES256", headers={"kid": idp.current_kid})
    assert_rejected(verifier, token, RejectReason.KEY_MISMATCH)


def test_algorithm_outside_settings(idp: DevIdP, settings: IdentitySettings) -> None:
    only_es = TokenVerifier(_with(settings, algorithms=("ES256",)))
    assert_rejected(only_es, idp.sign(claims(idp)), RejectReason.ALGORITHM_NOT_ALLOWED)


def _with(settings: IdentitySettings, **changes: object) -> IdentitySettings:
    return replace(settings, **changes)  # type: ignore[arg-type]


def _must_not_parse(*args: object, **kwargs: object) -> None:
    raise AssertionError("an oversized token must be refused before parsing")
