"""Session recordings: the chunk format, terminal emulation with exact keyframes, seeking.

Theory of operation
-------------------
What an agent saw is stored in its ``Session`` stream as ``OutputRecorded`` chunks (masked
bytes, at most ~64 KiB or 500 ms each, ``offset_ms`` from the start of the recording, timing
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

Modules: ``chunks`` (the chunk format, timing marks, index rows), ``terminal`` (``FastScreen``,
``Terminal`` with exact snapshots, keyframe spacing), ``seek`` (``Recording``: opening from the
index, ``screen_at``, frames), ``transcript`` (readable transcripts and the live tail). The
names below are the package's API; import them from ``events.recording``.
"""

from __future__ import annotations

from events.recording.chunks import (
    DEFAULT_COLUMNS,
    DEFAULT_LINES,
    TERMINAL_STREAMS,
    ChunkRef,
    Frame,
    Keyframe,
    byte_time,
    chunk_bytes,
    chunk_marks,
    chunk_text,
    entry_row,
    frame_of,
    index_entry,
    keyframe_of,
    pieces,
    utf8_tail,
)
from events.recording.seek import Recording, resolve_session, session_range
from events.recording.terminal import (
    KEYFRAME_CPU_MS,
    FastScreen,
    KeyframeRenderer,
    KeyframeSpacing,
    Shot,
    Terminal,
    same_screen,
)
from events.recording.transcript import TranscriptLine, describe, table_lines, tail

__all__ = [
    "DEFAULT_COLUMNS",
    "DEFAULT_LINES",
    "KEYFRAME_CPU_MS",
    "TERMINAL_STREAMS",
    "ChunkRef",
    "FastScreen",
    "Frame",
    "Keyframe",
    "KeyframeRenderer",
    "KeyframeSpacing",
    "Recording",
    "Shot",
    "Terminal",
    "TranscriptLine",
    "byte_time",
    "chunk_bytes",
    "chunk_marks",
    "chunk_text",
    "describe",
    "entry_row",
    "frame_of",
    "index_entry",
    "keyframe_of",
    "pieces",
    "resolve_session",
    "same_screen",
    "session_range",
    "table_lines",
    "tail",
    "utf8_tail",
]
