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
spacing settings), ``DATA`` (the stream's event version and end time; the bytes),
``RESIZE`` (columns, lines), ``CLOSE`` (no more data: answer ``CLOSED`` once everything
before it is rendered) and ``DROP`` (the gateway fell behind and skipped bytes: forget
the session, answer ``CLOSED``). From the child: ``KEYFRAME`` (version, end time; JSON
position and screen), ``LOST`` (pyte failed: no keyframe of that session can be trusted
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

from events.recording import KeyframeSpacing, Terminal

HEADER = struct.Struct("<BIqqI")
"""kind, session number, a, b, payload length."""

OPEN, DATA, RESIZE, CLOSE, DROP = 1, 2, 3, 4, 5
KEYFRAME, LOST, CLOSED = 11, 12, 13
NICE = 19
"""How much lower than the gateway the child runs (keyframes only use spare CPU)."""


def frame(kind: int, sid: int, a: int = 0, b: int = 0, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, sid, a, b, len(payload)) + payload


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
    """One recorded terminal: its emulator and the rendering time spent on it alone (the
    keyframe spacing counts this session's CPU, not the other sessions')."""

    __slots__ = ("cpu", "lost", "position", "spacing", "term")

    def __init__(self, columns: int, lines: int, cpu_ms: float, max_bytes: int) -> None:
        self.term = Terminal(columns, lines)
        self.cpu = 0.0
        self.position = 0
        self.lost = False
        self.spacing = KeyframeSpacing(cpu_ms=cpu_ms, max_bytes=max_bytes, clock=self.clock)

    def clock(self) -> float:
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
            session.term.resize(a, b)
            continue
        if kind != DATA:
            continue
        started = time.thread_time()
        try:
            session.term.feed(payload)
        except Exception:  # pyte failed on this output: no later keyframe can be trusted
            session.lost = True
            out.write(frame(LOST, sid))
            out.flush()
            continue
        finally:
            session.cpu += time.thread_time() - started
        session.position += len(payload)
        if session.spacing.due(session.term, session.position):
            state = {"position": session.position, "screen": session.term.snapshot()}
            out.write(frame(KEYFRAME, sid, a, b, orjson.dumps(state)))
            out.flush()
            session.spacing.restart(session.position)


def main() -> int:
    with contextlib.suppress(OSError):
        os.nice(NICE)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
