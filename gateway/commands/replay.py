"""`wardgate replay SESSION`: play a recorded session in the terminal, or export asciicast v2.

Terminal (PTY) sessions are played as recorded: the masked output with its timing. ``--at``
and ``--from-command`` seek: the screen at that moment is rebuilt from the nearest keyframe
and painted at once, then playback goes on. Exec and MySQL sessions play as a readable
transcript: each statement, its decision and approvers, and its (masked) result.

:func:`export_asciicast` writes the same thing as an asciicast v2 file, for ``asciinema play``
and any other player of that format.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from events.domain import Session, short_id
from events.recording import Frame, Recording, describe, resolve_session
from events.store import EventStore
from gateway.commands.common import opened_store
from gateway.errors import UserError


def register(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="play a recorded session (or export it as asciicast v2)",
        description="Play what the agent saw, with its timing. Terminal sessions replay "
        "screen by screen; MySQL and exec sessions as a transcript of statements, "
        "decisions, approvers and masked results.",
    )
    replay.add_argument("session", metavar="SESSION", help="session id or a unique prefix")
    replay.add_argument("--speed", type=float, default=1.0, help="playback speed (default 1)")
    replay.add_argument("--at", metavar="T", help="start at this time: seconds or mm:ss")
    replay.add_argument(
        "--from-command", type=int, metavar="N", help="start at the Nth command of the session"
    )
    replay.add_argument(
        "--idle-limit", type=float, metavar="S", help="shorten every pause to at most S seconds"
    )
    replay.add_argument("--asciicast", metavar="FILE", help="write asciicast v2 instead of playing")
    replay.set_defaults(func=cmd_replay)


def parse_time(text: str) -> int:
    """Milliseconds from ``90``, ``1.5``, ``01:30`` or ``1:02:03``."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise UserError(f"cannot read time {text!r}: use seconds or mm:ss") from None
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise UserError(f"cannot read time {text!r}: use seconds or mm:ss")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """Something to show at ``offset_ms``: terminal bytes or a transcript line."""

    offset_ms: int
    data: bytes
    kind: str = "o"  # o: output, i: input, r: resize ("COLSxLINES")
    version: int = 0  # of the session event it shows: orders what shares a millisecond


def _protocol(rec: Recording, others: list[Any]) -> str:
    for e in others:
        if isinstance(e, Session.ConnectionAccepted):
            return e.protocol
    return "ssh" if rec.chunks else "mysql"


def _transcript(
    rec: Recording, others: list[Any], start_ms: int, from_version: int
) -> Iterator[Item]:
    """Transcript lines of the non-output events, at their times."""
    for event in others:
        offset = rec.offset_of(event.at)
        if offset < start_ms or event.originator_version < from_version:
            continue
        for line in describe(event):
            text = line.text.replace("\n", "\r\n")
            yield Item(
                offset_ms=offset, data=(text + "\r\n").encode(), version=event.originator_version
            )


def _output(frames: Iterator[Frame]) -> Iterator[Item]:
    for f in frames:
        if f.size is not None:
            yield Item(
                offset_ms=f.offset_ms,
                data=f"{f.size[0]}x{f.size[1]}".encode(),
                kind="r",
                version=f.version,
            )
        elif f.stream == "input":
            yield Item(offset_ms=f.offset_ms, data=f.data, kind="i", version=f.version)
        else:
            yield Item(offset_ms=f.offset_ms, data=f.data, version=f.version)


def playback(
    store: EventStore, session_id: uuid.UUID, start_ms: int = 0, *, from_command: int | None = None
) -> tuple[Recording, bytes, Iterator[Item], int]:
    """(recording, screen to paint first, items in time order, start ms).

    Items start after ``start_ms``, or at command ``from_command`` (transcripts start at its
    event: statements often share a millisecond; terminals at its time).
    """
    rec = Recording.open(store, session_id)
    others = rec.other_events()
    from_version = 0
    if from_command is not None:
        command = next(
            (e for e in others if isinstance(e, Session.CommandReceived) and e.seq == from_command),
            None,
        )
        if command is None:
            raise UserError(f"session {short_id(session_id)} has no command {from_command}")
        start_ms = max(0, rec.offset_of(command.at) - 1)
        from_version = command.originator_version
    if rec.pty:
        screen = rec.screen_at(start_ms).to_ansi().encode() if start_ms else b""
        return rec, screen, _output(rec.frames(start_ms)), start_ms
    # In the order the gateway recorded them (a proxy flushes output before a command's
    # events); times that go back by a clock's rounding are held at the previous one.
    items = sorted(
        [*_transcript(rec, others, start_ms, from_version), *_output(rec.frames(start_ms))],
        key=lambda i: (i.version, i.offset_ms),
    )
    latest = 0
    for n, item in enumerate(items):
        if item.offset_ms < latest:
            items[n] = dataclasses.replace(item, offset_ms=latest)
        latest = max(latest, item.offset_ms)
    return rec, b"", iter(items), start_ms


def play(
    items: Iterator[Item],
    out: BinaryIO,
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
    start_ms: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    previous = start_ms
    for item in items:
        if item.kind != "o":
            continue
        delay = max(0, item.offset_ms - previous) / 1000 / speed
        if idle_limit is not None:
            delay = min(delay, idle_limit)
        if delay > 0:
            out.flush()
            sleep(delay)
        out.write(item.data)
        previous = item.offset_ms
    out.flush()


def export_asciicast(store: EventStore, session_id: uuid.UUID, path: str | Path) -> int:
    """Write the session as an asciicast v2 file; returns the number of events written."""
    rec, _, items, _ = playback(store, session_id)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    events: list[list[Any]] = []
    width = rec.columns
    for item in items:
        if item.kind == "r":
            events.append([item.offset_ms / 1000, "r", item.data.decode()])
            width = max(width, int(item.data.split(b"x")[0]))
            continue
        text = (
            decoder.decode(item.data) if item.kind == "o" else item.data.decode("utf-8", "replace")
        )
        if text:
            events.append([item.offset_ms / 1000, item.kind, text])
            if not rec.pty:
                width = max([width, *(len(line) for line in text.split("\r\n"))])
    header = {
        "version": 2,
        "width": width if not rec.pty else rec.columns,
        "height": rec.lines,
        "timestamp": int(rec.started_at),
        "title": f"wardgate session {short_id(session_id)}",
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
    return len(events)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise UserError("--speed must be positive")
    with opened_store(args) as store:
        try:
            session_id = resolve_session(store, args.session)
        except LookupError as exc:
            raise UserError(str(exc)) from None
        if args.asciicast:
            count = export_asciicast(store, session_id, args.asciicast)
            print(f"wrote {count} events to {args.asciicast}")
            return 0
        start = parse_time(args.at) if args.at else 0
        _, screen, items, start = playback(store, session_id, start, from_command=args.from_command)
        out = sys.stdout.buffer
        out.write(screen)
        play(items, out, speed=args.speed, idle_limit=args.idle_limit, start_ms=start)
    return 0
