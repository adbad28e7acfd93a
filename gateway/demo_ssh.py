"""The demo's SSH target: a private OpenSSH server on a loopback port.

It runs ``/usr/sbin/sshd`` in the foreground with its own configuration, host key and
authorized key in the demo's data directory. The account it lets in is the user running the
demo, or, when that is root, an unprivileged ``wardgate-demo`` account created for it. The
gateway logs in with the vaulted private key; the agent never sees it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
DEMO_ACCOUNT = "wardgate-demo"


class DemoSSHUnavailable(Exception):
    """No SSH target for the demo (the message says why)."""


@dataclass
class DemoSSH:
    process: subprocess.Popen[bytes]
    port: int
    host_key: str
    account: str
    private_key: str
    keys_dir: Path

    def stop(self) -> None:
        shutil.rmtree(self.keys_dir, ignore_errors=True)
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo process dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> str:
    if not path.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wardgate-demo", "-f", str(path)],
            check=True,
        )
    return Path(f"{path}.pub").read_text().strip()


def _account() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(DEMO_ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "-m", "-s", "/bin/bash", DEMO_ACCOUNT], check=True, capture_output=True
        )
    # useradd locks the password ("!"); sshd without PAM then refuses even key logins.
    # "*" means: no password can ever match, but the account is not locked.
    subprocess.run(["usermod", "-p", "*", DEMO_ACCOUNT], check=True, capture_output=True)
    return DEMO_ACCOUNT


def start_demo_sshd(data: Path) -> DemoSSH:
    if not (shutil.which(SSHD) or Path(SSHD).exists()) or not shutil.which("ssh-keygen"):
        raise DemoSSHUnavailable("OpenSSH server not installed (Debian package openssh-server)")
    directory = data / "sshd"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    host_pub = _keygen(directory / "ssh_host_ed25519_key")
    client_pub = _keygen(directory / "agent_key")
    account = _account()
    # sshd reads authorized keys as the account, which may not enter the (private) data
    # directory: they live in a temporary directory of their own for this run.
    keys = Path(tempfile.mkdtemp(prefix="wardgate-demo-keys-"))
    keys.chmod(0o755)
    (keys / account).write_text(client_pub + "\n")
    (keys / account).chmod(0o644)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {directory / "ssh_host_ed25519_key"}
PidFile {directory / "sshd.pid"}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {keys}/%u
StrictModes no
PermitRootLogin no
AllowUsers {account}
X11Forwarding no
Subsystem sftp internal-sftp
LogLevel ERROR
"""
    )
    log = (directory / "sshd.log").open("ab")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=log,
        stderr=log,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the parent-death signal
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                shutil.rmtree(keys, ignore_errors=True)
                raise DemoSSHUnavailable(
                    f"sshd did not start (see {directory / 'sshd.log'})"
                ) from None
            time.sleep(0.05)
    return DemoSSH(
        process=process,
        port=port,
        host_key=host_pub,
        account=account,
        keys_dir=keys,
        private_key=(directory / "agent_key").read_text(),
    )
