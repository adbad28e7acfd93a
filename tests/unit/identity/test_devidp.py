"""The dev IdP over real HTTP on loopback: discovery, JWKS, token endpoints, rotation, files."""

from __future__ import annotations

import base64
import json
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.devidp import DevClient, DevIdP
from gateway.identity import IdentitySettings, TokenVerifier

from .tokens import AUDIENCE

CLIENT = DevClient(
    client_id="ci-runner",
    secret="s3cret-for-tests",
    subject="agent-ci",
    groups=("ci", "db-readers"),
    scopes=("db:read", "db:write"),
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIdP]:
    with DevIdP(tmp_path_factory.mktemp("devidp"), clients=[CLIENT]) as idp:
        yield idp


def call(
    url: str,
    *,
    form: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = None
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_discovery_document(served: DevIdP) -> None:
    status, doc = call(served.url + "/.well-known/openid-configuration")
    assert status == 200
    assert doc["issuer"] == served.url
    assert doc["jwks_uri"] == served.url + "/jwks"
    assert doc["token_endpoint"] == served.url + "/token"
    assert "client_credentials" in doc["grant_types_supported"]


def test_jwks_has_public_keys_only(served: DevIdP) -> None:
    status, doc = call(served.url + "/jwks")
    assert status == 200
    [key] = doc["keys"]
    assert key["kid"] == served.current_kid and key["use"] == "sig" and key["alg"] == "RS256"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_client_credentials_grant(served: DevIdP, auth: str) -> None:
    form = {"grant_type": "client_credentials", "scope": "db:read unknown:scope"}
    headers: dict[str, str] = {}
    if auth == "basic":
        headers = basic(CLIENT.client_id, CLIENT.secret)
    else:
        form |= {"client_id": CLIENT.client_id, "client_secret": CLIENT.secret}
    status, answer = call(served.url + "/token", form=form, headers=headers)
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
    token = answer["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["kid"] == served.current_kid
    verifier = TokenVerifier(IdentitySettings(issuer=served.url, audience=AUDIENCE))
    identity = verifier.verify(token)
    assert identity.subject == "agent-ci"
    assert identity.groups == frozenset({"ci", "db-readers"})
    assert identity.client_id == "ci-runner"
    assert identity.scopes == frozenset({"db:read"})  # unknown scopes dropped
    body = jwt.decode(token, options={"verify_signature": False})
    assert set(body) >= {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"}


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, basic("ci-runner", "wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, basic("nobody", "x"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
        (
            {"grant_type": "password"},
            basic("ci-runner", CLIENT.secret),
            400,
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "client_credentials", "audience": "billing"},
            basic("ci-runner", CLIENT.secret),
            400,
            "invalid_target",
        ),
    ],
)
def test_token_endpoint_errors(
    served: DevIdP, form: dict[str, str], headers: dict[str, str], status: int, error: str
) -> None:
    got_status, answer = call(served.url + "/token", form=form, headers=headers)
    assert (got_status, answer["error"]) == (status, error)


def test_dev_token_endpoint_needs_the_admin_secret(served: DevIdP) -> None:
    request = {"subject": "alice", "groups": ["dba"], "ttl": 60}
    status, answer = call(served.url + "/dev/token", body=request)
    assert (status, answer["error"]) == (401, "invalid_client")
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert call(served.url + "/dev/token", body=request, headers=wrong)[0] == 401
    admin = {"Authorization": f"Bearer {served.admin_secret}"}
    status, answer = call(served.url + "/dev/token", body=request, headers=admin)
    assert status == 200
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["groups"] == ["dba"]
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize("ttl", [0, -5, 13 * 3600])
def test_dev_token_ttl_bounds(served: DevIdP, ttl: float) -> None:
    admin = {"Authorization": f"Bearer {served.admin_secret}"}
    status, answer = call(
        served.url + "/dev/token", body={"subject": "a", "ttl": ttl}, headers=admin
    )
    assert (status, answer["error"]) == (400, "invalid_request")


def test_rotate_endpoint(tmp_path: Path) -> None:
    with DevIdP(tmp_path) as idp:
        old = idp.current_kid
        admin = {"Authorization": f"Bearer {idp.admin_secret}"}
        assert call(idp.url + "/dev/rotate", body={})[0] == 401
        status, answer = call(idp.url + "/dev/rotate", body={}, headers=admin)
        assert status == 200 and answer["kid"] == idp.current_kid != old
        kids = {k["kid"] for k in call(idp.url + "/jwks")[1]["keys"]}
        assert kids == {old, answer["kid"]}


def test_files_are_private(tmp_path: Path) -> None:
    with DevIdP(tmp_path / "data", clients=[CLIENT]) as idp:
        idp.add_client("second", groups=["x"])
        root = tmp_path / "data" / "dev-idp"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        names = {p.name for p in root.iterdir()}
        assert names == {"keys.json", "clients.json", "admin-secret", "issuer"}
        for path in root.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert "PRIVATE KEY" in (root / "keys.json").read_text()
    assert not (root / "issuer").exists()  # removed on stop


def test_loose_file_modes_are_tightened(tmp_path: Path) -> None:
    DevIdP(tmp_path)  # creates keys without serving
    keys = tmp_path / "dev-idp" / "keys.json"
    keys.chmod(0o644)
    DevIdP(tmp_path)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


def test_refuses_non_loopback_bind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevIdP(tmp_path, issuer_host="0.0.0.0")


def test_secrets_stay_out_of_reprs(served: DevIdP) -> None:
    assert CLIENT.secret not in repr(CLIENT)
    assert "PRIVATE" not in repr(served._keys[-1])
