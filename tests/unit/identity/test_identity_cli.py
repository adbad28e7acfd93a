"""`wardgate dev-idp` and `wardgate token`: in-process and as a real foreground process."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.commands.identity import parse_duration
from gateway.devidp import DevIdP
from gateway.identity import IdentitySettings, TokenVerifier

from .tokens import AUDIENCE

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1d", 86400), (" 2m ", 120)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "10 minutes", "m", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize("command", ["dev-idp", "token"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "--data-dir" in capsys.readouterr().out


def test_token_from_the_running_dev_idp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with DevIdP(tmp_path) as idp:
        code = main(
            [
                "token",
                "alice",
                "--groups",
                "dba, oncall",
                "--ttl",
                "2m",
                "--data-dir",
                str(tmp_path),
            ]
        )
        assert code == 0
        token = capsys.readouterr().out.strip()
        verifier = TokenVerifier(IdentitySettings(issuer=idp.url, audience=AUDIENCE))
        identity = verifier.verify(token)
    assert identity.subject == "alice"
    assert identity.groups == frozenset({"dba", "oncall"})


def test_token_data_dir_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDGATE_DATA_DIR", str(tmp_path))
    with DevIdP(tmp_path):
        assert main(["token", "bob", "--audience", "other", "--scope", "db:read"]) == 0
    assert capsys.readouterr().out.count(".") == 2


def test_token_without_dev_idp_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "alice", "--data-dir", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wardgate: no dev IdP in") and err.count("\n") == 1


def test_token_when_the_dev_idp_is_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with DevIdP(tmp_path) as idp:
        url = idp.url
    assert main(["token", "alice", "--idp", url, "--data-dir", str(tmp_path)]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_token_refuses_to_send_the_admin_secret_off_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    DevIdP(tmp_path)
    code = main(["token", "a", "--idp", "http://idp.example:8900", "--data-dir", str(tmp_path)])
    assert code == 1
    assert "loopback" in capsys.readouterr().err


def test_dev_idp_foreground_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gateway.cli", "dev-idp", "--port", "0"]
    command += ["--data-dir", str(tmp_path), "--client", "agent-1:ci,db"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        client_line = process.stdout.readline()
        assert client_line.startswith("client agent-1 secret ")
        issuer_line = process.stdout.readline()
        assert issuer_line.startswith("dev IdP issuer http://127.0.0.1:")
        url = issuer_line.split()[3]
        assert (tmp_path / "dev-idp" / "issuer").read_text().strip() == url
        old_kid = DevIdP(tmp_path).current_kid

        rotate = [sys.executable, "-m", "gateway.cli", "dev-idp", "--rotate"]
        rotated = subprocess.run(
            [*rotate, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=30,
            check=True,
        )
        assert rotated.stdout.startswith(f"rotated the running dev IdP at {url}")
        assert DevIdP(tmp_path).current_kid != old_kid
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
    assert not (tmp_path / "dev-idp" / "issuer").exists()


def test_dev_idp_port_in_use_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DevIdP(tmp_path / "first") as first:
        port = first.url.rsplit(":", 1)[1]
        code = main(["dev-idp", "--port", port, "--data-dir", str(tmp_path / "second")])
    assert code == 1
    assert "cannot listen" in capsys.readouterr().err
