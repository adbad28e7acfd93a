"""The development OpenID provider: discovery, JWKS and RFC 9068 JWT access tokens on loopback.

Theory of operation
-------------------
A stdlib ``ThreadingHTTPServer`` runs in a daemon thread, bound to 127.0.0.1 (port 0 picks a free
one). The issuer URL is ``http://HOST:PORT``. Endpoints:

``GET  /.well-known/openid-configuration``  discovery
``GET  /jwks``                               current and still-published retired public keys
``POST /token``                              ``client_credentials`` (client_secret_basic or _post)
``POST /dev/token``                          dev only: a token for any subject (bearer: admin secret)
``POST /dev/rotate``                         dev only: rotate the signing key (bearer: admin secret)

Signing keys, clients and the admin secret persist in ``DATA_DIR/dev-idp`` (devidp_store.py), so
tokens stay valid across restarts. ``rotate_keys`` makes a new key current and keeps the old one
published for ``grace`` seconds, so verifiers refresh on the new ``kid`` while tokens signed
with the old key keep verifying.

It is a development tool: no TLS, no consent, no refresh tokens; it refuses to bind anything but
a loopback address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt

from gateway.devidp_store import DevClient, DevKey, DevStore, generate_key
from gateway.identity_settings import is_loopback_host

__all__ = ["DEFAULT_AUDIENCE", "DevClient", "DevIdP", "DevIdPError"]

log = logging.getLogger("wardgate.devidp")

DEFAULT_AUDIENCE = "wardgate"
DEFAULT_TTL = 600.0
MAX_TTL = 12 * 3600.0
MAX_REQUEST_BYTES = 64 * 1024
GRANT_CLIENT_CREDENTIALS = "client_credentials"


class DevIdPError(Exception):
    """A request the dev IdP refuses; ``error`` is the OAuth 2.0 error code it answers with."""

    def __init__(self, error: str, description: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


class DevIdP:
    """A local OpenID provider for development, tests and ``wardgate demo``."""

    def __init__(
        self,
        data_dir: Path | str,
        issuer_host: str = "127.0.0.1",
        port: int = 0,
        *,
        audience: str = DEFAULT_AUDIENCE,
        clients: Iterable[DevClient] = (),
        algorithm: str = "RS256",
        grace: float = MAX_TTL,
    ) -> None:
        if not is_loopback_host(issuer_host):
            raise ValueError(f"the dev IdP binds loopback addresses only, not {issuer_host!r}")
        self.audience = audience
        self.algorithm = algorithm
        self.grace = grace
        self._host = issuer_host
        self._port = port
        self._store = DevStore(Path(data_dir))
        self._store.prepare()
        self._lock = threading.Lock()
        self._keys = self._store.load_keys()
        if not self._keys:
            self._keys = [generate_key(algorithm, time.time())]
            self._store.save_keys(self._keys)
        self._clients = {c.client_id: c for c in self._store.load_clients()}
        self._clients.update({c.client_id: c for c in clients})
        self.admin_secret: str = self._store.admin_secret(create=True) or ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve in a daemon thread; ``url`` is valid afterwards."""
        if self._server is not None:
            raise RuntimeError("dev IdP already started")
        server = ThreadingHTTPServer((self._host, self._port), _Handler)
        server.daemon_threads = True
        server.idp = self  # type: ignore[attr-defined]
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="dev-idp", daemon=True
        )
        self._thread.start()
        self._store.write_issuer(self.url)
        log.info("dev IdP serving %s", self.url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._store.clear_issuer(self.url)

    def __enter__(self) -> DevIdP:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The issuer URL (also the base of every endpoint)."""
        if self._port == 0:
            raise RuntimeError("dev IdP not started: its port is not known yet")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    # keys ---------------------------------------------------------------------------------------
    @property
    def current_kid(self) -> str:
        return self._keys[-1].kid

    def published_keys(self, now: float | None = None) -> list[DevKey]:
        now = time.time() if now is None else now
        return [k for k in self._keys if k.retired_at is None or now < k.retired_at + self.grace]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.published_keys()]}

    def rotate_keys(self) -> str:
        """Make a new signing key current; the old one stays published for ``grace`` seconds."""
        now = time.time()
        new = generate_key(self.algorithm, now)
        with self._lock:
            retired = [k if k.retired_at else _retire(k, now) for k in self.published_keys(now)]
            self._keys = [*retired, new]
            self._store.save_keys(self._keys)
        log.info("dev IdP rotated its signing key: new kid %s", new.kid)
        return new.kid

    # clients ------------------------------------------------------------------------------------
    def add_client(
        self,
        client_id: str,
        *,
        subject: str | None = None,
        groups: Sequence[str] = (),
        scopes: Sequence[str] = (),
        secret: str | None = None,
    ) -> DevClient:
        """Register (or update) a client_credentials client and persist it."""
        old = self._clients.get(client_id)
        client = DevClient(
            client_id=client_id,
            secret=secret or (old.secret if old else secrets.token_urlsafe(24)),
            subject=subject or client_id,
            groups=tuple(groups),
            scopes=tuple(scopes),
        )
        with self._lock:
            self._clients[client_id] = client
            self._store.save_clients(self._clients.values())
        return client

    # tokens -------------------------------------------------------------------------------------
    def issue_token(
        self,
        subject: str,
        groups: Iterable[str] = (),
        ttl: float = DEFAULT_TTL,
        *,
        audience: str | None = None,
        scope: str | None = None,
        client_id: str | None = None,
    ) -> str:
        """A signed RFC 9068 access token (``typ: at+jwt``) for ``subject``."""
        if not subject:
            raise DevIdPError("invalid_request", "subject must not be empty")
        if not 0 < ttl <= MAX_TTL:
            raise DevIdPError("invalid_request", f"ttl must be in (0, {MAX_TTL:g}] seconds")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": audience or self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(16),
            "client_id": client_id or "wardgate-dev",
            "groups": sorted(set(groups)),
        }
        if scope:
            claims["scope"] = scope
        return self.sign(claims)

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """Sign arbitrary claims with the current key (tests use it to build bad tokens)."""
        key = self._keys[-1]
        header = {"kid": key.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=header)

    def client_credentials(self, client_id: str, secret: str, form: dict[str, str]) -> str:
        client = self._clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret, secret):
            raise DevIdPError("invalid_client", "unknown client or wrong secret", 401)
        requested = set(form.get("scope", "").split())
        granted = (requested & set(client.scopes)) if requested else set(client.scopes)
        audience = form.get("audience") or form.get("resource") or self.audience
        if audience != self.audience:
            raise DevIdPError("invalid_target", f"this IdP issues tokens for {self.audience!r}")
        return self.issue_token(
            client.subject,
            client.groups,
            DEFAULT_TTL,
            audience=audience,
            scope=" ".join(sorted(granted)),
            client_id=client.client_id,
        )

    def discovery(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": base,
            "jwks_uri": f"{base}/jwks",
            "token_endpoint": f"{base}/token",
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.algorithm],
            "scopes_supported": sorted({s for c in self._clients.values() for s in c.scopes}),
        }


def _retire(key: DevKey, now: float) -> DevKey:
    return replace(key, retired_at=now)


class _Handler(BaseHTTPRequestHandler):
    server_version = "wardgate-dev-idp"

    @property
    def idp(self) -> DevIdP:
        idp: DevIdP = self.server.idp  # type: ignore[attr-defined]
        return idp

    def log_message(self, format: str, *args: object) -> None:
        # Paths only (no query strings, no bodies): requests may carry secrets.
        log.debug("%s %s", self.command, self.path.split("?", 1)[0])

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/.well-known/openid-configuration":
            self._json(HTTPStatus.OK, self.idp.discovery())
        elif path == "/jwks":
            self._json(HTTPStatus.OK, self.idp.jwks())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def do_POST(self) -> None:
        try:
            body = self._body()
            if self.path == "/token":
                self._token(body)
            elif self.path == "/dev/token":
                self._admin()
                self._dev_token(body)
            elif self.path == "/dev/rotate":
                self._admin()
                self._json(HTTPStatus.OK, {"kid": self.idp.rotate_keys()})
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})
        except DevIdPError as exc:
            extra = {"WWW-Authenticate": 'Basic realm="dev-idp"'} if exc.status == 401 else {}
            self._json(exc.status, {"error": exc.error, "error_description": str(exc)}, extra)

    def _token(self, body: bytes) -> None:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != GRANT_CLIENT_CREDENTIALS:
            raise DevIdPError("unsupported_grant_type", "only client_credentials is supported")
        client_id, secret = self._basic_auth() or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        token = self.idp.client_credentials(client_id, secret, form)
        self._issued(token, form.get("scope", ""))

    def _dev_token(self, body: bytes) -> None:
        try:
            request = json.loads(body or b"{}")
            ttl = float(request.get("ttl", DEFAULT_TTL))
            groups = [str(g) for g in request.get("groups", [])]
        except (ValueError, TypeError, AttributeError):
            raise DevIdPError("invalid_request", "body must be a JSON object") from None
        token = self.idp.issue_token(
            str(request.get("subject", "")),
            groups,
            ttl,
            audience=request.get("audience"),
            scope=request.get("scope"),
        )
        self._issued(token, request.get("scope") or "", ttl)

    def _issued(self, token: str, scope: str, ttl: float = DEFAULT_TTL) -> None:
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)}
        if scope:
            answer["scope"] = scope
        self._json(HTTPStatus.OK, answer)

    def _admin(self) -> None:
        auth = self.headers.get("Authorization", "")
        presented = auth[7:] if auth.startswith("Bearer ") else ""
        if not presented or not hmac.compare_digest(presented, self.idp.admin_secret):
            raise DevIdPError("invalid_client", "dev endpoints need the dev admin secret", 401)

    def _basic_auth(self) -> tuple[str, str] | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(auth[6:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise DevIdPError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, _, secret = decoded.partition(":")
        # RFC 6749 2.3.1: both parts are form-urlencoded inside the Basic credentials.
        return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise DevIdPError("invalid_request", "bad Content-Length") from None
        if not 0 <= length <= MAX_REQUEST_BYTES:
            raise DevIdPError("invalid_request", "request body too large")
        return self.rfile.read(length)

    def _json(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
