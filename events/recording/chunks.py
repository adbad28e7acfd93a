"""The chunk format (bytes <-> the ``data`` string, timing marks) and the index rows.

See the package docstring; nothing here reads the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from events.domain import JSON, DomainEvent, RecordingKeyframes, Session

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


def byte_time(marks: Sequence[Sequence[int]], offset: int) -> int:
    """When the byte at ``offset`` of a chunk arrived: ms after the chunk's ``offset_ms``
    (the last mark at or before it; marks are ``[byte offset, ms]``, in order)."""
    ms = 0
    for at, when in marks:
        if at > offset:
            break
        ms = when
    return ms


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
    """A screen after session version ``after_version``, or after its first ``within`` bytes
    (0: all of them); ``offset_ms`` is the time of the last byte shown. ``screen`` is read
    when first used (``stored_version`` in the keyframe stream) or held (built by a reader).
    """

    after_version: int
    offset_ms: int
    position: int
    screen: dict[str, JSON] | None = None
    stored_version: int | None = None
    within: int = 0

    @property
    def order(self) -> tuple[int, float]:
        """Where it falls in the session: a keyframe inside a chunk comes before one after it."""
        return (self.after_version, self.within or float("inf"))


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
        within=getattr(event, "within", 0) or 0,
    )


def pieces(event: Session.OutputRecorded, skip: int = 0) -> Iterator[Frame]:
    """A chunk cut at its timing marks (its first ``skip`` bytes left out)."""
    data = chunk_bytes(event)
    marks = chunk_marks(event)
    for i, (at, ms) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(data)
        start = max(at, skip)
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
