"""Property tests: random, mutated and byte-at-a-time input.

Every decoder and state machine either parses or raises the codec's own MySQLProtocolError;
never IndexError, struct.error, ValueError or UnicodeDecodeError. Feeding valid traffic in any
chunking gives the same result as feeding it whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mysql.commands import decode_command
from gateway.mysql.connection import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginRequested,
    ServerSide,
    UpstreamSide,
)
from gateway.mysql.constants import GATEWAY_CAPABILITIES, Capability, ColumnType, Command
from gateway.mysql.errors import MySQLProtocolError
from gateway.mysql.framing import Deframer, frame
from gateway.mysql.packets import (
    AuthMoreData,
    AuthSwitchRequest,
    ColumnDefinition41,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    LocalInfileRequest,
    OkPacket,
    StmtPrepareOk,
    decode_login,
)
from gateway.mysql.rows import decode_binary_row, decode_text_row
from gateway.mysql.tracker import PacketKind, ResponseTracker
from tests.protocol.mysql.capture import stream
from tests.protocol.mysql.conversation import payloads, replay
from tests.protocol.mysql.relay import ResponseRelay
from tests.protocol.mysql.test_golden import CAPTURES

CAPS = GATEWAY_CAPABILITIES
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: dict[str, Callable[[bytes], object]] = {
    "HandshakeV10": HandshakeV10.decode,
    "HandshakeResponse41": HandshakeResponse41.decode,
    "login": decode_login,
    "OK": lambda p: OkPacket.decode(p, CAPS),
    "OK-old": lambda p: OkPacket.decode(p, Capability.CLIENT_PROTOCOL_41),
    "ERR": ErrPacket.decode,
    "EOF": lambda p: EofPacket.decode(p, CAPS),
    "ColumnDefinition41": ColumnDefinition41.decode,
    "ColumnDefinition41-ext": lambda p: ColumnDefinition41.decode(p, extended_metadata=True),
    "StmtPrepareOk": StmtPrepareOk.decode,
    "AuthSwitchRequest": AuthSwitchRequest.decode,
    "AuthMoreData": AuthMoreData.decode,
    "LocalInfileRequest": LocalInfileRequest.decode,
    "command": lambda p: decode_command(p, CAPS, param_count=3),
    "text row": lambda p: decode_text_row(p, 3),
    "binary row": lambda p: decode_binary_row(
        p,
        [
            (ColumnType.MYSQL_TYPE_DATETIME, False),
            (ColumnType.MYSQL_TYPE_TIME, False),
            (ColumnType.MYSQL_TYPE_VAR_STRING, False),
            (ColumnType.MYSQL_TYPE_DOUBLE, False),
            (ColumnType.MYSQL_TYPE_LONGLONG, True),
        ],
    ),
}


def parses_or_protocol_error(decode: Callable[[bytes], object], payload: bytes) -> None:
    with contextlib.suppress(MySQLProtocolError):
        decode(payload)


def all_payloads() -> list[bytes]:
    out = []
    for name in CAPTURES:
        for direction in ("c", "s"):
            out += [p for p, _ in payloads(stream(name, direction))]
    return out


SAMPLES = all_payloads()


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@PROPS
@given(payload=st.binary(max_size=200))
def test_random_bytes(decoder: str, payload: bytes) -> None:
    parses_or_protocol_error(DECODERS[decoder], payload)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@PROPS
@given(data=st.data())
def test_mutated_real_packets(decoder: str, data: st.DataObject) -> None:
    payload = bytearray(data.draw(st.sampled_from(SAMPLES)))
    for _ in range(data.draw(st.integers(min_value=0, max_value=4))):
        if payload:
            i = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
            payload[i] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(payload)))
    parses_or_protocol_error(DECODERS[decoder], bytes(payload[:cut]))


@PROPS
@given(command=st.sampled_from(list(Command)), data=st.binary(max_size=300))
def test_tracker_on_random_streams(command: Command, data: bytes) -> None:
    try:
        tracker = ResponseTracker(command, CAPS)
    except MySQLProtocolError:
        return
    relay = ResponseRelay(tracker)
    with contextlib.suppress(MySQLProtocolError):
        relay.feed(data)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    out = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos : pos + size])
        pos += size
        i += 1
    return out


@pytest.mark.parametrize("name", CAPTURES)
@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8))
def test_relay_any_chunking_forwards_everything(name: str, sizes: list[int]) -> None:
    """The relay loop over a capture's responses, whatever the read sizes."""
    conv = replay(name)
    for exchange in conv.exchanges:
        tracker = ResponseTracker(
            exchange.command[0], conv.capabilities, mariadb_capabilities=conv.mariadb_capabilities
        )
        wire = b"".join(frame(p, seq)[0] for _, p, seq in exchange.packets)
        relay = ResponseRelay(tracker)
        forwarded = b"".join(relay.feed(chunk) for chunk in chunked(wire, sizes))
        assert forwarded == wire
        assert tracker.complete
        assert relay.kinds == [k for k, _, _ in exchange.packets]
        assert tracker.rows == exchange.tracker.rows


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6))
def test_upstream_side_any_chunking(sizes: list[int]) -> None:
    conv = replay("pymysql_session")
    server = stream("pymysql_session", "s")
    # greeting and the login's OK, as the server sent them
    login_end = sum(
        4 + len(p) for p, _ in [(conv.handshake_payload, 0), *conv.login_server_packets]
    )
    greeting_len = 4 + len(conv.handshake_payload)
    up = UpstreamSide(username="wg_native", password=b"native-pw")
    events = []
    chunks = chunked(server[:greeting_len], sizes)
    for chunk in chunks:
        up.receive_data(chunk)
        while (event := up.next_event()) is not NEED_DATA:
            events.append(event)
            up.login(capabilities=conv.login.capabilities)
    for chunk in chunked(server[greeting_len:login_end], sizes):
        up.receive_data(chunk)
        while (event := up.next_event()) is not NEED_DATA:
            events.append(event)
    assert [type(e).__name__ for e in events] == ["ServerGreeting", "LoginSucceeded"]


def client_stream() -> bytes:
    login = HandshakeResponse41(
        capabilities=CAPS & ~Capability.CLIENT_SSL,
        max_packet_size=1 << 24,
        character_set=45,
        username="agent",
        auth_response=b"",
        client_plugin_name="mysql_native_password",
    )
    return frame(login.encode(), 1)[0] + frame(b"tok\0", 3)[0]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=6))
def test_server_side_any_chunking(sizes: list[int]) -> None:
    srv = ServerSide(
        server_version="x",
        connection_id=1,
        capabilities=CAPS,
        allow_cleartext_without_tls=True,
    )
    events = []
    for chunk in chunked(client_stream(), sizes):
        srv.receive_data(chunk)
        while (event := srv.next_event()) is not NEED_DATA:
            events.append(event)
    assert len(events) == 1
    assert events[0].password == b"tok"  # type: ignore[union-attr]


@PROPS
@given(data=st.binary(max_size=400))
def test_server_side_random_input(data: bytes) -> None:
    srv = ServerSide(
        server_version="x", connection_id=1, capabilities=CAPS, allow_cleartext_without_tls=True
    )
    try:
        srv.receive_data(client_stream()[:40] + data)
        for _ in range(10):
            if srv.next_event() is NEED_DATA:
                break
    except MySQLProtocolError:
        pass


@PROPS
@given(data=st.binary(max_size=400))
def test_upstream_side_random_input(data: bytes) -> None:
    up = UpstreamSide(username="u", password=b"p")
    try:
        up.receive_data(stream("pymysql_session", "s")[:20] + data)
        for _ in range(10):
            if up.next_event() is NEED_DATA:
                break
    except MySQLProtocolError:
        pass


def test_deframer_and_kinds_agree_on_a_capture() -> None:
    conv = replay("pymysql_session")
    kinds = [k for e in conv.exchanges for k, _, _ in e.packets]
    assert PacketKind.ROW in kinds
    assert Deframer().bytes_needed() == 4


EXCHANGES = [
    (conv.capabilities, exchange.command[0], [frame(p, seq)[0] for _, p, seq in exchange.packets])
    for conv in map(replay, CAPTURES)
    for exchange in conv.exchanges
    if exchange.packets  # COM_STMT_CLOSE has no response
]


@PROPS
@given(data=st.data())
def test_tracker_on_mutated_real_responses(data: st.DataObject) -> None:
    caps, command, packets = data.draw(st.sampled_from(EXCHANGES))
    wire = bytearray(b"".join(packets))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        i = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
        wire[i] = data.draw(st.integers(min_value=0, max_value=255))
    tracker = ResponseTracker(command, caps)
    relay = ResponseRelay(tracker)
    with contextlib.suppress(MySQLProtocolError):
        relay.feed(bytes(wire))
        # what is kept raw must still decode or raise our error when read
        tracker.columns  # noqa: B018
        tracker.binary_row_columns()
        tracker.last_ok  # noqa: B018


interesting_payload = st.builds(
    lambda first, rest: bytes([first]) + rest,
    st.sampled_from([0x00, 0x01, 0x02, 0x03, 0xFB, 0xFC, 0xFE, 0xFF]),
    st.binary(max_size=12),
) | st.binary(max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    command=st.sampled_from(
        [
            Command.COM_QUERY,
            Command.COM_STMT_EXECUTE,
            Command.COM_STMT_PREPARE,
            Command.COM_STMT_FETCH,
            Command.COM_FIELD_LIST,
            Command.COM_PING,
        ]
    ),
    deprecate_eof=st.booleans(),
    payloads=st.lists(interesting_payload, max_size=10),
)
def test_tracker_on_well_framed_random_packets(
    command: Command, deprecate_eof: bool, payloads: list[bytes]
) -> None:
    """Correct framing and sequence ids, random contents: reaches every phase's decoder."""
    caps = CAPS if deprecate_eof else CAPS & ~Capability.CLIENT_DEPRECATE_EOF
    tracker = ResponseTracker(command, caps)
    wire = b"".join(frame(p, i + 1)[0] for i, p in enumerate(payloads))
    with contextlib.suppress(MySQLProtocolError):
        ResponseRelay(tracker).feed(wire)
        tracker.columns  # noqa: B018
        tracker.binary_row_columns()
        tracker.last_ok  # noqa: B018


command_payload = st.builds(
    lambda first, rest: bytes([first]) + rest,
    st.sampled_from([int(c) for c in Command] + [0x77]),
    st.binary(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(commands=st.lists(command_payload, max_size=8))
def test_server_side_on_well_framed_random_commands(commands: list[bytes]) -> None:
    srv = ServerSide(
        server_version="x", connection_id=1, capabilities=CAPS, allow_cleartext_without_tls=True
    )
    srv.receive_data(client_stream())
    assert isinstance(srv.next_event(), LoginRequested)
    srv.accept_login()
    # a prepared statement with two parameters, so COM_STMT_EXECUTE reaches its decoder
    srv.receive_data(frame(b"\x16SELECT ?, ?", 0)[0])
    event = srv.next_event()
    assert isinstance(event, CommandReceived)
    for payload in (
        StmtPrepareOk(statement_id=1, num_columns=0, num_params=2).encode(),
        b"\x03def\x00\x00\x00\x01?\x00\x0c?\x00\x00\x00\x00\x00\xfd\x00\x00\x00\x00\x00",
        b"\x03def\x00\x00\x00\x01?\x00\x0c?\x00\x00\x00\x00\x00\xfd\x00\x00\x00\x00\x00",
    ):  # CLIENT_DEPRECATE_EOF: no EOF after the definitions
        srv.send_response(payload)
    for payload in commands:
        srv.receive_data(frame(payload, 0)[0])
        try:
            event = srv.next_event()
        except MySQLProtocolError:
            return
        if isinstance(event, CommandReceived) and event.tracker is not None:
            srv.send_error("refused", error_code=1064)  # an ERR answers any command
        elif isinstance(event, InvalidCommand):
            srv.send_error_for(event.error)
        elif isinstance(event, ConnectionClosed):
            return


@pytest.mark.parametrize("name", CAPTURES)
def test_byte_at_a_time_relay_of_every_capture(name: str) -> None:
    conv = replay(name)
    for exchange in conv.exchanges:
        tracker = ResponseTracker(
            exchange.command[0], conv.capabilities, mariadb_capabilities=conv.mariadb_capabilities
        )
        wire = b"".join(frame(p, seq)[0] for _, p, seq in exchange.packets)
        relay = ResponseRelay(tracker)
        forwarded = b"".join(relay.feed(wire[i : i + 1]) for i in range(len(wire)))
        assert forwarded == wire
        assert relay.kinds == [k for k, _, _ in exchange.packets]
        assert tracker.complete


def test_byte_at_a_time_server_side_login_and_commands() -> None:
    commands = [b"\x03SELECT 1", b"\x0e", b"\x01"]
    wire = client_stream() + b"".join(frame(c, 0)[0] for c in commands)
    srv = ServerSide(
        server_version="x", connection_id=1, capabilities=CAPS, allow_cleartext_without_tls=True
    )
    events: list[object] = []
    for i in range(len(wire)):
        srv.receive_data(wire[i : i + 1])
        while (event := srv.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, LoginRequested):
                srv.accept_login()
            elif isinstance(event, CommandReceived) and event.tracker is not None:
                srv.send_response(OkPacket())
            if isinstance(event, ConnectionClosed):
                break
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["LoginRequested", "CommandReceived", "CommandReceived", "ConnectionClosed"]
