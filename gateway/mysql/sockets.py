"""A plain TCP stream for the per-query hot path, with less machinery than ``SocketStream``.

Theory of operation
-------------------
``trio.SocketStream`` wraps every call in a conflict detector and a generator-based context
manager that translates socket errors, and ``trio.socket`` adds an async context manager
per call: together about a tenth of the gateway's CPU per audited query. This stream calls
``os.read``/``os.write`` on the non-blocking descriptor directly and waits with ``wait_readable``/``wait_writable``,
keeping trio's contract: every call is a checkpoint (cancellation is noticed before any
I/O, and a cancelled receive consumed nothing), errors become ``BrokenResourceError``, a
closed stream raises ``ClosedResourceError``.

It is used only where one task owns each direction of the connection (the MySQL session
reads and writes its client and its upstream from its own task; a watcher task only reads
the client while the session only writes to it). TLS connections keep ``SSLStream``.
"""

from __future__ import annotations

import os
import socket

import trio
from trio.lowlevel import (
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    wait_readable,
    wait_writable,
)

DEFAULT_RECEIVE = 65536
read, write = os.read, os.write


class FastSocketStream(trio.abc.HalfCloseableStream):
    """A :class:`trio.abc.Stream` over the socket of a connected ``trio.SocketStream``."""

    __slots__ = ("_closed", "_fd", "_shut", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream  # owns the descriptor (trio's socket is non-blocking)
        self._fd = stream.socket.fileno()
        self._closed = False
        self._shut = False

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        await checkpoint_if_cancelled()
        fd = self._fd
        size = max_bytes if max_bytes is not None else DEFAULT_RECEIVE
        while True:
            try:
                data = read(fd, size)
            except BlockingIOError:
                await wait_readable(fd)
                if self._closed:
                    raise trio.ClosedResourceError("the stream is closed") from None
                continue
            except OSError as exc:
                raise _stream_error(exc, self._closed) from exc
            await cancel_shielded_checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._shut:
            raise trio.ClosedResourceError("can't send data after sending EOF")
        await checkpoint_if_cancelled()
        fd = self._fd
        with memoryview(data) as view:
            total, size = 0, len(view)
            while total < size:
                try:
                    total += write(fd, view[total:] if total else view)
                except BlockingIOError:
                    await wait_writable(fd)
                    if self._closed:
                        raise trio.ClosedResourceError("the stream is closed") from None
                except OSError as exc:
                    raise _stream_error(exc, self._closed) from exc
        await cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await wait_writable(self._fd)

    async def send_eof(self) -> None:
        await checkpoint()
        if self._shut or self._closed:
            return
        self._shut = True
        try:
            self.stream.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    def close_now(self) -> None:
        """Close without a checkpoint (for synchronous code in a trio task)."""
        if not self._closed:
            self._closed = True
            self.stream.socket.close()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self.stream.socket.close()  # through trio: wakes any task waiting on it
        await checkpoint()


def _stream_error(
    exc: OSError, closed: bool
) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if closed:
        return trio.ClosedResourceError("the stream is closed")
    return trio.BrokenResourceError(f"{type(exc).__name__}: {exc}")


def fast(stream: trio.abc.Stream) -> trio.abc.Stream:
    """``stream`` on the fast path when it is a plain TCP ``SocketStream``."""
    if isinstance(stream, trio.SocketStream):
        return FastSocketStream(stream)
    return stream
