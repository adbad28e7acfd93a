"""Opening a recording from its index and rendering the screen at any time.

See the package docstring (index, keyframes, how a seek is served).
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from events.domain import JSON, DomainEvent, RecordingIndex, RecordingKeyframes, Session
from events.recording.chunks import (
    DEFAULT_COLUMNS,
    DEFAULT_LINES,
    TERMINAL_STREAMS,
    ChunkRef,
    Frame,
    Keyframe,
    chunk_marks,
    frame_of,
    index_entry,
    keyframe_of,
    pieces,
)
from events.recording.terminal import KEYFRAME_CPU_MS, KeyframeSpacing, Terminal
from events.store import EventStore


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
    keyframe_cpu_ms: float = KEYFRAME_CPU_MS
    _kf_order: list[tuple[int, float]] = field(default_factory=list)

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
                    Keyframe(
                        stored_version=row[0],
                        after_version=row[1],
                        offset_ms=row[2],
                        position=row[3],
                        within=row[4] if len(row) > 4 else 0,
                    )
                    for row in getattr(e, "keyframes", None) or []
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
        for kf in sorted(keyframes, key=lambda k: k.order):
            recording.add_keyframe(kf)
        return recording

    @property
    def duration_ms(self) -> int:
        return max((c.end_ms for c in self.chunks), default=0)

    @property
    def output_bytes(self) -> int:
        return sum(c.length for c in self.chunks)

    def add_keyframe(self, kf: Keyframe) -> None:
        i = bisect.bisect_left(self._kf_order, kf.order)
        if i < len(self._kf_order) and self._kf_order[i] == kf.order:
            return
        self._kf_order.insert(i, kf.order)
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
        # Latest keyframe no later than the last chunk that starts by t whose last byte
        # shown came at or before t (one inside that chunk, maybe; times never go back).
        limit = chunks[stop - 1].version if stop else 0
        k = bisect.bisect_right(self._kf_order, (limit, float("inf"))) - 1
        while k >= 0 and self.keyframes[k].offset_ms > t_ms:
            k -= 1
        skip = 0  # bytes of chunk ``base + 1`` the keyframe already shows
        if k >= 0:
            kf = self.keyframes[k]
            term = Terminal.restore(self._screen_of(kf))
            base, since = kf.after_version, kf.position
            if kf.within:
                base, skip = base - 1, kf.within
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
                end_ms = event.offset_ms + chunk_marks(event)[-1][1]
                skipped = skip if event.originator_version == base + 1 else 0
                for piece in pieces(event, skipped):
                    if piece.offset_ms > t_ms:
                        break
                    term.feed(piece.data)
                    position += len(piece.data)
                if end_ms <= t_ms and spacing.due(term, position):
                    # Cache what was rendered anyway: the next seek nearby starts here.
                    self.add_keyframe(
                        Keyframe(
                            after_version=event.originator_version,
                            offset_ms=end_ms,
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
