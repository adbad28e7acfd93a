"""Golden bytes: captures of real clients talking to the real MariaDB, decoded and re-encoded."""

from __future__ import annotations

import pytest

from gateway.mysql.auth import scramble_native_password
from gateway.mysql.commands import ComQuery, ComStmtExecute, ComStmtPrepare, decode_command
from gateway.mysql.constants import AuthPlugin, Capability, ColumnType, MariaDBCapability
from gateway.mysql.packets import (
    AuthSwitchRequest,
    ColumnDefinition41,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    OkPacket,
    StmtPrepareOk,
)
from gateway.mysql.rows import (
    MySQLDateTime,
    MySQLTime,
    decode_binary_row,
    decode_text_row,
    encode_binary_row,
    encode_text_row,
)
from gateway.mysql.tracker import PacketKind
from gateway.mysql.wire import PacketReader, int_lenenc
from tests.protocol.mysql.conversation import Conversation, Exchange, replay

CAPTURES = [
    "pymysql_session",
    "pymysql_multi",
    "connector_prepared_rows",
    "connector_prepared_params",
    "mysql_cli",
]
PASSWORD = b"native-pw"


def roundtrip(exchange: Exchange, conv: Conversation) -> None:
    """Every packet of a response decodes and re-encodes to the same bytes."""
    caps = conv.capabilities
    ext = bool(conv.mariadb_capabilities & MariaDBCapability.MARIADB_CLIENT_EXTENDED_METADATA)
    columns: list[ColumnDefinition41] = []
    for kind, payload, _seq in exchange.packets:
        if kind is PacketKind.OK:
            assert OkPacket.decode(payload, caps).encode(caps) == payload
        elif kind is PacketKind.ERR:
            assert ErrPacket.decode(payload).encode() == payload
        elif kind in (PacketKind.EOF, PacketKind.INTERMEDIATE_EOF):
            assert EofPacket.decode(payload, caps).encode(caps) == payload
        elif kind is PacketKind.COLUMN_COUNT:
            columns = []
            r = PacketReader(payload)
            count = int_lenenc(r.int_lenenc())
            assert count + r.str_eof() == payload  # MariaDB's metadata-follows byte, if any
        elif kind in (PacketKind.COLUMN_DEFINITION, PacketKind.PARAM_DEFINITION):
            column = ColumnDefinition41.decode(payload, extended_metadata=ext)
            assert column.encode() == payload
            if kind is PacketKind.COLUMN_DEFINITION:
                columns.append(column)
        elif kind is PacketKind.PREPARE_OK:
            assert StmtPrepareOk.decode(payload).encode() == payload
        elif kind is PacketKind.ROW:
            if exchange.tracker.binary:
                types = [(int(c.column_type), bool(c.flags & 32)) for c in columns]
                assert encode_binary_row(decode_binary_row(payload, types), types) == payload
            else:
                assert encode_text_row(decode_text_row(payload, len(columns))) == payload
        else:
            pytest.fail(f"unexpected {kind!r}")


@pytest.mark.parametrize("name", CAPTURES)
def test_login_packets_roundtrip(name: str) -> None:
    conv = replay(name)
    hs = conv.handshake
    assert hs.encode() == conv.handshake_payload
    assert hs.server_version.startswith("5.5.5-10.11")
    assert hs.auth_plugin_name == AuthPlugin.MYSQL_NATIVE_PASSWORD
    assert len(hs.auth_plugin_data) == 20
    assert conv.login.encode() == conv.login_payload
    assert conv.login.username == "wg_native"
    assert conv.login.database == "test"
    assert conv.capabilities & Capability.CLIENT_PROTOCOL_41
    # the last packet of the login is the server's OK
    ok_payload = conv.login_server_packets[-1][0]
    assert OkPacket.decode(ok_payload, conv.capabilities).encode(conv.capabilities) == ok_payload


@pytest.mark.parametrize("name", ["pymysql_session", "pymysql_multi", "mysql_cli"])
def test_native_password_scramble_matches_real_clients(name: str) -> None:
    conv = replay(name)
    assert conv.login.client_plugin_name == AuthPlugin.MYSQL_NATIVE_PASSWORD
    expected = scramble_native_password(PASSWORD, conv.handshake.auth_plugin_data)
    assert conv.login.auth_response == expected


def test_connector_auth_switch_from_caching_sha2() -> None:
    """mysql-connector starts with caching_sha2_password; MariaDB switches it to native."""
    conv = replay("connector_prepared_params")
    assert conv.login.client_plugin_name == AuthPlugin.CACHING_SHA2_PASSWORD
    switch_payload = conv.login_server_packets[0][0]
    switch = AuthSwitchRequest.decode(switch_payload)
    assert switch.encode() == switch_payload
    assert switch.plugin_name == AuthPlugin.MYSQL_NATIVE_PASSWORD
    answer = conv.login_client_packets[0][0]
    assert answer == scramble_native_password(PASSWORD, switch.plugin_data)


@pytest.mark.parametrize("name", CAPTURES)
def test_every_response_packet_roundtrips(name: str) -> None:
    conv = replay(name)
    assert conv.exchanges
    params: dict[int, int] = {}
    for exchange in conv.exchanges:
        assert exchange.tracker.complete
        roundtrip(exchange, conv)
        if exchange.tracker.prepare_ok is not None:
            ok = exchange.tracker.prepare_ok
            params[ok.statement_id] = ok.num_params
        count = 0
        if exchange.command[0] == 0x17:
            count = params[ComStmtExecute.peek_statement_id(exchange.command)]
        command = decode_command(exchange.command, conv.capabilities, param_count=count)
        assert command.encode() == exchange.command  # type: ignore[call-arg]


def test_pymysql_session_results() -> None:
    conv = replay("pymysql_session")
    queries = [ComQuery.decode(e.command).sql for e in conv.exchanges]
    select = conv.exchanges[queries.index("SELECT * FROM wg_types ORDER BY id")]
    assert select.tracker.rows == 3
    assert [c.name for c in select.tracker.columns][:3] == [b"id", b"tiny", b"small"]
    assert len(select.tracker.columns) == 21
    first_row = next(p for k, p, _ in select.packets if k is PacketKind.ROW)
    values = decode_text_row(first_row, 21)
    assert values[:3] == [b"1", b"-128", b"65535"]
    assert values[13] == b"alice@example.com"
    assert values[20] is None
    error = conv.exchanges[queries.index("SELECT * FROM no_such_table")]
    assert error.tracker.error is not None
    assert error.tracker.error.error_code == 1146
    assert error.tracker.error.sqlstate == b"42S02"
    update = conv.exchanges[queries.index("UPDATE wg_types SET nul = nul WHERE id = 1")]
    assert update.tracker.error is None
    assert update.packets[0][0] is PacketKind.OK


def test_multi_statement_and_call_results() -> None:
    conv = replay("pymysql_multi")
    multi = next(e for e in conv.exchanges if e.command.startswith(b"\x03SELECT 1 AS a;"))
    assert multi.tracker.result_sets == 2
    assert multi.tracker.rows == 2
    assert multi.packets[-1][0] is PacketKind.OK  # DO 1
    call = next(e for e in conv.exchanges if e.command == b"\x03CALL wg_proc()")
    assert call.tracker.result_sets == 2
    assert call.tracker.rows == 3
    assert call.packets[-1][0] is PacketKind.OK  # the CALL's own status


def test_prepared_statement_binary_rows() -> None:
    conv = replay("connector_prepared_rows")
    prepare = next(e for e in conv.exchanges if e.command[0] == 0x16)
    assert ComStmtPrepare.decode(prepare.command).sql.startswith("SELECT id, tiny")
    ok = prepare.tracker.prepare_ok
    assert ok is not None
    assert ok.num_params == 2
    assert ok.num_columns == 21
    execute = next(e for e in conv.exchanges if e.command[0] == 0x17)
    packet = ComStmtExecute.decode(execute.command, param_count=2)
    assert packet.encode() == execute.command
    assert packet.values == (1, b"zz")
    assert execute.tracker.rows == 3
    types = execute.tracker.binary_row_columns()
    assert types[0] == (ColumnType.MYSQL_TYPE_LONG, False)
    rows = [decode_binary_row(p, types) for k, p, _ in execute.packets if k is PacketKind.ROW]
    names = [c.name.decode() for c in execute.tracker.columns]
    row1 = dict(zip(names, rows[0], strict=True))
    assert row1["tiny"] == -128
    assert row1["small"] == 65535
    assert row1["med"] == -8388608
    assert row1["big"] == -(2**63)
    assert row1["fl"] == 1.5
    assert row1["db"] == -2.25
    assert row1["dec1"] == b"-1234567.891"
    assert row1["d"] == MySQLDateTime(year=2024, month=2, day=29, length=4)
    assert row1["dt"] == MySQLDateTime(
        year=2024, month=2, day=29, hour=13, minute=14, second=15, microsecond=123456, length=11
    )
    assert row1["t"] == MySQLTime(
        negative=True, days=34, hour=22, minute=59, second=58, microsecond=999000, length=12
    )
    assert row1["y"] == 2024
    assert row1["vc"] == b"alice@example.com"
    assert row1["bits"] == b"\xaa"
    assert row1["nul"] is None
    row3 = dict(zip(names, rows[2], strict=True))
    assert row3["vc"] == b"Bob 555-0100"
    assert sum(v is None for v in row3.values()) == 19


def test_prepared_statement_parameters() -> None:
    conv = replay("connector_prepared_params")
    executes = [e for e in conv.exchanges if e.command[0] == 0x17]
    first = ComStmtExecute.decode(executes[0].command, param_count=9)
    assert first.encode() == executes[0].command
    assert first.values[0] == -7
    assert first.values[2] == "héllo".encode()
    assert first.values[3] == b"\x00\x01"
    assert first.values[8] is None
    second_prepare = [e for e in conv.exchanges if e.command[0] == 0x16][1]
    assert second_prepare.tracker.prepare_ok is not None
    second = ComStmtExecute.decode(executes[1].command, param_count=2)
    assert second.values[1] == b"second execute"
    assert executes[0].tracker.rows == 1


def test_login_without_optional_fields_roundtrips() -> None:
    login = HandshakeResponse41(
        capabilities=Capability.CLIENT_PROTOCOL_41 | Capability.CLIENT_SECURE_CONNECTION,
        max_packet_size=1 << 24,
        character_set=45,
        username="u",
        auth_response=b"x" * 20,
    )
    assert HandshakeResponse41.decode(login.encode()) == login
