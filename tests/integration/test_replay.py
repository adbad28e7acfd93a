"""Recording a real bash under a PTY, replaying it, exporting it for asciinema, tampering.

Runs on both store backends (the ``store`` fixture: SQLite file and local PostgreSQL).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pyte
import pytest
import trio

from events.domain import RecordingIndex, Session
from events.recording import Recording, chunk_bytes, resolve_session, tail
from events.store import EventStore
from gateway.cli import main
from gateway.commands.replay import Item, export_asciicast, parse_time, play
from gateway.errors import UserError
from gateway.recording import SessionRecorder
from gateway.session import SessionLog
from gateway.writer import EventWriter

from ..events.test_tampering import q, raw_db

SCRIPT = [
    b"printf '\\033[1;31mred\\033[0m plain \\303\\251t\\303\\251\\n'\n",
    b"for i in $(seq 1 60); do echo line-$i; done\n",
    b"printf '\\033[2J\\033[5;10Hmoved\\033[?25l'\n",
    b"sleep 0.3; echo after-pause\n",
    b"echo done-marker; exit\n",
]


def run_bash(log: SessionLog, store: EventStore) -> bytes:
    """Run a scripted interactive bash under a PTY, recording its output; returns the output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive shell with a fixed, plain prompt
        env = {"TERM": "xterm-256color", "PS1": "$ ", "PATH": os.environ["PATH"], "HOME": "/tmp"}
        os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
    seen = bytearray()

    async def session() -> None:
        writer = EventWriter(store)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            recorder = SessionRecorder(log, writer, pty=True, columns=80, lines=24, chunk_bytes=512)
            await nursery.start(recorder.run)
            with trio.fail_after(20):
                for line in SCRIPT:
                    await trio.sleep(0.15)
                    os.write(fd, line)
                    recorder.input(line)
                    while True:
                        with trio.move_on_after(0.4):
                            await trio.lowlevel.wait_readable(fd)
                            try:
                                data = os.read(fd, 65536)
                            except OSError:  # EIO: the shell has exited
                                data = b""
                            if data:
                                seen.extend(data)
                                recorder.output("pty", data)
                                continue
                        break
            await recorder.aclose()
            await writer.write([])  # everything queued before this is durable now
            nursery.cancel_scope.cancel()

    try:
        trio.run(session)
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return bytes(seen)


@pytest.fixture
def recorded(store: EventStore) -> tuple[EventStore, uuid.UUID, bytes]:
    log = SessionLog(node="n1")
    accepted = log.event(
        Session.ConnectionAccepted,
        node="n1",
        protocol="ssh",
        target="host",
        listener="127.0.0.1:2222",
        peer="127.0.0.1:4444",
    )
    store.append([accepted])
    output = run_bash(log, store)
    assert b"done-marker" in output
    return store, log.id, output


@pytest.fixture
def cli_env(store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDGATE_STORE_URL", store.settings.url)
    monkeypatch.setenv("WARDGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDGATE_CONFIG", raising=False)


def asciinema_cat(path: Path) -> tuple[int, bytes]:
    """``asciinema cat FILE`` (it insists on a controlling terminal: give it a PTY)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv("/usr/bin/asciinema", ["asciinema", "cat", str(path)])
    out = bytearray()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the program has exited
            break
        if not data:
            break
        out.extend(data)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), bytes(out)


def screen_of(data: bytes) -> pyte.Screen:
    screen = pyte.Screen(80, 24)
    pyte.ByteStream(screen).feed(data)
    return screen


def test_a_real_bash_session_replays_exactly(
    recorded: tuple[EventStore, uuid.UUID, bytes],
    cli_env: None,
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    store, sid, output = recorded
    recording = Recording.open(store, sid)
    assert recording.pty
    assert sum(c.length for c in recording.chunks if c.stream == "pty") == len(output)
    events = store.events_of(sid)
    stored = b"".join(
        chunk_bytes(e)
        for e in events
        if isinstance(e, Session.OutputRecorded) and e.stream == "pty"
    )
    assert stored == output
    typed = b"".join(
        chunk_bytes(e)
        for e in events
        if isinstance(e, Session.OutputRecorded) and e.stream == "input"
    )
    assert typed == b"".join(SCRIPT)
    final = recording.screen_at(recording.duration_ms)
    assert final.screen.display == screen_of(output).display
    # The pause before "after-pause" is in the timing.
    pieces = [f for f in recording.frames() if b"after-pause" in f.data]
    assert pieces and pieces[-1].offset_ms >= 300

    assert main(["replay", sid.hex[:8], "--idle-limit", "0"]) == 0
    played = capfdbinary.readouterr().out
    assert played == output

    # Seek to the middle: the repainted screen plus the rest ends where the session ended.
    middle = recording.duration_ms // 2
    assert main(["replay", str(sid), "--at", f"{middle / 1000:.3f}", "--idle-limit", "0"]) == 0
    seeked = capfdbinary.readouterr().out
    assert screen_of(seeked).display == screen_of(output).display
    at_middle = recording.screen_at(middle).screen.display
    assert screen_of(recording.screen_at(middle).to_ansi().encode()).display == at_middle


def test_asciicast_export_is_accepted_by_asciinema(
    recorded: tuple[EventStore, uuid.UUID, bytes], tmp_path: Path
) -> None:
    store, sid, output = recorded
    path = tmp_path / "session.cast"
    count = export_asciicast(store, sid, path)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert (header["version"], header["width"], header["height"]) == (2, 80, 24)
    assert len(lines) == count + 1
    events = [json.loads(line) for line in lines[1:]]
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    assert "".join(e[2] for e in events if e[1] == "o") == output.decode("utf-8", "replace")
    code, shown = asciinema_cat(path)
    assert code == 0, shown
    assert b"done-marker" in shown and b"line-60" in shown


def test_a_tampered_recording_chunk_fails_verification(
    recorded: tuple[EventStore, uuid.UUID, bytes],
) -> None:
    store, sid, _ = recorded
    assert store.verify().ok
    with raw_db(store) as (conn, events, _, col):
        oid = sid if store.backend == "postgresql" else sid.hex
        rows = conn.execute(
            q(
                store,
                f"SELECT {col}, topic, state FROM {events} WHERE originator_id = ? ORDER BY {col}",
            ),
            (oid,),
        ).fetchall()
        nid, _, state = next(r for r in rows if r[1].endswith("OutputRecorded"))
        changed = bytearray(state)
        changed[len(changed) // 2] ^= 0x20
        conn.execute(
            q(store, f"UPDATE {events} SET state = ? WHERE {col} = ?"), (bytes(changed), nid)
        )
    report = store.verify()
    assert not report.ok and report.problem is not None
    assert (report.problem.kind, report.problem.notification_id) == ("modified", nid)


def mysql_session(store: EventStore) -> uuid.UUID:
    """Events as the MySQL proxy writes them: results already masked in the transcript."""
    log = SessionLog(node="n1")
    ev = log.event
    events = [
        ev(
            Session.ConnectionAccepted,
            node="n1",
            protocol="mysql",
            target="shop",
            listener="l",
            peer="p",
        ),
        ev(
            Session.Authenticated,
            actor="agent-7",
            subject="agent-7",
            groups=["agents"],
            issuer="i",
            token_id="t",
            expires_at=time.time() + 60,
            client_user="agent",
        ),
        ev(
            Session.CommandReceived,
            actor="agent-7",
            seq=1,
            kind="COM_QUERY",
            text="SELECT id, email, card FROM customers LIMIT 2",
        ),
        ev(Session.CommandDecided, seq=1, action="allow", rule="reads", reason="matched reads"),
        ev(Session.CommandForwarded, seq=1),
        ev(
            Session.ResponseRecorded,
            seq=1,
            ok=True,
            rows=2,
            duration_ms=1.2,
            masked={"email": 2, "card": 2},
            transcript={
                "columns": ["id", "email", "card"],
                "rows": [
                    [1, "j***@example.com", "************1111"],
                    [2, "m***@example.org", None],
                ],
            },
        ),
        ev(
            Session.CommandReceived,
            actor="agent-7",
            seq=2,
            kind="COM_QUERY",
            text="DELETE FROM payments WHERE id = 9",
        ),
        ev(
            Session.CommandDecided,
            seq=2,
            action="review",
            rule="writes-need-approval",
            reason="deletes need a human",
            approval_id=str(uuid.uuid4()),
        ),
        ev(Session.CommandForwarded, seq=2, approved_by=["bob", "carol"]),
        ev(Session.ResponseRecorded, seq=2, ok=True, affected_rows=1, duration_ms=3.0),
        ev(
            Session.CommandReceived,
            actor="agent-7",
            seq=3,
            kind="COM_QUERY",
            text="DROP TABLE customers",
        ),
        ev(
            Session.CommandDecided,
            seq=3,
            action="deny",
            rule="no-ddl",
            reason="DDL is never allowed",
        ),
        ev(
            Session.ResponseRecorded,
            seq=3,
            ok=False,
            error_code=1142,
            error_message="denied by policy",
        ),
        ev(Session.Closed, reason="client_quit"),
    ]
    store.append(events)
    return log.id


def test_mysql_sessions_replay_as_masked_transcripts(
    store: EventStore, cli_env: None, tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    sid = mysql_session(store)
    assert resolve_session(store, sid.hex[:10]) == sid
    assert main(["replay", sid.hex[:8], "--idle-limit", "0"]) == 0
    text = capfdbinary.readouterr().out.decode()
    assert "agent-7> SELECT id, email, card FROM customers LIMIT 2" in text
    assert "| 1  | j***@example.com | ************1111 |" in text
    assert "| 2  | m***@example.org | NULL             |" in text
    assert "masked card 2, email 2" in text
    assert "review (rule writes-need-approval): deletes need a human" in text
    assert "approved by bob, carol" in text
    assert "deny (rule no-ddl): DDL is never allowed" in text and "ERROR 1142" in text
    assert "@example.com |" in text and "john" not in text

    assert main(["replay", str(sid), "--from-command", "2", "--idle-limit", "0"]) == 0
    later = capfdbinary.readouterr().out.decode()
    assert "DELETE FROM payments" in later and "SELECT id" not in later

    cast = tmp_path / "mysql.cast"
    assert main(["replay", sid.hex[:8], "--asciicast", str(cast)]) == 0
    capfdbinary.readouterr()
    code, shown = asciinema_cat(cast)
    assert code == 0, shown
    assert b"************1111" in shown and b"approved by bob, carol" in shown
    exported = tmp_path / "export.cast"
    assert main(["export", "asciicast", sid.hex[:8], "-o", str(exported)]) == 0
    capfdbinary.readouterr()
    assert exported.read_bytes() == cast.read_bytes()
    lines = list(tail(store, sid, after_version=5))
    assert (lines[0].version, lines[0].kind) == (6, "response")
    assert any(line.text == "   approved by bob, carol" for line in lines)
    assert [line.version for line in tail(store, sid, after_version=13)] == [14]


def test_replay_names_unknown_or_ambiguous_sessions(
    store: EventStore, cli_env: None, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "ffffffff"]) == 1
    assert "no session starts with 'ffffffff'" in capfd.readouterr().err
    assert store.events_of(RecordingIndex.id_for(uuid.uuid4())) == []


def test_times_and_pacing() -> None:
    assert [parse_time(t) for t in ("90", "1.5", "01:30", "1:02:03")] == [
        90000,
        1500,
        90000,
        3723000,
    ]
    for bad in ("x", "-3", "1:2:3:4"):
        with pytest.raises(UserError):
            parse_time(bad)
    slept: list[float] = []
    out = io.BytesIO()
    items = [Item(offset_ms=ms, data=d) for ms, d in ((0, b"a"), (1000, b"b"), (61000, b"c"))]
    items.insert(2, Item(offset_ms=2000, data=b"typed", kind="i"))
    play(iter(items), out, speed=2.0, idle_limit=5.0, sleep=slept.append)
    assert out.getvalue() == b"abc"
    assert slept == [0.5, 5.0]


def test_exec_sessions_replay_commands_with_their_output(
    store: EventStore, cli_env: None, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    log = SessionLog(node="n1")
    events: list[Any] = []

    class Sink:
        def submit(self, batch: Any) -> None:
            events.extend(batch)

    sink = Sink()
    sink.submit(
        [
            log.event(
                Session.ConnectionAccepted,
                node="n1",
                protocol="ssh",
                target="h",
                listener="l",
                peer="p",
            )
        ]
    )
    recorder = SessionRecorder(log, sink, pty=False)
    for n, (command, out) in enumerate(
        [("uname -a", b"Linux box\n"), ("cat notes", b"card ************1111\n")], 1
    ):
        recorder.flush()
        sink.submit([log.event(Session.CommandReceived, seq=n, kind="exec", text=command)])
        sink.submit(
            [log.event(Session.CommandDecided, seq=n, action="allow", rule="ops", reason="")]
        )
        time.sleep(0.02)  # the output comes after its command, in time as in versions
        recorder.output("stdout", out)
        recorder.output("stderr", b"warning\n")
    recorder.close()
    store.append(events)
    assert main(["replay", str(log.id), "--idle-limit", "0"]) == 0
    text = capfdbinary.readouterr().out.decode()
    assert text.index("> uname -a") < text.index("Linux box") < text.index("> cat notes")
    assert text.index("> cat notes") < text.index("card ************1111")
    assert text.count("warning") == 2
