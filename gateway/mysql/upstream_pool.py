"""Reusing upstream logins between client sessions (per target, bounded, reset on return).

Theory of operation
-------------------
A vaulted upstream login costs a TCP connection, the server's handshake and an
authentication exchange: most of a new session's latency and a fifth of its CPU. When a
client quits cleanly (COM_QUIT, nothing in flight), its upstream connection is not closed
but reset and kept for the next session that logs in the same way:

* the key is what the login fixed and a client can see: the capabilities (response
  formats), the character set and the login database;
* on return the connection gets ``COM_RESET_CONNECTION`` (the server drops the session's
  variables, temporary tables, prepared statements, locks, and rolls back an open
  transaction) and ``COM_INIT_DB`` back to the login database. A reset keeps the current
  database and there is no way back to "none": a session that logged in without one is not
  kept once it ran ``USE``, ``COM_INIT_DB`` or a statement the classifier does not
  understand (the proxy decides that). Any error, or no answer within ``RESET_TIMEOUT``,
  closes the connection instead;
* a kept connection serves again only within ``idle_seconds`` and only if its socket has
  nothing to read (a server that closed it, for its ``wait_timeout`` or a restart, leaves it
  readable); otherwise it is closed and the next one, or a fresh login, is used;
* at most ``size`` connections are kept per target; TLS upstream connections are never
  kept (their stream is not a plain socket).

Every session still has its own ``Session`` stream, identity, decisions and events; only the
upstream socket is shared over time, never at the same time. The upstream user is the
target's vaulted credential in every case, so reuse grants nothing a fresh login would not.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass

import trio

from gateway.mysql.commands import ComInitDb
from gateway.mysql.constants import Command
from gateway.mysql.relay import relay_response
from gateway.mysql.sockets import FastSocketStream
from gateway.mysql.upstream import UpstreamConnection

RESET_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class PoolKey:
    capabilities: int
    character_set: int | None
    database: str


class UpstreamPool:
    def __init__(self, *, size: int = 8, idle_seconds: float = 60.0) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self._idle: list[tuple[PoolKey, float, UpstreamConnection]] = []
        self.reused = 0
        self.returned = 0

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, key: PoolKey) -> UpstreamConnection | None:
        """A kept connection logged in as ``key`` that is still usable, or None."""
        now = time.monotonic()
        for i in range(len(self._idle) - 1, -1, -1):
            kept_key, since, conn = self._idle[i]
            if now - since > self.idle_seconds or not _quiet(conn):
                del self._idle[i]
                _close_now(conn)
                continue
            if kept_key == key:
                del self._idle[i]
                self.reused += 1
                return conn
        return None

    async def give_back(self, key: PoolKey, conn: UpstreamConnection) -> bool:
        """Reset ``conn`` and keep it (True), or close it (False: not poolable, pool full,
        or the reset failed)."""
        if self.size <= 0 or not isinstance(conn.stream, FastSocketStream):
            await trio.aclose_forcefully(conn.stream)
            return False
        ok = False
        with trio.move_on_after(RESET_TIMEOUT):
            ok = await _reset(conn, key.database)
        if not ok:
            await trio.aclose_forcefully(conn.stream)
            return False
        if len(self._idle) >= self.size:
            _, _, oldest = self._idle.pop(0)
            _close_now(oldest)
        self._idle.append((key, time.monotonic(), conn))
        self.returned += 1
        return True

    def close_all(self) -> None:
        while self._idle:
            _close_now(self._idle.pop()[2])


async def _reset(conn: UpstreamConnection, database: str) -> bool:
    side = conn.side
    commands = [bytes([Command.COM_RESET_CONNECTION])]
    if database:
        commands.append(ComInitDb(schema=database.encode()).encode())
    for payload in commands:
        try:
            tracker = side.start_command(payload)
            await conn.stream.send_all(side.data_to_send())
            await relay_response(conn.stream, _DISCARD, tracker)
        except Exception:  # any failure: the connection is not kept
            return False
        if tracker.error is not None:
            return False
    return True


def _quiet(conn: UpstreamConnection) -> bool:
    """An idle upstream socket has nothing to say: readable means closed or broken."""
    stream = conn.stream
    if not isinstance(stream, FastSocketStream):
        return False
    try:
        poller = select.poll()
        poller.register(stream.socket.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _close_now(conn: UpstreamConnection) -> None:
    """Close without a checkpoint (from synchronous code); the server sees the socket end."""
    stream = conn.stream
    if isinstance(stream, FastSocketStream):
        stream.close_now()


class _Discard(trio.abc.SendStream):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        return None

    async def wait_send_all_might_not_block(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


_DISCARD = _Discard()
