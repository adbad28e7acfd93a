"""The recorder's chunking: exact bytes and times whatever the writes, and no aliasing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain import Session
from events.recording import chunk_bytes, chunk_marks
from gateway.recording import SessionRecorder
from gateway.session import SessionLog
from tests.events.test_recording import Clock, Sink


def _outputs(sink: Sink, stream: str) -> list[Session.OutputRecorded]:
    return [e for e in sink.events if isinstance(e, Session.OutputRecorded) and e.stream == stream]


_WRITE = st.one_of(
    st.binary(min_size=0, max_size=300),
    st.text(max_size=80).map(str.encode),  # multi-byte characters cut anywhere
    st.sampled_from([b"\xe2\x9c", b"\x93", b"\xf0\x9f\x98", b"\x80", b"\x1b[0m"]),
)


@settings(max_examples=150, deadline=None)
@given(
    writes=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=400), st.sampled_from(["stdout", "stderr"]), _WRITE
        ),
        max_size=60,
    ),
    chunk=st.integers(min_value=4, max_value=700),  # under 4 is refused (see below)
)
def test_chunks_hold_every_byte_in_order_with_its_time(
    writes: list[tuple[int, str, bytes]], chunk: int
) -> None:
    clock, sink = Clock(), Sink()
    start = clock.now
    rec = SessionRecorder(SessionLog(node="n1"), sink, pty=False, chunk_bytes=chunk, clock=clock)
    sent: dict[str, list[tuple[int, bytes]]] = {"stdout": [], "stderr": []}
    now_ms = 0
    for gap, stream, data in writes:
        now_ms += gap
        clock.now = start + now_ms / 1000
        rec.record(stream, data)
        if data:
            sent[stream].append((now_ms, data))
    rec.close()
    for stream, stream_writes in sent.items():
        outputs = _outputs(sink, stream)
        assert b"".join(chunk_bytes(e) for e in outputs) == b"".join(d for _, d in stream_writes)
        # Never more than chunk_bytes (a chunk cut short holds back a partial character).
        assert all(len(chunk_bytes(e)) <= chunk for e in outputs)
        want = [ms for ms, d in stream_writes for _ in d]
        got = [
            e.offset_ms + ms
            for e in outputs
            for (start, ms), (end, _) in zip(
                chunk_marks(e), [*chunk_marks(e)[1:], (len(chunk_bytes(e)), 0)], strict=True
            )
            for _ in range(end - start)
        ]
        assert len(got) == len(want)
        assert all(0 <= w - g < 10 for w, g in zip(want, got, strict=True))


def test_a_buffer_the_caller_reuses_is_recorded_as_it_was_when_written() -> None:
    sink = Sink()
    rec = SessionRecorder(SessionLog(node="n1"), sink, pty=False, chunk_bytes=1 << 16)
    scratch = bytearray(b"first write ")
    rec.record("stdout", scratch)  # type: ignore[arg-type]  # a caller's reused buffer
    view = memoryview(bytearray(b"second write"))
    rec.record("stdout", view)  # type: ignore[arg-type]
    scratch[:] = b"overwritten!"
    view[:] = b"overwritten!"
    rec.close()
    assert b"".join(chunk_bytes(e) for e in _outputs(sink, "stdout")) == (
        b"first write second write"
    )


def test_chunks_too_small_for_a_utf8_character_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        SessionRecorder(SessionLog(node="n"), Sink(), pty=False, chunk_bytes=3)
