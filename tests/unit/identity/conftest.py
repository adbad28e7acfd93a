"""Fixtures: a running dev IdP as issuer, a warmed verifier, and token builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.devidp import DevIdP
from gateway.identity import IdentitySettings, TokenVerifier

from .tokens import AUDIENCE


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIdP]:
    """One issuer per test module (RSA key generation is slow); tests must not rotate it."""
    with DevIdP(tmp_path_factory.mktemp("idp") / "data") as running:
        yield running


@pytest.fixture
def fresh_idp(tmp_path: Path) -> Iterator[DevIdP]:
    """An issuer of the test's own, for tests that rotate keys or stop it."""
    with DevIdP(tmp_path / "data") as running:
        yield running


@pytest.fixture
def settings(idp: DevIdP) -> IdentitySettings:
    return IdentitySettings(issuer=idp.url, audience=AUDIENCE, jwks_refresh_cooldown=0.5)


@pytest.fixture
def verifier(settings: IdentitySettings) -> TokenVerifier:
    v = TokenVerifier(settings)
    v.warm()
    return v


@pytest.fixture(scope="session")
def stranger_key() -> rsa.RSAPrivateKey:
    """An RSA key the IdP never published: generated here, in the test."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
