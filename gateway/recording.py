"""Recording what an agent saw: chunked output events, the seek index, screen keyframes.

Theory of operation
-------------------
A proxy hands every piece of (already masked) output to :meth:`SessionRecorder.output` and
what the agent typed to :meth:`SessionRecorder.input`. The recorder keeps one buffer per
stream and turns it into one ``Session.OutputRecorded`` event when it reaches
``chunk_bytes`` or is ``chunk_ms`` old (checked on each call and by :meth:`run`, a task the
proxy starts beside its pumps). Inside a chunk, the time of each write that came 10 ms or
more after the previous one is kept as a mark, so playback keeps the rhythm of typing. A
chunk never ends inside a UTF-8 character (up to 3 bytes wait for the next chunk), so its
text stays readable. Everything goes to ``writer.submit``: nothing on this path waits for
the store.

The seek index (``RecordingIndex``, a stream of its own) lists the chunks every 64 of them
and at the end. Terminal (PTY) sessions also get screen keyframes. Rendering costs pyte
time (about 1 MB/s), so it never happens on the data path: in the gateway a child process
renders (``keyframes=``, :mod:`gateway.keyframe_process`: at a lower priority, off the
GIL); without one (a library user, the benchmark's isolated recorder) a worker thread
does, capped at ``keyframe_share`` of a core because it shares the GIL. Either is fed
through a bounded queue: the data path only enqueues a reference to bytes it already has.
If the renderer falls behind and the queue is full, keyframing stops for the rest of the
session (it cannot skip bytes and stay exact); seeking is then slower, never wrong,
because ``replay`` renders from the last keyframe there is and caches keyframes as it
goes. Keyframes the renderer finishes are emitted by the owning task on its next call
(events of a stream are numbered by one task only).

Input typed while the terminal does not echo is left out, best effort: after output that
ends in a password or passphrase prompt, input is dropped up to and including the next
carriage return or newline.
"""

from __future__ import annotations

import collections
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import trio

from events.domain import DomainEvent, RecordingIndex, RecordingKeyframes, Session
from events.recording import (
    KEYFRAME_CPU_MS,
    TERMINAL_STREAMS,
    KeyframeRenderer,
    KeyframeSpacing,
    Shot,
    chunk_text,
    entry_row,
    index_entry,
    utf8_tail,
)
from gateway.keyframe_process import KeyframeProcess, ProcessKeyframeWorker
from gateway.session import SessionLog

MARK_MS = 10
CHUNK_MS = 500
"""A chunk is cut when its first byte is this old (or at ``chunk_bytes``). Longer chunks
compress better (on the benchmark's steady 55 KB/s, 17 KB chunks stored 3.34x and 34 KB
ones about 3.5x); a live view sees output this late at most, and a gateway that crashes
loses at most this much of a session's output."""
INDEX_EVERY = 64
KEYFRAME_SHARE = 0.1
"""Most of one core the keyframe worker may use (see ``_KeyframeWorker``)."""
BURST = 0.1
HIDDEN_PROMPT = re.compile(
    rb"(?i)(password|passphrase|passcode|\bpin)[^\r\n]{0,40}[:?]\s*\Z|password for [^\r\n]*:\s*\Z"
)


class EventSink(Protocol):
    def submit(self, events: Sequence[DomainEvent]) -> None: ...


class _Buffer:
    __slots__ = ("data", "marks", "masked", "start_ms")

    def __init__(self, start_ms: int) -> None:
        self.data = bytearray()
        self.start_ms = start_ms
        self.marks: list[list[int]] = []
        self.masked: dict[str, int] = {}


_Work = tuple[int, int, list[list[int]], bytes | tuple[int, int]] | None
"""(session version, offset_ms, timing marks, chunk bytes or a new (columns, lines))."""


class _KeyframeWorker:
    """Renders the PTY stream in a thread and keeps a screen as ``spacing`` says.

    ``share`` caps the CPU it takes (a fraction of one core, as a token bucket holding at
    most ``BURST`` seconds): it shares the GIL with the relay, and pyte renders about 1 MB/s,
    so unthrottled it took most of the gateway's time during bulk terminal output. Falling
    behind fills its queue, which ends keyframing for the session (slower seeks, never
    wrong ones). None: no cap (a benchmark replaying an hour in seconds)."""

    def __init__(
        self,
        columns: int,
        lines: int,
        spacing: KeyframeSpacing,
        depth: int,
        share: float | None = None,
    ) -> None:
        self.spacing = spacing
        self.share = share
        self.queue: queue.Queue[_Work] = queue.Queue(maxsize=depth)
        self.done: collections.deque[Shot] = collections.deque()
        self.lost = False
        self._renderer = KeyframeRenderer(columns, lines, spacing)
        self.thread = threading.Thread(target=self._run, name="wardgate-keyframes", daemon=True)
        self.thread.start()

    def offer(self, item: _Work) -> None:
        if self.lost:
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.lost = True  # a gap would make every later keyframe wrong: stop instead

    def stop(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            self.lost = True

    catch_up = 2.0

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def rendered(self) -> bool:
        """Whether everything offered before ``stop`` is rendered (or given up)."""
        return not self.thread.is_alive()

    def abandon(self) -> None:
        """Render nothing more (what is queued is skipped)."""
        if self.thread.is_alive():
            self.lost = True

    def _run(self) -> None:
        renderer, share = self._renderer, self.share
        renderer.spacing.restart(0)  # rendering CPU is counted on this thread's clock
        credit, last = BURST, time.monotonic()
        spent = time.thread_time()

        def after_slice() -> None:
            # Small slices, releasing the GIL between them: the event loop waiting for it
            # gets it within about a millisecond instead of a switch interval.
            nonlocal credit, last, spent
            if share is None:
                time.sleep(0)
                return
            now, cpu = time.monotonic(), time.thread_time()
            credit = min(BURST, credit + share * (now - last)) - (cpu - spent)
            last = now
            time.sleep(-credit / share if credit < 0 else 0)
            spent = time.thread_time()

        while True:
            item = self.queue.get()
            if item is None or self.lost:
                return
            version, start_ms, marks, payload = item
            if isinstance(payload, tuple):
                renderer.resize(*payload)
                continue
            spent = time.thread_time()
            try:
                self.done.extend(renderer.render(version, start_ms, marks, payload, after_slice))
            except Exception:  # pyte failed on this output: no keyframe can be trusted now
                self.lost = True
                return


class SessionRecorder:
    """Records one session's output for replay; owned by the task that serves the session.

    ``output(stream, data)``: masked bytes the agent received ("pty", "stdout", "stderr").
    ``input(data)``: what the agent typed (PTY sessions). ``record(stream, data)``: bytes
    the caller has already filtered (no prompt heuristics), as the SSH proxy's taps do.
    ``resize(columns, lines)``: the window changed. ``open_terminal(columns, lines)``: a
    terminal appears in a session recorded without one so far. ``flush()``: emit what is
    buffered now. ``close()``: flush, write the rest of the index, stop the keyframe worker.
    ``run()``: flushes on time; start it in the connection's nursery.

    ``origin`` is the ``clock()`` time that ``offset_ms`` counts from (default: now), e.g.
    the connection's start when the recorder is made at its first channel.
    """

    def __init__(
        self,
        log: SessionLog,
        writer: EventSink,
        *,
        pty: bool,
        columns: int = 80,
        lines: int = 24,
        chunk_bytes: int = 65536,
        chunk_ms: int = CHUNK_MS,
        keyframe_bytes: int = 1 << 20,
        keyframe_cpu_ms: float = KEYFRAME_CPU_MS,
        keyframe_queue: int = 64,
        keyframe_share: float | None = KEYFRAME_SHARE,
        keyframes: KeyframeProcess | None = None,
        clock: Callable[[], float] = time.monotonic,
        origin: float | None = None,
    ) -> None:
        if chunk_bytes < 4:  # a chunk must hold a whole UTF-8 character, or _add never ends
            raise ValueError(f"chunk_bytes must be at least 4, not {chunk_bytes}")
        self.log = log
        self.writer = writer
        self.pty = pty
        self.chunk_bytes = chunk_bytes
        self.chunk_ms = chunk_ms
        self.clock = clock
        now = clock()
        self._t0 = now if origin is None else origin
        self._keyframe_settings = (keyframe_cpu_ms, keyframe_bytes, keyframe_queue, keyframe_share)
        self._keyframes = keyframes
        self._buffers: dict[str, _Buffer] = {}
        self._index_id = RecordingIndex.id_for(log.id)
        self._index_version = 0
        self._keyframes_id = RecordingKeyframes.id_for(log.id)
        self._keyframes_version = 0
        self._pending: list[list[object]] = []
        self._pending_keyframes: list[list[int]] = []
        self._recent = b""  # the end of the last terminal output, for the prompt heuristic
        self._hidden = False
        self.closed = False
        self.stats = {"chunks": 0, "bytes": 0, "keyframes": 0, "input_dropped": 0}
        self._worker = self._start_worker(columns, lines) if pty else None
        events: list[DomainEvent] = [
            self._index_event(
                RecordingIndex.Started,
                session_id=str(log.id),
                started_at=time.time() - (now - self._t0),
                pty=pty,
                columns=columns,
                lines=lines,
            )
        ]
        if pty:
            resized = log.event(Session.TerminalResized, offset_ms=0, columns=columns, lines=lines)
            self._pending.append(entry_row(index_entry(resized)))
            events.insert(0, resized)
        writer.submit(events)

    def _start_worker(self, columns: int, lines: int) -> _KeyframeWorker | ProcessKeyframeWorker:
        cpu_ms, max_bytes, depth, share = self._keyframe_settings
        if self._keyframes is not None:
            return self._keyframes.worker(columns, lines, cpu_ms=cpu_ms, max_bytes=max_bytes)
        spacing = KeyframeSpacing(cpu_ms=cpu_ms, max_bytes=max_bytes)
        return _KeyframeWorker(columns, lines, spacing, depth, share)

    # -- the API the proxies call ------------------------------------------------------

    def record(self, stream: str, data: bytes, *, masked: Mapping[str, int] | None = None) -> None:
        """Record ``data`` on ``stream`` as given: masked, secrets already left out."""
        if self.closed or not data:
            return
        self._add(stream, data, masked)

    def output(self, stream: str, data: bytes, *, masked: Mapping[str, int] | None = None) -> None:
        """Record masked ``data`` the agent received on ``stream``."""
        if self.closed or not data:
            return
        self._add(stream, data, masked)
        if stream in TERMINAL_STREAMS:
            if len(data) >= 256:
                self._recent = data[-256:]
            else:
                self._recent = self._recent[len(data) - 256 :] + data
            end = data[-64:]
            if end.rstrip()[-1:] in (b":", b"?"):  # cheap test first: most output is no prompt
                self._hidden = HIDDEN_PROMPT.search(self._recent) is not None
            elif end.strip():
                self._hidden = False

    def input(self, data: bytes) -> None:
        """Record what the agent typed, except while a password prompt waits for it."""
        if self.closed or not data:
            return
        if self._hidden:
            end = min((i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0), default=-1)
            self.stats["input_dropped"] += len(data) if end < 0 else end + 1
            if end < 0:
                return
            self._hidden = False
            self._recent = b""
            data = data[end + 1 :]
            if not data:
                return
        self._add("input", data, None)

    def open_terminal(self, columns: int, lines: int) -> None:
        """A terminal from now on (a PTY channel in a session recorded without one so far):
        keyframes start here, from a blank screen of that size."""
        if self.closed:
            return
        if self._worker is None:
            self.pty = True
            self._worker = self._start_worker(columns, lines)
        self.resize(columns, lines)

    def resize(self, columns: int, lines: int) -> None:
        if self.closed:
            return
        for stream in TERMINAL_STREAMS:
            self._emit(stream, hold=False)
        event = self.log.event(
            Session.TerminalResized, offset_ms=self._now_ms(), columns=columns, lines=lines
        )
        self._pending.append(entry_row(index_entry(event)))
        self.writer.submit([event])
        if self._worker is not None:
            self._worker.offer((event.originator_version, event.offset_ms, [], (columns, lines)))

    def flush(self) -> None:
        """Emit everything buffered (call it when the session goes idle, or at the end)."""
        for stream in list(self._buffers):
            self._emit(stream, hold=False)
        self._drain()

    def close(self, *, wait: float = 0.0) -> None:
        """Flush and write the rest of the index; ``wait`` s for the last keyframes (those
        not rendered by then are given up: the renderer skips what is still queued)."""
        if self.closed:
            return
        self.flush()
        if self._worker is not None:
            self._worker.stop()
            if wait > 0:
                self._worker.join(wait)
            self._worker.abandon()
        self._drain(final=True)
        self.closed = True

    async def aclose(self, *, wait: float | None = None) -> None:
        """``close`` that lets the keyframe renderer finish without blocking trio: up to
        ``wait`` s, by default the renderer's own catch-up time (2 s for a thread, which
        holds the GIL; 10 minutes for the renderer process, which uses spare CPU and may
        have a long busy transfer spilled to disk). Keyframes are emitted as they come,
        so they never pile up in memory; cancelled, it closes at once."""
        if self.closed:
            return
        self.flush()
        worker = self._worker
        try:
            if worker is not None:
                worker.stop()
                limit = worker.catch_up if wait is None else wait
                deadline = trio.current_time() + limit
                while not worker.rendered() and trio.current_time() < deadline:
                    step = min(1.0, deadline - trio.current_time())
                    await trio.to_thread.run_sync(worker.join, step, abandon_on_cancel=True)
                    self._drain()
        finally:
            self.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Emit chunks that are ``chunk_ms`` old even when no more output comes."""
        task_status.started()
        while not self.closed:
            await trio.sleep(self.chunk_ms / 1000)
            now = self._now_ms()
            for stream, buf in list(self._buffers.items()):
                if buf.data and now - buf.start_ms >= self.chunk_ms:
                    self._emit(stream, hold=False)
            self._drain()

    # -- internals ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return round((self.clock() - self._t0) * 1000)

    def _index_event(self, cls: type[DomainEvent], **fields: object) -> DomainEvent:
        self._index_version += 1
        return cls(
            originator_id=self._index_id,
            originator_version=self._index_version,
            at=time.time(),
            actor=self.log.actor,
            **fields,
        )

    def _add(self, stream: str, data: bytes, masked: Mapping[str, int] | None) -> None:
        now = self._now_ms()
        buf = self._buffers.get(stream)
        if buf is None or not buf.data:
            buf = self._buffers[stream] = _Buffer(now)
        elif now - buf.start_ms >= self.chunk_ms:
            self._emit(stream, hold=True)
            buf = self._buffers[stream]
            if not buf.data:
                buf.start_ms = now
        last = buf.marks[-1][1] if buf.marks else 0
        if buf.data and now - buf.start_ms - last >= MARK_MS:
            buf.marks.append([len(buf.data), now - buf.start_ms])
        buf.data += data
        for kind, n in (masked or {}).items():
            buf.masked[kind] = buf.masked.get(kind, 0) + n
        while len(buf.data) >= self.chunk_bytes:
            self._emit(stream, hold=True, limit=self.chunk_bytes)
            buf = self._buffers[stream]
        self._drain()

    def _emit(self, stream: str, *, hold: bool, limit: int | None = None) -> None:
        """Turn the buffer of ``stream`` (its first ``limit`` bytes) into one event."""
        buf = self._buffers.get(stream)
        if buf is None or not buf.data:
            return
        cut = len(buf.data) if limit is None else min(limit, len(buf.data))
        if hold:
            cut -= utf8_tail(bytes(buf.data[max(0, cut - 4) : cut]))
            if cut <= 0:
                return
        chunk = bytes(buf.data[:cut])
        text, encoding = chunk_text(chunk)
        marks = [m for m in buf.marks if m[0] < cut]
        at_cut = [m for m in buf.marks if m[0] <= cut]
        rest = _Buffer(buf.start_ms + (at_cut[-1][1] if at_cut else 0))
        rest.data = buf.data[cut:]
        rest.marks = [
            [o - cut, ms + buf.start_ms - rest.start_ms] for o, ms in buf.marks if o > cut
        ]
        self._buffers[stream] = rest
        event = self.log.event(
            Session.OutputRecorded,
            stream=stream,
            offset_ms=buf.start_ms,
            data=text,
            masked=buf.masked,
            encoding=encoding,
            marks=marks,
        )
        end_ms = buf.start_ms + (marks[-1][1] if marks else 0)
        version = event.originator_version
        self._pending.append([version, stream, buf.start_ms, end_ms, cut])  # as index_entry
        self.stats["chunks"] += 1
        self.stats["bytes"] += cut
        self.writer.submit([event])
        if self._worker is not None and stream in TERMINAL_STREAMS:
            self._worker.offer((version, buf.start_ms, marks, chunk))

    def _drain(self, *, final: bool = False) -> None:
        """Emit finished keyframes and, every INDEX_EVERY chunks or at the end, the index."""
        events: list[DomainEvent] = []
        worker = self._worker
        while worker is not None and worker.done:
            shot = worker.done.popleft()
            self._keyframes_version += 1
            events.append(
                RecordingKeyframes.ScreenKeyframe(
                    originator_id=self._keyframes_id,
                    originator_version=self._keyframes_version,
                    at=time.time(),
                    actor=self.log.actor,
                    after_version=shot.version,
                    offset_ms=shot.offset_ms,
                    position=shot.position,
                    screen=shot.screen,
                    within=shot.within,
                )
            )
            self._pending_keyframes.append(
                [self._keyframes_version, shot.version, shot.offset_ms, shot.position, shot.within]
            )
            self.stats["keyframes"] += 1
        if (self._pending or self._pending_keyframes) and (
            final or len(self._pending) >= INDEX_EVERY
        ):
            events.append(
                self._index_event(
                    RecordingIndex.ChunksIndexed,
                    entries=self._pending,
                    keyframes=self._pending_keyframes,
                )
            )
            self._pending, self._pending_keyframes = [], []
        if events:
            self.writer.submit(events)
