"""ServerSide: login paths (TLS, switch, clear text first), refusals, command phase."""

from __future__ import annotations

import pytest

from gateway.mysql.commands import (
    ComQuery,
    ComStmtExecute,
    ComStmtPrepare,
    ComStmtSendLongData,
    SimpleCommand,
    StatementCommand,
)
from gateway.mysql.connection import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginRequested,
    ServerSide,
    ServerState,
    TLSRequested,
)
from gateway.mysql.constants import (
    GATEWAY_CAPABILITIES,
    AuthPlugin,
    Capability,
    ColumnType,
    Command,
    ErrorCode,
)
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.framing import Deframer, frame
from gateway.mysql.packets import (
    AuthSwitchRequest,
    ColumnDefinition41,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    SSLRequest,
    StmtPrepareOk,
)

CLIENT = (
    (GATEWAY_CAPABILITIES | Capability.CLIENT_LOCAL_FILES)
    & ~Capability.CLIENT_SSL
    & ~Capability.CLIENT_DEPRECATE_EOF
)
TOKEN = b"header.payload.signature"


def server(**kwargs: object) -> ServerSide:
    options: dict[str, object] = {
        "server_version": "5.5.5-10.11.19-MariaDB",
        "connection_id": 42,
        "capabilities": Capability(0xFFFFFFFF),
        "allow_cleartext_without_tls": True,
    }
    options.update(kwargs)
    return ServerSide(**options)  # type: ignore[arg-type]


def packets(data: bytes) -> list[tuple[bytes, int]]:
    d = Deframer()
    d.feed(data)
    out = []
    while (got := d.next_payload()) is not None:
        out.append((got[0], got[1]))
    return out


def login_packet(seq: int, **kwargs: object) -> bytes:
    fields: dict[str, object] = {
        "capabilities": CLIENT,
        "max_packet_size": 1 << 24,
        "character_set": 45,
        "username": "agent",
        "auth_response": b"x" * 20,
        "database": "test",
        "client_plugin_name": AuthPlugin.MYSQL_NATIVE_PASSWORD,
        "attrs": (("_client_name", "pytest"),),
    }
    fields.update(kwargs)
    return frame(HandshakeResponse41(**fields).encode(), seq)[0]  # type: ignore[arg-type]


def logged_in() -> ServerSide:
    srv = server()
    srv.data_to_send()
    srv.receive_data(login_packet(1))
    assert srv.next_event() is NEED_DATA
    srv.receive_data(frame(TOKEN + b"\0", 3)[0])
    event = srv.next_event()
    assert isinstance(event, LoginRequested)
    srv.accept_login()
    srv.data_to_send()
    return srv


def test_handshake_offers_only_what_the_gateway_handles() -> None:
    srv = server()
    [(payload, seq)] = packets(srv.data_to_send())
    assert seq == 0
    hs = HandshakeV10.decode(payload)
    assert hs.server_version == "5.5.5-10.11.19-MariaDB"
    assert hs.connection_id == 42
    assert not hs.capabilities & Capability.CLIENT_LOCAL_FILES
    assert not hs.capabilities & Capability.CLIENT_COMPRESS
    assert not hs.capabilities & Capability.CLIENT_SSL
    assert hs.mariadb_capabilities == 0
    assert len(hs.auth_plugin_data) == 20
    assert b"\0" not in hs.auth_plugin_data
    tls = server(tls_configured=True)
    assert (
        HandshakeV10.decode(packets(tls.data_to_send())[0][0]).capabilities & Capability.CLIENT_SSL
    )


def test_switch_to_clear_password_yields_the_token() -> None:
    srv = server()
    srv.data_to_send()
    assert srv.bytes_needed() == 4
    srv.receive_data(login_packet(1))
    assert srv.next_event() is NEED_DATA
    [(payload, seq)] = packets(srv.data_to_send())
    assert seq == 2
    assert AuthSwitchRequest.decode(payload).plugin_name == AuthPlugin.MYSQL_CLEAR_PASSWORD
    srv.receive_data(frame(TOKEN + b"\0", 3)[0])
    event = srv.next_event()
    assert isinstance(event, LoginRequested)
    assert event.password == TOKEN
    assert event.username == "agent"
    assert event.database == "test"
    assert event.attrs == (("_client_name", "pytest"),)
    assert event.switched
    assert not event.capabilities & Capability.CLIENT_LOCAL_FILES  # never granted
    assert TOKEN.decode() not in repr(event)
    srv.accept_login()
    [(payload, seq)] = packets(srv.data_to_send())
    assert seq == 4
    assert OkPacket.decode(payload, srv.capabilities).header == 0
    assert srv.state is ServerState.COMMAND


def test_clear_password_in_the_first_packet_is_taken() -> None:
    srv = server()
    srv.receive_data(
        login_packet(1, client_plugin_name="mysql_clear_password", auth_response=TOKEN + b"\0")
    )
    event = srv.next_event()
    assert isinstance(event, LoginRequested)
    assert event.password == TOKEN
    assert not event.switched


def test_empty_clear_password_still_gets_one_switch() -> None:
    srv = server()
    srv.data_to_send()
    srv.receive_data(login_packet(1, client_plugin_name="mysql_clear_password", auth_response=b""))
    assert srv.next_event() is NEED_DATA
    assert AuthSwitchRequest.decode(packets(srv.data_to_send())[0][0])
    assert srv.state is ServerState.AWAIT_AUTH_SWITCH


def test_ssl_request_consumes_exactly_its_packet() -> None:
    srv = server(tls_configured=True, allow_cleartext_without_tls=False)
    srv.data_to_send()
    ssl = SSLRequest(
        capabilities=CLIENT | Capability.CLIENT_SSL, max_packet_size=1 << 24, character_set=45
    )
    client_hello = b"\x16\x03\x01\x02\x00\x01"
    srv.receive_data(frame(ssl.encode(), 1)[0] + client_hello)
    event = srv.next_event()
    assert isinstance(event, TLSRequested)
    assert event.trailing_data == client_hello
    assert srv.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        srv.accept_login()
    assert srv.state is ServerState.TLS_PENDING
    srv.tls_started()
    srv.receive_data(login_packet(2, capabilities=CLIENT | Capability.CLIENT_SSL))
    assert srv.next_event() is NEED_DATA
    assert packets(srv.data_to_send())[0][1] == 3
    srv.receive_data(frame(TOKEN + b"\0", 4)[0])
    event = srv.next_event()
    assert isinstance(event, LoginRequested)
    assert event.tls


def test_bytes_needed_stops_at_the_ssl_request() -> None:
    srv = server(tls_configured=True)
    ssl = frame(
        SSLRequest(
            capabilities=CLIENT | Capability.CLIENT_SSL, max_packet_size=0, character_set=45
        ).encode(),
        1,
    )[0]
    srv.receive_data(ssl[:4])
    assert srv.bytes_needed() == 32


def test_plain_text_login_refused_when_tls_is_required() -> None:
    srv = server(tls_configured=True, allow_cleartext_without_tls=False)
    srv.data_to_send()
    srv.receive_data(login_packet(1))
    with pytest.raises(RemoteProtocolError) as err:
        srv.next_event()
    assert err.value.error_code == ErrorCode.ER_ACCESS_DENIED_ERROR
    assert srv.state is ServerState.AWAIT_LOGIN
    srv.send_error_for(err.value)
    [(payload, seq)] = packets(srv.data_to_send())
    assert seq == 2
    assert ErrPacket.decode(payload).sqlstate == b"28000"
    assert srv.state is ServerState.CLOSED


def test_client_that_cannot_switch_is_refused() -> None:
    srv = server()
    srv.receive_data(login_packet(1, capabilities=CLIENT & ~Capability.CLIENT_PLUGIN_AUTH))
    with pytest.raises(RemoteProtocolError) as err:
        srv.next_event()
    assert err.value.error_code == ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE


def test_reject_login() -> None:
    srv = logged_in_pending()
    srv.reject_login("token expired")
    err = ErrPacket.decode(packets(srv.data_to_send())[0][0])
    assert err.error_code == ErrorCode.ER_ACCESS_DENIED_ERROR
    assert err.message == b"token expired"
    assert srv.state is ServerState.CLOSED


def logged_in_pending() -> ServerSide:
    srv = server()
    srv.data_to_send()
    srv.receive_data(login_packet(1))
    srv.next_event()
    srv.data_to_send()
    srv.receive_data(frame(TOKEN, 3)[0])
    assert isinstance(srv.next_event(), LoginRequested)
    return srv


def test_commands_wait_for_the_response() -> None:
    srv = logged_in()
    q1 = frame(ComQuery(query=b"SELECT 1").encode(), 0)[0]
    q2 = frame(ComQuery(query=b"SELECT 2").encode(), 0)[0]
    srv.receive_data(q1 + q2)
    first = srv.next_event()
    assert isinstance(first, CommandReceived)
    assert first.raw == q1
    assert isinstance(first.packet, ComQuery)
    assert first.tracker is not None
    assert srv.next_event() is NEED_DATA  # the client may not pipeline
    srv.send_response(OkPacket())
    assert first.tracker.complete
    [(_, seq)] = packets(srv.data_to_send())
    assert seq == 1
    second = srv.next_event()
    assert isinstance(second, CommandReceived)
    assert second.packet == ComQuery(query=b"SELECT 2")


def test_command_with_nonzero_sequence_is_refused() -> None:
    srv = logged_in()
    srv.receive_data(frame(SimpleCommand(command=Command.COM_PING).encode(), 3)[0])
    with pytest.raises(RemoteProtocolError) as err:
        srv.next_event()
    assert err.value.error_code == ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER
    assert err.value.sqlstate == b"08S01"
    assert srv.state is ServerState.COMMAND
    with pytest.raises(LocalProtocolError):
        srv.send_error_for(err.value)  # no command to answer: the driver's own last ERR
    assert srv.state is ServerState.COMMAND


def test_client_leaving_mid_response_closes() -> None:
    srv = logged_in()
    srv.receive_data(frame(ComQuery(query=b"SELECT SLEEP(10)").encode(), 0)[0])
    assert isinstance(srv.next_event(), CommandReceived)
    srv.receive_data(b"")
    assert srv.next_event() == ConnectionClosed(by_quit=False)


def prepare(srv: ServerSide, statement_id: int, params: int) -> None:
    srv.receive_data(frame(ComStmtPrepare(query=b"SELECT ?").encode(), 0)[0])
    event = srv.next_event()
    assert isinstance(event, CommandReceived)
    assert event.tracker is not None
    col = ColumnDefinition41(name=b"?", column_type=ColumnType.MYSQL_TYPE_LONGLONG).encode()
    response = [StmtPrepareOk(statement_id=statement_id, num_columns=1, num_params=params).encode()]
    response += [col] * params + [EofPacket().encode(srv.capabilities)]
    response += [col, EofPacket().encode(srv.capabilities)]
    for payload in response:
        event.tracker.classify_payload(payload)
    assert event.tracker.complete


def test_prepared_statement_parameters_are_decoded() -> None:
    srv = logged_in()
    prepare(srv, statement_id=5, params=2)
    long_data = ComStmtSendLongData(statement_id=5, param_id=1, data=b"big")
    srv.receive_data(frame(long_data.encode(), 0)[0])
    event = srv.next_event()
    assert isinstance(event, CommandReceived)
    assert event.tracker is None
    assert srv.statements[5].long_data == {1}
    execute = ComStmtExecute(
        statement_id=5,
        param_types=(
            (ColumnType.MYSQL_TYPE_LONGLONG, True),
            (ColumnType.MYSQL_TYPE_BLOB, False),
        ),
        values=(2**64 - 1, None),
    )
    srv.receive_data(frame(execute.encode(long_data_params=frozenset({1})), 0)[0])
    event = srv.next_event()
    assert isinstance(event, CommandReceived)
    assert isinstance(event.packet, ComStmtExecute)
    assert event.packet.values == (2**64 - 1, None)
    srv.send_response(OkPacket())
    assert srv.next_event() is NEED_DATA
    assert srv.statements[5].long_data == set()
    assert srv.statements[5].bound_types == execute.param_types
    # a later execute may omit the types: the bound ones apply
    again = ComStmtExecute(
        statement_id=5, new_params_bound=False, param_types=execute.param_types, values=(7, b"z")
    )
    srv.receive_data(frame(again.encode(), 0)[0])
    event = srv.next_event()
    assert isinstance(event, CommandReceived)
    assert isinstance(event.packet, ComStmtExecute)
    assert event.packet.values == (7, b"z")
    srv.send_response(OkPacket())
    srv.receive_data(
        frame(StatementCommand(command=Command.COM_STMT_CLOSE, statement_id=5).encode(), 0)[0]
    )
    assert isinstance(srv.next_event(), CommandReceived)
    assert 5 not in srv.statements


def test_unknown_statement_is_answered_and_the_connection_survives() -> None:
    srv = logged_in()
    execute = ComStmtExecute(statement_id=99)
    srv.receive_data(frame(execute.encode(), 0)[0])
    event = srv.next_event()
    assert isinstance(event, InvalidCommand)
    assert event.error.error_code == ErrorCode.ER_UNKNOWN_STMT_HANDLER
    srv.send_error_for(event.error)
    [(payload, seq)] = packets(srv.data_to_send())
    assert seq == 1
    assert ErrPacket.decode(payload).error_code == ErrorCode.ER_UNKNOWN_STMT_HANDLER
    srv.receive_data(frame(SimpleCommand(command=Command.COM_PING).encode(), 0)[0])
    assert isinstance(srv.next_event(), CommandReceived)


@pytest.mark.parametrize(
    "payload",
    [
        bytes([Command.COM_BINLOG_DUMP]) + b"\0" * 10,
        b"\x11agent\x00\x00test\x00",  # COM_CHANGE_USER
        b"\x77",
    ],
)
def test_unsupported_commands_are_invalid(payload: bytes) -> None:
    srv = logged_in()
    srv.receive_data(frame(payload, 0)[0])
    event = srv.next_event()
    assert isinstance(event, InvalidCommand)
    assert event.error.error_code == ErrorCode.ER_UNKNOWN_COM_ERROR
    srv.send_error_for(event.error)
    assert srv.next_event() is NEED_DATA
    assert srv.state is ServerState.COMMAND


def test_quit_and_eof_close() -> None:
    srv = logged_in()
    srv.receive_data(frame(b"\x01", 0)[0])
    assert srv.next_event() == ConnectionClosed(by_quit=True)
    srv = logged_in()
    srv.receive_data(b"")
    assert srv.next_event() == ConnectionClosed(by_quit=False)
    assert srv.state is ServerState.CLOSED


def test_send_response_without_a_command_is_local_error() -> None:
    srv = logged_in()
    with pytest.raises(LocalProtocolError):
        srv.send_response(OkPacket())
    assert srv.state is ServerState.COMMAND
