"""Terminal emulation with exact snapshots: ``FastScreen``, ``Terminal``, keyframe spacing.

See the package docstring (why ``FastScreen``, what a snapshot holds).
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import pyte
from pyte import charsets, modes
from pyte.screens import Char, Cursor, Margins, Savepoint, wcwidth

from events.domain import JSON
from events.recording.chunks import DEFAULT_COLUMNS, DEFAULT_LINES, byte_time

# ------------------------------------------------------------------------------ screens


class FastScreen(pyte.Screen):
    """A pyte ``Screen`` whose ``draw`` is fast for characters one cell wide (printable ASCII,
    most alphabets) and identical otherwise."""

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
        for run in _ONE_CELL.finditer(text):
            if run.start() > pos:
                if any(_stops_drawing(c) for c in text[pos : run.start()]):
                    super().draw(data[pos:])  # pyte drops the rest of the text there
                    return
                super().draw(data[pos : run.start()])
            self._draw_simple(run.group())
            pos = run.end()
        if pos < len(text):
            super().draw(data[pos:])

    def _draw_simple(self, text: str) -> None:
        """pyte's ``draw`` for characters of width 1, a line's slice at a time."""
        cursor = self.cursor
        columns = self.columns
        attrs = cursor.attrs
        glyphs = self._glyphs.get(attrs)
        if glyphs is None:
            if len(self._glyphs) > 256:
                self._glyphs.clear()
            glyphs = self._glyphs[attrs] = {}
        elif len(glyphs) > 512:  # bounded: a text of many alphabets would grow it for ever
            glyphs.clear()
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


def _one_cell_class(last: int = 0x2FFF) -> str:
    """A regex class of the characters up to ``last`` that pyte draws one cell wide
    (``wcwidth`` 1: printable ASCII, Latin, Greek, Cyrillic, ...); pyte's ``draw`` treats
    them all as it treats ``a``. Wider, zero-width and combining ones stay with pyte."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x20, last + 1):
        if wcwidth(chr(code)) == 1:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


_ONE_CELL = re.compile(f"[{_one_cell_class()}]+")
_PLAIN_CSI = re.compile("\x1b\\[([0-9;]*)([@A-Za-z`])")
_CSI_METHODS: dict[str, str] = dict(pyte.Stream.csi)


def _stops_drawing(char: str) -> bool:
    """pyte's ``draw`` stops at a character of negative width or a zero-width non-combining."""
    width = wcwidth(char)
    return width < 0 or (width == 0 and not unicodedata.combining(char))


_FLAGS = ("bold", "italics", "underscore", "strikethrough", "reverse", "blink")
_MAP_CODES = {id(m): code for code, m in charsets.MAPS.items()}


def _flags_of(c: Char) -> int:
    return sum(1 << i for i, name in enumerate(_FLAGS) if getattr(c, name))


def _attrs_out(c: Char) -> list[JSON]:
    return [c.fg, c.bg, _flags_of(c)]


def _rows_of(
    state: dict[str, Any],
) -> Iterator[tuple[int, list[tuple[int, int, str, str, str, int]]]]:
    """(y, [(x, count, text, fg, bg, flags), ...]) per line of a snapshot, either format."""
    if state.get("v") != 2:
        for y, runs in state["rows"]:
            yield y, [tuple(run) for run in runs]
        return
    attrs = [tuple(a) for a in state["attrs"]]
    y = 0
    for entry in state["rows"]:
        runs = entry
        if entry and isinstance(entry[0], int):
            y, runs = entry
        out = []
        end = 0
        for run in runs:
            if isinstance(run, str):
                x, count, text, attr = end, len(run), run, 0
            elif len(run) == 2:
                x, count, (text, attr) = end, len(run[0]), run
            else:
                x, count, text, attr = run
            out.append((x, count, text, *attrs[attr]))
            end = x + count
        yield y, out
        y += 1


def _attrs_in(data: str, fg: str, bg: str, flags: int) -> Char:
    bits = {name: bool(flags >> i & 1) for i, name in enumerate(_FLAGS)}
    return Char(data=data, fg=fg, bg=bg, **bits)


_CELLS: dict[tuple[str, str, int], dict[str, Char]] = {}
"""Cells by attributes, then character, shared by every restore (``Char`` is immutable and
pyte itself shares cells): restoring a screen builds no ``Char`` it has built before."""


def _cells_of(fg: str, bg: str, flags: int) -> dict[str, Char]:
    key = (fg, bg, flags)
    cells = _CELLS.get(key)
    if cells is None:
        if len(_CELLS) > 1024:
            _CELLS.clear()
        cells = _CELLS[key] = {}
    return cells


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
        """The whole screen state as JSON-native values (only valid at ground state).

        Format 2 (``"v": 2``): ``attrs`` lists the attribute triples [fg, bg, flags] used;
        ``rows`` holds one entry per line the screen holds, in order: the line's runs, or
        ``[y, runs]`` when it is not the line after the previous entry's (the first is 0).
        A run is a string (cells from where the previous run ended, one character each,
        the first attributes), ``[text, attr]`` (the same, attributes ``attrs[attr]``) or
        ``[x, count, text, attr]`` (anything else: a stub or combined cell stands alone).
        Format 1 (no ``v``) had ``[y, [[x, count, text, fg, bg, flags], ...]]`` rows; it
        still restores (keyframes stored before session 4). Format 2 stores about 16% less.
        """
        s = self.screen
        palette: dict[tuple[str, str, int], int] = {}
        rows: list[JSON] = []
        expect = 0
        for y in sorted(s.buffer):
            line = s.buffer[y]
            runs: list[JSON] = []
            # [x, count, text, attr] being built; extended while cells follow with the same
            # attributes. Every stored cell counts, default-looking ones too: erasing
            # rewrites only the cells a line holds, so which cells exist is part of the state.
            run: list[Any] | None = None
            for x in sorted(line):
                c = line[x]
                key = (c.fg, c.bg, _flags_of(c))
                attr = palette.setdefault(key, len(palette))
                if (
                    run is not None
                    and len(c.data) == 1
                    and run[0] + run[1] == x
                    and run[1] == len(run[2])
                    and run[3] == attr
                ):
                    run[1] += 1
                    run[2] += c.data
                else:
                    run = [x, 1, c.data, attr]
                    runs.append(run)
                    if len(c.data) != 1:
                        run = None
            # Empty lines too: pyte moves a line in delete_lines only if the one below exists.
            end = 0
            for i, (x, count, text, attr) in enumerate(runs):
                if x == end and count == len(text):
                    runs[i] = text if attr == 0 else [text, attr]
                end = x + count
            rows.append(runs if y == expect else [y, runs])
            expect = y + 1
        return {
            "v": 2,
            "columns": s.columns,
            "lines": s.lines,
            "attrs": [list(k) for k in palette],
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
        for y, runs in _rows_of(state):
            line = s.buffer[y]
            line.default = default
            for x, count, text, fg, bg, flags in runs:
                cells = _cells_of(fg, bg, flags)
                if count != len(text):  # one cell holding several characters
                    line[x] = _attrs_in(text, fg, bg, flags)
                    continue
                missing = set(text) - cells.keys()
                if len(cells) > 4096:  # bounded: wide scripts could grow it for ever
                    cells.clear()
                    missing = set(text)
                for ch in missing:
                    cells[ch] = _attrs_in(ch, fg, bg, flags)
                line.update(zip(range(x, x + count), map(cells.__getitem__, text), strict=True))
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


KEYFRAME_CPU_MS = 36.0
"""Default keyframe spacing in ms of rendering CPU: a seek renders at most about this much
after restoring its keyframe (keyframes fall inside chunks too). Closer spacing stores
more keyframes (each about 0.9 KB, stored): see docs/RECORDING.md for the measured trade."""


class KeyframeSpacing:
    """When to keep a keyframe: at ground state, after ``cpu_ms`` of rendering or
    ``max_bytes`` of output since the last one.

    Spacing by rendering time bounds what a seek costs whatever the output is like (plain
    text renders several times faster than escape-heavy redraws); the byte bound keeps
    keyframes coming on fast machines.
    """

    def __init__(
        self,
        *,
        cpu_ms: float,
        max_bytes: int,
        position: int = 0,
        clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.cpu_ms = cpu_ms
        self.max_bytes = max_bytes
        self.clock = clock  # seconds of rendering CPU (a renderer of several streams: its own)
        self.restart(position)

    def restart(self, position: int) -> None:
        self.position = position
        self.cpu = self.clock()

    def due(self, term: Terminal, position: int) -> bool:
        if not term.at_ground:
            return False
        return (
            position - self.position >= self.max_bytes
            or (self.clock() - self.cpu) * 1000 >= self.cpu_ms
        )


class Shot(NamedTuple):
    """A keyframe a renderer took: after chunk ``version`` (its first ``within`` bytes, 0:
    all), the last byte shown recorded at ``offset_ms``, ``position`` terminal bytes in."""

    version: int
    within: int
    offset_ms: int
    position: int
    screen: dict[str, JSON]


RENDER_SLICE = 2048
"""Bytes fed at a time: where a keyframe may fall, also inside a chunk."""


class KeyframeRenderer:
    """Renders one terminal stream chunk by chunk and takes keyframes as ``spacing`` says.

    Keyframes fall between slices of ``RENDER_SLICE`` bytes, inside chunks too: a chunk of
    escape-heavy output can take longer to render than the spacing (64 KiB at about 1 MB/s
    is 60 ms), and a seek renders from the keyframe before it. ``after_slice`` runs after
    each slice (a worker thread uses it to yield the GIL or keep to its CPU share).
    """

    def __init__(self, columns: int, lines: int, spacing: KeyframeSpacing) -> None:
        self.term = Terminal(columns, lines)
        self.spacing = spacing
        self.position = 0
        spacing.restart(0)

    def resize(self, columns: int, lines: int) -> None:
        self.term.resize(columns, lines)

    def render(
        self,
        version: int,
        start_ms: int,
        marks: Sequence[Sequence[int]],
        data: bytes,
        after_slice: Callable[[], None] | None = None,
    ) -> Iterator[Shot]:
        term, spacing = self.term, self.spacing
        for i in range(0, len(data), RENDER_SLICE):
            part = data[i : i + RENDER_SLICE]
            term.feed(part)
            self.position += len(part)
            if after_slice is not None:
                after_slice()
            if spacing.due(term, self.position):
                end = i + len(part)
                ms = start_ms + byte_time(marks, end - 1)
                within = 0 if end >= len(data) else end
                yield Shot(version, within, ms, self.position, term.snapshot())
                spacing.restart(self.position)


def same_screen(a: Terminal, b: Terminal) -> bool:
    return a.snapshot() == b.snapshot()
