"""`wardgate demo`: the whole product on one machine, with one command.

It starts the development IdP, seeds a synthetic shop into the local MariaDB (if one is
reachable), vaults a database account the agent never sees, writes a settings file and a
self-signed TLS certificate into the demo's data directory, applies the demo policy, runs the
gateway on the embedded SQLite store, and prints how to connect. A second run reuses the
data directory (same store, same IdP keys, same vault); ``--reset`` starts from scratch.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import Settings, load_settings
from gateway.demo_ssh import DemoSSH, DemoSSHUnavailable, start_demo_sshd
from gateway.devidp import DevIdP
from gateway.errors import UserError
from gateway.vault import Vault

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
DEMO_DB = os.environ.get("WARDGATE_DEMO_DATABASE", "wardgate_demo")
DEMO_USER = "wg_demo"

logger = logging.getLogger("wardgate.demo")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    data_dir: Path
    reset: bool = False
    mysql_port: int = 3307
    ssh_port: int = 2222
    idp_port: int = 8900
    mariadb_host: str = "127.0.0.1"
    mariadb_port: int = 3306
    mariadb_admin: str = "root"
    mariadb_admin_password: str = ""


def prepare_data_dir(options: DemoOptions) -> Path:
    data = options.data_dir.absolute()
    if options.reset and data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    return data


def self_signed_certificate(data: Path) -> tuple[Path, Path]:
    cert_path, key_path = data / "gateway.crt", data / "gateway.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wardgate demo")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def seed_mariadb(options: DemoOptions, vault: Vault) -> str | None:
    """Create the demo database, its synthetic data and the vaulted account.

    Returns a problem description when MariaDB cannot be used (the demo then goes on without
    the MySQL target), or None.
    """
    try:
        admin = pymysql.connect(
            host=options.mariadb_host,
            port=options.mariadb_port,
            user=options.mariadb_admin,
            password=options.mariadb_admin_password,
            autocommit=True,
            connect_timeout=3,
        )
    except pymysql.err.MySQLError as exc:
        return f"MariaDB at {options.mariadb_host}:{options.mariadb_port} is not usable ({exc.args[-1]})"
    try:
        names = dict(vault.names())
        password = (
            vault.get("demo-shop").secret.reveal()
            if "demo-shop" in names
            else secrets.token_urlsafe(18)
        )
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DEMO_DB}`")
            cur.execute(f"USE `{DEMO_DB}`")
            cur.execute("SHOW TABLES LIKE 'payments'")
            if options.reset or cur.fetchone() is None:
                for statement in _statements((FIXTURES / "demo" / "seed.sql").read_text()):
                    cur.execute(statement)
            for host in ("127.0.0.1", "localhost"):
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{DEMO_USER}'@'{host}' IDENTIFIED BY %s",
                    (password,),
                )
                cur.execute(f"ALTER USER '{DEMO_USER}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL ON `{DEMO_DB}`.* TO '{DEMO_USER}'@'{host}'")
                cur.execute(f"GRANT PROCESS ON *.* TO '{DEMO_USER}'@'{host}'")
        vault.set(name="demo-shop", kind="mysql", username=DEMO_USER, secret=password)
    finally:
        admin.close()
    return None


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";")]


def write_settings(
    options: DemoOptions, data: Path, *, with_mysql: bool, ssh: DemoSSH | None = None
) -> Path:
    cert, key = self_signed_certificate(data)
    policy = FIXTURES / "demo" / "policy.toml"
    mysql = (
        f"""
[[mysql]]
name = "shop"
listen = "127.0.0.1:{options.mysql_port}"
upstream = "{options.mariadb_host}:{options.mariadb_port}"
credential = "demo-shop"
tls_cert = "{cert}"
tls_key = "{key}"
max_hold = "60s"
"""
        if with_mysql
        else ""
    )
    ssh_table = (
        f"""
[[ssh]]
name = "box"
listen = "127.0.0.1:{options.ssh_port}"
upstream = "127.0.0.1:{ssh.port}"
credential = "demo-box"
host_key = "{ssh.host_key}"
max_hold = "60s"
"""
        if ssh is not None
        else ""
    )
    config = data / "wardgate.toml"
    config.write_text(
        f"""# written by `wardgate demo`; point other commands at it with WARDGATE_CONFIG
[gateway]
node = "demo"
data_dir = "{data}"

[identity]
issuer = "http://127.0.0.1:{options.idp_port}"
audience = "wardgate"

[operators]
policy_groups = ["admins"]
kill_groups = ["oncall"]

[console]
kill_groups = ["oncall"]

[demo]
database = "{DEMO_DB}"

[policy]
file = "{policy}"
{mysql}{ssh_table}"""
    )
    return config


def banner(settings: Settings, idp: DevIdP, ports: dict[str, int], problem: str | None) -> str:
    config = settings.source
    agent = idp.issue_token("agent-7", ["agents"], ttl=3600)
    lines = [
        "",
        "wardgate demo is running (Ctrl-C to stop)",
        f"  data directory : {settings.data_dir}",
        f"  event store    : {settings.store.display}",
        f"  dev IdP        : {idp.url}",
        "",
        f"  export WARDGATE_CONFIG={config}",
        "",
    ]
    if "shop" in ports:
        lines += [
            "Connect as the agent 'agent-7' (the token below is its password; it expires in 1h):",
            f"  mysql -h 127.0.0.1 -P {ports['shop']} -u agent-7 --ssl "
            f"--default-auth=mysql_clear_password -p'{agent}' {DEMO_DB}",
            "",
            "Try:  SELECT * FROM customers LIMIT 3;        -- cards, SSNs, e-mails come back masked",
            "      DROP TABLE payments;                     -- blocked by policy",
            "      UPDATE payments SET status='disputed' WHERE id=1;  -- held for on-call approval",
            "",
            "Or run the scripted agent:  wardgate demo agent",
            "",
        ]
    else:
        lines += [f"  (no MySQL target: {problem})", ""]
    if "box" in ports:
        lines += [
            "Run commands on the demo host over SSH (the token is the password):",
            f"  SSHPASS='{agent}' sshpass -e ssh -p {ports['box']} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null agent-7@127.0.0.1 'uptime; ls /etc | head -3'",
            "  (rm, dd, chmod... are blocked; sudo and systemctl are held for approval)",
            "",
        ]
    lines += [
        "Approve as an on-call operator, in another terminal:",
        f"  export WARDGATE_CONFIG={config}",
        "  export WARDGATE_TOKEN=$(wardgate token alice --groups oncall,admins "
        f"--data-dir {settings.data_dir})",
        "  wardgate tui                  # the operator console",
        "  wardgate approvals list       # or from the command line",
        "",
    ]
    return "\n".join(lines)


def run_demo(options: DemoOptions) -> int:
    import trio  # noqa: PLC0415 - only the running demo needs it

    from gateway.server import Gateway  # noqa: PLC0415

    data = prepare_data_dir(options)
    vault = Vault.open(data, create=True)
    problem = seed_mariadb(options, vault)
    if problem:
        print(f"wardgate demo: {problem}; going on without the MySQL target", file=sys.stderr)
    ssh: DemoSSH | None = None
    try:
        ssh = start_demo_sshd(data)
        vault.set(name="demo-box", kind="ssh-key", username=ssh.account, secret=ssh.private_key)
    except (DemoSSHUnavailable, OSError, subprocess.CalledProcessError) as exc:
        print(f"wardgate demo: no SSH target ({exc}); going on without it", file=sys.stderr)
    config = write_settings(options, data, with_mysql=problem is None, ssh=ssh)
    settings = load_settings(config)
    idp = DevIdP(data, port=options.idp_port)
    try:
        idp.start()
    except OSError as exc:
        if ssh is not None:
            ssh.stop()
        raise UserError(f"cannot start the dev IdP on port {options.idp_port}: {exc}") from None

    async def main() -> None:
        gateway = Gateway(settings)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                started = await nursery.start(gateway.run)
                print(banner(settings, idp, started.ports, problem), flush=True)
                async for _ in signals:
                    await gateway.shutdown(5)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
        print("\nwardgate demo stopped", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nwardgate demo stopped", file=sys.stderr)
    finally:
        idp.stop()
        if ssh is not None:
            ssh.stop()
    return 0
