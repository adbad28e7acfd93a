"""Targets from the settings file: ``[[mysql]]`` and ``[[ssh]]`` tables.

```toml
[[mysql]]
name = "shop"                   # the target's name in policy and events
listen = "127.0.0.1:3307"       # where agents connect
upstream = "127.0.0.1:3306"     # the real server
credential = "shop"             # vault entry used to log in upstream
tls_cert = "gateway.crt"        # optional: offer TLS to clients
tls_key = "gateway.key"
allow_plaintext = false         # token in clear text only on loopback unless true
upstream_tls = false            # TLS to the real server (verified with upstream_ca)
upstream_ca = "ca.pem"
max_hold = "30s"                # how long a client waits on a held command
handshake_timeout = "10s"
record_rows = 20                # result rows recorded per statement, as the client saw them
pool_size = 8                   # upstream logins kept for reuse after a clean quit (0: none)

[[ssh]]
name = "box"
listen = "127.0.0.1:2222"
upstream = "127.0.0.1:22"
credential = "box"              # vault entry: ssh-password or ssh-key
host_key = "ssh-ed25519 AAAA..."  # the upstream's public host key (or known_hosts = FILE)
max_hold = "30s"
record_limit = 8388608          # recording budget per stream of a channel, bytes (past it: counts)
record_rate = 262144            # bytes/s the budget refills (0: never; recording resumes after bulk)
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Settings, parse_duration
from gateway.errors import UserError


def parse_address(text: str, *, what: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(f"{what}: {text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class MySQLTarget:
    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]
    credential: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plaintext: bool = False
    upstream_tls: bool = False
    upstream_ca: Path | None = None
    max_hold: float = 30.0
    handshake_timeout: float = 10.0
    connect_timeout: float = 5.0
    record_rows: int = 20  # result rows recorded per statement (masked); then only counted
    pool_size: int = 8  # upstream logins kept after a clean quit, reset, for the next session

    @property
    def plaintext_allowed(self) -> bool:
        return self.allow_plaintext or is_loopback(self.listen[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class SSHTarget:
    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]
    credential: str
    host_key: str | None = None
    known_hosts: Path | None = None
    record_limit: int = 8 * 1024 * 1024  # recording budget per stream of a channel (bytes)
    record_rate: int = 256 * 1024  # bytes/s the budget refills (0: never)
    max_hold: float = 30.0
    handshake_timeout: float = 10.0
    connect_timeout: float = 5.0


def _path(base: Path | None, value: Any) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value))
    return path if path.is_absolute() or base is None else base / path


def _common(t: Mapping[str, Any], kind: str) -> dict[str, Any]:
    name = t.get("name")
    if not name:
        raise UserError(f"a [[{kind}]] target has no name")
    for key in ("listen", "upstream", "credential"):
        if not t.get(key):
            raise UserError(f"[[{kind}]] {name}: missing {key}")
    return {
        "name": str(name),
        "listen": parse_address(t["listen"], what=f"[[{kind}]] {name} listen"),
        "upstream": parse_address(t["upstream"], what=f"[[{kind}]] {name} upstream"),
        "credential": str(t["credential"]),
        "max_hold": parse_duration(t.get("max_hold", "30s")),
        "handshake_timeout": parse_duration(t.get("handshake_timeout", "10s")),
        "connect_timeout": parse_duration(t.get("connect_timeout", "5s")),
    }


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{what}: expected a whole number >= 0, got {value!r}")
    return value


def mysql_targets(settings: Settings) -> list[MySQLTarget]:
    base = settings.source.parent if settings.source else None
    out = []
    for t in settings.tables("mysql"):
        common = _common(t, "mysql")
        target = MySQLTarget(
            **common,
            tls_cert=_path(base, t.get("tls_cert")),
            tls_key=_path(base, t.get("tls_key")),
            allow_plaintext=bool(t.get("allow_plaintext", False)),
            upstream_tls=bool(t.get("upstream_tls", False)),
            upstream_ca=_path(base, t.get("upstream_ca")),
            record_rows=_count(t.get("record_rows", 20), f"[[mysql]] {common['name']} record_rows"),
            pool_size=_count(t.get("pool_size", 8), f"[[mysql]] {common['name']} pool_size"),
        )
        if (target.tls_cert is None) != (target.tls_key is None):
            raise UserError(f"[[mysql]] {target.name}: tls_cert and tls_key go together")
        if target.tls_cert is None and not target.plaintext_allowed:
            raise UserError(
                f"[[mysql]] {target.name}: listens on {target.listen[0]} without TLS; "
                "set tls_cert/tls_key, or allow_plaintext = true to accept tokens in clear text"
            )
        out.append(target)
    return out


def ssh_targets(settings: Settings) -> list[SSHTarget]:
    base = settings.source.parent if settings.source else None
    out = []
    for t in settings.tables("ssh"):
        common = _common(t, "ssh")
        target = SSHTarget(
            **common,
            host_key=str(t["host_key"]) if t.get("host_key") else None,
            known_hosts=_path(base, t.get("known_hosts")),
            record_limit=int(t.get("record_limit", 8 * 1024 * 1024)),
            record_rate=int(t.get("record_rate", 256 * 1024)),
        )
        if target.host_key is None and target.known_hosts is None:
            raise UserError(
                f"[[ssh]] {target.name}: set host_key or known_hosts (the upstream host key "
                "is always verified)"
            )
        out.append(target)
    return out
