"""No token text in logs, messages or reprs; any input is either an Identity or a TokenRejected."""

from __future__ import annotations

import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.devidp import DevIdP
from gateway.identity import IdentitySettings, TokenRejected, TokenVerifier

from .tokens import AUDIENCE, assert_no_token_text, claims, sign_with, unsigned


def every_kind_of_bad_token(idp: DevIdP, stranger_key: rsa.RSAPrivateKey) -> list[str]:
    now = int(time.time())
    good = idp.sign(claims(idp))
    return [
        idp.sign(claims(idp, exp=now - 3600, iat=now - 7200)),
        idp.sign(claims(idp, nbf=now + 3600)),
        idp.sign(claims(idp, iss="https://evil.example")),
        idp.sign(claims(idp, aud="other")),
        unsigned({"alg": "none"}, claims(idp)),
        unsigned({"alg": "HS256", "kid": idp.current_kid}, claims(idp), b"x" * 32),
        sign_with(stranger_key, claims(idp), kid="unknown-kid"),
        sign_with(stranger_key, claims(idp), kid=idp.current_kid),
        good[:-20],
        good[: len(good) // 2],
        idp.sign(claims(idp, sub=None)),
        idp.sign(claims(idp, groups=None)),
        idp.sign(claims(idp, padding="p" * 17_000)),
        idp.sign(claims(idp), {"jku": "http://127.0.0.1:9/keys"}),
        idp.sign(claims(idp), {"typ": "dpop+jwt"}),
    ]


def test_nothing_logged_or_raised_contains_the_token(
    fresh_idp: DevIdP, stranger_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    strict = IdentitySettings(
        issuer=fresh_idp.url,
        audience=AUDIENCE,
        required_scope="never",
        http_timeout=1.0,
        jwks_refresh_cooldown=0.0,
    )
    verifier = TokenVerifier(strict)
    verifier.warm()
    tokens = every_kind_of_bad_token(fresh_idp, stranger_key)
    tokens.append(fresh_idp.sign(claims(fresh_idp)))  # missing scope
    reasons = set()
    texts: list[str] = []

    def reject(token: str) -> None:
        with pytest.raises(TokenRejected) as caught:
            verifier.verify(token)
        reasons.add(caught.value.reason)
        texts.extend([str(caught.value), repr(caught.value)])

    for token in tokens:
        reject(token)
    fresh_idp.stop()
    tokens.append(sign_with(stranger_key, claims(fresh_idp), kid="while-idp-down"))
    reject(tokens[-1])
    assert len(reasons) == 16  # every scenario above hit its own code
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    assert any("token rejected" in t for t in texts)  # logging did happen
    for token in tokens:
        assert_no_token_text(token, *texts)


def test_repr_of_verifier_and_identity_hold_no_token(idp: DevIdP, verifier: TokenVerifier) -> None:
    token = idp.sign(claims(idp))
    identity = verifier.verify(token)
    assert_no_token_text(token, repr(identity), repr(verifier), str(identity))


@pytest.fixture(scope="module")
def module_verifier(idp: DevIdP) -> TokenVerifier:
    verifier = TokenVerifier(IdentitySettings(issuer=idp.url, audience=AUDIENCE))
    verifier.warm()
    return verifier


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_tokens_are_rejected_with_our_error_only(
    idp: DevIdP, module_verifier: TokenVerifier, data: st.DataObject
) -> None:
    token = idp.sign(claims(idp))
    position = data.draw(st.integers(0, len(token) - 1))
    action = data.draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
    char = data.draw(st.sampled_from("AZaz09-_.=+/ é\x00"))
    if action == "cut":
        mutated = token[:position]
    elif action == "flip":
        mutated = token[:position] + char + token[position + 1 :]
    elif action == "insert":
        mutated = token[:position] + char + token[position:]
    else:
        mutated = token[:position] + token[position + 1 :]
    if mutated.strip() == token:
        return
    try:
        module_verifier.verify(mutated)
    except TokenRejected as exc:
        assert_no_token_text(mutated, str(exc))
    else:
        # Only a change that decodes to the same bytes may pass (base64 padding bits).
        assert action == "flip"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_is_rejected_with_our_error_only(
    module_verifier: TokenVerifier, text: str
) -> None:
    with pytest.raises(TokenRejected):
        module_verifier.verify(text)
