"""The relay's asyncio-side helpers in gateway.ssh.host that need no SSH peer."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
from asyncssh.packet import String

from gateway.ssh.host import (
    KEEPALIVE_SLACK,
    RECV_SLICE,
    SERVER_CIPHERS,
    SERVER_MACS,
    _coalesce_keepalive_resets,
    _drop_ignore_packets,
    _IdleFlush,
    _skip_unlogged_packet_logs,
    _slice_large_reads,
    tune_asyncssh,
)


class _Connection:
    """Stands in for asyncssh's SSHConnection: records what send_packet was asked to send."""

    def __init__(self, cipher: str) -> None:
        self.cipher = cipher
        self.sent: list[tuple[int, tuple[bytes, ...]]] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.cipher if name == "send_cipher" else default

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        self.sent.append((pkttype, args))


def test_empty_ignore_packets_are_dropped_except_under_cbc() -> None:
    _drop_ignore_packets(_Connection)
    _drop_ignore_packets(_Connection)  # idempotent: wrapped once
    for cipher in ("aes128-ctr", "aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"):
        conn = _Connection(cipher)
        conn.send_packet(MSG_IGNORE, String(b""))
        conn.send_packet(MSG_CHANNEL_DATA, b"\x00\x00\x00\x01", String(b"data"))
        conn.send_packet(MSG_IGNORE, String(b"padding someone chose to send"))
        assert conn.sent == [
            (MSG_CHANNEL_DATA, (b"\x00\x00\x00\x01", String(b"data"))),
            (MSG_IGNORE, (String(b"padding someone chose to send"),)),
        ]
    cbc = _Connection("aes128-cbc")
    cbc.send_packet(MSG_IGNORE, String(b""))
    assert cbc.sent == [(MSG_IGNORE, (String(b""),))]


class _Reader:
    """Stands in for SSHConnection's input side: keeps what data_received was given."""

    def __init__(self, fail_after: int | None = None) -> None:
        self._transport: object | None = object()
        self.inpbuf = b""
        self.pieces: list[int] = []
        self.fail_after = fail_after

    def data_received(self, data: bytes, datatype: Any = None) -> None:
        self.inpbuf += data  # what asyncssh does: bytes += a view of the read
        self.pieces.append(len(data))
        if self.fail_after is not None and len(self.pieces) >= self.fail_after:
            self._transport = None  # asyncssh's _force_close()


def test_large_reads_reach_the_parser_in_pieces_in_order() -> None:
    _slice_large_reads(_Reader)
    data = bytes(range(256)) * 1100  # 281,600 bytes
    reader = _Reader()
    reader.data_received(data)
    assert reader.inpbuf == data and type(reader.inpbuf) is bytes
    assert reader.pieces == [RECV_SLICE] * 4 + [len(data) - 4 * RECV_SLICE]
    small = _Reader()
    small.data_received(b"x" * RECV_SLICE)
    assert small.pieces == [RECV_SLICE]
    closed = _Reader(fail_after=2)  # the connection closed while parsing the second piece
    closed.data_received(data)
    assert closed.pieces == [RECV_SLICE, RECV_SLICE]


class _Timer:
    def __init__(self, when: float) -> None:
        self._when = when

    def when(self) -> float:
        return self._when


class _Loop:
    now = 100.0

    def time(self) -> float:
        return self.now


class _Keepalive:
    def __init__(self, interval: float) -> None:
        self._loop = _Loop()
        self._keepalive_interval = interval
        self._keepalive_timer: _Timer | None = None
        self.resets = 0

    def _reset_keepalive_timer(self) -> None:
        self.resets += 1
        self._keepalive_timer = _Timer(self._loop.now + self._keepalive_interval)


def test_keepalive_timer_is_reset_at_most_once_per_slack() -> None:
    _coalesce_keepalive_resets(_Keepalive)
    conn = _Keepalive(30)
    for step in range(100):  # a read every 50 ms for 5 s
        conn._loop.now = 100 + step * 0.05
        conn._reset_keepalive_timer()
    assert 5 <= conn.resets <= 6
    assert conn._keepalive_timer is not None
    assert conn._keepalive_timer.when() >= conn._loop.now + 30 - KEEPALIVE_SLACK
    off = _Keepalive(0)  # keepalive disabled: asyncssh's own method decides, every time
    off._reset_keepalive_timer()
    off._reset_keepalive_timer()
    assert off.resets == 2


class _Logged:
    class logger:  # stands in for asyncssh's SSHLogger (its debug level is a class attribute)
        _debug_level = 1

    def __init__(self) -> None:
        self.logged: list[tuple[Any, ...]] = []

    def _log_packet(self, *args: Any) -> None:
        self.logged.append(args)


def test_packets_are_described_only_at_debug_level_3() -> None:
    _skip_unlogged_packet_logs(_Logged)
    conn = _Logged()
    conn._log_packet("Sent", MSG_CHANNEL_DATA, 7, b"data", "")
    assert conn.logged == []
    _Logged.logger._debug_level = 3
    conn._log_packet("Sent", MSG_CHANNEL_DATA, 8, b"data", "")
    assert conn.logged == [("Sent", MSG_CHANNEL_DATA, 8, b"data", "")]


def test_the_wrappers_are_installed_on_asyncssh_and_no_cbc_is_offered() -> None:
    tune_asyncssh()
    tune_asyncssh()  # idempotent
    cls = asyncssh.connection.SSHConnection
    for name in ("send_packet", "data_received", "_reset_keepalive_timer"):
        assert getattr(getattr(cls, name), "_wardgate", False), name
    logger_cls = asyncssh.packet.SSHPacketLogger
    assert getattr(logger_cls._log_packet, "_wardgate", False)
    assert "self.logger.packet(" in inspect.getsource(logger_cls._log_packet.__wrapped__)
    assert "if self._debug_level >= 3:" in inspect.getsource(asyncssh.logging.SSHLogger.packet)
    assert asyncssh.logging.SSHLogger._debug_level == 1  # a class attribute, the default
    # What the wrappers rely on in asyncssh's own code.
    source = {
        name: inspect.getsource(getattr(cls, name).__wrapped__)
        for name in ("send_packet", "data_received", "_reset_keepalive_timer")
    }
    assert "self.send_packet(MSG_IGNORE, String(b''))" in source["send_packet"]
    assert "self._inpbuf += data" in source["data_received"]
    assert "self._transport = None" in inspect.getsource(cls._force_close)
    assert "self._keepalive_timer = " in inspect.getsource(cls._set_keepalive_timer)
    assert "self._set_keepalive_timer()" in source["_reset_keepalive_timer"]
    assert not [c for c in SERVER_CIPHERS if c.endswith("-cbc")]
    assert SERVER_MACS[-1] == "hmac-sha2-512"  # the HMAC fallbacks stay after UMAC


class _Tap:
    def __init__(self) -> None:
        self.held = b""
        self.flushed: list[tuple[float, bytes]] = []

    def feed(self, data: bytes) -> bytes:
        self.held += data
        return b""

    def idle(self) -> bytes:
        out, self.held = self.held, b""
        self.flushed.append((asyncio.get_running_loop().time(), out))
        return out

    def idle_delay(self) -> float | None:
        return 0.05 if self.held else None


def test_idle_flush_fires_once_a_delay_after_the_last_chunk() -> None:
    async def run() -> tuple[list[tuple[float, bytes]], list[bytes], float]:
        loop = asyncio.get_running_loop()
        tap, written = _Tap(), []
        idle = _IdleFlush(tap, written.append)
        for i in range(10):  # a chunk every 20 ms: never quiet for 50 ms
            tap.feed(b"%d" % i)
            idle.arm()
            await asyncio.sleep(0.02)
        last = loop.time() - 0.02
        await asyncio.sleep(0.15)
        idle.cancel()
        return tap.flushed, written, last

    flushed, written, last = asyncio.run(run())
    assert [data for _, data in flushed] == [b"0123456789"]
    assert written == [b"0123456789"]
    assert last + 0.045 <= flushed[0][0] <= last + 0.12


def test_idle_flush_does_nothing_once_nothing_is_held_or_cancelled() -> None:
    async def run() -> list[tuple[float, bytes]]:
        tap = _Tap()
        idle = _IdleFlush(tap, None)
        tap.feed(b"x")
        idle.arm()
        tap.held = b""  # released by a later feed: nothing is held any more
        idle.arm()
        await asyncio.sleep(0.1)
        tap.feed(b"y")
        idle.arm()
        idle.cancel()
        await asyncio.sleep(0.1)
        return tap.flushed

    assert asyncio.run(run()) == []
