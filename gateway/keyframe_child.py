"""The keyframe renderer process: ``python -m gateway.keyframe_child``.

Theory of operation
-------------------
Screen keyframes need a terminal emulator (pyte) fed with every byte of a terminal stream,
and pyte renders about 1 MB/s of pure Python. In the gateway's process that time holds the
GIL the data path needs, so the gateway hands the bytes to this child process instead
(:mod:`gateway.keyframe_process`): it runs at a lower priority (``nice``) on whatever CPU
is left, one emulator per recorded terminal session, and sends each keyframe back.

The pipes carry frames: a header (:data:`HEADER`: kind, session number, two integers, the
payload's length) and the payload. From the gateway: ``OPEN`` (columns, lines; JSON
spacing settings), ``DATA`` (the stream's event version and start time; the chunk's timing
marks, :func:`pack_marks`, then its bytes),
``RESIZE`` (columns, lines), ``CLOSE`` (no more data: answer ``CLOSED`` once everything
before it is rendered) and ``DROP`` (the gateway fell behind and skipped bytes: forget
the session, answer ``CLOSED``). From the child: ``KEYFRAME`` (version, time of the last
byte shown; JSON ``within``, position and screen), ``LOST`` (pyte failed: no keyframe of that session can be trusted
any more) and ``CLOSED``. The child ends when its input ends (the gateway closed the pipe
or died). It imports neither trio nor anything of the gateway's data path.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import time
from typing import IO

import orjson

from events.recording import KeyframeRenderer, KeyframeSpacing

HEADER = struct.Struct("<BIqqI")
"""kind, session number, a, b, payload length."""

OPEN, DATA, RESIZE, CLOSE, DROP = 1, 2, 3, 4, 5
KEYFRAME, LOST, CLOSED = 11, 12, 13
NICE = 19
"""How much lower than the gateway the child runs (keyframes only use spare CPU)."""


def frame(kind: int, sid: int, a: int = 0, b: int = 0, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, sid, a, b, len(payload)) + payload


MARKS = struct.Struct("<I")


def pack_marks(marks: list[list[int]]) -> bytes:
    """A chunk's timing marks ([byte offset, ms] pairs) as the head of a DATA payload."""
    flat = [v for mark in marks for v in mark]
    return struct.pack(f"<I{len(flat)}I", len(marks), *flat)


def unpack_marks(payload: bytes) -> tuple[list[tuple[int, int]], memoryview]:
    """(marks, the chunk's bytes) of a DATA payload."""
    (n,) = MARKS.unpack_from(payload)
    flat = struct.unpack_from(f"<{2 * n}I", payload, MARKS.size)
    marks = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    return marks, memoryview(payload)[MARKS.size + 8 * n :]


def read_exact(stream: IO[bytes], n: int) -> bytes | None:
    """``n`` bytes, or None at the end of the stream (a frame cut short counts as the end)."""
    parts: list[bytes] = []
    while n:
        data = stream.read(n)
        if not data:
            return None
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def read_frame(stream: IO[bytes]) -> tuple[int, int, int, int, bytes] | None:
    """The next frame (kind, session, a, b, payload), or None at the end of the stream."""
    header = read_exact(stream, HEADER.size)
    if header is None:
        return None
    kind, sid, a, b, n = HEADER.unpack(header)
    payload = read_exact(stream, n) if n else b""
    if payload is None:
        return None
    return kind, sid, a, b, payload


class _Session:
    """One recorded terminal: its renderer and the rendering time spent on it alone (the
    keyframe spacing counts this session's CPU, not the other sessions')."""

    __slots__ = ("cpu", "lost", "renderer", "started")

    def __init__(self, columns: int, lines: int, cpu_ms: float, max_bytes: int) -> None:
        self.cpu = 0.0
        self.started = 0.0
        self.lost = False
        spacing = KeyframeSpacing(cpu_ms=cpu_ms, max_bytes=max_bytes, clock=self.clock)
        self.renderer = KeyframeRenderer(columns, lines, spacing)

    def clock(self) -> float:
        now = time.thread_time()
        self.cpu += now - self.started
        self.started = now
        return self.cpu


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Render frames from ``inp`` until it ends, answering on ``out``."""
    sessions: dict[int, _Session] = {}
    while True:
        got = read_frame(inp)
        if got is None:
            return
        kind, sid, a, b, payload = got
        if kind == OPEN:
            settings = orjson.loads(payload)
            sessions[sid] = _Session(a, b, settings["cpu_ms"], settings["max_bytes"])
            continue
        if kind in (CLOSE, DROP):
            sessions.pop(sid, None)
            out.write(frame(CLOSED, sid))
            out.flush()
            continue
        session_or_none = sessions.get(sid)
        if session_or_none is None or session_or_none.lost:
            continue
        session = session_or_none
        if kind == RESIZE:
            session.renderer.resize(a, b)
            continue
        if kind != DATA:
            continue
        marks, data = unpack_marks(payload)
        session.started = time.thread_time()  # only this chunk's rendering counts
        try:
            for shot in session.renderer.render(a, b, marks, bytes(data)):
                state = {"within": shot.within, "position": shot.position, "screen": shot.screen}
                out.write(frame(KEYFRAME, sid, shot.version, shot.offset_ms, orjson.dumps(state)))
                out.flush()
                session.started = time.thread_time()  # sending is not rendering
        except Exception:  # pyte failed on this output: no later keyframe can be trusted
            session.lost = True
            out.write(frame(LOST, sid))
            out.flush()


def main() -> int:
    with contextlib.suppress(OSError):
        os.nice(NICE)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
