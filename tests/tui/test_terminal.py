"""`wardgate tui` for real: a verified operator token, a real terminal (tmux), real keys."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.domain import Approval
from events.store import EventStore
from gateway.cli import main
from gateway.commands.tui import fold_horizon, kill_groups
from gateway.devidp import DevIdP
from gateway.errors import UserError

from .fixtures import seed, sid, store_at

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[DevIdP]:
    with DevIdP(tmp_path / "idp", "127.0.0.1", 0) as provider:
        yield provider


@pytest.fixture
def config(tmp_path: Path, idp: DevIdP) -> Path:
    store = store_at(tmp_path)
    seed(store, now=time.time())  # the console runs on the real clock here
    store.close()
    path = tmp_path / "wardgate.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "data" / "events.db"}"\n\n'
        f'[identity]\nissuer = "{idp.url}"\naudience = "{idp.audience}"\n\n'
        '[console]\nkill_groups = ["oncall"]\n'
    )
    return path


class Terminal:
    """One tmux server of our own (its own socket), one window of 160x48."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"wg-tui-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.socket]
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        # COLUMNS/LINES inherited from the test runner would override the pane's real size.
        line = f"env -u COLUMNS -u LINES {exports} " + " ".join(command) + "; sleep 2"
        subprocess.run(
            [*self.tmux, "new-session", "-d", "-x", "160", "-y", "48", "-s", "console", line],
            check=True,
            cwd=ROOT,
        )

    def screen(self) -> str:
        out = subprocess.run(
            [*self.tmux, "capture-pane", "-p", "-t", "console"], capture_output=True, text=True
        )
        return out.stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "console", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_console_in_a_real_terminal_approves_and_quits(config: Path, idp: DevIdP) -> None:
    token = idp.issue_token("alice", ["dba", "oncall"], ttl=600)
    env = {"WARDGATE_TOKEN": token, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    term = Terminal([sys.executable, "-m", "gateway.cli", "--config", str(config), "tui"], env)
    try:
        term.wait_for("Live sessions (3)")
        first = term.wait_for("client_quit")  # the full word: columns measured and painted
        assert "operator alice (dba, oncall)" in first
        assert "report-bot" in first
        term.keys("a")
        term.wait_for("Pending approvals (1)")
        term.keys("y")
        term.wait_for("reason (optional)")
        term.keys("-l", "from tmux")
        term.keys("Enter")
        term.wait_for("Pending approvals (0)")
        with EventStore(store_settings(config)) as store:
            approved = store.events_of(sid("agent-1-approval-2"))[-1]
        assert isinstance(approved, Approval.Approved)
        assert (approved.actor, approved.reason) == ("alice", "from tmux")
        term.keys("q")
        deadline = time.monotonic() + 10
        while "Pending approvals" in term.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "Pending approvals" not in term.screen()  # the console exited
    finally:
        term.close()


def store_settings(config: Path):  # type: ignore[no-untyped-def]
    from gateway.config import load_settings

    return load_settings(config, env={}).store


def test_the_console_refuses_a_missing_or_bad_token(
    config: Path, idp: DevIdP, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WARDGATE_TOKEN", raising=False)

    def never(self: object) -> None:
        raise AssertionError("the console must not open without a valid operator token")

    monkeypatch.setattr("tui.app.ConsoleApp.run", never)
    assert main(["--config", str(config), "tui"]) != 0
    err = capsys.readouterr().err
    assert "needs an operator token" in err
    forged = idp.issue_token("alice", ["dba"], ttl=600)[:-4] + "AAAA"
    assert main(["--config", str(config), "tui", "--token", forged]) != 0
    assert "operator token rejected (bad_signature)" in capsys.readouterr().err
    elsewhere = idp.issue_token("alice", ["dba"], ttl=600, audience="another-service")
    code = main(["tui", "--config", str(config), "--token", elsewhere])
    assert code != 0 and "operator token rejected (wrong_audience)" in capsys.readouterr().err


def test_fold_hours_setting() -> None:
    assert fold_horizon({}) == 86400.0
    assert fold_horizon({"fold_hours": "12"}) == 43200.0  # from WARDGATE_CONSOLE_FOLD_HOURS
    assert fold_horizon({"fold_hours": "all"}) is None
    for bad in (0, -1, "soon"):
        with pytest.raises(UserError):
            fold_horizon({"fold_hours": bad})


def test_kill_groups_setting() -> None:
    assert kill_groups({}) == frozenset()
    assert kill_groups({"kill_groups": ["oncall", "sre"]}) == {"oncall", "sre"}
    assert kill_groups({"kill_groups": "oncall, sre"}) == {"oncall", "sre"}  # from WARDGATE_*
    with pytest.raises(UserError):
        kill_groups({"kill_groups": 3})
