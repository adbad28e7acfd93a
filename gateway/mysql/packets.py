"""Response packets (OK, ERR, EOF, column definitions, ...): frozen dataclasses with decode/encode.

Every ``decode`` takes one whole logical payload (header stripped, continuations joined) and
either returns the packet, having consumed every byte, or raises ``RemoteProtocolError``.
``encode`` returns the payload; framing (``framing.frame``) adds headers and sequence ids.
Packets whose layout depends on negotiated capabilities take ``capabilities`` in both
directions. Text fields (names, versions) are ``str`` decoded with surrogateescape so any byte
sequence re-encodes to the same bytes.

The connection-phase packets live in ``handshake.py`` and are re-exported here; command
packets (COM_*) live in ``commands.py``; rows in ``rows.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mysql.constants import (
    EOF_HEADER,
    EOF_MAX_PAYLOAD,
    ERR_HEADER,
    LOCAL_INFILE_HEADER,
    OK_HEADER,
    SQLSTATE_MARKER,
    Capability,
    ColumnFlag,
    ColumnType,
    ServerStatus,
    SessionTrackType,
)
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    AuthSwitchResponse,
    HandshakeResponse41,
    HandshakeV10,
    SSLRequest,
    decode_attrs,
    decode_login,
    encode_attrs,
)
from gateway.mysql.wire import (
    Buffer,
    PacketReader,
    int1,
    int2,
    int4,
    int_lenenc,
    str_lenenc,
)

__all__ = [
    "AuthMoreData",
    "AuthSwitchRequest",
    "AuthSwitchResponse",
    "ColumnDefinition41",
    "EofPacket",
    "ErrPacket",
    "HandshakeResponse41",
    "HandshakeV10",
    "LocalInfileRequest",
    "OkPacket",
    "SSLRequest",
    "StmtPrepareOk",
    "decode_attrs",
    "decode_login",
    "encode_attrs",
]

_NO_FLAGS = ColumnFlag(0)


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

    def changed_schema(self) -> bytes | None:
        """The new default database when the server reported one (USE, COM_INIT_DB)."""
        for kind, data in self.session_changes():
            if kind == SessionTrackType.SESSION_TRACK_SCHEMA:
                r = PacketReader(data)
                name = r.str_lenenc()
                r.check_end()
                return name
        return None

    def changed_variables(self) -> dict[bytes, bytes]:
        """System variables the server reported as changed (session_track_system_variables)."""
        changed: dict[bytes, bytes] = {}
        for kind, data in self.session_changes():
            if kind == SessionTrackType.SESSION_TRACK_SYSTEM_VARIABLES:
                r = PacketReader(data)
                name = r.str_lenenc()
                changed[name] = r.str_lenenc()
                r.check_end()
        return changed

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
        r.expect(ERR_HEADER, "ERR")
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
        r.expect(EOF_HEADER, "EOF")
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
        r.expect(LOCAL_INFILE_HEADER, "LOCAL INFILE request")
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
        r.expect(OK_HEADER, "COM_STMT_PREPARE_OK")
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
