"""Connection-phase packets: the greeting, the login (and its SSLRequest prefix), the auth
exchange. Frozen dataclasses with ``decode(payload)`` / ``encode()`` like ``packets.py``, which
re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mysql.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    Capability,
    ErrorCode,
    ServerStatus,
)
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.wire import (
    Buffer,
    PacketReader,
    int1,
    int2,
    int4,
    raw,
    str_lenenc,
    str_null,
    text,
)

_SSL_REQUEST_LENGTH = 32


def decode_attrs(r: PacketReader) -> tuple[tuple[str, str], ...]:
    size = r.int_lenenc()
    if size > r.remaining():
        raise RemoteProtocolError("connection attributes longer than the packet")
    sub = PacketReader(r.buf, r.pos, r.pos + size)
    attrs: list[tuple[str, str]] = []
    while not sub.at_end():
        key = text(sub.str_lenenc())
        attrs.append((key, text(sub.str_lenenc())))
    r.pos += size
    return tuple(attrs)


def encode_attrs(attrs: tuple[tuple[str, str], ...]) -> bytes:
    body = b"".join(str_lenenc(raw(k)) + str_lenenc(raw(v)) for k, v in attrs)
    return str_lenenc(body)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeV10:
    """The server's greeting."""

    protocol_version: int = 10
    server_version: str
    connection_id: int
    auth_plugin_data: bytes
    """The whole nonce (part 1 and part 2 without part 2's trailing NUL)."""
    capabilities: Capability
    character_set: int
    status_flags: ServerStatus
    auth_plugin_name: str = ""
    reserved: bytes = bytes(10)
    """MariaDB keeps its extended capabilities in the last 4 of these bytes."""

    @property
    def mariadb_capabilities(self) -> int:
        if self.capabilities & Capability.CLIENT_LONG_PASSWORD:
            return 0
        return int.from_bytes(self.reserved[6:10], "little")

    @classmethod
    def decode(cls, payload: Buffer) -> HandshakeV10:
        r = PacketReader(payload)
        version = r.int1()
        if version != 10:
            raise RemoteProtocolError(
                f"unsupported handshake protocol version {version}",
                error_code=ErrorCode.ER_HANDSHAKE_ERROR,
            )
        server_version = text(r.str_null())
        connection_id = r.int4()
        part1 = r.bytes_fixed(8)
        r.int1()  # filler
        caps = r.int2()
        charset = 0
        status = 0
        data_len = 0
        reserved = bytes(10)
        part2 = b""
        plugin = ""
        if not r.at_end():
            charset = r.int1()
            status = r.int2()
            caps |= r.int2() << 16
            data_len = r.int1()
            reserved = r.bytes_fixed(10)
            if caps & Capability.CLIENT_SECURE_CONNECTION:
                part2 = r.bytes_fixed(max(13, data_len - 8))
                if part2.endswith(b"\0"):
                    part2 = part2[:-1]
            if caps & Capability.CLIENT_PLUGIN_AUTH:
                rest = r.str_eof()
                # MySQL 5.5.x sends the name without the trailing NUL.
                plugin = text(rest[:-1] if rest.endswith(b"\0") else rest)
        r.check_end()
        return cls(
            protocol_version=version,
            server_version=server_version,
            connection_id=connection_id,
            auth_plugin_data=part1 + part2,
            capabilities=Capability(caps),
            character_set=charset,
            status_flags=ServerStatus(status),
            auth_plugin_name=plugin,
            reserved=reserved,
        )

    def encode(self) -> bytes:
        caps = int(self.capabilities)
        data = self.auth_plugin_data
        out = [
            int1(self.protocol_version),
            str_null(raw(self.server_version)),
            int4(self.connection_id),
            data[:8].ljust(8, b"\0"),
            b"\0",
            int2(caps & 0xFFFF),
            int1(self.character_set),
            int2(int(self.status_flags)),
            int2(caps >> 16),
            int1(len(data) + 1 if caps & Capability.CLIENT_PLUGIN_AUTH else 0),
            self.reserved,
        ]
        if caps & Capability.CLIENT_SECURE_CONNECTION:
            out.append((data[8:] + b"\0").ljust(13, b"\0"))
        if caps & Capability.CLIENT_PLUGIN_AUTH:
            out.append(str_null(raw(self.auth_plugin_name)))
        return b"".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SSLRequest:
    """The truncated HandshakeResponse41 a client sends before switching to TLS."""

    capabilities: Capability
    max_packet_size: int
    character_set: int
    filler: bytes = bytes(23)

    @classmethod
    def decode(cls, payload: Buffer) -> SSLRequest:
        r = PacketReader(payload)
        caps = Capability(r.int4())
        max_packet = r.int4()
        charset = r.int1()
        filler = r.bytes_fixed(23)
        r.check_end()
        if not caps & Capability.CLIENT_SSL:
            raise RemoteProtocolError("SSLRequest without CLIENT_SSL")
        return cls(
            capabilities=caps, max_packet_size=max_packet, character_set=charset, filler=filler
        )

    def encode(self) -> bytes:
        return (
            int4(int(self.capabilities))
            + int4(self.max_packet_size)
            + int1(self.character_set)
            + self.filler
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeResponse41:
    """The client's login packet. Optional trailing fields are None when the client left them out."""

    capabilities: Capability
    max_packet_size: int
    character_set: int
    filler: bytes = bytes(23)
    """MariaDB clients put their extended capabilities in the last 4 bytes."""
    username: str
    auth_response: bytes = field(default=b"", repr=False)
    database: str | None = None
    client_plugin_name: str | None = None
    attrs: tuple[tuple[str, str], ...] | None = None

    @property
    def mariadb_capabilities(self) -> int:
        if self.capabilities & Capability.CLIENT_LONG_PASSWORD:
            return 0
        return int.from_bytes(self.filler[19:23], "little")

    @classmethod
    def decode(cls, payload: Buffer) -> HandshakeResponse41:
        r = PacketReader(payload)
        caps = Capability(r.int4())
        if not caps & Capability.CLIENT_PROTOCOL_41:
            raise RemoteProtocolError(
                "pre-4.1 clients are not supported", error_code=ErrorCode.ER_HANDSHAKE_ERROR
            )
        max_packet = r.int4()
        charset = r.int1()
        filler = r.bytes_fixed(23)
        username = text(r.str_null())
        if caps & Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.str_lenenc()
        elif caps & Capability.CLIENT_SECURE_CONNECTION:
            auth = r.bytes_fixed(r.int1())
        else:
            auth = r.str_null()
        database = None
        plugin = None
        attrs = None
        if caps & Capability.CLIENT_CONNECT_WITH_DB and not r.at_end():
            database = text(r.str_null())
        if caps & Capability.CLIENT_PLUGIN_AUTH and not r.at_end():
            plugin = text(r.str_null())
        if caps & Capability.CLIENT_CONNECT_ATTRS and not r.at_end():
            attrs = decode_attrs(r)
        if caps & Capability.CLIENT_ZSTD_COMPRESSION_ALGORITHM and r.remaining() == 1:
            r.int1()  # compression level; the gateway never grants compression
        r.check_end()
        return cls(
            capabilities=caps,
            max_packet_size=max_packet,
            character_set=charset,
            filler=filler,
            username=username,
            auth_response=auth,
            database=database,
            client_plugin_name=plugin,
            attrs=attrs,
        )

    def encode(self) -> bytes:
        caps = self.capabilities
        out = [
            int4(int(caps)),
            int4(self.max_packet_size),
            int1(self.character_set),
            self.filler,
            str_null(raw(self.username)),
        ]
        if caps & Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out.append(str_lenenc(self.auth_response))
        elif caps & Capability.CLIENT_SECURE_CONNECTION:
            out.append(int1(len(self.auth_response)) + self.auth_response)
        else:
            out.append(str_null(self.auth_response))
        if caps & Capability.CLIENT_CONNECT_WITH_DB and self.database is not None:
            out.append(str_null(raw(self.database)))
        if caps & Capability.CLIENT_PLUGIN_AUTH and self.client_plugin_name is not None:
            out.append(str_null(raw(self.client_plugin_name)))
        if caps & Capability.CLIENT_CONNECT_ATTRS and self.attrs is not None:
            out.append(encode_attrs(self.attrs))
        return b"".join(out)


def decode_login(payload: Buffer) -> SSLRequest | HandshakeResponse41:
    """A client's first packet: an SSLRequest (exactly 32 bytes, CLIENT_SSL) or the login."""
    if len(payload) == _SSL_REQUEST_LENGTH:
        return SSLRequest.decode(payload)
    return HandshakeResponse41.decode(payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSwitchRequest:
    plugin_name: str
    plugin_data: bytes = b""

    @classmethod
    def decode(cls, payload: Buffer) -> AuthSwitchRequest:
        r = PacketReader(payload)
        r.expect(AUTH_SWITCH_HEADER, "AuthSwitchRequest")
        name = text(r.str_null()) if not r.at_end() else ""
        return cls(plugin_name=name, plugin_data=r.str_eof())

    def encode(self) -> bytes:
        return int1(AUTH_SWITCH_HEADER) + str_null(raw(self.plugin_name)) + self.plugin_data


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSwitchResponse:
    data: bytes = field(repr=False)

    @classmethod
    def decode(cls, payload: Buffer) -> AuthSwitchResponse:
        return cls(data=bytes(payload))

    def encode(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMoreData:
    data: bytes

    @classmethod
    def decode(cls, payload: Buffer) -> AuthMoreData:
        r = PacketReader(payload)
        r.expect(AUTH_MORE_DATA_HEADER, "AuthMoreData")
        return cls(data=r.str_eof())

    def encode(self) -> bytes:
        return int1(AUTH_MORE_DATA_HEADER) + self.data
