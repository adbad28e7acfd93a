"""A gateway node as a process: status, and recovery after being killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

from events.domain import Session
from events.store import EventStore
from gateway.config import load_settings
from gateway.devidp import DevIdP
from gateway.vault import Vault

from .harness import APP_PASSWORD, APP_USER, ensure_app_user
from .policies import BASIC


def start_node(config: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on port" in line:
            return proc, int(line.rsplit(" ", 1)[1])
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"node did not start: {proc.stderr.read() if proc.stderr else ''}")


def node_config(tmp_path: Path, idp: DevIdP, node: str, *, extra: str = "") -> Path:
    """A node's data directory with its settings, policy and vaulted MariaDB account."""
    ensure_app_user("wg_it")
    data = tmp_path / "node"
    data.mkdir()
    (data / "policy.toml").write_text(BASIC)
    config = data / "wardgate.toml"
    config.write_text(f"""
[gateway]
node = "{node}"
data_dir = "{data}"
{extra}
[identity]
issuer = "{idp.url}"
audience = "wardgate"
[policy]
file = "{data / "policy.toml"}"
[[mysql]]
name = "shop"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:3306"
credential = "shop"
""")
    Vault.open(data, {}, create=True).set(
        name="shop", kind="mysql", username=APP_USER, secret=APP_PASSWORD
    )
    return config


def test_status_and_recovery_after_sigkill(tmp_path: Path) -> None:
    idp = DevIdP(tmp_path / "idp")
    idp.start()
    try:
        config = node_config(tmp_path, idp, "n1")
        proc, port = start_node(config)
        env = {**os.environ, "WARDGATE_CONFIG": str(config)}
        status = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "status", "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["store"]["reachable"] and report["nodes"][0]["node"] == "n1"
        assert report["nodes"][0]["listeners"] == {"shop": port}

        conn = pymysql.connect(
            host="127.0.0.1",
            port=port,
            user="a",
            password=idp.issue_token("agent-1", ["agents"]),
            database="wg_it",
        )
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        conn.close()

        proc, port = start_node(config)
        try:
            store = EventStore(load_settings(config, env={}).store)
            try:
                events = [e for _, e in store.iter_events()]
                closed = [e for e in events if isinstance(e, Session.Closed)]
                assert [c.reason for c in closed] == ["aborted"]
                assert store.verify().ok
            finally:
                store.close()
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        idp.stop()


def test_sigterm_lets_running_commands_finish_and_closes_sessions(tmp_path: Path) -> None:
    idp = DevIdP(tmp_path / "idp")
    idp.start()
    try:
        config = node_config(tmp_path, idp, "n2", extra="shutdown_grace = 20")
        proc, port = start_node(config)

        def connect():  # type: ignore[no-untyped-def]
            return pymysql.connect(
                host="127.0.0.1",
                port=port,
                user="a",
                database="wg_it",
                password=idp.issue_token("agent-1", ["agents"]),
            )

        idle, busy = connect(), connect()
        result: dict[str, object] = {}

        def slow() -> None:
            with busy.cursor() as cur:
                cur.execute("SELECT SLEEP(2), 'finished'")
                result["row"] = cur.fetchone()

        import threading

        worker = threading.Thread(target=slow)
        worker.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
        assert result.get("row") == (0, "finished")  # the command in flight completed
        assert proc.wait(30) == 0
        with pytest.raises(pymysql.err.MySQLError), idle.cursor() as cur:
            cur.execute("SELECT 1")
        store = EventStore(load_settings(config, env={}).store)
        try:
            closed = [e for _, e in store.iter_events() if isinstance(e, Session.Closed)]
            assert sorted(c.reason for c in closed) == ["shutdown", "shutdown"]
        finally:
            store.close()
    finally:
        idp.stop()
