"""Gateway nodes as `wardgate serve` processes, for the multi-node, crash and outage tests.

Several nodes may share one data directory (the vault, the status markers) and differ in
their node name and listen port, as on one machine; each node's stderr goes to a file so a
chatty node never blocks on a full pipe.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.devidp import DevIdP
from gateway.vault import Vault


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path,
    *,
    node: str,
    data_dir: Path,
    idp: DevIdP,
    policy_file: Path,
    store_url: str | None = None,
    port: int = 0,
    target: str = "shop",
    credential: str = "shop",
    max_hold: str = "8s",
) -> Path:
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    path.write_text(f"""
[gateway]
node = "{node}"
data_dir = "{data_dir}"
{store}
[identity]
issuer = "{idp.url}"
audience = "wardgate"

[policy]
file = "{policy_file}"

[[mysql]]
name = "{target}"
listen = "127.0.0.1:{port}"
upstream = "127.0.0.1:3306"
credential = "{credential}"
max_hold = "{max_hold}"
""")
    return path


def store_credential(data_dir: Path, *, name: str, username: str, password: str) -> None:
    Vault.open(data_dir, {}, create=True).set(
        name=name, kind="mysql", username=username, secret=password
    )


@dataclass
class Node:
    """One `wardgate serve` process; :meth:`start` again after :meth:`kill` restarts it."""

    config: Path
    log: Path
    proc: subprocess.Popen[str] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    starts: int = 0

    def start(self, timeout: float = 60) -> dict[str, int]:
        self.starts += 1
        with self.log.open("a") as err:
            err.write(f"--- start {self.starts}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(self.config), "serve"],
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
        )
        self.proc = proc
        assert proc.stdout is not None
        ports: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "listening on port" in line:
                name = line.split("target ", 1)[1].split(" ", 1)[0]
                ports[name] = int(line.rsplit(" ", 1)[1])
                # `serve` prints one line per target; ours have one each.
                self.ports = ports
                return ports
            if not line and proc.poll() is not None:
                break
        proc.kill()
        raise AssertionError(f"node did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def port(self) -> int:
        [port] = self.ports.values()
        return port

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to close anything."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def cli(
    config: Path, *args: str, token: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `wardgate ARGS` with ``config``'s settings (and an operator token if given)."""
    env = {**os.environ, "WARDGATE_CONFIG": str(config)}
    env.pop("WARDGATE_TOKEN", None)
    if token:
        env["WARDGATE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def cli_json(config: Path, *args: str, token: str | None = None) -> object:
    out = cli(config, *args, "--json", token=token)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
