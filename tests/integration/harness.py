"""Run a real gateway (trio, in a background thread) against the local MariaDB, with the
development IdP as token issuer, for integration tests that use blocking real clients."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
import trio

from events.store import EventStore
from gateway.config import Settings, load_settings
from gateway.devidp import DevIdP
from gateway.server import Gateway, Started
from gateway.vault import Vault

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
APP_USER, APP_PASSWORD = "wg_app", "wg-app-Secret-1"


def mariadb(database: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(**MARIADB, database=database, autocommit=True)  # type: ignore[arg-type]


def ensure_app_user(database: str) -> None:
    """A MariaDB account the gateway logs in with (the agent never learns it)."""
    with mariadb() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        cur.execute(
            f"CREATE USER IF NOT EXISTS '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'"
        )
        cur.execute(
            f"CREATE USER IF NOT EXISTS '{APP_USER}'@'localhost' IDENTIFIED BY '{APP_PASSWORD}'"
        )
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{APP_USER}'@'127.0.0.1'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{APP_USER}'@'localhost'")
        cur.execute("GRANT PROCESS, CONNECTION ADMIN ON *.* TO 'wg_app'@'127.0.0.1'")


class _Clients:
    """Tokens and PyMySQL connections for a gateway under test (``idp`` and ``ports``)."""

    idp: DevIdP
    ports: dict[str, int]

    def token(
        self, subject: str = "agent-7", groups: tuple[str, ...] = ("agents",), ttl: int = 600
    ) -> str:
        return self.idp.issue_token(subject, groups, ttl)

    def connect(self, token: str | None = None, target: str = "shop", **kw: object):  # type: ignore[no-untyped-def]
        return pymysql.connect(
            host="127.0.0.1",
            port=self.ports[target],
            user="agent",
            password=token if token is not None else self.token(),
            **kw,  # type: ignore[arg-type]
        )


@dataclass
class RunningGateway(_Clients):
    settings: Settings
    idp: DevIdP
    ports: dict[str, int]
    started: Started
    data_dir: Path

    def store(self) -> EventStore:
        return EventStore(self.settings.store)

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the `wardgate` CLI in another process against this gateway's settings."""
        env = {**os.environ, "WARDGATE_CONFIG": str(self.data_dir / "wardgate.toml")}
        env.pop("WARDGATE_TOKEN", None)
        if token:
            env["WARDGATE_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )


def write_gateway_files(
    tmp_path: Path,
    *,
    policy: str,
    database: str = "wg_it",
    store_url: str | None = None,
    extra: str = "",
    max_hold: str = "8s",
    idp: DevIdP,
) -> tuple[Settings, Path]:
    """A data directory with the settings file, the policy and the vaulted upstream login;
    returns the loaded settings and the data directory (the settings file is
    ``<data dir>/wardgate.toml``)."""
    ensure_app_user(database)
    data_dir = tmp_path / f"gw-{uuid.uuid4().hex[:6]}"
    data_dir.mkdir()
    policy_file = data_dir / "policy.toml"
    policy_file.write_text(policy)
    store_line = f'url = "{store_url}"' if store_url else ""
    config = data_dir / "wardgate.toml"
    config.write_text(
        f"""
[gateway]
node = "test-node"
data_dir = "{data_dir}"

[store]
{store_line}

[identity]
issuer = "{idp.url}"
audience = "wardgate"

[policy]
file = "{policy_file}"

[[mysql]]
name = "shop"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:3306"
credential = "shop"
max_hold = "{max_hold}"
{extra}
"""
    )
    settings = load_settings(config, env={})
    Vault.open(data_dir, {}, create=True).set(
        name="shop", kind="mysql", username=APP_USER, secret=APP_PASSWORD
    )
    return settings, data_dir


@contextmanager
def running_gateway(
    tmp_path: Path,
    *,
    policy: str,
    database: str = "wg_it",
    store_url: str | None = None,
    extra: str = "",
    max_hold: str = "8s",
    idp: DevIdP | None = None,
) -> Iterator[RunningGateway]:
    own_idp = idp is None
    if idp is None:
        idp = DevIdP(tmp_path / f"idp-{uuid.uuid4().hex[:6]}")
        idp.start()
    settings, data_dir = write_gateway_files(
        tmp_path,
        policy=policy,
        database=database,
        store_url=store_url,
        extra=extra,
        max_hold=max_hold,
        idp=idp,
    )
    results: queue.Queue[object] = queue.Queue()
    holder: dict[str, object] = {}

    async def main() -> None:
        holder["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            holder["scope"] = scope
            async with trio.open_nursery() as nursery:
                started = await nursery.start(Gateway(settings).run)
                results.put(started)

    def thread_main() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            results.put(exc)

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    got = results.get(timeout=30)
    if isinstance(got, BaseException):
        raise got
    assert isinstance(got, Started)
    try:
        yield RunningGateway(
            settings=settings, idp=idp, ports=got.ports, started=got, data_dir=data_dir
        )
    finally:
        trio.from_thread.run_sync(holder["scope"].cancel, trio_token=holder["token"])  # type: ignore[attr-defined]
        thread.join(15)
        if own_idp:
            idp.stop()


ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess(_Clients):
    """``wardgate serve`` in its own process (for measuring its memory or CPU)."""

    process: subprocess.Popen[str]
    settings: Settings
    idp: DevIdP
    ports: dict[str, int]
    data_dir: Path

    def rss_kib(self) -> int:
        """The process's resident memory (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")  # pragma: no cover


@contextmanager
def gateway_process(
    tmp_path: Path,
    *,
    policy: str,
    database: str = "wg_it",
    extra: str = "",
    env: dict[str, str] | None = None,
) -> Iterator[GatewayProcess]:
    """Start ``python -m gateway.cli serve`` with a dev IdP in this process; stop both."""
    idp = DevIdP(tmp_path / f"idp-{uuid.uuid4().hex[:6]}")
    idp.start()
    settings, data_dir = write_gateway_files(
        tmp_path, policy=policy, database=database, extra=extra, idp=idp
    )
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("WARDGATE_")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = str(ROOT)
    log = (data_dir / "serve.log").open("w")  # the gateway's own log, for post-mortems
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(data_dir / "wardgate.toml"),
            "serve",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        ports: dict[str, int] = {}
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not ports and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("wardgate serve exited before listening")
            found = re.match(r"wardgate: target (\S+) listening on port (\d+)", line)
            if found:
                ports[found.group(1)] = int(found.group(2))
        yield GatewayProcess(
            process=process, settings=settings, idp=idp, ports=ports, data_dir=data_dir
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        idp.stop()
