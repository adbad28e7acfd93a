"""Recording taps of the SSH proxy: per-channel limits, masking, hidden input, line reconstruction.

Chunking, timing and keyframes are the shared ``SessionRecorder``'s (tests/events/test_recording.py
and the SSH integration tests); here a plain list stands in for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from gateway.masking import DEFAULT_PROFILE, StreamMasker
from gateway.ssh.recording import (
    TAIL,
    ChannelStream,
    LineEditor,
    MaskingTap,
    TypedInputTap,
    TypedLine,
    asks_for_secret,
)


class Sink:
    """What a recorder is given: (stream, bytes, masked counts) per call, and resizes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, dict[str, int]]] = []
        self.sizes: list[tuple[int, int]] = []

    def record(self, stream: str, data: bytes, *, masked: Mapping[str, int] | None = None) -> None:
        self.calls.append((stream, data, dict(masked or {})))

    def resize(self, columns: int, lines: int) -> None:
        self.sizes.append((columns, lines))

    def text(self) -> str:
        return b"".join(c[1] for c in self.calls).decode()


def recorder(limit: int = 1 << 20, stream: str = "stdout") -> tuple[ChannelStream, Sink]:
    """A stream whose clock stands still: its budget never refills."""
    sink = Sink()
    return ChannelStream(sink, stream, limit=limit, clock=lambda: 0.0), sink


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_recording_resumes_once_the_budget_refilled_after_bulk_output() -> None:
    sink, clock = Sink(), Clock()
    rec = ChannelStream(sink, "pty", limit=1000, rate=100, clock=clock)
    rec.add(b"a" * 600)
    rec.add(b"b" * 600)  # 400 fit: the rest of the read and what follows is only counted
    assert rec.recorded == 1000 and rec.gaps == 1
    clock.now = 0.5
    rec.add(b"c" * 30)  # 50 bytes refilled: not yet a second's worth (100)
    clock.now = 1.0
    rec.add(b"$ prompt")  # 100 refilled: recording resumes with this read
    rec.add(b"d" * 500)  # 92 left in the budget: 92 bytes, then a gap again
    assert [c[1][:1] for c in sink.calls] == [b"a", b"b", b"$", b"d"]
    assert len(sink.calls[3][1]) == 92 and rec.gaps == 2
    assert rec.seen == 1738 and rec.recorded == 1100 and rec.unrecorded == 638
    clock.now = 100.0  # a long pause refills at most the whole budget
    rec.add(b"e" * 1500)
    assert len(sink.calls[-1][1]) == 1000


def test_a_budget_that_never_refills_cuts_the_recording_for_good() -> None:
    sink, clock = Sink(), Clock()
    rec = ChannelStream(sink, "pty", limit=100, rate=0, clock=clock)
    rec.add(b"x" * 150)
    clock.now = 3600.0
    rec.add(b"later")
    assert sink.text() == "x" * 100 and rec.unrecorded == 55 and rec.gaps == 1


@given(
    st.lists(st.tuples(st.binary(max_size=300), st.floats(0, 2)), max_size=40),
    st.integers(1, 1000),
    st.integers(0, 500),
)
def test_a_refilling_budget_records_whole_read_prefixes_within_the_budget(
    reads: list[tuple[bytes, float]], limit: int, rate: int
) -> None:
    sink, clock = Sink(), Clock()
    rec = ChannelStream(sink, "stdout", limit=limit, rate=rate, clock=clock)
    recorded = []
    for data, pause in reads:
        clock.now += pause
        before = len(sink.calls)
        rec.add(data)
        if len(sink.calls) > before:
            recorded.append((data, sink.calls[-1][1]))
    assert all(data.startswith(piece) and piece for data, piece in recorded)
    assert rec.recorded == sum(len(p) for _, p in recorded) <= limit + rate * clock.now + 1
    assert rec.seen == sum(len(d) for d, _ in reads)


def test_the_unrecorded_end_of_a_stream_is_recorded_when_it_closes() -> None:
    """Bulk output past the budget, then a prompt right after it (within the second the
    budget takes to resume): closing records the last lines, prompt included."""
    sink, clock = Sink(), Clock()
    rec = ChannelStream(sink, "pty", limit=1000, rate=100, clock=clock)
    lines = b"".join(b"line %06d of the listing\r\n" % i for i in range(2000))
    rec.add(lines)
    rec.add(b"END-MARK\r\n$ ")
    assert b"END-MARK" not in b"".join(c[1] for c in sink.calls)
    rec.finish()
    tail = sink.calls[-1][1]
    assert tail.endswith(b"END-MARK\r\n$ ") and tail.startswith(b"\r\nline ")  # a new line
    assert len(tail) <= TAIL and rec.tail == len(tail)
    assert rec.recorded == 1000 + len(tail) and rec.truncated
    rec.finish()  # once
    assert sink.calls[-1][1] is tail


def test_a_short_unrecorded_end_makes_the_recording_whole_again() -> None:
    sink, clock = Sink(), Clock()
    rec = ChannelStream(sink, "pty", limit=100, rate=0, clock=clock)
    rec.add(b"a" * 150)
    rec.add(b"\x1b[1mbold\x1b[0m")
    rec.finish()
    assert sink.text() == "a" * 150 + "\x1b[1mbold\x1b[0m"
    assert not rec.truncated and rec.unrecorded == 0


def test_record_limit_0_records_no_tail_either() -> None:
    sink = Sink()
    rec = ChannelStream(sink, "pty", limit=0, clock=lambda: 0.0)
    rec.add(b"secret-free but unrecorded\n")
    rec.finish()
    assert sink.calls == [] and rec.unrecorded == rec.seen


@given(st.lists(st.binary(max_size=3000), max_size=30), st.integers(0, 5000))
def test_a_closing_tail_is_the_end_of_the_stream(parts: list[bytes], limit: int) -> None:
    rec, sink = recorder(limit=limit)
    for part in parts:
        rec.add(part)
    before = len(sink.calls)
    rec.finish()
    whole = b"".join(parts)
    if len(sink.calls) > before:
        tail = sink.calls[-1][1]
        assert whole.endswith(tail) and 0 < len(tail) <= TAIL
        assert b"".join(c[1] for c in sink.calls[:before]) == whole[:limit]
        if len(whole) - limit < TAIL:  # all that was left out: the recording is whole
            assert b"".join(c[1] for c in sink.calls) == whole
    else:
        assert len(whole) <= limit or limit == 0


def test_past_the_limit_only_counts_are_kept() -> None:
    rec, sink = recorder(limit=10)
    rec.add(b"0123")
    rec.add(b"456789abcdef")
    rec.add(b"gh")
    assert sink.text() == "0123456789"
    assert rec.seen == 18 and rec.recorded == 10 and rec.truncated


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(0, 400))
def test_recording_is_the_stream_up_to_the_limit_whatever_the_reads(
    parts: list[bytes], limit: int
) -> None:
    rec, sink = recorder(limit=limit)
    for part in parts:
        rec.add(part)
    whole = b"".join(parts)
    assert b"".join(c[1] for c in sink.calls) == whole[:limit]
    assert rec.truncated == (len(whole) > limit)
    assert all(c[0] == "stdout" and c[1] for c in sink.calls)


def test_masking_tap_sends_and_records_only_masked_text() -> None:
    rec, sink = recorder()
    tap = MaskingTap(StreamMasker(DEFAULT_PROFILE), rec)
    sent = tap.feed(b"card 4111 1111 ") + tap.feed(b"1111 1111\n")
    sent += tap.close()
    assert b"4111 1111 1111 1111" not in sent and sent.endswith(b"1111\n")
    assert sink.text() == sent.decode()
    assert sum(sum(c[2].values()) for c in sink.calls) == 1


def test_masking_tap_releases_held_bytes_when_idle() -> None:
    rec, sink = recorder()
    tap = MaskingTap(StreamMasker(DEFAULT_PROFILE), rec)
    assert tap.feed(b"$ ls") == b"$ "  # 'ls' could still grow into a value
    delay = tap.idle_delay()
    assert delay is not None and delay < 0.1
    assert tap.idle() == b"ls"
    assert sink.text() == "$ ls"
    assert tap.idle_delay() is None  # nothing held: no timer


def test_secret_prompts_are_recognised() -> None:
    assert asks_for_secret(b"[sudo] password for wgtest: ")
    assert asks_for_secret(b"Enter passphrase for key '/root/.ssh/id_ed25519': ")
    assert asks_for_secret(b"\x1b[1mPassword:\x1b[0m ")
    assert not asks_for_secret(b"wgtest@box:~$ ")
    assert not asks_for_secret(b"password changed\n$ ")


def typed(tail: bytes, keys: list[bytes]) -> tuple[str, list[TypedLine], int]:
    rec, sink = recorder(stream="input")
    lines: list[TypedLine] = []
    out = {"tail": tail}
    tap = TypedInputTap(
        profile=DEFAULT_PROFILE,
        recording=rec,
        output_tail=lambda: out["tail"],
        on_line=lines.append,
    )
    for key in keys:
        tap.feed(key)
    tap.resized(100, 40)
    tap.close()
    assert sink.sizes == [(100, 40)]
    return sink.text(), lines, tap.hidden_bytes


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
