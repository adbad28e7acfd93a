"""Recording format, exact screen keyframes and seeking (pure, plus the store on both backends).

The reference for every screen comparison is stock ``pyte.Screen`` fed from the start of the
session, compared field by field over everything the screen object holds.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyte
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from events.domain import DomainEvent, RecordingIndex, RecordingKeyframes, Session
from events.recording import (
    Recording,
    Terminal,
    chunk_bytes,
    chunk_text,
    entry_row,
    frame_of,
    index_entry,
    pieces,
    table_lines,
    tail,
    utf8_tail,
)
from events.store import EventStore
from gateway.keyframe_process import KeyframeProcess
from gateway.recording import SessionRecorder
from gateway.session import SessionLog

# ----------------------------------------------------------------- synthetic sessions

WORDS = ["alpha", "beta", "src", "main.py", "README.md", "data.csv", "café", "日本語", "naïve"]


def synthetic_writes(seed: int, size: int) -> list[tuple[int, bytes]]:
    """(ms, bytes) writes of a terminal session: colored ls, top redraws, logs, a full-screen
    editor with scroll regions and charsets, wide and combining characters, raw garbage."""
    rnd = random.Random(seed)
    writes: list[tuple[int, bytes]] = []
    t, n = 0, 0
    while n < size:
        kind = rnd.random()
        if kind < 0.2:
            s = b"\x1b[01;32muser@host\x1b[00m:\x1b[01;34m~\x1b[00m$ ls -la\r\n"
            for _ in range(rnd.randint(3, 30)):
                col = rnd.choice([b"01;34", b"01;32", b"00", b"38;5;208", b"48;2;10;20;30"])
                name = rnd.choice(WORDS).encode() + b"%d" % rnd.randint(0, 999)
                s += b"-rw-r--r-- 1 u u %7d \x1b[%sm%s\x1b[0m\r\n" % (
                    rnd.randint(0, 10**6),
                    col,
                    name,
                )
        elif kind < 0.4:
            s = b"\x1b[H\x1b[2J" if rnd.random() < 0.3 else b"\x1b[H"
            s += b"top - %02d:%02d load %.2f\x1b[K\r\n" % (
                rnd.randint(0, 23),
                rnd.randint(0, 59),
                rnd.random(),
            )
            s += b"\x1b[7m  PID USER  %CPU COMMAND \x1b[m\r\n"
            for i in range(rnd.randint(5, 20)):
                s += b"\x1b[%d;1H%5d user %5.1f %s\x1b[K" % (
                    i + 3,
                    rnd.randint(1, 40000),
                    rnd.random() * 99,
                    rnd.choice(WORDS).encode(),
                )
        elif kind < 0.85:
            s = b"".join(
                (
                    f"{i:04d} INFO req={rnd.getrandbits(64):016x} {rnd.choice(WORDS)}"
                    " \u2713 e\u0301\r\n"
                ).encode()
                for i in range(rnd.randint(5, 40))
            )
        elif kind < 0.95:
            s = b"\x1b[?1049h\x1b[2;20r\x1b[?25l\x1b7\x1b(0lqqk\x1b(B\x1b[4h"
            for _ in range(6):
                s += b"\x1b[%d;%dH\x1b[1;3;4;9m%s\x1b[m" % (
                    rnd.randint(1, 24),
                    rnd.randint(1, 80),
                    rnd.choice(WORDS).encode(),
                )
            s += b"\x1b[4l\x1b8\x1b]0;title %d\x07\x1b[?7l%s\x1b[?7h\x1b[r\x1b[?25h\x1b[?1049l" % (
                rnd.randint(0, 9),
                b"x" * 100,
            )
        elif kind < 0.97:
            s = b"\x1b[?5h\x1b[3g\x1bH\tA\x1b[?5l\x1b[2K\x1b[5;10H\x1b[1P\x1b[2@\x1b[3X\x1bD\x1bM\x1b[S\x1b[T"
        else:
            s = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(5, 60)))
        # Writes arrive in pieces that cut escape sequences and UTF-8 characters anywhere.
        i = 0
        while i < len(s):
            j = min(len(s), i + rnd.randint(1, 700))
            t += rnd.choice([0, 0, 1, 3, 12, 40, 300])
            writes.append((t, s[i:j]))
            i = j
        n += len(s)
    return writes


# ------------------------------------------------------------------------ comparison


def _cell(c: Any) -> tuple[Any, ...]:
    return tuple(c)


def full_state(screen: pyte.Screen, stream: pyte.ByteStream) -> dict[str, Any]:
    """Everything a pyte screen and stream hold, normalized for comparison."""
    out: dict[str, Any] = {}
    for name, raw in vars(screen).items():
        value = raw
        if name in ("dirty", "_glyphs"):
            continue
        if name == "buffer":
            default = screen.default_char
            # Stored cells, default-looking ones included (erasing rewrites only those),
            # and any line whose default cell differs from the screen's.
            cells: dict[Any, Any] = {
                (y, x): _cell(c) for y, line in raw.items() for x, c in line.items()
            }
            cells["lines"] = sorted(value)  # which lines exist changes what delete_lines does
            cells["odd_defaults"] = sorted(
                (y, _cell(line.default)) for y, line in raw.items() if line.default != default
            )
            value = cells
        elif name == "cursor":
            value = (raw.x, raw.y, _cell(raw.attrs), raw.hidden)
        elif name == "savepoints":
            value = [
                ((p.cursor.x, p.cursor.y, _cell(p.cursor.attrs), p.cursor.hidden), *p[1:])
                for p in raw
            ]
        out[name] = copy.deepcopy(value)  # mode and tabstops are live sets
    out["stream"] = (stream.use_utf8, stream.utf8_decoder.getstate(), stream._taking_plain_text)
    return out


def reference(columns: int = 80, lines: int = 24) -> tuple[pyte.Screen, pyte.ByteStream]:
    screen = pyte.Screen(columns, lines)
    return screen, pyte.ByteStream(screen)


# ------------------------------------------------------------------------- pure tests


@given(st.binary(max_size=300))
def test_chunk_text_round_trips_any_bytes(data: bytes) -> None:
    text, encoding = chunk_text(data)
    event = _output(1, 0, data)
    assert chunk_bytes(event) == data
    assert encoding == ("utf-8" if _is_utf8(data) else "latin-1")
    assert text == data.decode(encoding)


@given(st.text(max_size=60), st.integers(min_value=0, max_value=240))
def test_utf8_tail_never_splits_a_character(text: str, cut: int) -> None:
    data = text.encode()
    cut = min(cut, len(data))
    head = data[:cut]
    assert _is_utf8(head[: len(head) - utf8_tail(head)])


FRAGMENTS = [
    b"hello world ",
    b"\r\n",
    b"\n",
    b"\x1b[31m",
    b"\x1b[0m",
    b"\x1b[4h",
    b"\x1b[4l",
    b"\x1b[?7l",
    b"\x1b[?7h",
    b"\x1b(0",
    b"\x1b(B",
    b"\x0e",
    b"\x0f",
    b"lqk",
    b"\x1b[?5h",
    b"\x1b[?5l",
    b"\x1b[2;5r",
    b"\x1b[r",
    b"\x1b[10;75H",
    b"\x1b[2J",
    b"\x1b[K",
    "日本".encode(),
    "e\u0301".encode(),
    b"\xff\xfe",
    b"\t",
    b"\x1b7",
    b"\x1b8",
    b"\x1b[?6h",
    b"\x1b[?6l",
    b"\x1b[3@",
    b"\x1b[2P",
    b"\x1b[L",
    b"\x1b[M",
    b"\x1b]2;t\x07",
    b"\x1b%@",
    b"\x1b%G",
    b"\xe9t\xe9",
    "café ñ Ωμέγα Щука".encode(),
    "soft\u00adhyphen zero\u200bwidth".encode(),
    b"x" * 90,
    b"\x1b[?3h",
    b"\x1b[?3l",
    b"\x1bc",
    b"\x1b[7m  ",
    "a\u200bb".encode(),  # zero width, not combining: pyte stops drawing the rest
    "\u0301x".encode(),
    "\u00adz\u2028".encode(),
    b"\x1b(0" + "jk\u00e9lm".encode(),
    b"\x1b)0\x0eabc\x0f",
    b"\x1b[;5H",
    b"\x1b[1;m",
    b"\x1b[99999A",
    b"\x1b[38;5;300m",
    b"\x1b]0;x\x1b[31my\x07",  # a CSI inside an OSC string is not a CSI
    b"\x1b[2$p",
    b"\x1b[1\r5C",
    b"\x1b[3g",
    b"\x1b[Z",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=10),
)
def test_fast_screen_equals_pyte(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    fast = Terminal(40, 8)
    screen, stream = reference(40, 8)
    i = k = 0
    while i < len(data):
        j = i + cuts[k % len(cuts)]
        fast.feed(data[i:j])
        stream.feed(data[i:j])
        i, k = j, k + 1
    assert full_state(fast.screen, fast.stream) == full_state(screen, stream)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=30),
    st.lists(st.sampled_from(FRAGMENTS), max_size=10),
)
def test_snapshot_restores_the_screen_exactly(before: list[bytes], after: list[bytes]) -> None:
    term = Terminal(40, 8)
    term.feed(b"".join(before))
    if not term.at_ground:
        term.feed(b"\x1b[m")  # end a cut sequence the way a terminal would, then snapshot
    if not term.at_ground:
        return
    state = orjson.loads(orjson.dumps(term.snapshot()))  # as stored: JSON
    restored = Terminal.restore(state)
    assert full_state(restored.screen, restored.stream) == full_state(term.screen, term.stream)
    old = Terminal.restore(format_1(state))  # keyframes stored before session 4
    assert full_state(old.screen, old.stream) == full_state(term.screen, term.stream)
    rest = b"".join(after)
    term.feed(rest)
    restored.feed(rest)
    assert full_state(restored.screen, restored.stream) == full_state(term.screen, term.stream)


def format_1(state: dict[str, Any]) -> dict[str, Any]:
    """A format 2 snapshot written as format 1 was (rows of [x, count, text, fg, bg, flags])."""
    attrs = state["attrs"]
    rows, y = [], 0
    for entry in state["rows"]:
        runs = entry
        if entry and isinstance(entry[0], int):
            y, runs = entry
        out, end = [], 0
        for run in runs:
            if isinstance(run, str):
                x, count, text, attr = end, len(run), run, 0
            elif len(run) == 2:
                x, count, text, attr = end, len(run[0]), run[0], run[1]
            else:
                x, count, text, attr = run
            out.append([x, count, text, *attrs[attr]])
            end = x + count
        rows.append([y, out])
        y += 1
    return {**{k: v for k, v in state.items() if k not in ("v", "attrs")}, "rows": rows}


def test_snapshot_format_2_is_compact_and_format_1_still_restores() -> None:
    term = Terminal(20, 4)
    term.feed(b"ab\x1b[31mcd\x1b[m  \r\n\r\n\x1b[1;32mok\x1b[m\xe6\x97\xa5")
    state = term.snapshot()
    assert state["v"] == 2
    assert state["attrs"] == [
        ["default", "default", 0],
        ["red", "default", 0],
        ["green", "default", 1],
    ]
    # Line 0: "ab" (attrs 0), "cd" red, then the cells of "  " (default again); line 1 is not
    # held (nothing written), so line 2 names its y; a wide character's stub stands alone.
    assert state["rows"][0] == ["ab", ["cd", 1], "  "]
    assert state["rows"][1] == [2, [["ok", 2], "日", [3, 1, "", 0]]]
    again = Terminal.restore(format_1(state))
    assert full_state(again.screen, again.stream) == full_state(term.screen, term.stream)


def test_at_ground_is_false_inside_an_escape_or_a_character() -> None:
    term = Terminal()
    assert term.at_ground
    term.feed(b"\x1b[3")
    assert not term.at_ground
    term.feed(b"1m\xe6")
    assert not term.at_ground
    term.feed(b"\x97\xa5")
    assert term.at_ground


def test_table_lines_render_masked_rows_and_nulls() -> None:
    lines = table_lines({"columns": ["id", "email"], "rows": [[1, "j***@example.com"], [2, None]]})
    assert lines[1] == "| id | email            |"
    assert "| 2  | NULL             |" in lines
    assert table_lines([{"a": 1}]) == ["+---+", "| a |", "+---+", "| 1 |", "+---+"]


# ------------------------------------------------------------------ recorder -> store


class Sink:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def submit(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    writes: list[tuple[int, bytes]],
    *,
    chunk: int = 2048,
    keyframe: int = 8192,
    resizes: dict[int, tuple[int, int]] | None = None,
    **kw: Any,
) -> tuple[uuid.UUID, list[DomainEvent], SessionRecorder]:
    resizes = resizes or {}
    log = SessionLog(node="n1")
    sink, clock = Sink(), Clock()
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
    kw.setdefault("chunk_ms", 250)  # the scenarios below were made with chunks cut at 250 ms
    rec = SessionRecorder(
        log,
        sink,
        pty=True,
        chunk_bytes=chunk,
        keyframe_bytes=keyframe,
        clock=clock,
        keyframe_queue=100_000,  # the test feeds faster than real time: never fall behind
        **kw,
    )
    for n, (ms, data) in enumerate(writes):
        clock.now = 1000.0 + ms / 1000
        if n in resizes:
            rec.resize(*resizes[n])
        rec.output("pty", data)
    rec.close(wait=60)
    return log.id, sink.events, rec


def _output(
    version: int, offset: int, data: bytes, marks: list[list[int]] | None = None
) -> Session.OutputRecorded:
    text, encoding = chunk_text(data)
    return Session.OutputRecorded(
        originator_id=uuid.uuid4(),
        originator_version=version,
        at=0.0,
        actor="g",
        stream="pty",
        offset_ms=offset,
        data=text,
        encoding=encoding,
        marks=marks or [],
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def references_at(events: list[DomainEvent], times: list[int]) -> dict[int, dict[str, Any]]:
    """Stock pyte, fed from the very start, at each of ``times``."""
    screen, stream = reference()
    feed = [f for e in events for f in frame_of(e)]
    out: dict[int, dict[str, Any]] = {}
    i = 0
    for t in sorted(times):
        while i < len(feed) and feed[i].offset_ms <= t:
            if feed[i].size is not None:
                screen.resize(feed[i].size[1], feed[i].size[0])
            else:
                stream.feed(feed[i].data)
            i += 1
        out[t] = full_state(screen, stream)
    return out


def test_recorder_chunks_hold_the_exact_bytes_with_their_times() -> None:
    writes = synthetic_writes(3, 60_000)
    sid, events, rec = record(writes)
    outputs = [e for e in events if isinstance(e, Session.OutputRecorded)]
    assert b"".join(chunk_bytes(e) for e in outputs) == b"".join(d for _, d in writes)
    assert all(len(chunk_bytes(e)) <= 2048 for e in outputs)
    assert sum(e.encoding == "utf-8" for e in outputs) > len(outputs) // 2
    # Each byte's recorded time is its write's time (marks at >= 10 ms gaps).
    times = [ms for ms, d in writes for _ in d]
    got = [p.offset_ms for e in outputs for p in pieces(e) for _ in p.data]
    assert all(0 <= w - g < 10 for w, g in zip(times, got, strict=True))
    versions = [e.originator_version for e in events if e.originator_id == sid]
    assert versions == list(range(1, len(versions) + 1))
    index = [e for e in events if isinstance(e, RecordingIndex.ChunksIndexed)]
    indexed = [row for e in index for row in e.entries]
    carriers = [
        e for e in events if isinstance(e, Session.OutputRecorded | Session.TerminalResized)
    ]
    assert indexed == [entry_row(index_entry(e)) for e in carriers]  # + the initial size
    assert rec.stats["keyframes"] > 3


def test_password_input_is_left_out() -> None:
    log, sink = SessionLog(node="n1"), Sink()
    rec = SessionRecorder(log, sink, pty=True)
    rec.output("pty", b"$ ")
    rec.input(b"ls\r")
    rec.output("pty", b"ls\r\nfile\r\n$ sudo -i\r\n[sudo] password for alice: ")
    rec.input(b"hunter2")
    rec.input(b"\rwhoami\r")
    rec.output("pty", b"\r\nroot\r\nEnter passphrase for key '/k': ")
    rec.input(b"secret words\n")
    rec.close()
    typed = b"".join(
        chunk_bytes(e)
        for e in sink.events
        if isinstance(e, Session.OutputRecorded) and e.stream == "input"
    )
    assert typed == b"ls\rwhoami\r"
    assert rec.stats["input_dropped"] == len(b"hunter2\r") + len(b"secret words\n")


@pytest.fixture(scope="module")
def renderer() -> Iterator[KeyframeProcess]:
    service = KeyframeProcess()
    yield service
    service.close()


@pytest.mark.parametrize("where", ["thread", "process"])
@pytest.mark.parametrize(
    ("chunk", "keyframe"),
    [(1500, 6000), (16000, 3000)],
    ids=["keyframes-after-chunks", "keyframes-inside-chunks"],
)
def test_seeking_reproduces_the_screen_exactly(
    store: EventStore, where: str, renderer: KeyframeProcess, chunk: int, keyframe: int
) -> None:
    writes = synthetic_writes(7, 120_000)
    sid, events, rec = record(
        writes,
        chunk=chunk,
        keyframe=keyframe,
        resizes={len(writes) // 3: (100, 30), 2 * len(writes) // 3: (60, 20)},
        keyframes=renderer if where == "process" else None,
    )
    store.append(events)
    recording = Recording.open(store, sid)
    assert len(recording.keyframes) == rec.stats["keyframes"] > 5
    assert len([c for c in recording.chunks if c.stream == "resize"]) == 3
    terminal = recording.terminal_chunks
    ends = [c.end_ms for c in terminal]
    inside = [k for k in recording.keyframes if k.within]
    if chunk > keyframe:  # keyframes fall inside chunks, also before the chunk's last byte
        span = {c.version: (c.offset_ms, c.end_ms) for c in terminal}
        assert len(inside) > 5
        assert any(
            span[k.after_version][0] < k.offset_ms < span[k.after_version][1] for k in inside
        )
    else:
        assert not inside
    kf_times = [k.offset_ms for k in recording.keyframes]
    rnd = random.Random(1)
    times = sorted(
        set(rnd.sample(range(recording.duration_ms + 1), 25))
        | {t + d for t in kf_times[:6] for d in (-1, 0, 1)}  # right at and around keyframes
        | {t + d for t in (k.offset_ms for k in inside[:6]) for d in (-1, 0, 1)}
        | {e for e in ends[5:40:3]}  # chunk ends: many cut an escape sequence
        | {0, recording.duration_ms}
    )
    times = [t for t in times if t >= 0]
    outputs = [e for e in events if isinstance(e, Session.OutputRecorded)]
    cut_mid_sequence = 0
    probe = Terminal()
    for e in outputs:
        probe.feed(chunk_bytes(e))
        cut_mid_sequence += not probe.at_ground
    assert cut_mid_sequence > 3 or chunk > keyframe  # small chunks: many end mid-sequence
    expected = references_at(
        [e for e in events if isinstance(e, Session.OutputRecorded | Session.TerminalResized)],
        times,
    )
    for t in times:
        fresh = Recording.open(store, sid)  # no keyframes cached from earlier seeks
        got = fresh.screen_at(t)
        assert full_state(got.screen, got.stream) == expected[t], f"screen differs at {t} ms"


def test_seeking_without_stored_keyframes_builds_and_caches_them(store: EventStore) -> None:
    writes = synthetic_writes(11, 80_000)
    sid, events, _ = record(writes, chunk=1500)
    store.append(
        [
            e
            for e in events
            if not isinstance(e, RecordingKeyframes.ScreenKeyframe | RecordingIndex.ChunksIndexed)
        ]
    )
    recording = Recording.open(store, sid)
    recording.keyframe_bytes = 5000
    assert recording.keyframes == []
    end = recording.duration_ms
    screen = recording.screen_at(end)
    assert len(recording.keyframes) > 5
    again = recording.screen_at(end)
    middle = recording.screen_at(end // 2)
    expected = references_at(
        [e for e in events if isinstance(e, Session.OutputRecorded)], [end // 2, end]
    )
    assert full_state(screen.screen, screen.stream) == expected[end]
    assert full_state(again.screen, again.stream) == expected[end]
    assert full_state(middle.screen, middle.stream) == expected[end // 2]


def test_an_index_written_before_keyframes_inside_chunks_still_reads(store: EventStore) -> None:
    """Index rows of four values (no ``within``) are keyframes after whole chunks."""
    writes = synthetic_writes(5, 60_000)
    sid, events, _ = record(writes, chunk=1500, keyframe=5000)
    old = [
        dataclasses.replace(e, keyframes=[row[:4] for row in e.keyframes])
        if isinstance(e, RecordingIndex.ChunksIndexed)
        else e
        for e in events
    ]
    assert any(isinstance(e, RecordingIndex.ChunksIndexed) and e.keyframes for e in old)
    store.append(old)
    recording = Recording.open(store, sid)
    assert len(recording.keyframes) > 5 and not any(k.within for k in recording.keyframes)
    times = [k.offset_ms + d for k in recording.keyframes[::3] for d in (-1, 0)]
    expected = references_at(
        [e for e in events if isinstance(e, Session.OutputRecorded | Session.TerminalResized)],
        times,
    )
    for t in times:
        got = Recording.open(store, sid).screen_at(t)
        assert full_state(got.screen, got.stream) == expected[t], f"screen differs at {t} ms"


def test_a_recording_without_index_is_read_from_the_session(store: EventStore) -> None:
    sid = uuid.uuid4()
    base = {"originator_id": sid, "at": 100.0, "actor": "g"}
    store.append(
        [
            Session.ConnectionAccepted(
                **base,
                originator_version=1,
                node="n",
                protocol="ssh",
                target="t",
                listener="l",
                peer="p",
            ),
            Session.OutputRecorded(
                **base, originator_version=2, stream="pty", offset_ms=0, data="\x1b[1mbold"
            ),
            Session.OutputRecorded(
                **base,
                originator_version=3,
                stream="pty",
                offset_ms=500,
                data=" then\x1b[m plain",
                marks=[[5, 100]],
            ),
        ]
    )
    recording = Recording.open(store, sid)
    assert [c.version for c in recording.chunks] == [2, 3]
    assert recording.screen_at(550).screen.display[0].rstrip() == "bold then"
    assert recording.screen_at(600).screen.display[0].rstrip() == "bold then plain"
    assert [line.kind for line in tail(store, sid, 1)] == ["output", "output"]


def test_a_keyframe_worker_that_falls_behind_stops_and_seeking_stays_exact(
    store: EventStore,
) -> None:
    writes = synthetic_writes(5, 80_000)
    log, sink = SessionLog(node="n1"), Sink()
    rec = SessionRecorder(
        log, sink, pty=True, chunk_bytes=1000, keyframe_bytes=3000, keyframe_queue=2
    )
    _falls_behind_and_stays_exact(store, rec, log, sink, writes)


def _falls_behind_and_stays_exact(
    store: EventStore,
    rec: SessionRecorder,
    log: SessionLog,
    sink: Sink,
    writes: list[tuple[int, bytes]],
) -> None:
    """Feed ``writes`` faster than the renderer keeps up: keyframing stops, and the screen
    at the end, sought from the keyframes there are, still equals pyte fed from the start."""
    for _, data in writes:
        rec.output("pty", data)
    rec.close(wait=30)
    assert rec._worker is not None and rec._worker.lost
    store.append(sink.events)
    recording = Recording.open(store, log.id)
    end = recording.duration_ms
    got = recording.screen_at(end)
    outputs = [e for e in sink.events if isinstance(e, Session.OutputRecorded)]
    assert full_state(got.screen, got.stream) == references_at(outputs, [end])[end]


def test_a_running_session_seeks_with_keyframes_not_yet_indexed(store: EventStore) -> None:
    writes = synthetic_writes(13, 60_000)
    sid, events, rec = record(writes, chunk=1500, keyframe=6000)
    last_index = max(i for i, e in enumerate(events) if isinstance(e, RecordingIndex.ChunksIndexed))
    store.append(events[:last_index] + events[last_index + 1 :])  # as if still running
    recording = Recording.open(store, sid)
    assert len(recording.keyframes) == rec.stats["keyframes"]
    assert any(k.screen is not None for k in recording.keyframes)  # read from the stream
    end = recording.duration_ms
    got = recording.screen_at(end)
    outputs = [e for e in events if isinstance(e, Session.OutputRecorded)]
    assert full_state(got.screen, got.stream) == references_at(outputs, [end])[end]


def _keyframes(events: list[DomainEvent]) -> list[tuple[int, int, int, int, Any]]:
    return [
        (e.after_version, e.within, e.offset_ms, e.position, e.screen)
        for e in events
        if isinstance(e, RecordingKeyframes.ScreenKeyframe)
    ]


def test_the_renderer_process_keeps_the_same_keyframes_as_the_thread(
    renderer: KeyframeProcess,
) -> None:
    writes = synthetic_writes(17, 90_000)
    resizes = {len(writes) // 2: (90, 28)}
    # Spaced by bytes only (CPU-time spacing differs from run to run): the same screens at
    # the same places, whichever renders them.
    common: dict[str, Any] = {"chunk": 12000, "keyframe": 5000, "keyframe_cpu_ms": 1e9}
    _, in_thread, _ = record(writes, resizes=resizes, **common)
    _, in_child, rec = record(writes, resizes=resizes, keyframes=renderer, **common)
    assert rec._worker is not None and not rec._worker.lost
    assert len(_keyframes(in_thread)) > 5
    assert sum(k[1] > 0 for k in _keyframes(in_thread)) > 2  # inside chunks, with their times
    assert _keyframes(in_child) == _keyframes(in_thread)


def test_a_renderer_that_falls_behind_stops_keyframing_and_seeking_stays_exact(
    store: EventStore,
) -> None:
    service = KeyframeProcess(backlog=20_000)  # a few chunks: the test feeds far faster
    try:
        writes = synthetic_writes(5, 200_000)
        log, sink = SessionLog(node="n1"), Sink()
        rec = SessionRecorder(
            log, sink, pty=True, chunk_bytes=1000, keyframe_bytes=3000, keyframes=service
        )
        _falls_behind_and_stays_exact(store, rec, log, sink, writes)
    finally:
        service.close()


def test_a_dead_renderer_ends_keyframing_and_the_next_session_gets_a_new_one() -> None:
    service = KeyframeProcess()
    try:
        log, sink = SessionLog(node="n1"), Sink()
        rec = SessionRecorder(log, sink, pty=True, keyframes=service)
        rec.output("pty", b"before\r\n")
        pid = service.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        worker = rec._worker
        assert worker is not None
        worker.join(10)  # the reader sees the child go and releases the session
        assert worker.lost
        rec.output("pty", b"after\r\n")  # the session goes on, without keyframes
        rec.close()
        assert any(isinstance(e, Session.OutputRecorded) for e in sink.events)
        writes = synthetic_writes(3, 30_000)
        _, events, second = record(writes, keyframe=4000, keyframes=service)
        assert service.starts == 2 and service.pid not in (None, pid)
        assert second._worker is not None and not second._worker.lost
        assert len(_keyframes(events)) > 2
    finally:
        service.close()


def test_a_session_that_stops_waiting_leaves_its_queued_chunks_unrendered() -> None:
    service = KeyframeProcess(backlog=64 << 20)
    try:
        log, sink = SessionLog(node="n1"), Sink()
        rec = SessionRecorder(log, sink, pty=True, chunk_bytes=65536, keyframes=service)
        block = b"".join(b"\x1b[1;3%dm%08d\x1b[0m " % (i % 7, i) for i in range(4000))
        while rec.stats["bytes"] < 10 << 20:  # about ten seconds of rendering
            rec.output("pty", block)
        started = time.monotonic()
        rec.close(wait=0.05)
        worker = rec._worker
        assert worker is not None and worker.lost
        worker.join(30)
        assert worker.finished.is_set()
        assert time.monotonic() - started < 5, "the child rendered what nobody waits for"
        assert not service._abandoned
    finally:
        service.close()


class BusyGateway(KeyframeProcess):
    """A gateway busy until told otherwise, as during a long bulk transfer."""

    busy = True

    def _gateway_busy(self) -> bool:
        return self.busy


def _busy_session(
    service: BusyGateway,
) -> tuple[SessionRecorder, SessionLog, Sink, bool, int]:
    """300 KB of terminal output at 150 KB/s, with a resize, while the gateway is busy;
    then a quiet gateway and the session closed. (recorder, log, sink, whether keyframing
    was lost while busy, the most bytes queued in memory)."""
    writes = synthetic_writes(23, 300_000)
    log, sink = SessionLog(node="n1"), Sink()
    rec = SessionRecorder(
        log, sink, pty=True, chunk_bytes=4096, keyframe_bytes=20_000,
        keyframe_cpu_ms=1e9, keyframes=service,
    )  # fmt: skip
    started, fed, most = time.monotonic(), 0, 0
    for n, (_, data) in enumerate(writes):
        if n == len(writes) // 2:
            rec.resize(100, 30)  # spilled in order with the chunks around it
        rec.output("pty", data)
        fed += len(data)
        most = max(most, service._queued)
        ahead = fed / 150_000 - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    worker = rec._worker
    assert worker is not None
    lost_while_busy = worker.lost
    assert service.pid is not None
    service.busy = False  # the transfer is over: what waits is rendered now
    rec.close(wait=30)
    return rec, log, sink, lost_while_busy, most


def test_without_a_spill_file_a_long_busy_session_loses_its_keyframes() -> None:
    service = BusyGateway(backlog=100_000, spill_limit=0)
    try:
        *_, lost_while_busy, most = _busy_session(service)
        assert lost_while_busy and service.spilled == 0
        assert most <= 100_000
    finally:
        service.close()


def test_a_spill_file_that_cannot_be_made_costs_keyframes_not_the_renderer(
    tmp_path: Path,
) -> None:
    service = BusyGateway(backlog=100_000, spill_dir=str(tmp_path / "missing"))
    try:
        rec, *_ = _busy_session(service)
        assert rec._worker is not None and rec._worker.lost and service.spilled == 0
        _, events, second = record(synthetic_writes(3, 30_000), keyframe=4000, keyframes=service)
        assert second._worker is not None and not second._worker.lost  # the renderer goes on
        assert len(_keyframes(events)) > 2
    finally:
        service.close()


def test_a_long_busy_session_waits_in_the_spill_file_and_keeps_its_keyframes(
    store: EventStore, tmp_path: Path
) -> None:
    """Chunks wait while the gateway is busy: in memory up to half of ``backlog``, then in
    the spill file, in order (a resize among them); once the gateway is quiet they are all
    rendered and seeking to every keyframe is exact. Memory stays within ``backlog``."""
    spill = tmp_path / "spill"
    spill.mkdir()
    service = BusyGateway(backlog=100_000, spill_dir=str(spill))
    try:
        rec, log, sink, lost_while_busy, most = _busy_session(service)
        assert rec._worker is not None
        assert not lost_while_busy and not rec._worker.lost, "the renderer's queue overflowed"
        assert most <= 100_000
        assert service.spilled > 150_000 and service.pending == 0
        assert list(spill.iterdir()) == []  # unlinked: nothing left behind
        store.append(sink.events)
        recording = Recording.open(store, log.id)
        outputs = [
            e
            for e in sink.events
            if isinstance(e, Session.OutputRecorded | Session.TerminalResized)
        ]
        assert len(recording.keyframes) == rec.stats["keyframes"] >= 10
        last = recording.keyframes[-1]
        assert last.after_version >= outputs[-4].originator_version  # up to the end
        times = [k.offset_ms for k in recording.keyframes] + [recording.duration_ms]
        expected = references_at(outputs, times)
        for t in times:
            got = Recording.open(store, log.id).screen_at(t)
            assert full_state(got.screen, got.stream) == expected[t], f"screen differs at {t} ms"
    finally:
        service.close()


def test_aclose_emits_keyframes_as_they_come_and_closes_when_cancelled() -> None:
    """A closing session waits for the renderer in steps, emitting each step's keyframes
    (a long spilled session must not pile them up in memory); cancelled (the gateway
    stops), it still closes: the rest of the index is written."""
    service = KeyframeProcess()
    try:
        log, sink = SessionLog(node="n1"), Sink()
        rec = SessionRecorder(log, sink, pty=True, chunk_bytes=65536, keyframes=service)
        block = b"".join(b"\x1b[1;3%dm%08d\x1b[0m " % (i % 7, i) for i in range(4000))
        while rec.stats["bytes"] < 6 << 20:  # several seconds of rendering
            rec.output("pty", block)

        def keyframes() -> int:
            return sum(isinstance(e, RecordingKeyframes.ScreenKeyframe) for e in sink.events)

        async def main() -> tuple[int, bool]:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rec.aclose)
                with trio.move_on_after(20):
                    while keyframes() < 3:
                        await trio.sleep(0.05)
                seen, still_open = keyframes(), not rec.closed
                nursery.cancel_scope.cancel()
            return seen, still_open

        seen, still_open = trio.run(main)
        assert seen >= 3 and still_open  # emitted while aclose was still waiting
        assert rec.closed
        worker = rec._worker
        assert worker is not None and worker.lost  # what was not rendered is given up
        last_chunk = max(
            i for i, e in enumerate(sink.events) if isinstance(e, Session.OutputRecorded)
        )
        assert any(isinstance(e, RecordingIndex.ChunksIndexed) for e in sink.events[last_chunk:])
    finally:
        service.close()
