"""Packet framing: 4-byte headers (3-byte little-endian payload length, 1-byte sequence id).

Theory of operation
-------------------
A logical payload of N bytes travels as ``N // 0xFFFFFF`` full packets of 0xFFFFFF bytes plus
one final packet of ``N % 0xFFFFFF`` bytes, which is empty when N is a multiple of 0xFFFFFF: a
packet shorter than 0xFFFFFF ends the payload. Every packet, also a continuation, takes the
next sequence id (mod 256).

Three tools, for three kinds of caller:

* ``frame(payload, seq)`` builds (and splits) packets for payloads the codec encodes itself.
* ``Deframer`` accumulates received bytes and returns whole logical payloads; the handshake and
  command parsers use it (these packets are small and must be decoded anyway).
* ``FrameScanner`` is the relay's hot path. Given each receive buffer it walks headers with index
  arithmetic and reports where complete packets start and where the incomplete tail begins,
  without slicing or copying payloads. A packet the relay chooses to pass through without
  decoding (a row) may be forwarded while still incomplete: ``stream_tail`` records how many of
  its bytes are still to come, and the next ``scan`` reports them as ``resume_end`` before the
  first new header. Memory stays bounded whatever the row size.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.mysql.constants import HEADER_SIZE, MAX_PACKET_PAYLOAD, ErrorCode
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.wire import Buffer


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """Packets carrying ``payload`` starting at sequence id ``seq``; returns them and the next id."""
    size = len(payload)
    if size < MAX_PACKET_PAYLOAD:
        return size.to_bytes(3, "little") + bytes((seq & 0xFF,)) + payload, (seq + 1) & 0xFF
    parts: list[bytes] = []
    pos = 0
    while True:
        chunk = payload[pos : pos + MAX_PACKET_PAYLOAD]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq & 0xFF,)))
        parts.append(chunk)
        seq = (seq + 1) & 0xFF
        pos += MAX_PACKET_PAYLOAD
        if len(chunk) < MAX_PACKET_PAYLOAD:
            return b"".join(parts), seq


def header_at(buf: Buffer, pos: int) -> tuple[int, int]:
    """(payload length, sequence id) of the header at ``pos``; the caller knows it is complete."""
    return buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16, buf[pos + 3]


class Deframer:
    """Reassembles logical payloads (joining 0xFFFFFF continuations) from a byte stream."""

    __slots__ = ("_buf", "_pos", "max_payload")

    def __init__(self, *, max_payload: int = 1 << 30) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_payload = max_payload

    def feed(self, data: Buffer) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def buffered(self) -> int:
        """Bytes received and not yet returned as payloads."""
        return len(self._buf) - self._pos

    def take_buffered(self) -> bytes:
        """Remove and return every byte not yet returned (e.g. a TLS ClientHello read too early)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    def bytes_needed(self) -> int:
        """How many more bytes complete the next logical payload's next packet (>= 1).

        During the handshake a driver reads at most this many bytes so it never swallows the
        TLS ClientHello that follows an SSLRequest.
        """
        buf = self._buf
        pos = self._pos
        while True:
            have = len(buf) - pos
            if have < HEADER_SIZE:
                return HEADER_SIZE - have
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if have < HEADER_SIZE + length:
                return HEADER_SIZE + length - have
            if length < MAX_PACKET_PAYLOAD:
                return 1  # a whole payload is already buffered
            pos += HEADER_SIZE + length

    def next_payload(self) -> tuple[bytes, int, int] | None:
        """(payload, first sequence id, last sequence id) of the next whole payload, or None."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if end - pos < HEADER_SIZE:
            return None
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        first_seq = buf[pos + 3]
        if length < MAX_PACKET_PAYLOAD:
            stop = pos + HEADER_SIZE + length
            if stop > end:
                return None
            self._pos = stop
            return bytes(buf[pos + HEADER_SIZE : stop]), first_seq, first_seq
        parts: list[bytes] = []
        seq = first_seq
        total = 0
        while True:
            if end - pos < HEADER_SIZE:
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            seq_here = buf[pos + 3]
            if parts and seq_here != (seq + 1) & 0xFF:
                raise RemoteProtocolError(
                    "continuation packet out of order",
                    error_code=ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER,
                )
            seq = seq_here
            stop = pos + HEADER_SIZE + length
            if stop > end:
                return None
            total += length
            if total > self.max_payload:
                raise RemoteProtocolError(
                    "payload larger than allowed", error_code=ErrorCode.ER_NET_PACKET_TOO_LARGE
                )
            parts.append(bytes(buf[pos + HEADER_SIZE : stop]))
            pos = stop
            if length < MAX_PACKET_PAYLOAD:
                self._pos = pos
                return b"".join(parts), first_seq, seq


class Scan(NamedTuple):
    """What one receive buffer holds, as offsets into it (a tuple: one per read, hot path)."""

    resume_end: int
    """Bytes ``[start:resume_end]`` finish a packet being streamed from an earlier buffer."""
    starts: list[int]
    """Header offsets of the packets that are complete in this buffer, in order."""
    tail: int
    """Offset of the first incomplete packet (``len(buf)`` if none): hold or stream from here."""


class FrameScanner:
    """Hot-path header walker for a relay; keeps only the count of a streamed packet's bytes."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = 0
        """Payload bytes of a streamed packet that have not arrived yet."""

    def scan(self, buf: Buffer, start: int = 0) -> Scan:
        end = len(buf)
        pos = start
        pending = self.pending
        if pending:
            if end - pos <= pending:
                self.pending = pending - (end - pos)
                return Scan(end, [], end)
            pos += pending
            self.pending = 0
        resume_end = pos
        starts: list[int] = []
        while end - pos >= HEADER_SIZE:
            stop = pos + HEADER_SIZE + (buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16)
            if stop > end:
                break
            starts.append(pos)
            pos = stop
        return Scan(resume_end, starts, pos)

    def stream_tail(self, buf: Buffer, tail: int) -> int:
        """Let the incomplete packet at ``tail`` be forwarded as it arrives.

        Returns the offset up to which the buffer may be forwarded now: ``len(buf)`` when the
        header is complete (the rest of the packet will show up as ``resume_end`` in later
        scans), or ``tail`` when not even the header has arrived (hold those bytes back).
        """
        end = len(buf)
        if end - tail < HEADER_SIZE:
            return tail
        length = buf[tail] | buf[tail + 1] << 8 | buf[tail + 2] << 16
        self.pending = tail + HEADER_SIZE + length - end
        return end


class PacketEndpoint:
    """Byte plumbing shared by the two sans-IO connection objects: received bytes go to a
    deframer, payloads to send are framed with the running sequence id."""

    def __init__(self, *, max_payload: int) -> None:
        self._deframer = Deframer(max_payload=max_payload)
        self._eof = False
        self._out = bytearray()
        self._seq = 0

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means the peer closed the stream."""
        if not data:
            self._eof = True
        else:
            self._deframer.feed(data)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _queue(self, payload: bytes) -> None:
        data, self._seq = frame(payload, self._seq)
        self._out += data
