"""Target credentials, encrypted at rest, that never leave the gateway.

Theory of operation
-------------------
The vault is one JSON file (``<data dir>/vault.json``, mode 0600) of named entries. Each
entry's secret (a password or a private key) is sealed with AES-256-GCM under the vault key;
the entry's name, kind and user name are the associated data, so an entry cannot be
swapped onto another name unnoticed. The key comes from ``WARDGATE_VAULT_KEY`` (base64 of 32
bytes) or the key file ``<data dir>/vault.key`` (0600), which ``vault set`` creates when
neither exists.

A secret is held in a :class:`Secret`, whose ``repr`` and ``str`` never show it: only
:meth:`Secret.reveal` does, at the one place that logs in upstream. Nothing here writes a
secret to a log, an event or the terminal.

Several nodes share credentials by sharing the vault file and key (a config-management
secret, for example); the event store never holds them.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KINDS = ("mysql", "ssh-password", "ssh-key")


class VaultError(Exception):
    """The vault cannot be read or a credential is missing (message names what)."""


class Secret:
    """A secret value that does not show itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Credential:
    name: str
    kind: str
    username: str
    secret: Secret


def _aad(name: str, kind: str, username: str) -> bytes:
    return json.dumps([name, kind, username]).encode()


class Vault:
    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise VaultError("the vault key must be 32 bytes (base64 of 32 random bytes)")
        self.path = path
        self._aead = AESGCM(key)

    @classmethod
    def open(
        cls, data_dir: Path, env: dict[str, str] | None = None, *, create: bool = False
    ) -> Vault:
        env = dict(os.environ) if env is None else env
        path = Path(env.get("WARDGATE_VAULT_FILE") or data_dir / "vault.json")
        encoded = env.get("WARDGATE_VAULT_KEY")
        key_file = data_dir / "vault.key"
        if encoded:
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise VaultError("WARDGATE_VAULT_KEY is not valid base64") from None
        elif key_file.exists():
            key = base64.b64decode(key_file.read_bytes().strip())
        elif create:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = os.urandom(32)
            fd = os.open(key_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64encode(key) + b"\n")
        else:
            raise VaultError(
                f"no vault key: set WARDGATE_VAULT_KEY or create {key_file} with 'wardgate vault set'"
            )
        return cls(path, key)

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": 1, "entries": {}}
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise VaultError(f"cannot read vault {self.path}: {exc}") from None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        tmp.replace(self.path)

    def set(self, *, name: str, kind: str, username: str, secret: str) -> None:
        if kind not in KINDS:
            raise VaultError(f"unknown credential kind {kind!r} (one of {', '.join(KINDS)})")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise VaultError(f"invalid credential name {name!r}: letters, digits, - _ . only")
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), _aad(name, kind, username))
        data = self._load()
        data["entries"][name] = {
            "kind": kind,
            "username": username,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
            "updated": time.time(),
        }
        self._save(data)

    def get(self, name: str) -> Credential:
        entry = self._load()["entries"].get(name)
        if entry is None:
            raise VaultError(f"no credential named {name!r} in the vault")
        try:
            plain = self._aead.decrypt(
                base64.b64decode(entry["nonce"]),
                base64.b64decode(entry["sealed"]),
                _aad(name, entry["kind"], entry["username"]),
            )
        except (InvalidTag, KeyError, ValueError):
            raise VaultError(
                f"credential {name!r} cannot be decrypted: wrong vault key or tampered entry"
            ) from None
        return Credential(
            name=name, kind=entry["kind"], username=entry["username"], secret=Secret(plain.decode())
        )

    def names(self) -> list[tuple[str, str]]:
        """(name, kind) of every entry: never user names or secrets."""
        entries = self._load()["entries"]
        return sorted((name, entry["kind"]) for name, entry in entries.items())

    def delete(self, name: str) -> None:
        data = self._load()
        if data["entries"].pop(name, None) is None:
            raise VaultError(f"no credential named {name!r} in the vault")
        self._save(data)
