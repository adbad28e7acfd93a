"""What the sans-IO connection objects hand to their driver from ``next_event()``.

These are protocol events (bytes-level facts), not the domain events of ``events/``. Some carry
secrets (the agent's token arrives as a password): those fields are left out of ``repr`` and
must never be copied into a domain event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from gateway.mysql.commands import CommandPacket
from gateway.mysql.constants import Capability
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.packets import ErrPacket, HandshakeV10, OkPacket, SSLRequest
from gateway.mysql.tracker import ResponseTracker


class _NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _NeedData.NEED_DATA
"""``next_event()`` has nothing more until ``receive_data`` is called with more bytes."""
NeedData = _NeedData


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRequested:
    """The client sent an SSLRequest. Start TLS on the socket, then call ``tls_started()``.

    ``trailing_data`` is anything received after the SSLRequest (the start of the ClientHello):
    empty when the driver read only ``bytes_needed()`` bytes, as it should.
    """

    request: SSLRequest
    trailing_data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRequested:
    """The client's login is complete. Verify ``password`` (the token), then call
    ``accept_login()`` or ``reject_login()``."""

    username: str
    password: bytes = field(repr=False)
    database: str | None
    capabilities: Capability
    character_set: int
    attrs: tuple[tuple[str, str], ...]
    client_plugin_name: str | None
    tls: bool
    switched: bool
    """True when the password came in answer to our auth switch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReceived:
    """A command. ``packet`` is parsed, ``raw`` the exact bytes to forward upstream.

    ``tracker`` follows the response (None when the server sends none): feed it the upstream
    packets while relaying, or answer locally with ``ServerSide.send_response``.
    """

    command: int
    packet: CommandPacket
    raw: bytes = field(repr=False)
    tracker: ResponseTracker | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidCommand:
    """A command that could not be decoded, or whose response the gateway cannot follow
    (``packet`` is then set: COM_CHANGE_USER, replication, ...). Answer it with
    ``send_error_for(event.error)``; the connection stays usable."""

    command: int
    packet: CommandPacket | None
    error: RemoteProtocolError
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The peer sent COM_QUIT or closed the stream."""

    by_quit: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerGreeting:
    """The upstream server's HandshakeV10. Call ``UpstreamSide.login(...)`` next."""

    handshake: HandshakeV10


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSucceeded:
    ok: OkPacket
    capabilities: Capability
    """What both ends agreed: use it for every tracker on this connection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed:
    error: ErrPacket


ServerEvent = TLSRequested | LoginRequested | CommandReceived | InvalidCommand | ConnectionClosed
UpstreamEvent = ServerGreeting | LoginSucceeded | LoginFailed | ConnectionClosed
