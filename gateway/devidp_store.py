"""What the development IdP keeps on disk: signing keys, clients and the dev admin secret.

Layout under the data directory (directory mode 0700, files 0600, written atomically)::

    dev-idp/keys.json       signing keys (PKCS#8 PEM), current one last, retired ones with
                            the time they were retired
    dev-idp/clients.json    client_credentials clients (id, secret, subject, groups, scopes)
    dev-idp/admin-secret    bearer secret of the dev-only endpoints (/dev/token, /dev/rotate)
    dev-idp/issuer          URL of the running IdP, for `wardgate token`

A retired key stays published for a grace period so tokens it signed keep verifying until they
expire; after that it is dropped from the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

log = logging.getLogger("wardgate.devidp")

SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")
SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True, kw_only=True)
class DevClient:
    """A client allowed the client_credentials grant, and the identity its tokens carry."""

    client_id: str
    secret: str
    subject: str
    groups: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"DevClient(client_id={self.client_id!r}, subject={self.subject!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class DevKey:
    kid: str
    alg: str
    private_key: SigningPrivateKey
    created_at: float
    retired_at: float | None = None

    def __repr__(self) -> str:
        return f"DevKey(kid={self.kid!r}, alg={self.alg!r}, retired_at={self.retired_at!r})"

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}


def generate_key(alg: str, now: float) -> DevKey:
    private: SigningPrivateKey
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"dev IdP cannot sign with {alg!r}; choose one of {SIGNING_ALGORITHMS}")
    draft = DevKey(kid="", alg=alg, private_key=private, created_at=now)
    return replace(draft, kid=jwk_thumbprint(draft.public_jwk()))


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


class DevStore:
    """The dev IdP's directory; every write is atomic and private."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "dev-idp"

    def prepare(self) -> None:
        for directory in (self.root.parent, self.root):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask and ignored for existing directories.
        os.chmod(self.root, 0o700)

    # keys ---------------------------------------------------------------------------------------
    def load_keys(self) -> list[DevKey]:
        raw = self._read("keys.json")
        if raw is None:
            return []
        keys = []
        for entry in json.loads(raw)["keys"]:
            private = serialization.load_pem_private_key(entry["private_pem"].encode(), None)
            if not isinstance(private, SigningPrivateKey):
                raise TypeError(f"unsupported key type in {self.root / 'keys.json'}")
            keys.append(
                DevKey(
                    kid=entry["kid"],
                    alg=entry["alg"],
                    private_key=private,
                    created_at=entry["created_at"],
                    retired_at=entry.get("retired_at"),
                )
            )
        return keys

    def save_keys(self, keys: Iterable[DevKey]) -> None:
        entries = [
            {
                "kid": key.kid,
                "alg": key.alg,
                "created_at": key.created_at,
                "retired_at": key.retired_at,
                "private_pem": key.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
            }
            for key in keys
        ]
        self._write("keys.json", json.dumps({"keys": entries}, indent=2))

    # clients ------------------------------------------------------------------------------------
    def load_clients(self) -> list[DevClient]:
        raw = self._read("clients.json")
        if raw is None:
            return []
        return [
            DevClient(
                client_id=c["client_id"],
                secret=c["secret"],
                subject=c["subject"],
                groups=tuple(c.get("groups", ())),
                scopes=tuple(c.get("scopes", ())),
            )
            for c in json.loads(raw)["clients"]
        ]

    def save_clients(self, clients: Iterable[DevClient]) -> None:
        entries = [
            {
                "client_id": c.client_id,
                "secret": c.secret,
                "subject": c.subject,
                "groups": list(c.groups),
                "scopes": list(c.scopes),
            }
            for c in clients
        ]
        self._write("clients.json", json.dumps({"clients": entries}, indent=2))

    # admin secret and issuer URL ----------------------------------------------------------------
    def admin_secret(self, *, create: bool) -> str | None:
        raw = self._read("admin-secret")
        if raw is not None:
            return raw.strip()
        if not create:
            return None
        secret = secrets.token_urlsafe(32)
        self._write("admin-secret", secret + "\n")
        return secret

    def write_issuer(self, url: str) -> None:
        self._write("issuer", url + "\n")

    def read_issuer(self) -> str | None:
        raw = self._read("issuer")
        return raw.strip() if raw else None

    def clear_issuer(self, url: str) -> None:
        # Only remove what we wrote: another dev IdP may have started on this directory since.
        if self.read_issuer() == url:
            (self.root / "issuer").unlink(missing_ok=True)

    # files --------------------------------------------------------------------------------------
    def _read(self, name: str) -> str | None:
        path = self.root / name
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None
        if stat.S_IMODE(mode) & 0o077:
            log.warning("%s was readable by others; mode set to 0600", path)
            os.chmod(path, 0o600)
        return path.read_text(encoding="utf-8")

    def _write(self, name: str, text: str) -> None:
        self.prepare()
        path = self.root / name
        tmp = path.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may have narrowed, never widened
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
