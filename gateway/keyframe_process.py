"""Screen keyframes rendered by a child process, off the data path.

Theory of operation
-------------------
:class:`KeyframeProcess` is the gateway's one keyframe renderer: a child process
(:mod:`gateway.keyframe_child`, started at the first terminal session, again after a
crash) that runs pyte at a lower priority. Each recorded terminal session gets a
:class:`ProcessKeyframeWorker`, the same interface as the recorder's in-thread worker:
``offer`` a chunk or a resize, ``stop``, ``join``; finished keyframes appear in ``done``
for the recorder to emit on its next call, ``lost`` says keyframing stopped for the
session (seeking is then slower, never wrong).

The data path only queues a reference to bytes it already has. A writer thread copies
queued frames into the child's pipe, but only while the gateway is not busy: rendering
beside a busy relay slows the relay, whatever the child's priority (see
``_gateway_busy``). A reader thread hands keyframes to their worker.

Memory stays bounded however long the gateway stays busy: the queue in memory holds at
most ``backlog`` bytes (all sessions together). While the writer waits for a quiet
gateway and more than half of that is queued, it moves the queue, in order, to a spill
file (an unlinked temporary file, at most ``spill_limit`` bytes); once the gateway is
quiet it feeds the child from the spill file first, then from memory, so every session's
frames keep their order. A chunk that fits in neither ends keyframing for its session (a
gap would make every later screen wrong). A long busy transfer records 256 KiB a second
(the SSH budget's refill): in memory alone it filled 32 MiB in about two minutes and lost
its keyframes; the 256 MiB spill file holds about 17 minutes of it. If the child dies,
every session it served loses keyframing and the next terminal session starts a new
child.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

import orjson

from events.recording import Shot
from gateway.keyframe_child import (
    CLOSE,
    CLOSED,
    DATA,
    DROP,
    HEADER,
    KEYFRAME,
    LOST,
    OPEN,
    RESIZE,
    pack_marks,
    read_frame,
)

logger = logging.getLogger("wardgate.keyframes")

BACKLOG = 32 << 20
"""Bytes queued in memory for the child, all sessions together; a chunk past it ends
keyframing for its session."""
SPILL_AT = 0.5
"""Share of ``backlog`` queued in memory from which a waiting writer moves the queue to
the spill file ..."""
SPILL_LIMIT = 256 << 20
"""... which holds at most this many bytes (then the memory queue fills up)."""
BUSY_SHARE = 0.5
"""The gateway counts as busy while it uses more than this share of a core ..."""
PROBE = 0.05
"""... measured over this many seconds; chunks wait in the queue meanwhile ..."""
QUIET_FOR = 0.25
"""... until it has been under that share for this long (a short dip is no pause)."""

_Frame = tuple[bytes, bytes, bytes] | None
"""(header, payload head, payload rest), or None: the writer stops."""


class ProcessKeyframeWorker:
    """One terminal session's keyframes, rendered by the shared child process."""

    def __init__(self, service: KeyframeProcess, sid: int) -> None:
        self.service = service
        self.sid = sid
        self.done: collections.deque[Shot] = collections.deque()
        self.lost = False
        self.finished = threading.Event()
        self._stopped = False

    def offer(self, item: tuple[int, int, list[list[int]], bytes | tuple[int, int]]) -> None:
        """A chunk (session version, start time, timing marks, bytes) or a resize (version,
        time, [], (columns, lines))."""
        if self.lost or self._stopped:
            return
        version, start_ms, marks, payload = item
        if isinstance(payload, tuple):
            self.service.send(RESIZE, self.sid, payload[0], payload[1])
            return
        sent = self.service.send(
            DATA, self.sid, version, start_ms, payload, head=pack_marks(marks), droppable=True
        )
        if not sent:
            self.lose()

    def lose(self) -> None:
        """Keyframing ends here for this session: the child forgets it."""
        if not self.lost:
            self.lost = True
            if not self._stopped:
                self._stopped = True
                self.service.send(DROP, self.sid)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.service.send(CLOSE, self.sid)

    catch_up = 600.0
    """How long a closing session waits for its last keyframes by default (s): the spill
    file's 256 MiB take 2-4 minutes of rendering."""

    def join(self, timeout: float) -> None:
        """Wait until the child rendered everything sent before :meth:`stop`."""
        self.finished.wait(timeout)

    def rendered(self) -> bool:
        """Whether the child rendered everything sent before :meth:`stop` (or gave up)."""
        return self.finished.is_set()

    def abandon(self) -> None:
        """Nobody waits for more keyframes: chunks still queued are not sent to the child."""
        if not self.finished.is_set():
            self.lost = True
            self.service.abandon(self.sid)


class KeyframeProcess:
    """The child process that renders keyframes for every terminal session of a gateway."""

    def __init__(
        self,
        *,
        backlog: int = BACKLOG,
        spill_limit: int = SPILL_LIMIT,
        spill_dir: str | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.backlog = backlog
        self.spill_limit = spill_limit
        self.spill_dir = spill_dir
        self.command = command or [sys.executable, "-m", "gateway.keyframe_child"]
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._queue: queue.SimpleQueue[_Frame] = queue.SimpleQueue()
        self._queued = 0
        self._workers: dict[int, ProcessKeyframeWorker] = {}
        self._abandoned: set[int] = set()
        self._sids = itertools.count(1)
        self._closed = False
        self.starts = 0
        self._mark = (time.monotonic(), time.process_time())
        self._quiet_since: float | None = self._mark[0]
        self.ingest_cpu = 0.0
        """CPU seconds this process spent taking keyframes back (decoding, handing over)."""
        self.spilled = 0
        """Bytes moved to the spill file so far (all children)."""
        self._spill_pending = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def pending(self) -> int:
        """Bytes queued for the child (in memory or spilled) and not yet written to it."""
        return self._queued + self._spill_pending

    def worker(
        self, columns: int, lines: int, *, cpu_ms: float, max_bytes: int
    ) -> ProcessKeyframeWorker:
        """A worker for a new terminal session (starts the child if none runs)."""
        with self._lock:
            worker = ProcessKeyframeWorker(self, next(self._sids))
            if self._closed or not self._ensure_started():
                worker.lost = worker._stopped = True
                worker.finished.set()
                return worker
            self._workers[worker.sid] = worker
        settings = orjson.dumps({"cpu_ms": cpu_ms, "max_bytes": max_bytes})
        self.send(OPEN, worker.sid, columns, lines, settings)
        return worker

    def send(
        self, kind: int, sid: int, a: int = 0, b: int = 0, payload: bytes = b"", *,
        head: bytes = b"", droppable: bool = False,
    ) -> bool:  # fmt: skip
        """Queue a frame (its payload: ``head`` then ``payload``) for the child; False
        (nothing queued) when a ``droppable`` frame would take the queue past ``backlog``.
        Control frames always go."""
        length = len(head) + len(payload)
        with self._lock:
            if self._process is None:
                return False
            size = HEADER.size + length
            if droppable and self._queued + size > self.backlog:
                return False
            self._queued += size
            frames = self._queue
        frames.put((HEADER.pack(kind, sid, a, b, length), head, payload))
        return True

    def abandon(self, sid: int) -> None:
        """Skip the queued chunks of session ``sid`` (its CLOSE still goes)."""
        with self._lock:
            if sid in self._workers:
                self._abandoned.add(sid)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the child: what was queued is rendered first, for up to ``timeout`` s."""
        with self._lock:
            self._closed = True
            process = self._process
        if process is None:
            return
        self._queue.put(None)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # -- internals ---------------------------------------------------------------------

    def _ensure_started(self) -> bool:
        """Called with the lock held."""
        if self._process is not None and self._process.poll() is None:
            return True
        try:
            process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                env={**os.environ, "PYTHONPATH": _package_root()},
            )
        except OSError as exc:
            logger.warning("keyframe renderer not started: %s", exc)
            return False
        self.starts += 1
        self._process = process
        self._queued = 0
        self._queue = queue.SimpleQueue()
        assert process.stdin is not None and process.stdout is not None
        threading.Thread(
            target=self._write, args=(process, process.stdin, self._queue),
            name="wardgate-keyframes-out", daemon=True,
        ).start()  # fmt: skip
        threading.Thread(
            target=self._read, args=(process, process.stdout),
            name="wardgate-keyframes-in", daemon=True,
        ).start()  # fmt: skip
        return True

    def _write(
        self, process: subprocess.Popen[bytes], pipe: IO[bytes], frames: queue.SimpleQueue[_Frame]
    ) -> None:
        fd = pipe.fileno()
        spill = _Spill(self.spill_dir, self.spill_limit)
        try:
            while True:
                spilled = bool(spill)  # older than anything still in memory
                item = spill.pop() if spilled else frames.get()
                self._spill_pending = spill.pending
                if item is None:
                    break
                data = [part for part in item if part]
                header = item[0]
                total = sum(map(len, data))
                if header[0] == DATA:
                    sid = HEADER.unpack(header)[1]
                    while sid not in self._abandoned and not self._closed and self._gateway_busy():
                        self._spill(frames, spill, fd)
                        time.sleep(PROBE)  # rendering now would slow the relay: later
                if header[0] in (DATA, RESIZE) and HEADER.unpack(header)[1] in self._abandoned:
                    data = []
                while data:
                    written = os.writev(fd, data)
                    data = _advance(data, written)
                if not spilled:
                    with self._lock:
                        if self._process is process:
                            self._queued -= total
        except OSError:
            pass  # the child is gone (the reader sees it too), or the spill file failed
        finally:
            spill.close()
            self._spill_pending = 0
            with contextlib.suppress(OSError):
                pipe.close()

    def _spill(self, frames: queue.SimpleQueue[_Frame], spill: _Spill, fd: int) -> None:
        """Move the memory queue, in order, to the spill file while more than SPILL_AT of
        ``backlog`` is queued in memory and the file has room (writer thread only)."""
        while self._queued > self.backlog * SPILL_AT and spill.room():
            try:
                item = frames.get_nowait()
            except queue.Empty:
                return
            size = sum(map(len, item)) if item is not None else 0
            with self._lock:
                self._queued -= size
            try:
                spill.push(item)
            except OSError as exc:  # a full disk: lose this frame's session, not the writer
                logger.warning("keyframe spill file failed, not used any more: %s", exc)
                spill.limit = 0
                assert item is not None
                self._unspilled(item, fd)
                return
            self.spilled += size
            self._spill_pending = spill.pending

    def _unspilled(self, frame: tuple[bytes, bytes, bytes], fd: int) -> None:
        """A frame the spill file refused: its session loses keyframing. Its chunks and
        resizes still queued are skipped (a gap would make later screens wrong); an OPEN,
        CLOSE or DROP goes to the child at once (ahead of the session's skipped frames:
        harmless), so the session still ends."""
        kind, sid = HEADER.unpack(frame[0])[:2]
        with self._lock:
            worker = self._workers.get(sid)
            self._abandoned.add(sid)
        if worker is not None:
            worker.lost = True
        if kind in (OPEN, CLOSE, DROP):
            data = [part for part in frame if part]
            while data:
                data = _advance(data, os.writev(fd, data))

    def _gateway_busy(self) -> bool:
        """Whether this process used more than BUSY_SHARE of a core in a PROBE s window
        during the last QUIET_FOR s.

        Even at the lowest priority the renderer, running beside a busy relay on the other
        core, slowed it: on the SSH benchmark +19% of the gateway's CPU per MB during a 200 MB
        transfer (none when it rendered afterwards), the cores sharing more than the
        scheduler shows. So chunks reach the child only while the gateway is not busy;
        meanwhile they wait in memory, then in the spill file."""
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._mark
        if now - then >= PROBE:
            if (cpu - cpu_then) / (now - then) > BUSY_SHARE:
                self._quiet_since = None
            elif self._quiet_since is None:
                self._quiet_since = now
            self._mark = (now, cpu)
        return self._quiet_since is None or now - self._quiet_since < QUIET_FOR

    def _read(self, process: subprocess.Popen[bytes], pipe: IO[bytes]) -> None:
        try:
            while True:
                got = read_frame(pipe)
                if got is None:
                    break
                kind, sid, a, b, payload = got
                started = time.thread_time()
                with self._lock:
                    worker = self._workers.get(sid)
                    if kind == CLOSED:
                        self._workers.pop(sid, None)
                        self._abandoned.discard(sid)
                if worker is None:
                    continue
                if kind == KEYFRAME:
                    state: dict[str, Any] = orjson.loads(payload)
                    shot = Shot(a, int(state["within"]), b, int(state["position"]), state["screen"])
                    worker.done.append(shot)
                elif kind == LOST:
                    worker.lost = True
                elif kind == CLOSED:
                    worker.finished.set()
                self.ingest_cpu += time.thread_time() - started
        except (OSError, ValueError) as exc:
            logger.warning("keyframe renderer output unreadable: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                pipe.close()
            self._child_gone(process)

    def _child_gone(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self._process is not process:
                return
            orphans = list(self._workers.values())
            self._workers.clear()
            if not self._closed:
                self._queue.put(None)  # ends this child's writer thread
                logger.warning("keyframe renderer exited; terminal sessions lose keyframes")
            self._process = None
        for worker in orphans:
            worker.lost = worker._stopped = True
            worker.finished.set()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            process.wait(1)


class _Spill:
    """Frames waiting for the child on disk, first in first out; used by the writer thread
    alone. An unlinked temporary file, made at the first frame, emptied whenever it is
    drained: its size is what waits, at most about ``limit``. A ``None`` pushed (the writer
    stops) is kept as a flag and popped after every frame before it."""

    def __init__(self, directory: str | None, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self._file: IO[bytes] | None = None
        self._read = self._end = 0
        self._stop = False

    def __bool__(self) -> bool:
        return self._end > self._read or self._stop

    @property
    def pending(self) -> int:
        return self._end - self._read

    def room(self) -> bool:
        return not self._stop and self._end < self.limit

    def push(self, item: _Frame) -> None:
        if item is None:
            self._stop = True
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115 (kept open)
        data = b"".join(item)
        os.pwrite(self._file.fileno(), data, self._end)
        self._end += len(data)

    def pop(self) -> _Frame:
        if self._end == self._read:
            self._stop = False
            return None
        assert self._file is not None
        fd = self._file.fileno()
        header = _pread_exact(fd, HEADER.size, self._read)
        length = HEADER.unpack(header)[4]
        payload = _pread_exact(fd, length, self._read + HEADER.size) if length else b""
        self._read += HEADER.size + length
        if self._read == self._end:  # drained: the disk space goes back
            self._read = self._end = 0
            os.ftruncate(fd, 0)
        return (header, payload, b"")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise OSError(f"spill file cut short at {offset}")
    return data


def _advance(data: list[bytes], written: int) -> list[bytes]:
    """What remains of ``data`` after a write of ``written`` bytes."""
    while data and written >= len(data[0]):
        written -= len(data[0])
        data = data[1:]
    if data and written:
        data = [data[0][written:], *data[1:]]
    return data


def _package_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    existing = os.environ.get("PYTHONPATH")
    return root if not existing else f"{root}{os.pathsep}{existing}"
