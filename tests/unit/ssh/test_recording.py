"""Recording taps of the SSH proxy: chunking, masking, hidden input, line reconstruction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.masking import DEFAULT_PROFILE, StreamMasker
from gateway.ssh.recording import (
    ChunkRecorder,
    LineEditor,
    MaskingTap,
    TypedInputTap,
    TypedLine,
    asks_for_secret,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recorder(limit: int = 1 << 20, max_bytes: int = 16) -> tuple[ChunkRecorder, list, Clock]:
    chunks: list[tuple[str, int, str, dict[str, int]]] = []
    clock = Clock()
    rec = ChunkRecorder(
        "stdout",
        started=99.0,
        emit=lambda *a: chunks.append(a),
        limit=limit,
        max_bytes=max_bytes,
        clock=clock,
    )
    return rec, chunks, clock


def test_chunks_are_cut_by_size_and_by_age() -> None:
    rec, chunks, clock = recorder(max_bytes=8)
    rec.add(b"abc")
    assert chunks == [] and rec.pending
    rec.add(b"defgh")
    assert chunks == [("stdout", 1000, "abcdefgh", {})]
    rec.add(b"x")
    clock.now += 0.3
    assert rec.due()
    rec.add(b"y")  # the first byte of this chunk is now 300 ms old
    assert chunks[-1] == ("stdout", 1000, "xy", {})
    assert not rec.pending


def test_a_character_split_between_chunks_stays_whole() -> None:
    rec, chunks, _ = recorder(max_bytes=2)
    rec.add("é€".encode()[:1])
    rec.add("é€".encode()[1:3])
    rec.add("é€".encode()[3:])
    rec.close()
    assert "".join(c[2] for c in chunks) == "é€"


def test_past_the_limit_only_counts_are_kept() -> None:
    rec, chunks, _ = recorder(limit=10, max_bytes=4)
    rec.add(b"0123456789abcdef")
    rec.close()
    assert "".join(c[2] for c in chunks) == "0123456789"
    assert rec.seen == 16 and rec.truncated


@given(st.lists(st.binary(max_size=40), max_size=30))
def test_recording_is_the_stream_whatever_the_reads(parts: list[bytes]) -> None:
    rec, chunks, _ = recorder(max_bytes=7)
    for part in parts:
        rec.add(part)
    rec.close()
    assert "".join(c[2] for c in chunks) == b"".join(parts).decode("utf-8", "replace")


def test_masking_tap_sends_and_records_only_masked_text() -> None:
    rec, chunks, _ = recorder(max_bytes=1 << 16)
    tap = MaskingTap(StreamMasker(DEFAULT_PROFILE), rec)
    sent = tap.feed(b"card 4111 1111 ") + tap.feed(b"1111 1111\n")
    sent += tap.close()
    assert b"4111 1111 1111 1111" not in sent and sent.endswith(b"1111\n")
    text = "".join(c[2] for c in chunks)
    assert text == sent.decode()
    assert sum(sum(c[3].values()) for c in chunks) == 1


def test_masking_tap_releases_held_bytes_when_idle() -> None:
    rec, _, _ = recorder()
    tap = MaskingTap(StreamMasker(DEFAULT_PROFILE), rec)
    assert tap.feed(b"$ ls") == b"$ "  # 'ls' could still grow into a value
    assert tap.idle_delay() is not None and tap.idle_delay() < 0.1
    assert tap.idle() == b"ls"


def test_secret_prompts_are_recognised() -> None:
    assert asks_for_secret(b"[sudo] password for wgtest: ")
    assert asks_for_secret(b"Enter passphrase for key '/root/.ssh/id_ed25519': ")
    assert asks_for_secret(b"\x1b[1mPassword:\x1b[0m ")
    assert not asks_for_secret(b"wgtest@box:~$ ")
    assert not asks_for_secret(b"password changed\n$ ")


def typed(tail: bytes, keys: list[bytes]) -> tuple[str, list[TypedLine], int]:
    rec, chunks, _ = recorder(max_bytes=1 << 16)
    lines: list[TypedLine] = []
    out = {"tail": tail}
    tap = TypedInputTap(
        profile=DEFAULT_PROFILE, recorder=rec, output_tail=lambda: out["tail"], on_line=lines.append
    )
    for key in keys:
        tap.feed(key)
    tap.close()
    return "".join(c[2] for c in chunks), lines, tap.hidden_bytes


def test_input_after_a_password_prompt_is_not_recorded() -> None:
    text, lines, hidden = typed(b"[sudo] password for x: ", [b"hun", b"ter2\r", b"ls\r"])
    assert "hunter2" not in text and "[hidden input]" in text
    assert hidden == 7
    assert [line.text for line in lines] == ["ls"]


def test_typed_lines_follow_editing_keys() -> None:
    editor = LineEditor()
    assert editor.feed(b"ech\x7fho hi\r") == [TypedLine(text="echo hi", approximate=False)]
    assert editor.feed(b"rm -rf x\x15ls\r") == [TypedLine(text="ls", approximate=False)]
    assert editor.feed(b"cat a b\x17c\n") == [TypedLine(text="cat a c", approximate=False)]
    assert editor.feed(b"sleep 9\x03") == []
    assert editor.feed(b"\x1b[Aecho\x1bOD x\r") == [TypedLine(text="echo x", approximate=True)]


@given(st.binary(max_size=200))
def test_line_editor_takes_any_bytes(data: bytes) -> None:
    for line in LineEditor().feed(data):
        assert line.text and "\r" not in line.text and "\n" not in line.text
