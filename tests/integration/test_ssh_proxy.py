"""The SSH proxy end to end: the real OpenSSH client and asyncssh as a client, through
wardgate (in-thread harness), to a real sshd started by the tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from events.domain import (
    DomainEvent,
    RecordingIndex,
    RecordingKeyframes,
    Session,
    SessionControl,
)
from events.recording import Recording, Terminal, chunk_bytes

from .harness import RunningGateway
from .ssh.gateway import ssh_cli, ssh_gateway
from .ssh.sshd import USER, RunningSshd, free_port, have_openssh, keygen, running_sshd

pytestmark = pytest.mark.skipif(not have_openssh(), reason="OpenSSH server/client not installed")
HOME = Path(f"/home/{USER}")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSshd]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, sshd: RunningSshd) -> Iterator[RunningGateway]:
    other = tmp_path_factory.mktemp("otherkey") / "key"
    wrong_key = keygen(other)
    known_hosts = other.parent / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line() + "\n")
    extra = f"""
[[ssh]]
name = "badkey"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{sshd.port}"
credential = "badkey"
host_key = "{wrong_key}"

[[ssh]]
name = "down"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{free_port()}"
credential = "down"
host_key = "{sshd.host_key}"
connect_timeout = "2s"

[[ssh]]
name = "keyed"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{sshd.port}"
credential = "keyed"
known_hosts = "{known_hosts}"

[[ssh]]
name = "budget"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:{sshd.port}"
credential = "box"
host_key = "{sshd.host_key}"
record_limit = 65536
record_rate = 65536
"""
    with ssh_gateway(tmp_path_factory.mktemp("gw"), sshd, extra=extra) as g:
        yield g


def stored_events(gw: RunningGateway) -> list[DomainEvent]:
    """Every event in the gateway's store, read afresh."""
    store = gw.store()
    try:
        return [e for _, e in store.read(0, 1_000_000)]
    finally:
        store.close()


def events_of(gw: RunningGateway, subject: str, timeout: float = 5.0) -> list[DomainEvent]:
    """The events of the sessions ``subject`` authenticated, once one is closed."""
    deadline = time.monotonic() + timeout
    while True:
        every = stored_events(gw)
        ids = {
            e.originator_id
            for e in every
            if isinstance(e, Session.Authenticated | Session.AuthenticationRejected)
            and (getattr(e, "subject", None) == subject or e.actor == subject)
        }
        mine = [e for e in every if e.originator_id in ids]
        if any(isinstance(e, Session.Closed) for e in mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def of(events: list[DomainEvent], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


# -- exec -------------------------------------------------------------------------------


def test_exec_relays_output_exit_status_and_records_it(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "echo hello; echo oops >&2; exit 3", token=gw.token("exec-1"))
    assert out.stdout == b"hello\n", out.stderr
    assert out.stderr == b"oops\n"
    assert out.returncode == 3
    events = events_of(gw, "exec-1")
    [auth] = of(events, Session.Authenticated)
    assert auth.client_user == "agent"
    [cmd] = of(events, Session.CommandReceived)
    assert (cmd.kind, cmd.text) == ("exec", "echo hello; echo oops >&2; exit 3")
    [decided] = of(events, Session.CommandDecided)
    assert (decided.action, decided.rule) == ("allow", "tools")
    [response] = of(events, Session.ResponseRecorded)
    assert (response.ok, response.error_code) == (False, 3)
    recorded = {e.stream: e.data for e in of(events, Session.OutputRecorded)}
    assert recorded == {"stdout": "hello\n", "stderr": "oops\n"}
    [closed] = of(events, Session.Closed)
    assert closed.reason == "client_quit"


def test_stdin_is_piped_to_the_command(gw: RunningGateway) -> None:
    data = b"one\ntwo\nthree\n" * 1000
    out = ssh_cli(gw, "wc -l", stdin=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"3000"
    echoed = ssh_cli(gw, "cat", stdin=b"round trip\n")
    assert echoed.stdout == b"round trip\n"


def test_output_is_masked_for_the_client_and_in_the_recording(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "printf 'card %s\\n' 4111111111111111", token=gw.token("mask-1"))
    assert out.returncode == 0, out.stderr
    assert b"4111111111111111" not in out.stdout
    assert out.stdout == b"card ************1111\n"
    events = events_of(gw, "mask-1")
    text = json.dumps([e.data for e in of(events, Session.OutputRecorded)])
    assert "4111111111111111" not in text and "************1111" in text
    [response] = of(events, Session.ResponseRecorded)
    assert response.masked == {"card": 1}


def test_a_denied_command_never_reaches_the_target(gw: RunningGateway) -> None:
    canary = HOME / "canary"
    canary.write_text("still here\n")
    out = ssh_cli(gw, f"rm {canary}", token=gw.token("deny-1"))
    assert out.returncode == 126
    assert out.stderr.startswith(b"wardgate: denied by rule no-rm: ")
    assert canary.exists()
    events = events_of(gw, "deny-1")
    [decided] = of(events, Session.CommandDecided)
    assert (decided.action, decided.rule) == ("deny", "no-rm")
    assert not of(events, Session.CommandForwarded)
    assert not of(events, Session.ResponseRecorded)


def test_a_bad_token_is_rejected_and_recorded(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "true", token="not-a-token")
    assert out.returncode == 5  # sshpass: the password (token) was refused and asked again
    store = gw.store()
    try:
        rejected = [
            e for _, e in store.read(0, 1_000_000) if isinstance(e, Session.AuthenticationRejected)
        ]
    finally:
        store.close()
    assert rejected and "not-a-token" not in json.dumps([r.message for r in rejected])


def test_a_rejected_token_is_explained_in_an_auth_banner(gw: RunningGateway) -> None:
    banners: list[str] = []

    class Client(asyncssh.SSHClient):
        def auth_banner_received(self, msg: str, lang: str) -> None:
            banners.append(msg)

    async def attempt() -> None:
        forged = gw.token("forged")[:-6] + "AAAAAA"  # signature no longer matches
        async with _asyncssh_connect(gw, forged, client_factory=Client, preferred_auth="password"):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(attempt())
    assert banners and banners[0].startswith("wardgate: token rejected: ")
    assert "forged" not in banners[0] and "AAAAAA" not in banners[0]


# -- approvals --------------------------------------------------------------------------


def operator_cli(
    gw: RunningGateway, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    env = {**os.environ, "WARDGATE_CONFIG": str(gw.data_dir / "wardgate.toml")}
    env.pop("WARDGATE_TOKEN", None)
    if token:
        env["WARDGATE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_held_command_runs_once_approved_from_another_process(gw: RunningGateway) -> None:
    target = HOME / f"approved-{uuid.uuid4().hex[:6]}"
    command = f"touch {target}"
    result: dict[str, Any] = {}
    job = threading.Thread(
        target=lambda: result.update(out=ssh_cli(gw, command, token=gw.token("hold-1")))
    )
    job.start()
    deadline = time.monotonic() + 15
    row = None
    while row is None and time.monotonic() < deadline:
        listed = operator_cli(gw, "approvals", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        row = next((r for r in json.loads(listed.stdout) if r["command"] == command), None)
        time.sleep(0.1)
    assert row is not None, "no pending approval appeared"
    assert not target.exists()
    approved = operator_cli(
        gw,
        "approvals",
        "approve",
        row["short_id"],
        "--reason",
        "ok",
        token=gw.token("bob", ("oncall",)),
    )
    assert approved.returncode == 0, approved.stderr
    job.join(30)
    assert result["out"].returncode == 0, result["out"].stderr
    assert target.exists()
    [forwarded] = of(events_of(gw, "hold-1"), Session.CommandForwarded)
    assert forwarded.approved_by == ["bob"]


# -- interactive ------------------------------------------------------------------------


async def _read_until(process: Any, marker: bytes, timeout: float = 10) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            chunk = await process.stdout.read(4096)
            if not chunk:
                break
            seen += chunk
    return seen


def test_interactive_pty_session_is_relayed_and_recorded(gw: RunningGateway) -> None:
    token = gw.token("pty-1")

    async def drive() -> dict[str, bytes]:
        async with asyncssh.connect(
            "127.0.0.1",
            gw.ports["box"],
            username="agent",
            password=token,
            known_hosts=None,
            client_keys=[],
            agent_path=None,
            config=[],
        ) as conn:
            process = await conn.create_process(
                term_type="xterm", term_size=(80, 24), encoding=None
            )
            got: dict[str, bytes] = {}
            process.stdin.write(b"echo wg-$((6*7))\n")
            got["math"] = await _read_until(process, b"wg-42")
            process.change_terminal_size(100, 40)
            process.stdin.write(b"stty size\n")
            got["size"] = await _read_until(process, b"40 100")
            # the prompt text is built by the shell, so its echoed command line does not match
            process.stdin.write(b'P=Password; read -s -p "$P: " pw; echo; echo got-${#pw}\n')
            await _read_until(process, b"Password: ")
            process.stdin.write(b"hunter2\n")
            got["secret"] = await _read_until(process, b"got-7")
            process.stdin.write(b"exit 5\n")
            await asyncio.wait_for(process.wait_closed(), 10)
            got["status"] = str(process.exit_status).encode()
            return got

    got = asyncio.run(drive())
    assert b"wg-42" in got["math"]
    assert b"40 100" in got["size"]
    assert b"got-7" in got["secret"]
    assert got["status"] == b"5"
    events = events_of(gw, "pty-1")
    [decided] = [e for e in of(events, Session.CommandDecided) if e.statement_kinds == ["shell"]]
    assert (decided.action, decided.rule) == ("allow", "shells")
    lines = [
        (e.kind, e.text)
        for e in of(events, Session.CommandReceived)
        if e.kind.startswith("shell_line")
    ]
    assert ("shell_line", "echo wg-$((6*7))") in lines
    assert ("shell_line", "stty size") in lines
    assert not any("hunter2" in text for _, text in lines)
    typed = "".join(e.data for e in of(events, Session.OutputRecorded) if e.stream == "input")
    assert "stty size" in typed and "[hidden input]" in typed and "hunter2" not in typed
    [response] = [e for e in of(events, Session.ResponseRecorded) if e.seq == decided.seq]
    assert response.error_code == 5
    # The shared recorder made it a seekable terminal recording: "pty" chunks, the resize,
    # an index; the screen at the end shows what the agent saw (the secret never echoed).
    streams = {e.stream for e in of(events, Session.OutputRecorded)}
    assert streams == {"pty", "input"}
    sizes = [(e.columns, e.lines) for e in of(events, Session.TerminalResized)]
    assert sizes == [(80, 24), (100, 40)]
    store = gw.store()
    try:
        session_id = events[0].originator_id
        deadline = time.monotonic() + 10
        index = RecordingIndex.id_for(session_id)
        while not of(store.events_of(index), RecordingIndex.ChunksIndexed):
            assert time.monotonic() < deadline, "the recording index was not written"
            time.sleep(0.1)
        recording = Recording.open(store, session_id)
        assert recording.pty
        end = recording.screen_at(recording.duration_ms)
        screen = "\n".join(end.screen.display)
        assert "got-7" in screen and "hunter2" not in screen
        assert end.screen.columns == 100
    finally:
        store.close()


async def _run_in_terminal(gw: RunningGateway, token: str, script: bytes, **kw: Any) -> None:
    """Run ``script`` in a shell on an 80x24 terminal through the gateway, reading all."""
    async with _asyncssh_connect(gw, token, **kw) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(80, 24), encoding=None)
        process.stdin.write(script + b"; exit 0\n")
        while await asyncio.wait_for(process.stdout.read(65536), 60):
            pass
        await asyncio.wait_for(process.wait_closed(), 10)
        assert process.exit_status == 0


def test_after_bulk_output_a_shell_is_recorded_again(gw: RunningGateway) -> None:
    """Past its budget a stream is only counted, and recording resumes once the budget has
    refilled: 8 MiB of output cannot hide what the shell shows afterwards."""
    script = b"head -c 600000 /dev/zero | tr '\\0' x; sleep 1.5; echo AFTER-BULK-$((6 * 7))"
    asyncio.run(_run_in_terminal(gw, gw.token("pty-budget"), script, target="budget"))
    events = events_of(gw, "pty-budget")
    [response] = of(events, Session.ResponseRecorded)
    recorded = b"".join(
        chunk_bytes(e) for e in of(events, Session.OutputRecorded) if e.stream == "pty"
    )
    assert response.truncated and response.transcript["recording_gaps"] >= 1
    assert response.transcript["unrecorded_bytes"] > 400_000
    assert len(recorded) < 300_000  # the budget and about 1.5 s of refill, not the bulk
    assert b"AFTER-BULK-42" in recorded  # the shell after the bulk output is recorded


def test_the_last_screen_after_bulk_output_is_recorded(gw: RunningGateway) -> None:
    """What a command prints right after bulk output comes within the second the budget
    takes to resume; the channel's close records the last lines, so the recorded terminal
    stream ends on the screen the agent saw."""
    script = b"head -c 600000 /dev/zero | tr '\\0' x; echo; echo LAST-SCREEN-$((6 * 7))"
    asyncio.run(_run_in_terminal(gw, gw.token("pty-tail"), script, target="budget"))
    events = events_of(gw, "pty-tail")
    [response] = of(events, Session.ResponseRecorded)
    assert response.truncated and 0 < response.transcript["recorded_tail_bytes"] <= 8192
    recorded = b"".join(
        chunk_bytes(e) for e in of(events, Session.OutputRecorded) if e.stream == "pty"
    )
    screen = Terminal()
    screen.feed(recorded)
    assert any(line.startswith("LAST-SCREEN-42") for line in screen.screen.display), recorded[-300:]
    store = gw.store()
    try:  # seeking to the end of the recording shows the same screen
        recording = Recording.open(store, events[0].originator_id)
        assert recording.screen_at(recording.duration_ms).screen.display == screen.screen.display
    finally:
        store.close()


def test_terminal_keyframes_are_rendered_by_a_child_process(gw: RunningGateway) -> None:
    """The gateway's pyte renderer is its own process: the data path never runs pyte, and
    the screens it sends back are exact (seeking from them equals rendering it all)."""
    token = gw.token("pty-keyframes")

    script = (
        b"for i in $(seq 1 40000); do printf '\\033[1;3%dm%06d\\033[0m  ' $((i % 7)) $i; done; echo"
    )
    asyncio.run(_run_in_terminal(gw, token, script))
    renderer = gw.started.context.keyframes if gw.started.context else None
    assert renderer is not None and renderer.pid not in (None, os.getpid())
    events = events_of(gw, "pty-keyframes")
    session_id = events[0].originator_id
    store = gw.store()
    try:
        deadline = time.monotonic() + 30
        while True:  # the renderer catches up after the session; the index lists it all
            recording = Recording.open(store, session_id)
            if recording.keyframes and any(
                of(store.events_of(RecordingIndex.id_for(session_id)), RecordingIndex.ChunksIndexed)
            ):
                break
            assert time.monotonic() < deadline, "no keyframes were recorded"
            time.sleep(0.2)
        assert len(recording.keyframes) >= 2
        pty_bytes = b"".join(
            chunk_bytes(e) for e in of(store.events_of(session_id), Session.OutputRecorded)
            if e.stream == "pty"
        )  # fmt: skip
        assert len(pty_bytes) > 500_000
        last = recording.keyframes[-1]
        reference = Terminal(80, 24)
        reference.feed(pty_bytes[: last.position])
        stored = next(
            k
            for k in of(
                store.events_of(RecordingKeyframes.id_for(session_id)),
                RecordingKeyframes.ScreenKeyframe,
            )
            if k.originator_version == last.stored_version
        )  # the renderer may still be adding keyframes: this one
        assert stored.position == last.position
        assert Terminal.restore(stored.screen).screen.display == reference.screen.display
        # Seeking to its time shows every byte recorded by then (a keyframe inside a chunk
        # may share its time with the bytes after it).
        shown = b"".join(
            f.data
            for f in recording.frames()
            if f.stream == "pty" and f.offset_ms <= last.offset_ms
        )
        reference = Terminal(80, 24)
        reference.feed(shown)
        seeked = Recording.open(store, session_id).screen_at(last.offset_ms)
        assert seeked.screen.display == reference.screen.display
    finally:
        store.close()


# -- bulk -------------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_100_mb_through_cat_with_bounded_gateway_memory(gw: RunningGateway, tmp_path: Path) -> None:
    """Memory is measured on this process, which hosts the in-thread gateway: peak RSS
    (VmHWM, reset through /proc/self/clear_refs) minus RSS before the transfer."""
    line = b"the quick brown fox jumps over the lazy dog again and again\n"
    size = 100 * 1024 * 1024
    source = tmp_path / "bulk.txt"
    with source.open("wb") as fh:
        block = line * (1024 * 1024 // len(line) + 1)
        written = 0
        while written < size:
            part = block[: size - written]
            fh.write(part)
            written += len(part)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    digest = hashlib.sha256()
    received = 0
    with source.open("rb") as stdin:
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
            str(gw.ports["box"]),
            "agent@127.0.0.1",
            "cat",
        ]
        import os

        env = {**os.environ, "SSHPASS": gw.token("bulk-1")}
        started = time.monotonic()
        with subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, env=env) as proc:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(1 << 20):
                digest.update(chunk)
                received += len(chunk)
            assert proc.wait(120) == 0
        elapsed = time.monotonic() - started
    growth_mib = (_rss_kib("VmHWM") - before) / 1024
    print(f"100 MiB echoed in {elapsed:.1f}s; gateway process peak RSS growth {growth_mib:.1f} MiB")
    assert received == size and digest.hexdigest() == expected
    assert growth_mib < 64, growth_mib
    [response] = of(events_of(gw, "bulk-1"), Session.ResponseRecorded)
    assert response.transcript["stdin_bytes"] == size
    assert response.transcript["stdout_bytes"] == size
    assert response.truncated  # only the first record_limit bytes are kept in events


# -- forwarding and upstream failures ---------------------------------------------------


def test_a_local_port_forward_is_refused(gw: RunningGateway, sshd: RunningSshd) -> None:
    local = free_port()
    import os

    env = {**os.environ, "SSHPASS": gw.token("fwd-1")}
    argv = [
        "sshpass",
        "-e",
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "PubkeyAuthentication=no",
        "-L",
        f"127.0.0.1:{local}:127.0.0.1:{sshd.port}",
        "-p",
        str(gw.ports["box"]),
        "agent@127.0.0.1",
        "sleep 3",
    ]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, env=env) as proc:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", local), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed without a byte from the target's sshd
        sock.close()
        _, err = proc.communicate(timeout=20)
    assert b"administratively prohibited" in err
    assert b"wardgate: denied by rule no-forwarding" in err
    decided = [
        e
        for e in of(events_of(gw, "fwd-1"), Session.CommandDecided)
        if e.statement_kinds == ["port_forward"]
    ]
    assert [(d.action, d.rule) for d in decided] == [("deny", "no-forwarding")]


def test_a_wrong_upstream_host_key_is_refused(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "echo should-not-run", token=gw.token("hostkey-1"), target="badkey")
    assert out.returncode == 255
    assert b"should-not-run" not in out.stdout
    assert b"does not match the configured key" in out.stderr
    [closed] = of(events_of(gw, "hostkey-1"), Session.Closed)
    assert closed.reason == "upstream_error" and "host_key_mismatch" in closed.detail


def test_an_upstream_that_is_down_ends_only_its_session(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "true", token=gw.token("down-1"), target="down")
    assert out.returncode == 255
    assert b"wardgate: cannot reach" in out.stderr
    [closed] = of(events_of(gw, "down-1"), Session.Closed)
    assert closed.reason == "upstream_error"
    assert ssh_cli(gw, "echo fine").stdout == b"fine\n"


# -- bad clients ------------------------------------------------------------------------


def _accepted_closed(gw: RunningGateway, peer_port: int, timeout: float = 10) -> Session.Closed:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        every = stored_events(gw)
        ids = {
            e.originator_id
            for e in every
            if isinstance(e, Session.ConnectionAccepted) and e.peer.endswith(f":{peer_port}")
        }
        closed = [e for e in every if e.originator_id in ids and isinstance(e, Session.Closed)]
        if closed:
            return closed[0]
        time.sleep(0.1)
    raise AssertionError("no Closed event")


def test_garbage_instead_of_a_banner_is_closed_and_recorded(gw: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.ports["box"]), timeout=10) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 8)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"SSH-2.0-")
    closed = _accepted_closed(gw, port)
    assert closed.reason == "error"
    assert ssh_cli(gw, "echo fine").stdout == b"fine\n"


def test_a_client_stalling_in_key_exchange_times_out(gw: RunningGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.ports["box"]), timeout=15) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"SSH-2.0-stalling\r\n")
        started = time.monotonic()
        while sock.recv(4096):
            pass
        waited = time.monotonic() - started
    assert waited < 10  # handshake_timeout is 3 s in this configuration
    closed = _accepted_closed(gw, port)
    assert closed.reason == "error" and "timeout" in closed.detail.lower()


# -- ending sessions --------------------------------------------------------------------


def test_token_expiry_ends_the_session_with_a_message(gw: RunningGateway) -> None:
    out = ssh_cli(gw, "sleep 30", token=gw.token("expiry-1", ttl=3), timeout=40)
    assert b"wardgate: your token expired" in out.stderr
    assert out.returncode != 0
    [closed] = of(events_of(gw, "expiry-1"), Session.Closed)
    assert closed.reason == "token_expired"


def test_an_operator_can_end_a_session(gw: RunningGateway) -> None:
    result: dict[str, Any] = {}
    job = threading.Thread(
        target=lambda: result.update(out=ssh_cli(gw, "sleep 30", token=gw.token("kill-1")))
    )
    job.start()
    deadline = time.monotonic() + 10
    session_id = None
    while session_id is None and time.monotonic() < deadline:
        store = gw.store()
        try:
            for _, e in store.read(0, 1_000_000):
                if isinstance(e, Session.CommandForwarded) and e.actor:
                    pass
                if isinstance(e, Session.Authenticated) and e.subject == "kill-1":
                    session_id = e.originator_id
        finally:
            store.close()
        time.sleep(0.1)
    assert session_id is not None
    time.sleep(0.5)
    control = SessionControl(SessionControl.id_for(session_id))
    request = control.request_termination(
        session_id=session_id, reason="incident 7", actor="carol", at=time.time()
    )
    store = gw.store()
    try:
        store.append([request])
    finally:
        store.close()
    job.join(20)
    assert b"wardgate: session ended by carol: incident 7" in result["out"].stderr
    [closed] = of(events_of(gw, "kill-1"), Session.Closed)
    assert closed.reason == "killed"


# -- more clients and credentials -------------------------------------------------------


def _asyncssh_connect(gw: RunningGateway, token: str, **kw: Any) -> Any:
    return asyncssh.connect(
        "127.0.0.1",
        gw.ports[kw.pop("target", "box")],
        username="agent",
        password=token,
        known_hosts=kw.pop("known_hosts", None),
        client_keys=[],
        agent_path=None,
        config=[],
        **kw,
    )


def test_asyncssh_keyboard_interactive_and_a_vaulted_key_upstream(gw: RunningGateway) -> None:
    async def run() -> tuple[str, int | None]:
        async with _asyncssh_connect(
            gw, gw.token("kbd-1"), target="keyed", preferred_auth="keyboard-interactive"
        ) as conn:
            result = await conn.run("id -un", check=False)
            return str(result.stdout), result.exit_status

    assert asyncio.run(run()) == (f"{USER}\n", 0)
    [auth] = of(events_of(gw, "kbd-1"), Session.Authenticated)
    assert auth.subject == "kbd-1"


def test_sftp_is_decided_by_policy_and_its_file_operations_recorded(
    gw: RunningGateway, tmp_path: Path
) -> None:
    local = tmp_path / "upload.bin"
    payload = bytes(range(256)) * 4096  # binary: relayed unchanged, never masked
    local.write_bytes(payload)
    name = f"sftp-{uuid.uuid4().hex[:6]}"

    async def transfer() -> bytes:
        async with _asyncssh_connect(gw, gw.token("sftp-1", ("files",))) as conn:
            async with conn.start_sftp_client() as sftp:
                await sftp.put(str(local), f"{HOME}/{name}")
                await sftp.rename(f"{HOME}/{name}", f"{HOME}/{name}.done")
                async with sftp.open(f"{HOME}/{name}.done", "rb") as fh:
                    back: bytes = await fh.read()
                await sftp.remove(f"{HOME}/{name}.done")
                return back

    assert asyncio.run(transfer()) == payload
    events = events_of(gw, "sftp-1")
    ops = [e.text for e in of(events, Session.CommandReceived) if e.kind == "sftp_op"]
    assert f"open {HOME}/{name} (write,create,truncate)" in ops
    assert f"rename {HOME}/{name} -> {HOME}/{name}.done" in ops or any(
        o.startswith("posix-rename") for o in ops
    )
    assert f"remove {HOME}/{name}.done" in ops
    [response] = [
        e for e in of(events, Session.ResponseRecorded) if "sftp_requests" in e.transcript
    ]
    assert response.transcript["sftp_write_bytes"] >= len(payload)

    async def refused() -> None:
        async with _asyncssh_connect(gw, gw.token("sftp-2")) as conn:
            async with conn.start_sftp_client():
                pass

    with pytest.raises((asyncssh.Error, OSError)):
        asyncio.run(refused())
    decided = [e for e in of(events_of(gw, "sftp-2"), Session.CommandDecided)]
    assert [(d.action, d.statement_kinds) for d in decided] == [("deny", ["sftp"])]


def test_agent_forwarding_is_refused_and_the_command_still_runs(
    gw: RunningGateway, tmp_path: Path
) -> None:
    import os

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.environ["SSH_AUTH_SOCK"] = str(sock)
        try:
            out = ssh_cli(gw, "echo $SSH_AUTH_SOCK-end", token=gw.token("agent-1"), options=("-A",))
        finally:
            del os.environ["SSH_AUTH_SOCK"]
    finally:
        agent.terminate()
        agent.wait(5)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"-end\n"  # no agent socket upstream
    assert (
        b"wardgate: agent forwarding refused: wardgate: denied by rule no-forwarding" in out.stderr
    )
    decided = of(events_of(gw, "agent-1"), Session.CommandDecided)
    assert ("deny", ["agent_forward"]) in [(d.action, d.statement_kinds) for d in decided]


def test_a_slow_session_does_not_hold_up_the_others(gw: RunningGateway) -> None:
    result: dict[str, Any] = {}
    slow = threading.Thread(
        target=lambda: result.update(
            out=ssh_cli(gw, "sleep 4; echo slow", token=gw.token("slow-1"))
        )
    )
    slow.start()
    time.sleep(0.5)
    for i in range(3):
        started = time.monotonic()
        assert ssh_cli(gw, f"echo quick-{i}").stdout == f"quick-{i}\n".encode()
        assert time.monotonic() - started < 3.5
    slow.join(20)
    assert result["out"].stdout == b"slow\n"


@contextmanager
def _agent_with_a_key(tmp_path: Path) -> Iterator[Path]:
    """A running ssh-agent holding one new key (comment ``wardgate-test``): its socket."""
    sock = tmp_path / "agent.sock"
    key = tmp_path / "agent_key"
    keygen(key)
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=10)
        yield sock
    finally:
        agent.terminate()
        agent.wait(5)


def test_forwarding_allowed_by_policy_reaches_the_target(
    gw: RunningGateway, sshd: RunningSshd, tmp_path: Path
) -> None:
    """Agent forwarding (the agent's keys listed upstream) and ssh -L (the target's sshd
    banner through the tunnel) for a group the policy allows."""
    local = free_port()
    with _agent_with_a_key(tmp_path) as sock:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        argv = [
            "sshpass",
            "-e",
            "ssh",
            "-A",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PubkeyAuthentication=no",
            "-L",
            f"127.0.0.1:{local}:127.0.0.1:{sshd.port}",
            "-p",
            str(gw.ports["box"]),
            "agent@127.0.0.1",
            "ssh-add -l; sleep 2",
        ]
        env["SSHPASS"] = gw.token("fwd-ok", ("forwarders",))
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        ) as proc:
            deadline = time.monotonic() + 10
            while True:
                try:
                    tunnel = socket.create_connection(("127.0.0.1", local), timeout=1)
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            tunnel.settimeout(5)
            assert tunnel.recv(100).startswith(b"SSH-2.0-OpenSSH")
            tunnel.close()
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"wardgate-test (ED25519)" in out
    decided = of(events_of(gw, "fwd-ok"), Session.CommandDecided)
    kinds = [(d.action, d.statement_kinds) for d in decided]
    assert ("allow", ["agent_forward"]) in kinds and ("allow", ["port_forward"]) in kinds


def test_agent_forwarding_reaches_a_session_that_follows_a_tunnel(
    gw: RunningGateway, sshd: RunningSshd, tmp_path: Path
) -> None:
    """A port forward used before the session starts opens an upstream connection without
    the agent; the session that follows, its agent forwarding allowed, still gets the agent
    (its own upstream connection). The first channel used to decide for the connection: the
    forwarding test above failed 2 runs in about 57 on that race."""
    with _agent_with_a_key(tmp_path) as sock:

        async def run() -> tuple[bytes, str, int | None]:
            async with asyncssh.connect(
                "127.0.0.1",
                gw.ports["box"],
                username="agent",
                password=gw.token("fwd-order", ("forwarders",)),
                known_hosts=None,
                client_keys=[],
                agent_path=str(sock),
                agent_forwarding=True,
                config=[],
            ) as conn:
                reader, writer = await conn.open_connection("127.0.0.1", sshd.port)
                banner = await reader.read(100)
                writer.close()
                listed = await conn.run("ssh-add -l", check=False)
                return banner, str(listed.stdout), listed.exit_status

        banner, listed, status = asyncio.run(run())
    assert banner.startswith(b"SSH-2.0-OpenSSH")
    assert status == 0 and "wardgate-test (ED25519)" in listed, listed
    decided = of(events_of(gw, "fwd-order"), Session.CommandDecided)
    kinds = [(d.action, d.statement_kinds) for d in decided]
    assert kinds[0] == ("allow", ["port_forward"])  # the tunnel came first
    assert ("allow", ["agent_forward"]) in kinds


def test_a_client_trying_token_after_token_is_cut_off(gw: RunningGateway) -> None:
    tries: list[int] = []

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str:
            tries.append(1)
            return f"guess-{len(tries)}"

    async def attempt() -> None:
        async with asyncssh.connect(
            "127.0.0.1",
            gw.ports["box"],
            username="guesser",
            client_factory=Guesser,
            known_hosts=None,
            client_keys=[],
            agent_path=None,
            config=[],
            preferred_auth="password",
        ):
            pass

    with pytest.raises((asyncssh.Error, OSError)):
        asyncio.run(attempt())
    assert len(tries) <= 6
    deadline = time.monotonic() + 5
    while True:
        every = stored_events(gw)
        ids = {
            e.originator_id
            for e in every
            if isinstance(e, Session.AuthenticationRejected) and e.client_user == "guesser"
        }
        [sid] = ids
        mine = [e for e in every if e.originator_id == sid]
        if of(mine, Session.Closed) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(of(mine, Session.AuthenticationRejected)) == 5
    [closed] = of(mine, Session.Closed)
    assert closed.reason == "auth_failed"


def test_the_gateway_host_key_is_kept_in_the_data_directory(gw: RunningGateway) -> None:
    key_file = gw.data_dir / "ssh_host_ed25519_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    public = asyncssh.import_public_key(Path(f"{key_file}.pub").read_text())
    assert public.get_algorithm() == "ssh-ed25519"

    async def run() -> str:
        async with _asyncssh_connect(
            gw, gw.token("hostkey-ok"), known_hosts=([public], [], [])
        ) as conn:
            return str((await conn.run("echo trusted")).stdout)

    assert asyncio.run(run()) == "trusted\n"  # the client verified the gateway's key
