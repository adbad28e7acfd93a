"""`wardgate export|sessions|report` and `audit verify` from the command line, on both stores."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from events.domain import Session
from events.store import EventStore
from gateway.cli import main
from gateway.commands.export import ProgressBar, format_table
from tests.events.crafted_log import S1, S2, T0, TRICKY, crafted_batches
from tests.events.factories import session_events


@pytest.fixture
def cli_store(store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EventStore:
    """The crafted log in the store the CLI opens (through WARDGATE_STORE_URL)."""
    for batch in crafted_batches():
        store.append(batch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WARDGATE_CONFIG", raising=False)
    monkeypatch.setenv("WARDGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WARDGATE_STORE_URL", store.settings.url)
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_to_a_file_as_csv(
    cli_store: EventStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "commands.csv"
    target.parent.mkdir()
    code, out, err = run(
        capsys, "export", "commands", "--identity", "alice", "--format", "csv", "-o", str(target)
    )
    assert code == 0 and out == ""
    assert err.startswith("wrote 12 commands rows (1 incomplete)") and "\r" not in err
    assert not (target.parent / "commands.csv.partial").exists()
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["subject"] for r in rows} == {"alice"}
    texts = [r["text"][1:] if r["text"].startswith("'") else r["text"] for r in rows]
    assert texts[-len(TRICKY) - 1 : -1] == TRICKY


def test_export_jsonl_to_stdout_with_window(
    cli_store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "export", "sessions", "--from", "2026-01-01", "--to", "2026-01-01T01:30:00Z"
    )
    assert code == 0 and err == ""  # no progress bar when stderr is not a terminal
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["session_id"] for r in rows] == [str(S1), str(S2)]
    code, out, _ = run(capsys, "export", "events", "--decision", "review", "--target", "billing")
    assert code == 0
    assert [json.loads(line)["data"]["seq"] for line in out.splitlines()] == [1, len(TRICKY) + 1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "events", "--from", "last tuesday"], "bad --from value: not a time"),
        (["export", "commands", "--to", "3x"], "bad --to value: not a time"),
        (["export", "commands", "--decision", "maybe"], "--decision must be one of"),
        (["export", "policy", "--group", "dev"], "--group does not apply to policy"),
        (["export", "events", "--format", "xml"], "--format must be one of"),
        (["report", "--from", "2026-02-01", "--to", "2026-01-01"], "--from must be before --to"),
        (["sessions", "show", "not-hex!"], "not a session id or prefix"),
        (["sessions", "show", "ffffffff"], "no session with id"),
        (["sessions", "list", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_values_give_one_line_errors(
    cli_store: EventStore, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("wardgate: ") and message in err
    assert err.count("\n") == 1


def test_a_failed_export_leaves_no_file(
    cli_store: EventStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "export", "events", "--to", "nope", "-o", str(tmp_path / "x.jsonl"))
    assert code == 1 and "bad --to value" in err
    assert list(tmp_path.glob("x.jsonl*")) == []


def test_sessions_list(cli_store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sessions", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "IDENTITY", "TARGET"]
    assert len(lines) == 5 and lines[1].split()[1] == "alice" and " live " in lines[1]
    code, out, _ = run(capsys, "sessions", "list", "--json", "--limit", "2")
    listed = json.loads(out)
    assert [s["subject"] for s in listed] == ["alice", None]  # newest first: S4, then S3
    assert listed[1]["rejected_reason"] == "expired" and listed[1]["close_reason"] == "auth_failed"
    code, out, _ = run(capsys, "sessions", "list", "--live", "--json")
    assert [s["live"] for s in json.loads(out)] == [True]


def test_sessions_show_by_prefix(cli_store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sessions", "show", str(S2)[:7])
    assert code == 0
    assert f"session   {S2}" in out and "identity  bob  groups: dba, oncall" in out
    assert "killed: by carol" in out and "requested by carol: incident 7" in out
    assert "masked    ip=3" in out
    assert "rm -rf /tmp/x" in out and "denied" in out
    code, out, _ = run(capsys, "sessions", "show", str(S1), "--json")
    shown = json.loads(out)
    assert shown["session"]["session_id"] == str(S1) and shown["events"] == 14
    assert [c["approvers"] for c in shown["commands"]] == [[], [], ["bob"]]
    assert shown["session"]["started_at"] == "2026-01-01T00:00:00.000000Z"


def test_an_ambiguous_prefix_is_refused(
    cli_store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in (1, 2):
        cli_store.append(
            session_events(0, sid=uuid.UUID(f"abcd0000-0000-4000-8000-00000000000{n}"))
        )
    code, _, err = run(capsys, "sessions", "show", "abcd")
    assert code == 1 and "ambiguous: abcd0000, abcd0000" in err
    code, out, _ = run(capsys, "sessions", "show", "abcd0000-0000-4000-8000-000000000002")
    assert code == 0 and "still open" not in out and "ended     -" in out


def test_report_text_and_json(cli_store: EventStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--from", "2026-01-01", "--to", "2026-01-02", "--json")
    assert code == 0
    report = json.loads(out)
    alice = next(x for x in report["by_identity"] if x["key"] == "alice")
    assert (alice["commands"], alice["denied"], alice["median_approve_s"]) == (3, 1, 30.0)
    assert report["total"]["sessions"] == 3 and report["from"] == "2026-01-01T00:00:00.000000Z"
    code, out, _ = run(capsys, "report", "--from", "2026-01-01", "--to", "2026-01-02")
    lines = out.splitlines()
    assert lines[0].startswith("report from 2026-01-01 00:00:00 to 2026-01-02 00:00:00")
    header = lines[2]
    alice_line = next(line for line in lines if line.startswith("alice"))
    # Aligned: each count ends where its header ends.
    assert header.index("COMMANDS") + len("COMMANDS") == alice_line.index(" 3 ") + 2
    assert alice_line.split()[1:5] == ["1", "3", "1", "1"]


def test_audit_verify_head_matches_the_last_exported_hash(
    cli_store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "export", "events")
    last = json.loads(out.splitlines()[-1])
    code, out, _ = run(capsys, "audit", "verify", "--json")
    verified = json.loads(out)
    assert code == 0 and verified["ok"] and verified["head"] == last["chain_hash"]
    assert verified["last_id"] == last["notification_id"]
    # A row's hash, recorded by an auditor, is a starting point for verify --since.
    code, out, _ = run(capsys, "export", "sessions", "--identity", "bob")
    row = json.loads(out)
    code, out, _ = run(capsys, "audit", "verify", "--since", row["chain_hash"], "--json")
    assert code == 0 and json.loads(out)["first_id"] == row["notification_id"] + 1
    closed = Session.Closed(
        originator_id=uuid.uuid4(), originator_version=1, at=T0, actor="x", reason="error"
    )
    cli_store.append([closed])  # the export itself never changed the log; the chain goes on
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["checked"] == last["notification_id"] + 1


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_only_on_a_terminal() -> None:
    tty = _Tty()
    bar = ProgressBar("export events", tty)
    bar(50, 100)
    bar(100, 100)
    bar.close()
    text = tty.getvalue()
    assert text.startswith("\rexport events [") and "100% 100/100 events" in text
    assert text.endswith("\n")
    piped = io.StringIO()
    quiet = ProgressBar("export events", piped)
    quiet(100, 100)
    quiet.close()
    assert piped.getvalue() == ""


def test_format_table_aligns() -> None:
    text = format_table(["NAME", "N"], [["alice", 3], ["bob", 12]])
    assert text.splitlines() == ["NAME    N", "alice   3", "bob    12"]


def test_a_closed_pipe_ends_the_export_quietly(cli_store: EventStore) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    for _ in range(100):
        cli_store.append(session_events(20))  # far more than a pipe buffer
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; {sys.executable} -m gateway.cli export events | head -n 1",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["notification_id"] == 1
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["export", "--help"], "policy"),
        (["export", "commands", "--help"], "--decision"),
        (["sessions", "list", "--help"], "--live"),
        (["sessions", "show", "--help"], "unique prefix"),
        (["report", "--help"], "--from"),
    ],
)
def test_help(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0 and expected in capsys.readouterr().out
