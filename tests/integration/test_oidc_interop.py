"""Interop with a real OpenID provider nobody on this project wrote: npm `oidc-provider`.

scripts/oidc/provider.js runs it on loopback; tokens come from its token endpoint by the
client_credentials grant over HTTP, and TokenVerifier finds its keys through its discovery
document, exactly as it would with Okta.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.identity import (
    IdentitySettings,
    RejectReason,
    TokenRejected,
    TokenVerifier,
)

OIDC_DIR = Path(__file__).resolve().parents[2] / "scripts" / "oidc"
START_TIMEOUT = 30.0


def ensure_npm_packages() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: run scripts/setup.sh (interop tests need Node and npm)")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund"],
        cwd=OIDC_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"`npm install` in {OIDC_DIR} failed:\n{done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def provider() -> Iterator[dict[str, Any]]:
    ensure_npm_packages()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run scripts/setup.sh")
    process = subprocess.Popen(
        [node, "provider.js", "0"],
        cwd=OIDC_DIR,
        stdin=subprocess.PIPE,  # closing it stops the provider
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)
    try:
        if not first_line or not first_line[0]:
            process.kill()
            _, err = process.communicate(timeout=10)
            pytest.fail(f"oidc-provider did not start within {START_TIMEOUT:g} s:\n{err[-2000:]}")
        yield json.loads(first_line[0])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client(provider: dict[str, Any], client_id: str) -> dict[str, Any]:
    return next(c for c in provider["clients"] if c["client_id"] == client_id)


def fetch_token(
    provider: dict[str, Any], client_id: str, *, scope: str = "db:read", resource: str | None = None
) -> str:
    secret = client(provider, client_id)["client_secret"]
    form = {"grant_type": "client_credentials", "scope": scope}
    if resource:
        form["resource"] = resource
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    request = urllib.request.Request(
        provider["issuer"] + "/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Authorization": f"Basic {credentials}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        pytest.fail(f"token endpoint refused: {exc.code} {exc.read()!r}")
    assert answer["token_type"] == "Bearer"
    token: str = answer["access_token"]
    return token


@pytest.fixture(scope="module")
def verifier(provider: dict[str, Any]) -> TokenVerifier:
    settings = IdentitySettings(issuer=provider["issuer"], audience=provider["resource"])
    v = TokenVerifier(settings)
    v.warm()  # real discovery document, real JWKS
    return v


def test_rs256_access_token_is_accepted(provider: dict[str, Any], verifier: TokenVerifier) -> None:
    token = fetch_token(provider, "agent-rs")
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    identity = verifier.verify(token)
    assert identity.subject == "agent-rs"
    assert identity.client_id == "agent-rs"
    assert identity.groups == frozenset({"ci", "db-readers"})
    assert identity.scopes == frozenset({"db:read"})
    assert identity.issuer == provider["issuer"]
    assert identity.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]


def test_es256_access_token_with_string_groups_is_accepted(
    provider: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = fetch_token(provider, "agent-es", scope="db:read db:write")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    identity = verifier.verify(token)
    assert identity.groups == frozenset({"oncall", "db-admins"})
    assert identity.scopes == frozenset({"db:read", "db:write"})


def test_token_for_another_resource_is_rejected(
    provider: dict[str, Any], verifier: TokenVerifier
) -> None:
    token = fetch_token(provider, "agent-rs", resource=provider["other_resource"])
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token)
    assert caught.value.reason is RejectReason.WRONG_AUDIENCE
    assert provider["other_resource"] in str(caught.value)


def test_tampered_token_is_rejected(provider: dict[str, Any], verifier: TokenVerifier) -> None:
    header, payload, signature = fetch_token(provider, "agent-rs").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["db-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(f"{header}.{forged}.{signature}")
    assert caught.value.reason is RejectReason.BAD_SIGNATURE


def test_truncated_token_is_rejected(provider: dict[str, Any], verifier: TokenVerifier) -> None:
    token = fetch_token(provider, "agent-es")
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token[:-10])
    assert caught.value.reason is RejectReason.MALFORMED


def test_required_scope_is_enforced(provider: dict[str, Any]) -> None:
    settings = IdentitySettings(
        issuer=provider["issuer"], audience=provider["resource"], required_scope="db:write"
    )
    strict = TokenVerifier(settings)
    with pytest.raises(TokenRejected) as caught:
        strict.verify(fetch_token(provider, "agent-rs", scope="db:read"))
    assert caught.value.reason is RejectReason.MISSING_SCOPE
    assert strict.verify(fetch_token(provider, "agent-rs", scope="db:write")).subject == "agent-rs"


def test_unknown_scope_is_dropped_by_the_provider(
    provider: dict[str, Any], verifier: TokenVerifier
) -> None:
    # NOTES.md: oidc-provider drops unknown scopes silently; the verifier sees what was granted.
    identity = verifier.verify(fetch_token(provider, "agent-rs", scope="db:read admin:everything"))
    assert identity.scopes == frozenset({"db:read"})
