"""KeyCache and JWKS parsing, pure: a fake fetch and a fake clock, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.jwks import (
    KeyCache,
    KeySourceError,
    RefreshNeeded,
    UnknownKeyError,
    jwks_uri_from_discovery,
    parse_jwks,
)

ISSUER = "https://idp.example/oauth2/default"
JWKS_URI = "https://idp.example/oauth2/default/v1/keys"


def rsa_jwk(kid: str, bits: int = 2048) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture(scope="module")
def jwk_a() -> dict[str, Any]:
    return rsa_jwk("a")


@pytest.fixture(scope="module")
def jwk_b() -> dict[str, Any]:
    return rsa_jwk("b")


class FakeIdP:
    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.requests: list[str] = []
        self.down = False
        self.now = 1000.0

    def fetch(self, url: str, timeout: float) -> object:
        self.requests.append(url)
        if self.down:
            raise KeySourceError(f"GET {url} failed: [Errno 111] Connection refused")
        if url.endswith("/.well-known/openid-configuration"):
            return {"issuer": ISSUER, "jwks_uri": JWKS_URI}
        return {"keys": self.keys}

    def clock(self) -> float:
        return self.now

    def cache(self, **kwargs: Any) -> KeyCache:
        options: dict[str, Any] = {"jwks_uri": None, "max_age": 600.0, "cooldown": 2.0}
        options.update(kwargs)
        return KeyCache(issuer=ISSUER, timeout=1.0, fetch=self.fetch, clock=self.clock, **options)


def test_warm_reads_discovery_then_jwks(jwk_a: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache()
    cache.refresh()
    assert idp.requests == [ISSUER + "/.well-known/openid-configuration", JWKS_URI]
    assert cache.lookup("a", may_fetch=False).kid == "a"


def test_configured_jwks_uri_skips_discovery(jwk_a: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache(jwks_uri="https://keys.example/jwks")
    cache.refresh()
    assert idp.requests == ["https://keys.example/jwks"]


def test_new_kid_right_after_warm_up_is_fetched(
    jwk_a: dict[str, Any], jwk_b: dict[str, Any]
) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache()
    cache.refresh()
    idp.keys.append(jwk_b)
    idp.now += 0.01
    assert cache.lookup("b", may_fetch=True).kid == "b"
    assert cache.fetches == 2


def test_misses_are_rate_limited_by_the_cool_down(jwk_a: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache(cooldown=2.0)
    cache.refresh()
    with pytest.raises(UnknownKeyError):
        cache.lookup("x1", may_fetch=True)
    assert cache.fetches == 2
    for name in ("x2", "x3", "x4"):
        idp.now += 0.5
        with pytest.raises(UnknownKeyError):
            cache.lookup(name, may_fetch=True)
    assert cache.fetches == 2  # all within 2 s of the miss
    idp.now += 0.6
    with pytest.raises(UnknownKeyError):
        cache.lookup("x5", may_fetch=True)
    assert cache.fetches == 3


def test_failed_fetch_fails_closed_and_cools_down(jwk_a: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache()
    cache.refresh()
    idp.down = True
    with pytest.raises(KeySourceError, match="Connection refused"):
        cache.lookup("new", may_fetch=True)
    attempts = len(idp.requests)
    with pytest.raises(KeySourceError, match="next attempt within"):
        cache.lookup("new", may_fetch=True)
    assert len(idp.requests) == attempts
    assert cache.lookup("a", may_fetch=False).kid == "a"  # cached keys still work


def test_stale_set_is_refreshed_but_kept_when_the_idp_is_down(jwk_a: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a)
    cache = idp.cache(max_age=60.0)
    cache.refresh()
    idp.now += 61
    with pytest.raises(RefreshNeeded):
        cache.lookup("a", may_fetch=False)
    idp.down = True
    assert cache.lookup("a", may_fetch=True).kid == "a"
    assert idp.requests[-1] == JWKS_URI


def test_stale_refresh_drops_a_withdrawn_key(jwk_a: dict[str, Any], jwk_b: dict[str, Any]) -> None:
    idp = FakeIdP(jwk_a, jwk_b)
    cache = idp.cache(max_age=60.0)
    cache.refresh()
    idp.keys = [jwk_b]
    idp.now += 61
    with pytest.raises(UnknownKeyError):
        cache.lookup("a", may_fetch=True)
    assert cache.lookup("b", may_fetch=False).kid == "b"


def test_token_without_kid_needs_a_single_published_key(
    jwk_a: dict[str, Any], jwk_b: dict[str, Any]
) -> None:
    single = FakeIdP(jwk_a).cache()
    single.refresh()
    assert single.lookup(None, may_fetch=False).kid == "a"
    double = FakeIdP(jwk_a, jwk_b).cache()
    double.refresh()
    with pytest.raises(UnknownKeyError):
        double.lookup(None, may_fetch=True)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"issuer": "https://evil.example", "jwks_uri": JWKS_URI}, "names issuer"),
        ({"issuer": ISSUER, "jwks_uri": "https://evil.example/keys"}, "not on the issuer's origin"),
        ({"issuer": ISSUER, "jwks_uri": "http://idp.example/keys"}, "not on the issuer's origin"),
        ({"issuer": ISSUER}, "no jwks_uri"),
        (["not", "an", "object"], "not a JSON object"),
    ],
)
def test_discovery_is_checked(document: object, message: str) -> None:
    with pytest.raises(KeySourceError, match=message):
        jwks_uri_from_discovery(ISSUER, document)


def test_parse_jwks_keeps_only_usable_public_signing_keys(jwk_a: dict[str, Any]) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "e"}
    private = {**ECAlgorithm.to_jwk(ec_key, as_dict=True), "kid": "leaked"}
    document = {
        "keys": [
            jwk_a,
            ec_jwk,
            {**jwk_a, "kid": "enc", "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            private,
            rsa_jwk("weak", bits=1024),
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    }
    keys = parse_jwks(document)
    assert [k.kid for k in keys] == ["a", "e"]
    assert keys[0].fits("RS256") and not keys[0].fits("PS256")  # published for RS256 only
    assert keys[1].fits("ES256") and not keys[1].fits("RS256")
    assert keys[0].signature_length() == 256 and keys[1].signature_length() == 64


def test_parse_jwks_rejects_documents_without_keys() -> None:
    with pytest.raises(KeySourceError):
        parse_jwks({"not_keys": []})
