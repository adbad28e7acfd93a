"""A real OpenSSH server (/usr/sbin/sshd) on a free loopback port, for integration tests.

The tests run as root: a local Unix user ``wgtest`` is created once with a known password;
its authorized key lives in the test's temporary directory (``AuthorizedKeysFile``). The
server runs in the foreground (``sshd -D -e -f CONFIG``) and is stopped at teardown.
"""

from __future__ import annotations

import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
USER, PASSWORD = "wgtest", "wg-ssh-Secret-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ensure_user() -> None:
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)


def keygen(path: Path, kind: str = "ed25519") -> str:
    """A new key pair at ``path``; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "wardgate-test", "-f", str(path)],
        check=True,
    )
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class RunningSshd:
    port: int
    host_key: str  # OpenSSH public key line of the server
    client_key: Path  # private key authorized for USER
    directory: Path

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key}"


@contextmanager
def running_sshd(tmp: Path, *, extra: str = "") -> Iterator[RunningSshd]:
    ensure_user()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    host_key = tmp / "ssh_host_ed25519_key"
    host_pub = keygen(host_key)
    client_key = tmp / "client_key"
    client_pub = keygen(client_key)
    # sshd reads authorized keys as the user, who cannot enter pytest's private tmp tree
    keys = Path(tempfile.mkdtemp(prefix="wg-sshd-keys-"))
    keys.chmod(0o755)
    (keys / USER).write_text(client_pub + "\n")
    (keys / USER).chmod(0o644)
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {tmp}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {keys}/%u
StrictModes no
PermitRootLogin no
AllowUsers {USER}
AllowTcpForwarding yes
X11Forwarding no
MaxSessions 50
MaxStartups 100:30:200
Subsystem sftp internal-sftp
LogLevel ERROR
{extra}
"""
    )
    log = (tmp / "sshd.log").open("w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd did not start: {(tmp / 'sshd.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield RunningSshd(port=port, host_key=host_pub, client_key=client_key, directory=tmp)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(keys, ignore_errors=True)


def have_openssh() -> bool:
    return all(shutil.which(p) for p in (SSHD, "ssh", "sshpass", "ssh-keygen"))
