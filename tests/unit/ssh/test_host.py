"""The relay's asyncio-side helpers in gateway.ssh.host that need no SSH peer."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
from asyncssh.packet import String

from gateway.ssh.host import SERVER_CIPHERS, SERVER_MACS, _drop_ignore_packets, _IdleFlush


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


def test_the_real_send_packet_is_wrapped_and_no_cbc_is_offered() -> None:
    _drop_ignore_packets()
    assert getattr(asyncssh.connection.SSHConnection.send_packet, "_wardgate", False)
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
