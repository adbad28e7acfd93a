"""Session recordings: the chunk format, terminal emulation with exact keyframes, seeking.

Theory of operation
-------------------
What an agent saw is stored in its ``Session`` stream as ``OutputRecorded`` chunks (masked
bytes, at most ~64 KiB or 250 ms each, ``offset_ms`` from the start of the recording, timing
marks inside the chunk) and ``TerminalResized`` events. :func:`chunk_text` maps the bytes to
the ``data`` string: the UTF-8 text when the chunk is valid UTF-8 (the usual case: readable
in any export), else latin-1, one character per byte; ``encoding`` says which, so
:func:`chunk_bytes` gives back the exact bytes. The store compresses every event with zstd
(measured 3.5x on terminal text, JSON escaping included: see docs/RECORDING.md).

Seeking never replays the whole session. A separate ``RecordingIndex`` stream lists where the
chunks are (session version, stream, time span, length) and where the ``ScreenKeyframe``
events of a third stream (``RecordingKeyframes``) are, each read only when a seek needs it:
the full pyte screen (cells with attributes, cursor, modes, margins, charsets, tab stops,
saved cursors, title) right after a chunk, taken only when the VT parser is in its ground
state and the UTF-8 decoder holds no partial character, so nothing unfinished has to be
carried. :meth:`Recording.screen_at` restores the nearest keyframe at or before the time and
renders only the chunks after it, cutting the last chunk at its timing marks.

pyte is slow (NOTES.md: ~0.3 MB/s, 0.15 MB/s measured here) and nearly all of that time is
``Screen.draw`` building one ``Char`` per printed character. :class:`FastScreen` draws runs of
printable ASCII (the bulk of terminal output) in slices with cached ``Char`` objects and
defers everything else to pyte, with identical results (a property test compares them).
"""

from __future__ import annotations

import bisect
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyte
from pyte import charsets, modes
from pyte.screens import Char, Cursor, Margins, Savepoint, wcwidth

from events.domain import JSON, DomainEvent, RecordingIndex, RecordingKeyframes, Session
from events.store import EventStore

DEFAULT_COLUMNS = 80
DEFAULT_LINES = 24
TERMINAL_STREAMS = frozenset({"pty"})

# ------------------------------------------------------------------------------- chunks


def chunk_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)`` for the ``data`` and ``encoding`` fields of OutputRecorded."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def chunk_bytes(event: Session.OutputRecorded) -> bytes:
    """The exact bytes of a recorded chunk."""
    return event.data.encode(getattr(event, "encoding", "utf-8"))


def chunk_marks(event: Session.OutputRecorded) -> list[tuple[int, int]]:
    """Timing marks ``(byte offset, ms after offset_ms)``, always starting at (0, 0)."""
    marks = [(int(o), int(ms)) for o, ms in getattr(event, "marks", None) or []]
    if not marks or marks[0][0] != 0:
        marks.insert(0, (0, 0))
    return marks


def utf8_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character not yet complete."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does its sequence fit?
            need = 2 if byte >= 0xC0 else 1
            need = 3 if byte >= 0xE0 else need
            need = 4 if byte >= 0xF0 else need
            return back if need > back and byte >= 0xC0 else 0
    return 0


# ------------------------------------------------------------------------------ screens


class FastScreen(pyte.Screen):
    """A pyte ``Screen`` whose ``draw`` is fast for printable ASCII and identical otherwise."""

    def __init__(self, columns: int, lines: int) -> None:
        self._glyphs: dict[Char, dict[str, Char]] = {}
        super().__init__(columns, lines)

    def draw(self, data: str) -> None:
        text = data.translate(self.g1_charset if self.charset else self.g0_charset)
        if modes.IRM in self.mode or not 0 <= self.cursor.x <= self.columns:
            super().draw(data)
            return
        # Translation maps one character to one, so ``data`` and ``text`` share indices:
        # pyte gets the untranslated piece, as it would have.
        pos = 0
        for run in _PRINTABLE_ASCII.finditer(text):
            if run.start() > pos:
                if any(_stops_drawing(c) for c in text[pos : run.start()]):
                    super().draw(data[pos:])  # pyte drops the rest of the text there
                    return
                super().draw(data[pos : run.start()])
            self._draw_ascii(run.group())
            pos = run.end()
        if pos < len(text):
            super().draw(data[pos:])

    def _draw_ascii(self, text: str) -> None:
        """pyte's ``draw`` for printable ASCII (width 1 each), a line's slice at a time."""
        cursor = self.cursor
        columns = self.columns
        attrs = cursor.attrs
        glyphs = self._glyphs.get(attrs)
        if glyphs is None:
            if len(self._glyphs) > 256:
                self._glyphs.clear()
            glyphs = self._glyphs[attrs] = {}
        for char in set(text) - glyphs.keys():
            glyphs[char] = attrs._replace(data=char)
        wrap = modes.DECAWM in self.mode
        i, n = 0, len(text)
        while i < n:
            if cursor.x == columns:
                if wrap:
                    self.dirty.add(cursor.y)
                    self.carriage_return()
                    self.linefeed()
                else:
                    cursor.x -= 1
            take = min(columns - cursor.x, n - i)
            x = cursor.x
            self.buffer[cursor.y].update(
                zip(range(x, x + take), map(glyphs.__getitem__, text[i : i + take]), strict=True)
            )
            cursor.x = min(x + take, columns)
            i += take
        self.dirty.add(cursor.y)


_PRINTABLE_ASCII = re.compile("[\x20-\x7e]+")
_PLAIN_CSI = re.compile("\x1b\\[([0-9;]*)([@A-Za-z`])")
_CSI_METHODS: dict[str, str] = dict(pyte.Stream.csi)


def _stops_drawing(char: str) -> bool:
    """pyte's ``draw`` stops at a character of negative width or a zero-width non-combining."""
    width = wcwidth(char)
    return width < 0 or (width == 0 and not unicodedata.combining(char))


_FLAGS = ("bold", "italics", "underscore", "strikethrough", "reverse", "blink")
_MAP_CODES = {id(m): code for code, m in charsets.MAPS.items()}


def _attrs_out(c: Char) -> list[JSON]:
    flags = sum(1 << i for i, name in enumerate(_FLAGS) if getattr(c, name))
    return [c.fg, c.bg, flags]


def _attrs_in(data: str, fg: str, bg: str, flags: int) -> Char:
    bits = {name: bool(flags >> i & 1) for i, name in enumerate(_FLAGS)}
    return Char(data=data, fg=fg, bg=bg, **bits)


def _charset_out(table: str) -> str:
    code = _MAP_CODES.get(id(table))
    if code is None:
        code = next((k for k, m in charsets.MAPS.items() if m == table), None)
    return code if code is not None else "raw:" + table


def _charset_in(code: str) -> str:
    return code[4:] if code.startswith("raw:") else charsets.MAPS[code]


def _cursor_out(c: Cursor) -> list[JSON]:
    return [c.x, c.y, c.hidden, c.attrs.data, *_attrs_out(c.attrs)]


def _cursor_in(v: list[Any]) -> Cursor:
    cursor = Cursor(v[0], v[1], _attrs_in(*v[3:]))
    cursor.hidden = bool(v[2])
    return cursor


class Terminal:
    """A pyte screen and byte stream that can be snapshot and restored exactly."""

    def __init__(self, columns: int = DEFAULT_COLUMNS, lines: int = DEFAULT_LINES) -> None:
        self.screen = FastScreen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)

    def feed(self, data: bytes) -> None:
        """``ByteStream.feed``, with plain CSI sequences dispatched without the parser.

        pyte's parser is a generator fed one character at a time; colors and cursor moves
        (``ESC [ 1;31 m``, ``ESC [ 5;10 H``) are most of a busy terminal's escapes. Where the
        parser is in its ground state such a sequence is decoded here exactly as pyte does
        (empty parameter 0, at most 9999) and the same screen method is called; anything
        else, or any sequence met while the parser is inside another one, goes to pyte.
        """
        stream = self.stream
        text = stream.utf8_decoder.decode(data) if stream.use_utf8 else "".join(map(chr, data))
        plain = pyte.Stream.feed
        screen = self.screen
        pos = 0
        for match in _PLAIN_CSI.finditer(text):
            method = _CSI_METHODS.get(match.group(2))
            if method is None:
                continue
            if match.start() > pos:
                plain(stream, text[pos : match.start()])
            if stream._taking_plain_text:
                params = [min(int(p or 0), 9999) for p in match.group(1).split(";")]
                getattr(screen, method)(*params)
            else:
                plain(stream, match.group())
            pos = match.end()
        if pos < len(text):
            plain(stream, text[pos:])

    def resize(self, columns: int, lines: int) -> None:
        self.screen.resize(lines, columns)

    @property
    def at_ground(self) -> bool:
        """True when no escape sequence or UTF-8 character is half-way through."""
        decoder = self.stream.utf8_decoder
        return bool(self.stream._taking_plain_text) and not decoder.getstate()[0]

    def snapshot(self) -> dict[str, JSON]:
        """The whole screen state as JSON-native values (only valid at ground state)."""
        s = self.screen
        rows: list[list[JSON]] = []
        for y in sorted(s.buffer):
            runs: list[list[JSON]] = []
            line = s.buffer[y]
            run: list[Any] | None = None
            for x in sorted(line):
                # Every stored cell counts, default-looking ones too: erasing rewrites only
                # the cells a line holds, so which cells exist is part of the state.
                c = line[x]
                attrs = _attrs_out(c)
                if (
                    run is not None
                    and len(c.data) == 1
                    and run[0] + run[1] == x
                    and run[1] == len(run[2])
                    and run[3:] == attrs
                ):
                    run[1] += 1
                    run[2] += c.data
                else:
                    run = [x, 1, c.data, *attrs]
                    runs.append(run)
                    if len(c.data) != 1:
                        run = None  # a stub or combined cell stands alone
            # Empty lines too: pyte moves a line in delete_lines only if the one below exists.
            rows.append([y, runs])
        return {
            "columns": s.columns,
            "lines": s.lines,
            "rows": rows,
            "cursor": _cursor_out(s.cursor),
            "mode": sorted(s.mode),
            "margins": list(s.margins) if s.margins is not None else None,
            "charset": s.charset,
            "g0": _charset_out(s.g0_charset),
            "g1": _charset_out(s.g1_charset),
            "tabstops": sorted(s.tabstops),
            "savepoints": [
                [
                    _cursor_out(p.cursor),
                    _charset_out(p.g0_charset),
                    _charset_out(p.g1_charset),
                    p.charset,
                    p.origin,
                    p.wrap,
                ]
                for p in s.savepoints
            ],
            "saved_columns": s.saved_columns,
            "title": s.title,
            "icon_name": s.icon_name,
            "use_utf8": self.stream.use_utf8,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Terminal:
        term = cls(state["columns"], state["lines"])
        s = term.screen
        s.mode = set(state["mode"])  # first: it decides the default cell of new lines
        default = s.default_char
        for y, runs in state["rows"]:
            line = s.buffer[y]
            line.default = default
            for x, count, text, fg, bg, flags in runs:
                if count == len(text):
                    for i, ch in enumerate(text):
                        line[x + i] = _attrs_in(ch, fg, bg, flags)
                else:
                    line[x] = _attrs_in(text, fg, bg, flags)
        s.cursor = _cursor_in(state["cursor"])
        s.margins = Margins(*state["margins"]) if state["margins"] is not None else None
        s.charset = state["charset"]
        s.g0_charset = _charset_in(state["g0"])
        s.g1_charset = _charset_in(state["g1"])
        s.tabstops = set(state["tabstops"])
        s.savepoints = [
            Savepoint(_cursor_in(c), _charset_in(g0), _charset_in(g1), cs, origin, wrap)
            for c, g0, g1, cs, origin, wrap in state["savepoints"]
        ]
        s.saved_columns = state["saved_columns"]
        s.title = state["title"]
        s.icon_name = state["icon_name"]
        s.dirty.clear()
        term.stream.use_utf8 = state["use_utf8"]
        return term

    def to_ansi(self) -> str:
        """Escape sequences that repaint this screen on a real terminal (for ``--at``)."""
        s = self.screen
        out = ["\x1b[0m\x1b[H\x1b[2J"]
        for y in range(s.lines):
            out.append(f"\x1b[{y + 1};1H")
            line = s.buffer[y]
            last: tuple[Any, ...] | None = None
            x = 0
            while x < s.columns:
                c = line[x]
                key = tuple(c[1:])
                if key != last:
                    out.append(_sgr(c))
                    last = key
                out.append(c.data or "")
                x += 2 if c.data and x + 1 < s.columns and line[x + 1].data == "" else 1
        out.append(f"\x1b[0m\x1b[{s.cursor.y + 1};{s.cursor.x + 1}H")
        out.append("\x1b[?25l" if s.cursor.hidden else "\x1b[?25h")
        return "".join(out)


_SGR_FLAGS = {
    "bold": 1,
    "italics": 3,
    "underscore": 4,
    "blink": 5,
    "reverse": 7,
    "strikethrough": 9,
}
_COLOURS = {
    name: i
    for i, name in enumerate(["black", "red", "green", "brown", "blue", "magenta", "cyan", "white"])
}


def _colour(value: str, base: int) -> str | None:
    if value == "default":
        return None
    if value in _COLOURS:
        return str(base + _COLOURS[value])
    bright = value.removeprefix("bright")
    if bright in _COLOURS:
        return str(base + 60 + _COLOURS[bright])
    if len(value) == 6:
        try:
            r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return None
        return f"{base + 8};2;{r};{g};{b}"
    return None


def _sgr(c: Char) -> str:
    codes = ["0"] + [str(v) for k, v in _SGR_FLAGS.items() if getattr(c, k)]
    codes += [x for x in (_colour(c.fg, 30), _colour(c.bg, 40)) if x is not None]
    return f"\x1b[{';'.join(codes)}m"


class KeyframeSpacing:
    """When to keep a keyframe: at ground state, after ``cpu_ms`` of rendering or
    ``max_bytes`` of output since the last one.

    Spacing by rendering time bounds what a seek costs whatever the output is like (plain
    text renders several times faster than escape-heavy redraws); the byte bound keeps
    keyframes coming on fast machines.
    """

    def __init__(self, *, cpu_ms: float, max_bytes: int, position: int = 0) -> None:
        self.cpu_ms = cpu_ms
        self.max_bytes = max_bytes
        self.restart(position)

    def restart(self, position: int) -> None:
        self.position = position
        self.cpu = time.thread_time()

    def due(self, term: Terminal, position: int) -> bool:
        if not term.at_ground:
            return False
        return (
            position - self.position >= self.max_bytes
            or (time.thread_time() - self.cpu) * 1000 >= self.cpu_ms
        )


# ---------------------------------------------------------------------------- the index


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRef:
    """Where one output chunk (or a resize, ``stream == "resize"``) is in the session."""

    version: int
    stream: str
    offset_ms: int
    end_ms: int
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Keyframe:
    """A screen after session version ``after_version``; ``screen`` is read when first used
    (``stored_version`` in the keyframe stream) or held (built by a reader)."""

    after_version: int
    offset_ms: int
    position: int
    screen: dict[str, JSON] | None = None
    stored_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """A piece of output that appeared at ``offset_ms``; or a resize (``size`` set)."""

    offset_ms: int
    stream: str
    data: bytes = b""
    version: int = 0  # the session event it comes from: orders ties in time
    size: tuple[int, int] | None = None


def index_entry(event: Session.OutputRecorded | Session.TerminalResized) -> ChunkRef:
    if isinstance(event, Session.TerminalResized):
        return ChunkRef(
            version=event.originator_version,
            stream="resize",
            offset_ms=event.offset_ms,
            end_ms=event.offset_ms,
            length=0,
        )
    marks = chunk_marks(event)
    return ChunkRef(
        version=event.originator_version,
        stream=event.stream,
        offset_ms=event.offset_ms,
        end_ms=event.offset_ms + marks[-1][1],
        length=len(chunk_bytes(event)),
    )


def entry_row(ref: ChunkRef) -> list[JSON]:
    return [ref.version, ref.stream, ref.offset_ms, ref.end_ms, ref.length]


def keyframe_of(event: RecordingKeyframes.ScreenKeyframe) -> Keyframe:
    return Keyframe(
        stored_version=event.originator_version,
        after_version=event.after_version,
        offset_ms=event.offset_ms,
        position=event.position,
        screen=event.screen,
    )


def session_range(
    store: EventStore,
    session_id: uuid.UUID,
    *,
    gt: int | None = None,
    lte: int | None = None,
    limit: int | None = None,
) -> list[DomainEvent]:
    """The session's events with ``gt < version <= lte`` (one query, only those decoded)."""
    rows = store._guard(
        lambda: store.recorder.select_events(session_id, gt=gt, lte=lte, limit=limit)
    )
    return [store.decode(r) for r in rows]


def pieces(event: Session.OutputRecorded) -> Iterator[Frame]:
    """A chunk cut at its timing marks."""
    data = chunk_bytes(event)
    marks = chunk_marks(event)
    for i, (start, ms) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(data)
        if end > start:
            yield Frame(
                offset_ms=event.offset_ms + ms,
                stream=event.stream,
                data=data[start:end],
                version=event.originator_version,
            )


def frame_of(event: DomainEvent) -> Iterator[Frame]:
    if isinstance(event, Session.OutputRecorded):
        yield from pieces(event)
    elif isinstance(event, Session.TerminalResized):
        yield Frame(
            offset_ms=event.offset_ms,
            stream="resize",
            size=(event.columns, event.lines),
            version=event.originator_version,
        )


# ---------------------------------------------------------------------------- the reader


@dataclass(kw_only=True)
class Recording:
    """A session's recording, opened from its index (plus any chunks not indexed yet)."""

    store: EventStore
    session_id: uuid.UUID
    started_at: float
    pty: bool
    columns: int
    lines: int
    chunks: list[ChunkRef]
    keyframes: list[Keyframe]
    keyframe_bytes: int = 1 << 20
    keyframe_cpu_ms: float = 20.0
    _kf_versions: list[int] = field(default_factory=list)

    @classmethod
    def open(cls, store: EventStore, session_id: uuid.UUID) -> Recording:
        started: RecordingIndex.Started | None = None
        chunks: list[ChunkRef] = []
        keyframes: list[Keyframe] = []
        for e in store.events_of(RecordingIndex.id_for(session_id)):
            if isinstance(e, RecordingIndex.Started):
                started = e
            elif isinstance(e, RecordingIndex.ChunksIndexed):
                chunks += [
                    ChunkRef(
                        version=int(v),
                        stream=str(s),
                        offset_ms=int(a),
                        end_ms=int(b),
                        length=int(n),
                    )
                    for v, s, a, b, n in e.entries
                ]
                keyframes += [
                    Keyframe(stored_version=k, after_version=a, offset_ms=t, position=p)
                    for k, a, t, p in getattr(e, "keyframes", None) or []
                ]
        # Keyframes not listed yet (a running session) are few: read them whole.
        listed = max((k.stored_version or 0 for k in keyframes), default=0)
        for e in session_range(store, RecordingKeyframes.id_for(session_id), gt=listed):
            if isinstance(e, RecordingKeyframes.ScreenKeyframe):
                keyframes.append(keyframe_of(e))
        chunks.sort(key=lambda c: c.version)
        last = chunks[-1].version if chunks else None
        # Chunks after the last index entry (a live session, or one recorded without an
        # index) are read from the session itself; without an index that is all of it.
        tail = session_range(store, session_id, gt=last)
        origin = started.started_at if started is not None else None
        pty = started.pty if started is not None else False
        size = (started.columns, started.lines) if started is not None else None
        for e in tail:
            if isinstance(e, Session.ConnectionAccepted) and origin is None:
                origin = e.at
            if isinstance(e, Session.OutputRecorded | Session.TerminalResized):
                chunks.append(index_entry(e))
                pty = pty or getattr(e, "stream", "pty") in TERMINAL_STREAMS
                if isinstance(e, Session.TerminalResized) and size is None:
                    size = (e.columns, e.lines)
        if origin is None:
            head = session_range(store, session_id, lte=1)
            origin = head[0].at if head else 0.0
        columns, lines = size or (DEFAULT_COLUMNS, DEFAULT_LINES)
        recording = cls(
            store=store,
            session_id=session_id,
            started_at=origin,
            pty=pty,
            columns=columns,
            lines=lines,
            chunks=chunks,
            keyframes=[],
        )
        for kf in sorted(keyframes, key=lambda k: k.after_version):
            recording.add_keyframe(kf)
        return recording

    @property
    def duration_ms(self) -> int:
        return max((c.end_ms for c in self.chunks), default=0)

    @property
    def output_bytes(self) -> int:
        return sum(c.length for c in self.chunks)

    def add_keyframe(self, kf: Keyframe) -> None:
        i = bisect.bisect_left(self._kf_versions, kf.after_version)
        if i < len(self._kf_versions) and self._kf_versions[i] == kf.after_version:
            return
        self._kf_versions.insert(i, kf.after_version)
        self.keyframes.insert(i, kf)

    def offset_of(self, at: float) -> int:
        """The recording time (ms) of a wall-clock time, such as a command's ``at``."""
        return max(0, round((at - self.started_at) * 1000))

    def _screen_of(self, kf: Keyframe) -> dict[str, JSON]:
        if kf.screen is not None:
            return kf.screen
        assert kf.stored_version is not None
        found = session_range(
            self.store,
            RecordingKeyframes.id_for(self.session_id),
            gt=kf.stored_version - 1,
            lte=kf.stored_version,
        )
        if not found or not isinstance(found[0], RecordingKeyframes.ScreenKeyframe):
            raise LookupError(f"keyframe {kf.stored_version} of {self.session_id} is missing")
        return found[0].screen

    def _load(self, gt: int, lte: int) -> list[DomainEvent]:
        return session_range(self.store, self.session_id, gt=gt, lte=lte)

    def screen_at(self, t_ms: int) -> Terminal:
        """The terminal exactly as it was after every byte recorded at or before ``t_ms``."""
        term, _ = self._render_to(t_ms)
        return term

    @property
    def terminal_chunks(self) -> list[ChunkRef]:
        """PTY chunks and resizes: their times never go back (one buffer, in order)."""
        return [c for c in self.chunks if c.stream in TERMINAL_STREAMS or c.stream == "resize"]

    def _render_to(self, t_ms: int) -> tuple[Terminal, int]:
        """(terminal at ``t_ms``, index of the first terminal chunk not wholly shown)."""
        chunks = self.terminal_chunks
        # First chunk that starts after t: everything before it may contribute.
        stop = bisect.bisect_right([c.offset_ms for c in chunks], t_ms)
        done = stop
        while done > 0 and chunks[done - 1].end_ms > t_ms:
            done -= 1
        # Latest keyframe taken after a chunk that is wholly at or before t.
        limit = chunks[done - 1].version if done else 0
        k = bisect.bisect_right(self._kf_versions, limit) - 1
        if k >= 0:
            kf = self.keyframes[k]
            term = Terminal.restore(self._screen_of(kf))
            base, since = kf.after_version, kf.position
        else:
            term, base, since = Terminal(self.columns, self.lines), 0, 0
        if stop == 0 or chunks[stop - 1].version <= base:
            return term, stop
        position = since
        spacing = KeyframeSpacing(
            cpu_ms=self.keyframe_cpu_ms, max_bytes=self.keyframe_bytes, position=position
        )
        for event in self._load(base, chunks[stop - 1].version):
            if isinstance(event, Session.TerminalResized):
                term.resize(event.columns, event.lines)
            elif isinstance(event, Session.OutputRecorded) and event.stream in TERMINAL_STREAMS:
                whole = event.offset_ms + chunk_marks(event)[-1][1] <= t_ms
                for piece in pieces(event):
                    if piece.offset_ms > t_ms:
                        break
                    term.feed(piece.data)
                    position += len(piece.data)
                if whole and spacing.due(term, position):
                    # Cache what was rendered anyway: the next seek nearby starts here.
                    self.add_keyframe(
                        Keyframe(
                            after_version=event.originator_version,
                            offset_ms=event.offset_ms,
                            position=position,
                            screen=term.snapshot(),
                        )
                    )
                    spacing.restart(position)
        return term, stop

    def other_events(self) -> list[DomainEvent]:
        """The session's events that are not output (commands, decisions, close...).

        Read by version ranges between the indexed chunks, so no output is decoded.
        """
        found: list[DomainEvent] = []
        prev = 0
        for chunk in [*self.chunks, None]:
            upto = chunk.version - 1 if chunk is not None else None
            if upto is None or upto > prev:
                found += session_range(self.store, self.session_id, gt=prev, lte=upto)
            if chunk is not None:
                prev = chunk.version
        return [e for e in found if not isinstance(e, Session.OutputRecorded)]

    def frames(self, start_ms: int = 0) -> Iterator[Frame]:
        """Output pieces recorded after ``start_ms`` (all of them from 0), in time order.

        Streams are buffered apart, so chunks of two streams can be stored out of time
        order by up to ``chunk_ms``; each batch read is sorted by time.
        """
        chunks = [c for c in self.chunks if c.end_ms > start_ms or not start_ms]
        for i in range(0, len(chunks), 64):  # bounded memory: 64 chunks (4 MiB) per read
            batch = chunks[i : i + 64]
            versions = {c.version for c in batch}
            events = session_range(
                self.store, self.session_id, gt=batch[0].version - 1, lte=batch[-1].version
            )
            out = [
                f
                for e in events
                if e.originator_version in versions
                for f in frame_of(e)
                if f.offset_ms > start_ms or not start_ms
            ]
            out.sort(key=lambda f: (f.offset_ms, f.version))
            yield from out


def same_screen(a: Terminal, b: Terminal) -> bool:
    return a.snapshot() == b.snapshot()


def resolve_session(store: EventStore, text: str) -> uuid.UUID:
    """A session id from its full text or a unique prefix (hex digits, dashes ignored)."""
    wanted = text.replace("-", "").lower()
    try:
        full = uuid.UUID(text)
    except ValueError:
        full = None
    if full is not None:
        return full
    found: set[uuid.UUID] = set()
    for _, event in _accepted(store):
        if event.originator_id.hex.startswith(wanted):
            found.add(event.originator_id)
    if not found:
        raise LookupError(f"no session starts with {text!r}")
    if len(found) > 1:
        raise LookupError(f"{text!r} matches {len(found)} sessions: type more of the id")
    return found.pop()


def _accepted(store: EventStore) -> Iterator[tuple[int, DomainEvent]]:
    after = 0
    while True:
        page = store.read_kinds([Session.ConnectionAccepted], after=after, limit=1000)
        yield from page
        if len(page) < 1000:
            return
        after = page[-1][0]


# ------------------------------------------------------------ transcripts and live tail


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptLine:
    """One readable line of a session: output, a statement, its decision, its result."""

    version: int
    at: float
    kind: str  # output | command | decision | response | closed
    text: str


def table_lines(transcript: JSON, *, limit: int = 50) -> list[str]:
    """A result table from ``ResponseRecorded.transcript`` (already masked by the proxy).

    Understood shapes: ``{"columns": [...], "rows": [[...], ...]}``, a list of row objects,
    a list of row lists; anything else is shown as its text.
    """
    columns: list[str]
    rows: list[list[JSON]]
    if isinstance(transcript, dict) and "rows" in transcript:
        rows = [list(r) if isinstance(r, list) else [r] for r in transcript.get("rows") or []]
        columns = [str(c) for c in transcript.get("columns") or []]
    elif isinstance(transcript, list) and transcript and isinstance(transcript[0], dict):
        columns = [str(c) for c in transcript[0]]
        rows = [[r.get(c) for c in columns] for r in transcript if isinstance(r, dict)]
    elif isinstance(transcript, list):
        rows = [list(r) if isinstance(r, list) else [r] for r in transcript]
        columns = []
    else:
        return [str(transcript)] if transcript is not None else []
    width = max([len(columns)] + [len(r) for r in rows]) if rows or columns else 0
    columns = columns + [""] * (width - len(columns))
    cells = [["NULL" if v is None else str(v) for v in r] + [""] * (width - len(r)) for r in rows]
    shown = cells[:limit]
    sizes = [max([len(columns[i])] + [len(r[i]) for r in shown]) for i in range(width)]
    rule = "+" + "+".join("-" * (n + 2) for n in sizes) + "+"

    def fmt(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(n) for v, n in zip(values, sizes, strict=True)) + " |"

    out = [rule]
    if any(columns):
        out += [fmt(columns), rule]
    out += [fmt(r) for r in shown] + [rule]
    if len(cells) > limit:
        out.append(f"... {len(cells) - limit} more rows")
    return out


def describe(event: DomainEvent) -> list[TranscriptLine]:
    """The readable lines of one session event (none for events that say nothing new)."""
    v, at = event.originator_version, event.at

    def line(kind: str, text: str) -> TranscriptLine:
        return TranscriptLine(version=v, at=at, kind=kind, text=text)

    match event:
        case Session.OutputRecorded():
            return [line("output", chunk_bytes(event).decode("utf-8", "replace"))]
        case Session.Authenticated():
            return [line("command", f"-- {event.subject} authenticated as {event.client_user}")]
        case Session.CommandReceived():
            return [line("command", f"{event.actor}> {event.text}")]
        case Session.CommandDecided():
            text = f"   {event.action} (rule {event.rule or '-'})"
            if event.action != "allow" and event.reason:
                text += f": {event.reason}"
            return [line("decision", text)]
        case Session.CommandForwarded() if event.approved_by:
            return [line("decision", f"   approved by {', '.join(event.approved_by)}")]
        case Session.ResponseRecorded():
            return [line("response", t) for t in _response_lines(event)]
        case Session.Closed():
            detail = f": {event.detail}" if event.detail else ""
            return [line("closed", f"-- session closed ({event.reason}{detail})")]
    return []


def _response_lines(e: Session.ResponseRecorded) -> list[str]:
    if not e.ok:
        return [f"   ERROR {e.error_code or ''} {e.error_message or ''}".rstrip()]
    lines = ["   " + t for t in table_lines(e.transcript)]
    what = f"{e.rows} row{'s' if e.rows != 1 else ''}" if e.rows else f"{e.affected_rows} affected"
    if e.truncated:
        what += ", result truncated in the recording"
    if e.masked:
        what += "; masked " + ", ".join(f"{k} {n}" for k, n in sorted(e.masked.items()))
    return [*lines, f"   {what} ({e.duration_ms:.1f} ms)"]


def tail(
    store: EventStore, session_id: uuid.UUID, after_version: int = 0
) -> Iterator[TranscriptLine]:
    """Lines of a (running) session after ``after_version``; ends when caught up.

    A live view polls: ``for line in tail(store, sid, last): ...; last = line.version``.
    """
    after = after_version
    while True:
        events = session_range(store, session_id, gt=after, limit=500)
        for event in events:
            yield from describe(event)
        if len(events) < 500:
            return
        after = events[-1].originator_version
