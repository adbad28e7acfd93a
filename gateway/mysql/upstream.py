"""Connecting to the real MySQL/MariaDB server with vaulted credentials (trio)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import trio

from gateway.mysql.commands import ComQuery
from gateway.mysql.connection import (
    NEED_DATA,
    ConnectionClosed,
    LoginFailed,
    LoginSucceeded,
    ServerGreeting,
    UpstreamSide,
    UpstreamState,
)
from gateway.mysql.constants import Capability
from gateway.mysql.errors import MySQLProtocolError
from gateway.mysql.relay import relay_response
from gateway.mysql.sockets import fast
from gateway.targets import MySQLTarget
from gateway.vault import Credential


class UpstreamError(Exception):
    """The upstream server could not be reached or refused the vaulted login.

    The message is fit for the client: it names the target, never the credentials."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamInfo:
    """What the gateway announces to clients: the real server's version and capabilities."""

    server_version: str
    capabilities: Capability
    character_set: int


@dataclass(slots=True, kw_only=True)
class UpstreamConnection:
    stream: trio.abc.Stream
    side: UpstreamSide
    login: LoginSucceeded | None
    info: UpstreamInfo
    thread_id: int


async def _next(side: UpstreamSide, stream: trio.abc.Stream) -> object:
    while True:
        event = side.next_event()
        out = side.data_to_send()
        if out:
            await stream.send_all(out)
        if event is not NEED_DATA:
            return event
        if side.state is UpstreamState.TLS_PENDING:
            return side.state
        side.receive_data(bytes(await stream.receive_some(65536)))


def _client_tls(target: MySQLTarget) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(target.upstream_ca) if target.upstream_ca else None
    )
    return context


async def connect(
    target: MySQLTarget,
    credential: Credential | None,
    *,
    capabilities: Capability | None = None,
    database: str | None = None,
    character_set: int | None = None,
    attrs: tuple[tuple[str, str], ...] = (),
) -> UpstreamConnection:
    """Open a connection; with ``credential``, log in (else read only the greeting)."""
    host, port = target.upstream
    try:
        with trio.fail_after(target.connect_timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise UpstreamError(
            f"target {target.name} is unreachable ({host}:{port}: {exc or 'timed out'})"
        ) from None
    try:
        with trio.fail_after(target.connect_timeout * 2):
            return await _login(
                target, stream, credential, capabilities, database, character_set, attrs
            )
    except trio.TooSlowError:
        await trio.aclose_forcefully(stream)
        raise UpstreamError(f"target {target.name} did not answer the login in time") from None
    except (OSError, trio.BrokenResourceError, MySQLProtocolError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(stream)
        raise UpstreamError(f"target {target.name}: {exc}") from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise


async def _login(
    target: MySQLTarget,
    stream: trio.abc.Stream,
    credential: Credential | None,
    capabilities: Capability | None,
    database: str | None,
    character_set: int | None,
    attrs: tuple[tuple[str, str], ...],
) -> UpstreamConnection:
    password = credential.secret.reveal().encode() if credential else b""
    side = UpstreamSide(
        username=credential.username if credential else "",
        password=password,
        use_tls=target.upstream_tls,
    )
    greeting = await _next(side, stream)
    if isinstance(greeting, LoginFailed):
        message = greeting.error.message.decode(errors="replace")
        raise UpstreamError(f"target {target.name} refused the connection: {message}")
    if not isinstance(greeting, ServerGreeting):
        raise UpstreamError(f"target {target.name} closed the connection before its greeting")
    hs = greeting.handshake
    info = UpstreamInfo(
        server_version=hs.server_version,
        capabilities=hs.capabilities,
        character_set=hs.character_set,
    )
    if credential is None:
        await trio.aclose_forcefully(stream)
        return UpstreamConnection(
            stream=stream, side=side, login=None, info=info, thread_id=hs.connection_id
        )
    side.login(
        capabilities=capabilities if capabilities is not None else hs.capabilities,
        database=database,
        character_set=character_set,
        attrs=attrs,
    )
    result = await _next(side, stream)
    if result is UpstreamState.TLS_PENDING:
        tls = trio.SSLStream(stream, _client_tls(target), server_hostname=target.upstream[0])
        await tls.do_handshake()
        stream = tls
        side.tls_started()
        result = await _next(side, stream)
    if isinstance(result, LoginFailed):
        code = result.error.error_code
        raise UpstreamError(
            f"target {target.name} refused the gateway's vaulted login (error {code})"
        )
    if isinstance(result, ConnectionClosed) or not isinstance(result, LoginSucceeded):
        raise UpstreamError(f"target {target.name} closed the connection during login")
    return UpstreamConnection(
        stream=fast(stream), side=side, login=result, info=info, thread_id=hs.connection_id
    )


async def kill_query(target: MySQLTarget, credential: Credential, thread_id: int) -> None:
    """``KILL QUERY`` the statement running on ``thread_id`` (the client went away)."""
    conn = await connect(target, credential)
    try:
        tracker = conn.side.start_command(
            ComQuery(query=f"KILL QUERY {int(thread_id)}".encode()).encode()
        )
        await conn.stream.send_all(conn.side.data_to_send())
        await relay_response(conn.stream, _Sink(), tracker)
    finally:
        await trio.aclose_forcefully(conn.stream)


class _Sink(trio.abc.SendStream):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        return None

    async def wait_send_all_might_not_block(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
