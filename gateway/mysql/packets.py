"""Connection-phase and generic response packets: frozen dataclasses with decode/encode.

Every ``decode`` takes one whole logical payload (header stripped, continuations joined) and
either returns the packet, having consumed every byte, or raises ``RemoteProtocolError``.
``encode`` returns the payload; framing (``framing.frame``) adds headers and sequence ids.
Packets whose layout depends on negotiated capabilities take ``capabilities`` in both
directions. Text fields (names, versions) are ``str`` decoded with surrogateescape so any byte
sequence re-encodes to the same bytes.

Command packets (COM_*) live in ``commands.py``; rows in ``rows.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mysql.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    EOF_HEADER,
    EOF_MAX_PAYLOAD,
    ERR_HEADER,
    LOCAL_INFILE_HEADER,
    OK_HEADER,
    SQLSTATE_MARKER,
    Capability,
    ColumnFlag,
    ColumnType,
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
    int_lenenc,
    raw,
    str_lenenc,
    str_null,
    text,
)

_SSL_REQUEST_LENGTH = 32
_NO_FLAGS = ColumnFlag(0)


def _expect_header(r: PacketReader, header: int, name: str) -> None:
    got = r.int1()
    if got != header:
        raise RemoteProtocolError(f"{name}: expected header 0x{header:02x}, got 0x{got:02x}")


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
        _expect_header(r, AUTH_SWITCH_HEADER, "AuthSwitchRequest")
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
        _expect_header(r, AUTH_MORE_DATA_HEADER, "AuthMoreData")
        return cls(data=r.str_eof())

    def encode(self) -> bytes:
        return int1(AUTH_MORE_DATA_HEADER) + self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class OkPacket:
    """OK (header 0x00), or the OK that ends a result set under CLIENT_DEPRECATE_EOF (0xFE)."""

    header: int = OK_HEADER
    affected_rows: int = 0
    last_insert_id: int = 0
    status_flags: ServerStatus = ServerStatus.SERVER_STATUS_AUTOCOMMIT
    warnings: int = 0
    info: bytes | None = b""
    """Human-readable status; None when CLIENT_SESSION_TRACK let the server leave it out."""
    session_state_changes: bytes | None = None
    """Raw session-state information (SERVER_SESSION_STATE_CHANGED); see ``session_changes``."""

    @classmethod
    def decode(cls, payload: Buffer, capabilities: Capability) -> OkPacket:
        r = PacketReader(payload)
        header = r.int1()
        if header not in (OK_HEADER, EOF_HEADER):
            raise RemoteProtocolError(f"OK packet with header 0x{header:02x}")
        affected = r.int_lenenc()
        insert_id = r.int_lenenc()
        status = 0
        warnings = 0
        if capabilities & Capability.CLIENT_PROTOCOL_41:
            status = r.int2()
            warnings = r.int2()
        elif capabilities & Capability.CLIENT_TRANSACTIONS:
            status = r.int2()
        info: bytes | None
        state = None
        if capabilities & Capability.CLIENT_SESSION_TRACK:
            info = r.str_lenenc() if not r.at_end() else None
            if status & ServerStatus.SERVER_SESSION_STATE_CHANGED and not r.at_end():
                state = r.str_lenenc()
        else:
            info = r.str_eof()
        r.check_end()
        return cls(
            header=header,
            affected_rows=affected,
            last_insert_id=insert_id,
            status_flags=ServerStatus(status),
            warnings=warnings,
            info=info,
            session_state_changes=state,
        )

    def encode(self, capabilities: Capability) -> bytes:
        out = [int1(self.header), int_lenenc(self.affected_rows), int_lenenc(self.last_insert_id)]
        if capabilities & Capability.CLIENT_PROTOCOL_41:
            out += [int2(int(self.status_flags)), int2(self.warnings)]
        elif capabilities & Capability.CLIENT_TRANSACTIONS:
            out.append(int2(int(self.status_flags)))
        if capabilities & Capability.CLIENT_SESSION_TRACK:
            if self.info is not None or self.session_state_changes is not None:
                out.append(str_lenenc(self.info or b""))
            if self.session_state_changes is not None:
                out.append(str_lenenc(self.session_state_changes))
        else:
            out.append(self.info or b"")
        return b"".join(out)

    def session_changes(self) -> tuple[tuple[int, bytes], ...]:
        """The session-state changes as (SessionTrackType value, raw data) pairs."""
        if not self.session_state_changes:
            return ()
        r = PacketReader(self.session_state_changes)
        items: list[tuple[int, bytes]] = []
        while not r.at_end():
            kind = r.int1()
            items.append((kind, r.str_lenenc()))
        return tuple(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrPacket:
    error_code: int
    sqlstate: bytes | None = b"HY000"
    """None when the server sent no '#' marker (errors before capabilities are agreed)."""
    message: bytes = b""

    @classmethod
    def decode(cls, payload: Buffer) -> ErrPacket:
        r = PacketReader(payload)
        _expect_header(r, ERR_HEADER, "ERR")
        code = r.int2()
        state = None
        if not r.at_end() and r.peek() == SQLSTATE_MARKER and r.remaining() >= 6:
            r.int1()
            state = r.bytes_fixed(5)
        return cls(error_code=code, sqlstate=state, message=r.str_eof())

    def encode(self) -> bytes:
        marker = b"" if self.sqlstate is None else b"#" + self.sqlstate
        return int1(ERR_HEADER) + int2(self.error_code) + marker + self.message


@dataclass(frozen=True, slots=True, kw_only=True)
class EofPacket:
    warnings: int = 0
    status_flags: ServerStatus = ServerStatus.SERVER_STATUS_AUTOCOMMIT

    @classmethod
    def decode(cls, payload: Buffer, capabilities: Capability) -> EofPacket:
        if len(payload) >= EOF_MAX_PAYLOAD:
            raise RemoteProtocolError("EOF packet too long")
        r = PacketReader(payload)
        _expect_header(r, EOF_HEADER, "EOF")
        warnings = 0
        status = 0
        if capabilities & Capability.CLIENT_PROTOCOL_41:
            warnings = r.int2()
            status = r.int2()
        r.check_end()
        return cls(warnings=warnings, status_flags=ServerStatus(status))

    def encode(self, capabilities: Capability) -> bytes:
        if capabilities & Capability.CLIENT_PROTOCOL_41:
            return int1(EOF_HEADER) + int2(self.warnings) + int2(int(self.status_flags))
        return int1(EOF_HEADER)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnDefinition41:
    catalog: bytes = b"def"
    schema: bytes = b""
    table: bytes = b""
    org_table: bytes = b""
    name: bytes
    org_name: bytes = b""
    extended_metadata: bytes | None = None
    """MariaDB type details (MARIADB_CLIENT_EXTENDED_METADATA only; never offered by us)."""
    fixed_length: int = 0x0C
    character_set: int = 33
    column_length: int = 0
    column_type: ColumnType | int
    flags: ColumnFlag = _NO_FLAGS
    decimals: int = 0
    filler: bytes = b"\0\0"
    default_values: bytes | None = None
    """The column default (COM_FIELD_LIST responses only); None when absent or NULL."""
    has_default_values: bool = False
    """Whether the packet carried the default-values field (0xFB there means NULL)."""

    @classmethod
    def decode(cls, payload: Buffer, *, extended_metadata: bool = False) -> ColumnDefinition41:
        r = PacketReader(payload)
        catalog = r.str_lenenc()
        schema = r.str_lenenc()
        table = r.str_lenenc()
        org_table = r.str_lenenc()
        name = r.str_lenenc()
        org_name = r.str_lenenc()
        extended = r.str_lenenc() if extended_metadata else None
        fixed = r.int_lenenc()
        if fixed < 0x0A:
            raise RemoteProtocolError("column definition with short fixed part")
        stop = r.pos + fixed
        charset = r.int2()
        length = r.int4()
        ctype = r.int1()
        flags = r.int2()
        decimals = r.int1()
        filler = r.bytes_fixed(stop - r.pos)
        has_default = not r.at_end()
        default = r.str_lenenc_or_null() if has_default else None
        r.check_end()
        try:
            column_type: ColumnType | int = ColumnType(ctype)
        except ValueError:
            column_type = ctype
        return cls(
            catalog=catalog,
            schema=schema,
            table=table,
            org_table=org_table,
            name=name,
            org_name=org_name,
            extended_metadata=extended,
            fixed_length=fixed,
            character_set=charset,
            column_length=length,
            column_type=column_type,
            flags=ColumnFlag(flags),
            decimals=decimals,
            filler=filler,
            default_values=default,
            has_default_values=has_default,
        )

    @staticmethod
    def peek_type(payload: Buffer, *, extended_metadata: bool = False) -> tuple[int, int]:
        """(column type, flags) without decoding the rest: what typing binary rows needs."""
        r = PacketReader(payload)
        for _ in range(7 if extended_metadata else 6):
            size = r.int_lenenc()
            r.pos += size
        r.int_lenenc()  # length of the fixed fields
        r.pos += 6  # character set, column length
        column_type = r.int1()
        return column_type, r.int2()

    def encode(self) -> bytes:
        out = b"".join(
            [
                str_lenenc(self.catalog),
                str_lenenc(self.schema),
                str_lenenc(self.table),
                str_lenenc(self.org_table),
                str_lenenc(self.name),
                str_lenenc(self.org_name),
                b"" if self.extended_metadata is None else str_lenenc(self.extended_metadata),
                int_lenenc(self.fixed_length),
                int2(self.character_set),
                int4(self.column_length),
                int1(int(self.column_type)),
                int2(int(self.flags)),
                int1(self.decimals),
                self.filler,
            ]
        )
        if self.has_default_values:
            default = self.default_values
            out += b"\xfb" if default is None else str_lenenc(default)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalInfileRequest:
    """The server asking the client to send a file (LOAD DATA LOCAL INFILE)."""

    filename: bytes

    @classmethod
    def decode(cls, payload: Buffer) -> LocalInfileRequest:
        r = PacketReader(payload)
        _expect_header(r, LOCAL_INFILE_HEADER, "LOCAL INFILE request")
        return cls(filename=r.str_eof())

    def encode(self) -> bytes:
        return int1(LOCAL_INFILE_HEADER) + self.filename


@dataclass(frozen=True, slots=True, kw_only=True)
class StmtPrepareOk:
    """COM_STMT_PREPARE_OK, followed by param and column definitions."""

    statement_id: int
    num_columns: int
    num_params: int
    warning_count: int = 0
    reserved: int = 0

    @classmethod
    def decode(cls, payload: Buffer) -> StmtPrepareOk:
        r = PacketReader(payload)
        _expect_header(r, OK_HEADER, "COM_STMT_PREPARE_OK")
        statement_id = r.int4()
        columns = r.int2()
        params = r.int2()
        reserved = r.int1()
        warnings = r.int2() if not r.at_end() else 0
        r.check_end()
        return cls(
            statement_id=statement_id,
            num_columns=columns,
            num_params=params,
            warning_count=warnings,
            reserved=reserved,
        )

    def encode(self) -> bytes:
        return (
            int1(OK_HEADER)
            + int4(self.statement_id)
            + int2(self.num_columns)
            + int2(self.num_params)
            + int1(self.reserved)
            + int2(self.warning_count)
        )
