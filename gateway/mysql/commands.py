"""Command-phase packets sent by the client (COM_*): frozen dataclasses with decode/encode.

``decode_command(payload, ...)`` dispatches on the first byte. Commands the gateway does not
parse (replication, COM_MULTI, ...) decode as ``OtherCommand`` so the driver can refuse them
with ER_UNKNOWN_COM_ERROR. COM_STMT_EXECUTE needs what PREPARE said about the statement
(parameter count) and the parameter types bound by an earlier execute, so its decoder takes
them; ``StmtExecute.peek_statement_id`` finds the statement first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.mysql.constants import Capability, Command, CursorType, ErrorCode
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.handshake import decode_attrs, encode_attrs
from gateway.mysql.rows import BinaryColumn, BinaryValue, decode_value, encode_value
from gateway.mysql.wire import Buffer, PacketReader, int1, int2, int4, raw, str_null, text

_UNSIGNED_PARAM = 0x80
_STATEMENT_COMMANDS = frozenset(
    {Command.COM_STMT_CLOSE, Command.COM_STMT_RESET, Command.COM_STMT_FETCH}
)


def _expect_command(r: PacketReader, command: Command) -> None:
    got = r.int1()
    if got != command:
        raise RemoteProtocolError(f"expected {command.name}, got command 0x{got:02x}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SimpleCommand:
    """A command with no arguments: COM_QUIT, COM_PING, COM_STATISTICS, COM_RESET_CONNECTION,
    COM_DEBUG, COM_PROCESS_INFO, COM_TIME."""

    command: Command

    def encode(self) -> bytes:
        return int1(self.command)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComQuery:
    query: bytes

    @property
    def sql(self) -> str:
        return text(self.query)

    @classmethod
    def decode(cls, payload: Buffer) -> ComQuery:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_QUERY)
        return cls(query=r.str_eof())

    def encode(self) -> bytes:
        return int1(Command.COM_QUERY) + self.query


@dataclass(frozen=True, slots=True, kw_only=True)
class ComInitDb:
    schema: bytes

    @classmethod
    def decode(cls, payload: Buffer) -> ComInitDb:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_INIT_DB)
        return cls(schema=r.str_eof())

    def encode(self) -> bytes:
        return int1(Command.COM_INIT_DB) + self.schema


@dataclass(frozen=True, slots=True, kw_only=True)
class ComFieldList:
    table: bytes
    wildcard: bytes = b""

    @classmethod
    def decode(cls, payload: Buffer) -> ComFieldList:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_FIELD_LIST)
        table = r.str_null()
        return cls(table=table, wildcard=r.str_eof())

    def encode(self) -> bytes:
        return int1(Command.COM_FIELD_LIST) + str_null(self.table) + self.wildcard


@dataclass(frozen=True, slots=True, kw_only=True)
class ComSetOption:
    option: int

    @classmethod
    def decode(cls, payload: Buffer) -> ComSetOption:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_SET_OPTION)
        option = r.int2()
        r.check_end()
        return cls(option=option)

    def encode(self) -> bytes:
        return int1(Command.COM_SET_OPTION) + int2(self.option)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComProcessKill:
    connection_id: int

    @classmethod
    def decode(cls, payload: Buffer) -> ComProcessKill:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_PROCESS_KILL)
        connection_id = r.int4()
        r.check_end()
        return cls(connection_id=connection_id)

    def encode(self) -> bytes:
        return int1(Command.COM_PROCESS_KILL) + int4(self.connection_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComChangeUser:
    """Layout depends on the capabilities agreed at login. The gateway refuses it (the identity
    is the token), but must read it to say so and to record who was asked for."""

    user: str
    auth_response: bytes = field(default=b"", repr=False)
    database: str = ""
    character_set: int | None = None
    auth_plugin_name: str | None = None
    attrs: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def decode(cls, payload: Buffer, capabilities: Capability) -> ComChangeUser:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_CHANGE_USER)
        user = text(r.str_null())
        if capabilities & Capability.CLIENT_SECURE_CONNECTION:
            auth = r.bytes_fixed(r.int1())
        else:
            auth = r.str_null()
        database = text(r.str_null())
        charset = r.int2() if not r.at_end() else None
        plugin = None
        attrs = None
        if capabilities & Capability.CLIENT_PLUGIN_AUTH and not r.at_end():
            plugin = text(r.str_null())
        if capabilities & Capability.CLIENT_CONNECT_ATTRS and not r.at_end():
            attrs = decode_attrs(r)
        r.check_end()
        return cls(
            user=user,
            auth_response=auth,
            database=database,
            character_set=charset,
            auth_plugin_name=plugin,
            attrs=attrs,
        )

    def encode(self, capabilities: Capability) -> bytes:
        out = [int1(Command.COM_CHANGE_USER), str_null(raw(self.user))]
        if capabilities & Capability.CLIENT_SECURE_CONNECTION:
            out.append(int1(len(self.auth_response)) + self.auth_response)
        else:
            out.append(str_null(self.auth_response))
        out.append(str_null(raw(self.database)))
        if self.character_set is not None:
            out.append(int2(self.character_set))
            if capabilities & Capability.CLIENT_PLUGIN_AUTH and self.auth_plugin_name is not None:
                out.append(str_null(raw(self.auth_plugin_name)))
            if capabilities & Capability.CLIENT_CONNECT_ATTRS and self.attrs is not None:
                out.append(encode_attrs(self.attrs))
        return b"".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComStmtPrepare:
    query: bytes

    @property
    def sql(self) -> str:
        return text(self.query)

    @classmethod
    def decode(cls, payload: Buffer) -> ComStmtPrepare:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_STMT_PREPARE)
        return cls(query=r.str_eof())

    def encode(self) -> bytes:
        return int1(Command.COM_STMT_PREPARE) + self.query


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementCommand:
    """COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH (num_rows only for FETCH)."""

    command: Command
    statement_id: int
    num_rows: int | None = None

    @classmethod
    def decode(cls, payload: Buffer) -> StatementCommand:
        r = PacketReader(payload)
        first = r.int1()
        if first not in _STATEMENT_COMMANDS:
            raise RemoteProtocolError(f"command 0x{first:02x} is not a statement command")
        command = Command(first)
        statement_id = r.int4()
        num_rows = r.int4() if command == Command.COM_STMT_FETCH else None
        r.check_end()
        return cls(command=command, statement_id=statement_id, num_rows=num_rows)

    def encode(self) -> bytes:
        out = int1(self.command) + int4(self.statement_id)
        if self.command == Command.COM_STMT_FETCH:
            out += int4(self.num_rows or 0)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ComStmtSendLongData:
    statement_id: int
    param_id: int
    data: bytes

    @classmethod
    def decode(cls, payload: Buffer) -> ComStmtSendLongData:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_STMT_SEND_LONG_DATA)
        return cls(statement_id=r.int4(), param_id=r.int2(), data=r.str_eof())

    def encode(self) -> bytes:
        head = int1(Command.COM_STMT_SEND_LONG_DATA) + int4(self.statement_id)
        return head + int2(self.param_id) + self.data


@dataclass(frozen=True, slots=True, kw_only=True)
class ComStmtExecute:
    statement_id: int
    flags: CursorType = CursorType.CURSOR_TYPE_NO_CURSOR
    iteration_count: int = 1
    new_params_bound: bool = True
    param_types: tuple[BinaryColumn, ...] = ()
    """(type, unsigned) per parameter: as sent, or as bound by an earlier execute."""
    values: tuple[BinaryValue, ...] = ()
    """None for NULL and for parameters whose data came with COM_STMT_SEND_LONG_DATA."""

    @staticmethod
    def peek_statement_id(payload: Buffer) -> int:
        r = PacketReader(payload)
        _expect_command(r, Command.COM_STMT_EXECUTE)
        return r.int4()

    @classmethod
    def decode(
        cls,
        payload: Buffer,
        *,
        param_count: int,
        bound_types: Sequence[BinaryColumn] | None = None,
        long_data_params: frozenset[int] = frozenset(),
    ) -> ComStmtExecute:
        """``param_count`` from the statement's COM_STMT_PREPARE_OK; ``bound_types`` from the
        last execute that bound types; ``long_data_params`` are the parameters whose values
        arrived by COM_STMT_SEND_LONG_DATA (the server ignores their inline value)."""
        r = PacketReader(payload)
        _expect_command(r, Command.COM_STMT_EXECUTE)
        statement_id = r.int4()
        flags = CursorType(r.int1() & 0x0F)
        iterations = r.int4()
        if param_count == 0:
            r.check_end()
            return cls(statement_id=statement_id, flags=flags, iteration_count=iterations)
        bitmap = r.bytes_fixed((param_count + 7) // 8)
        new_bound = r.int1()
        if new_bound not in (0, 1):
            raise RemoteProtocolError(f"new_params_bound_flag {new_bound}")
        types: tuple[BinaryColumn, ...]
        if new_bound:
            pairs: list[BinaryColumn] = []
            for _ in range(param_count):
                ptype = r.int1()
                pairs.append((ptype, bool(r.int1() & _UNSIGNED_PARAM)))
            types = tuple(pairs)
        elif bound_types is not None and len(bound_types) == param_count:
            types = tuple(bound_types)
        else:
            raise RemoteProtocolError(
                "COM_STMT_EXECUTE without parameter types and none bound before",
                error_code=ErrorCode.ER_MALFORMED_PACKET,
            )
        values: list[BinaryValue] = []
        for i, (ptype, unsigned) in enumerate(types):
            if bitmap[i >> 3] & (1 << (i & 7)) or i in long_data_params:
                values.append(None)
            else:
                values.append(decode_value(r, ptype, unsigned))
        r.check_end()
        return cls(
            statement_id=statement_id,
            flags=flags,
            iteration_count=iterations,
            new_params_bound=bool(new_bound),
            param_types=types,
            values=tuple(values),
        )

    def encode(self, *, long_data_params: frozenset[int] = frozenset()) -> bytes:
        out = [
            int1(Command.COM_STMT_EXECUTE),
            int4(self.statement_id),
            int1(int(self.flags)),
            int4(self.iteration_count),
        ]
        if self.param_types:
            bitmap = bytearray((len(self.param_types) + 7) // 8)
            body: list[bytes] = []
            for i, (value, (ptype, unsigned)) in enumerate(
                zip(self.values, self.param_types, strict=True)
            ):
                if value is None:
                    if i not in long_data_params:
                        bitmap[i >> 3] |= 1 << (i & 7)
                else:
                    body.append(encode_value(value, ptype, unsigned))
            out.append(bytes(bitmap))
            out.append(int1(int(self.new_params_bound)))
            if self.new_params_bound:
                out += [
                    int1(ptype) + int1(_UNSIGNED_PARAM if unsigned else 0)
                    for ptype, unsigned in self.param_types
                ]
            out += body
        return b"".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherCommand:
    """A command the codec does not parse; the driver refuses it."""

    command: int
    payload: bytes = field(repr=False)

    def encode(self) -> bytes:
        return self.payload


CommandPacket = (
    SimpleCommand
    | ComQuery
    | ComInitDb
    | ComFieldList
    | ComSetOption
    | ComProcessKill
    | ComChangeUser
    | ComStmtPrepare
    | StatementCommand
    | ComStmtSendLongData
    | ComStmtExecute
    | OtherCommand
)

_SIMPLE = frozenset(
    {
        Command.COM_QUIT,
        Command.COM_PING,
        Command.COM_STATISTICS,
        Command.COM_RESET_CONNECTION,
        Command.COM_DEBUG,
        Command.COM_PROCESS_INFO,
        Command.COM_TIME,
        Command.COM_SLEEP,
    }
)


def decode_command(
    payload: Buffer,
    capabilities: Capability,
    *,
    param_count: int = 0,
    bound_types: Sequence[BinaryColumn] | None = None,
    long_data_params: frozenset[int] = frozenset(),
) -> CommandPacket:
    """Decode a command. For COM_STMT_EXECUTE pass what is known about the statement."""
    if not payload:
        raise RemoteProtocolError("empty command packet")
    first = payload[0]
    if first in _SIMPLE:
        if len(payload) != 1:
            raise RemoteProtocolError(f"{Command(first).name} with arguments")
        return SimpleCommand(command=Command(first))
    if first == Command.COM_QUERY:
        return ComQuery.decode(payload)
    if first == Command.COM_STMT_EXECUTE:
        return ComStmtExecute.decode(
            payload,
            param_count=param_count,
            bound_types=bound_types,
            long_data_params=long_data_params,
        )
    if first == Command.COM_STMT_PREPARE:
        return ComStmtPrepare.decode(payload)
    if first in (Command.COM_STMT_CLOSE, Command.COM_STMT_RESET, Command.COM_STMT_FETCH):
        return StatementCommand.decode(payload)
    if first == Command.COM_STMT_SEND_LONG_DATA:
        return ComStmtSendLongData.decode(payload)
    if first == Command.COM_INIT_DB:
        return ComInitDb.decode(payload)
    if first == Command.COM_FIELD_LIST:
        return ComFieldList.decode(payload)
    if first == Command.COM_SET_OPTION:
        return ComSetOption.decode(payload)
    if first == Command.COM_PROCESS_KILL:
        return ComProcessKill.decode(payload)
    if first == Command.COM_CHANGE_USER:
        return ComChangeUser.decode(payload, capabilities)
    return OtherCommand(command=first, payload=bytes(payload))
