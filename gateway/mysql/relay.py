"""Relaying one response from the server to the client (the trio hot path).

Theory of operation
-------------------
Each read from the server is walked with :class:`FrameScanner` (index arithmetic over the
4-byte headers, no copies); the command's :class:`ResponseTracker` classifies each packet.
Bytes are forwarded with one ``send_all`` per read. Only the start of a packet the tracker
must decode whole is held back, and, when a row rewriter is set (masking), a row until it is
complete; a row that needs no change is forwarded as it was. Memory is therefore bounded by
one read plus one row, whatever the size of the result.

A rewriter gets each complete row payload (text or binary protocol, the tracker knows the
columns) and returns a new payload or ``None`` for "unchanged"; rewritten rows are framed
again with their own sequence id (a payload may grow past 16 MiB: then it is split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from gateway.mysql.framing import FrameScanner, frame
from gateway.mysql.tracker import PacketKind, ResponseTracker

RowRewriter = Callable[[ResponseTracker, bytes], bytes | None]

READ_SIZE = 65536


class UpstreamClosed(Exception):
    """The server closed the connection in the middle of a response."""


class RelayAbort(Exception):
    """Raised by a row rewriter: stop forwarding this response, tell the client why.

    The client gets an ERR packet in place of the row; the rest of the server's response is
    read and dropped, so the connection stays in step."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


@dataclass(slots=True)
class RelayResult:
    bytes_in: int = 0
    bytes_out: int = 0
    rows_rewritten: int = 0


def _length(buf: bytes, pos: int) -> int:
    return buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16


class _Rewriter:
    """Rows through ``rewrite``; a row of 16 MiB or more (several packets) is gathered
    across reads and rewritten whole, so nothing of it reaches the client unmasked."""

    def __init__(self, tracker: ResponseTracker, rewrite: RowRewriter, result: RelayResult):
        self.tracker = tracker
        self.rewrite = rewrite
        self.result = result
        self.pending: list[bytes] | None = None
        self.pending_seq = 0
        self.aborted: RelayAbort | None = None

    def _finish(self, payload: bytes, seq: int) -> bytes | None:
        try:
            new = self.rewrite(self.tracker, payload)
        except RelayAbort as abort:
            self.aborted = abort
            err = (
                b"\xff"
                + abort.error_code.to_bytes(2, "little")
                + b"#HY000"
                + abort.message.encode()
            )
            return frame(err, seq)[0]
        if new is None:
            return None
        self.result.rows_rewritten += 1
        framed, _ = frame(new, seq)
        return framed

    def finished(self) -> bool:
        """Whether the rewriter has nothing more to do for this response (it says so with
        a true ``done`` attribute) and holds nothing: the relay may stream on without it."""
        return (
            self.pending is None and self.aborted is None and getattr(self.rewrite, "done", False)
        )

    def feed(self, buf: bytes, starts: list[int]) -> bytes:
        """The bytes to forward for the complete packets at ``starts`` (``buf`` ends there).

        After an abort the response is still followed (classified) but nothing more of it
        is forwarded."""
        out: list[bytes] = []
        last = 0
        classify = self.tracker.classify
        for start in starts:
            if self.aborted is not None:
                classify(buf, start)
                continue
            length = _length(buf, start)
            end = start + 4 + length
            if self.pending is not None:  # the next piece of a big row
                classify(buf, start)
                self.pending.append(buf[start + 4 : end])
                last = end
                if length < 0xFFFFFF:
                    whole = b"".join(self.pending)
                    self.pending = None
                    framed = self._finish(whole, self.pending_seq)
                    out.append(framed if framed is not None else frame(whole, self.pending_seq)[0])
                continue
            if classify(buf, start) is not PacketKind.ROW:
                continue
            if length == 0xFFFFFF:
                out.append(buf[last:start])
                self.pending, self.pending_seq = [buf[start + 4 : end]], buf[start + 3]
                last = end
                continue
            framed = self._finish(buf[start + 4 : end], buf[start + 3])
            if framed is not None:
                out.append(buf[last:start])
                out.append(framed)
                last = end
        if self.aborted is None:
            if last == 0:
                return buf
            out.append(buf[last:])
        return b"".join(out)


class ResponseRelay:
    """The relay of one response, resumable: all its state (scanner, held-back bytes,
    rewriter) lives here, so :meth:`run` may stop at its deadline and be called again.

    Only the wait for server bytes is ever interrupted (cancelling ``receive_some`` loses
    nothing); ``send_all`` to the client is never inside the timed part, because a
    cancelled ``send_all`` leaves an unknown part of the bytes sent.
    """

    __slots__ = ("client", "held", "result", "rewriter", "scanner", "tracker", "upstream")

    def __init__(
        self,
        upstream: trio.abc.ReceiveStream,
        client: trio.abc.SendStream,
        tracker: ResponseTracker,
        *,
        rewrite: RowRewriter | None = None,
    ) -> None:
        self.upstream = upstream
        self.client = client
        self.tracker = tracker
        self.scanner = FrameScanner()
        self.result = RelayResult()
        self.rewriter = _Rewriter(tracker, rewrite, self.result) if rewrite is not None else None
        self.held = b""

    async def run(self, deadline: float | None = None) -> bool:
        """Forward until the response is complete (True), or until ``deadline`` (trio
        clock) passes while waiting for the server (False: call again to go on).

        Raises :class:`UpstreamClosed` if the server goes away mid-response, and whatever
        the client stream raises if the client does.
        """
        tracker, scanner, rewriter, result = self.tracker, self.scanner, self.rewriter, self.result
        upstream = self.upstream
        while not tracker.complete:
            if deadline is None:
                data = bytes(await upstream.receive_some(READ_SIZE))
            else:
                with trio.CancelScope(deadline=deadline):
                    data = bytes(await upstream.receive_some(READ_SIZE))
                    deadline = None  # the response has started: no more time limit
                if deadline is not None:
                    return False
            if not data:
                raise UpstreamClosed("the server closed the connection mid-response")
            result.bytes_in += len(data)
            held = self.held
            buf = held + data if held else data
            scan = scanner.scan(buf)
            cut = scan.tail
            if rewriter is None:
                classify = tracker.classify
                for start in scan.starts:
                    classify(buf, start)
                if cut < len(buf):
                    kind = classify(buf, cut)
                    if kind is not PacketKind.NEED_MORE:
                        cut = scanner.stream_tail(buf, cut)  # a row: stream it as it arrives
                out = buf[:cut]
            else:
                out = rewriter.feed(buf[:cut], scan.starts)
                if rewriter.finished():  # e.g. the rows to record are recorded: stream on
                    rewriter = self.rewriter = None
            self.held = buf[cut:]
            if out:
                await self.client.send_all(out)
                result.bytes_out += len(out)
        if self.held:
            raise UpstreamClosed("the server sent more than the response")  # pragma: no cover
        return True


async def relay_response(
    upstream: trio.abc.ReceiveStream,
    client: trio.abc.SendStream,
    tracker: ResponseTracker,
    *,
    rewrite: RowRewriter | None = None,
) -> RelayResult:
    """Forward the response to the current command until the tracker says it is complete.

    Raises :class:`UpstreamClosed` if the server goes away mid-response, and whatever the
    client stream raises if the client does.
    """
    relay = ResponseRelay(upstream, client, tracker, rewrite=rewrite)
    await relay.run()
    return relay.result
