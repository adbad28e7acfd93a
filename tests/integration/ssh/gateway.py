"""An in-thread gateway with an ``[[ssh]]`` target in front of a test sshd."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.vault import Vault

from ..harness import RunningGateway, running_gateway
from .sshd import PASSWORD, USER, RunningSshd

SSH_POLICY = """
version = 1

[policy]
name = "ssh-it"
default = "deny"
unknown = "review"

[policy.review]
approver_groups = ["oncall"]
quorum = 1
expiry = "15m"

[[rule]]
name = "no-rm"
action = "deny"
protocol = "ssh"
programs = ["rm", "shutdown"]

[[rule]]
name = "hold-touch"
action = "review"
protocol = "ssh"
programs = ["touch"]
approver_groups = ["oncall"]
expiry = "1m"

[[rule]]
name = "shells"
action = "allow"
protocol = "ssh"
sessions = ["shell"]

[[rule]]
name = "file-transfer"
action = "allow"
protocol = "ssh"
groups = ["files"]
sessions = ["sftp"]

[[rule]]
name = "no-forwarding"
action = "deny"
protocol = "ssh"
groups = ["agents"]
sessions = ["port_forward", "agent_forward"]

[[rule]]
name = "forwarders"
action = "allow"
protocol = "ssh"
groups = ["forwarders"]
sessions = ["port_forward", "agent_forward"]

[[rule]]
name = "tools"
action = "allow"
protocol = "ssh"
programs = ["echo", "cat", "true", "false", "head", "printf", "exit", "id", "whoami",
            "sleep", "wc", "ls", "sha256sum", "ssh-add"]
"""


def ssh_table(
    sshd: RunningSshd, *, name: str = "box", host_key: str | None = None, port: int = 0
) -> str:
    return f"""
[[ssh]]
name = "{name}"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{port or sshd.port}"
credential = "{name}"
host_key = "{host_key or sshd.host_key}"
max_hold = "20s"
handshake_timeout = "3s"
"""


@contextmanager
def ssh_gateway(
    tmp: Path, sshd: RunningSshd, *, extra: str = "", key_login: bool = False
) -> Iterator[RunningGateway]:
    with running_gateway(
        tmp, policy=SSH_POLICY, extra=ssh_table(sshd) + extra, max_hold="20s"
    ) as gw:
        vault = Vault.open(gw.data_dir, {}, create=True)
        if key_login:
            vault.set(name="box", kind="ssh-key", username=USER, secret=sshd.client_key.read_text())
        else:
            vault.set(name="box", kind="ssh-password", username=USER, secret=PASSWORD)
        for name in ("badkey", "down"):
            vault.set(name=name, kind="ssh-password", username=USER, secret=PASSWORD)
        vault.set(name="keyed", kind="ssh-key", username=USER, secret=sshd.client_key.read_text())
        yield gw


def ssh_cli(
    gw: RunningGateway,
    command: str | None,
    *,
    token: str | None = None,
    target: str = "box",
    options: tuple[str, ...] = (),
    stdin: bytes | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """The real OpenSSH client, token passed by sshpass through the environment."""
    argv = [
        "sshpass",
        "-e",
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "PubkeyAuthentication=no",
        "-p",
        str(gw.ports[target]),
        *options,
        "agent@127.0.0.1",
    ]
    if command is not None:
        argv.append(command)
    env = {**os.environ, "SSHPASS": token if token is not None else gw.token()}
    return subprocess.run(
        argv, input=stdin, capture_output=True, env=env, timeout=timeout, check=False
    )
