"""`wardgate demo` as a newcomer runs it: a subprocess, the scripted agent, an approval."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from events.domain import Approval, Session
from events.store import EventStore, StoreSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wardgate(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def agent_ssh(
    port: int, data: Path, env: dict[str, str], command: str
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` over SSH through the demo as agent-7, with a fresh token."""
    token = wardgate("token", "agent-7", "--groups", "agents", "--data-dir", str(data), env=env)
    return subprocess.run(
        [
            "sshpass",
            "-e",
            "ssh",
            "-p",
            str(port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "agent-7@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "SSHPASS": token.stdout.strip()},
    )


def test_demo_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDGATE_")}
    env["WARDGATE_DEMO_DIR"] = str(data)
    env["WARDGATE_DEMO_DATABASE"] = "wardgate_demo_test"
    mysql_port, ssh_port, idp_port = free_port(), free_port(), free_port()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--reset",
            "--mysql-port",
            str(mysql_port),
            "--ssh-port",
            str(ssh_port),
            "--idp-port",
            str(idp_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        banner = []
        deadline = time.monotonic() + 60
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "wardgate approvals list" in line:
                break
        text = "".join(banner)
        assert "wardgate demo is running" in text, text + (
            demo.stderr.read() if demo.stderr else ""
        )
        assert f"-P {mysql_port}" in text

        env["WARDGATE_CONFIG"] = str(data / "wardgate.toml")
        agent_out: dict[str, str] = {}

        def agent() -> None:
            run = wardgate("demo", "agent", env=env, timeout=120)
            agent_out["stdout"], agent_out["stderr"] = run.stdout, run.stderr
            agent_out["code"] = str(run.returncode)

        thread = threading.Thread(target=agent)
        thread.start()
        operator = wardgate(
            "token", "alice", "--groups", "oncall,admins", "--data-dir", str(data), env=env
        ).stdout.strip()
        assert operator.count(".") == 2
        env_op = {**env, "WARDGATE_TOKEN": operator}
        row = None
        deadline = time.monotonic() + 60
        while row is None and time.monotonic() < deadline:
            listed = wardgate("approvals", "list", "--json", env=env_op)
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            row = rows[0] if rows else None
            time.sleep(0.2)
        assert row is not None, agent_out
        assert row["subject"] == "agent-7" and "UPDATE payments" in row["command"]
        ssh = agent_ssh(ssh_port, data, env, "echo card 4111111111111111; rm -rf /tmp/nothing")
        assert ssh.returncode == 126, (ssh.stdout, ssh.stderr)  # rm is blocked: nothing runs
        assert "denied by rule block-dangerous-programs" in ssh.stderr
        ssh = agent_ssh(ssh_port, data, env, "echo card 4111111111111111")
        assert ssh.returncode == 0, ssh.stderr
        assert ssh.stdout.strip() == "card ************1111"
        approved = wardgate("approvals", "approve", row["short_id"], "--reason", "demo", env=env_op)
        assert approved.returncode == 0, approved.stderr
        thread.join(120)
        out = agent_out["stdout"]
        assert agent_out["code"] == "0", agent_out
        assert "denied by rule block-destructive-ddl" in out
        assert "1 row(s) affected" in out
        assert "disputed" in out
    finally:
        demo.terminate()
        demo.wait(20)

    store = EventStore(StoreSettings(url=f"sqlite:///{data / 'events.db'}"))
    try:
        events = [e for _, e in store.iter_events()]
        assert any(isinstance(e, Approval.Approved) and e.actor == "alice" for e in events)
        decided = [e for e in events if isinstance(e, Session.CommandDecided)]
        assert {"allow", "deny", "review"} <= {d.action for d in decided}
        assert store.verify().ok
    finally:
        store.close()
