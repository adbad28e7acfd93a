"""Framing: splitting at 0xFFFFFF, reassembly, and the hot-path scanner."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mysql.constants import MAX_PACKET_PAYLOAD
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.framing import Deframer, FrameScanner, frame, header_at


def test_small_payload_is_one_packet() -> None:
    data, seq = frame(b"\x03SELECT 1", 0)
    assert data == b"\x09\x00\x00\x00\x03SELECT 1"
    assert seq == 1


def test_sequence_wraps_at_256() -> None:
    data, seq = frame(b"", 255)
    assert data == b"\x00\x00\x00\xff"
    assert seq == 0


def test_payload_of_exactly_max_is_followed_by_empty_packet() -> None:
    payload = b"a" * MAX_PACKET_PAYLOAD
    data, seq = frame(payload, 7)
    assert len(data) == 4 + MAX_PACKET_PAYLOAD + 4
    assert header_at(data, 0) == (MAX_PACKET_PAYLOAD, 7)
    assert header_at(data, 4 + MAX_PACKET_PAYLOAD) == (0, 8)
    assert seq == 9
    d = Deframer()
    d.feed(data)
    assert d.next_payload() == (payload, 7, 8)
    assert d.next_payload() is None


def test_payload_longer_than_max_is_split() -> None:
    payload = bytes(range(256)) * (MAX_PACKET_PAYLOAD // 256 + 2)
    data, seq = frame(payload, 0)
    rest = len(payload) - MAX_PACKET_PAYLOAD
    assert header_at(data, 4 + MAX_PACKET_PAYLOAD) == (rest, 1)
    assert seq == 2
    d = Deframer()
    for i in range(0, len(data), 5_000_000):  # arrives in pieces
        assert d.next_payload() is None or i == 0
        d.feed(data[i : i + 5_000_000])
    assert d.next_payload() == (payload, 0, 1)


def test_deframer_rejects_out_of_order_continuation() -> None:
    data = bytearray(frame(b"a" * MAX_PACKET_PAYLOAD, 0)[0])
    data[-1] = 5  # the empty trailing packet's sequence id
    d = Deframer()
    d.feed(bytes(data))
    with pytest.raises(RemoteProtocolError):
        d.next_payload()


def test_deframer_enforces_size_limit() -> None:
    d = Deframer(max_payload=1000)
    d.feed(frame(b"a" * (MAX_PACKET_PAYLOAD + 10), 0)[0])
    with pytest.raises(RemoteProtocolError):
        d.next_payload()


def test_bytes_needed_reads_exactly_one_packet() -> None:
    d = Deframer()
    assert d.bytes_needed() == 4
    packet = frame(b"x" * 32, 1)[0]
    d.feed(packet[:2])
    assert d.bytes_needed() == 2
    d.feed(packet[2:4])
    assert d.bytes_needed() == 32
    d.feed(packet[4:])
    assert d.next_payload() == (b"x" * 32, 1, 1)
    assert d.bytes_needed() == 4


def test_take_buffered_returns_unread_bytes() -> None:
    d = Deframer()
    d.feed(frame(b"abc", 0)[0] + b"\x16\x03\x01")  # a packet, then the start of a ClientHello
    assert d.next_payload() == (b"abc", 0, 0)
    assert d.take_buffered() == b"\x16\x03\x01"
    assert d.buffered() == 0


def test_scanner_reports_complete_packets_and_tail() -> None:
    stream = frame(b"one", 0)[0] + frame(b"two!", 1)[0] + frame(b"three", 2)[0]
    cut = len(stream) - 2
    scan = FrameScanner().scan(stream[:cut])
    assert scan.starts == [0, 7]
    assert scan.tail == 15
    assert scan.resume_end == 0


def test_scanner_streams_a_packet_larger_than_the_buffer() -> None:
    big = frame(b"r" * 100_000, 3)[0]
    after = frame(b"next", 4)[0]
    stream = big + after
    scanner = FrameScanner()
    forwarded = bytearray()
    first = stream[:1000]
    scan = scanner.scan(first)
    assert scan.starts == []
    assert scan.tail == 0
    upto = scanner.stream_tail(first, scan.tail)
    assert upto == 1000
    forwarded += first[:upto]
    pos = 1000
    boundaries = []
    while pos < len(stream):
        chunk = stream[pos : pos + 30_000]
        pos += len(chunk)
        scan = scanner.scan(chunk)
        boundaries += [pos - len(chunk) + s for s in scan.starts]
        forwarded += chunk[: scan.tail]
        assert scan.tail == len(chunk)
    assert bytes(forwarded) == stream
    assert boundaries == [len(big)]


def test_stream_tail_holds_an_incomplete_header() -> None:
    scanner = FrameScanner()
    assert scanner.stream_tail(b"\x05\x00", 0) == 0
    assert scanner.pending == 0


@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=20),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=200),
)
def test_scanner_finds_every_boundary_whatever_the_reads(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b""
    starts = []
    for i, p in enumerate(payloads):
        starts.append(len(stream))
        stream += frame(p, i)[0]
    scanner = FrameScanner()
    held = b""
    found = []
    consumed = 0  # stream offset of held[0]
    pos = 0
    for size in cuts * 10:
        if pos >= len(stream):
            break
        chunk = stream[pos : pos + size]
        pos += len(chunk)
        buf = held + chunk
        scan = scanner.scan(buf)
        found += [consumed + s for s in scan.starts]
        consumed += scan.tail
        held = buf[scan.tail :]
    if pos >= len(stream):
        assert found == starts
        assert held == b""
