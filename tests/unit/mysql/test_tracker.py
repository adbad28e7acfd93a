"""ResponseTracker on synthetic responses: the corners captures do not reach."""

from __future__ import annotations

import pytest

from gateway.mysql.constants import (
    MAX_PACKET_PAYLOAD,
    Capability,
    ColumnType,
    Command,
    CursorType,
    ServerStatus,
)
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.framing import frame
from gateway.mysql.packets import (
    ColumnDefinition41,
    EofPacket,
    ErrPacket,
    LocalInfileRequest,
    OkPacket,
    StmtPrepareOk,
)
from gateway.mysql.rows import encode_text_row
from gateway.mysql.tracker import PacketKind, ResponseTracker
from gateway.mysql.wire import int_lenenc

BASE = Capability.CLIENT_PROTOCOL_41 | Capability.CLIENT_TRANSACTIONS
DEPRECATE = BASE | Capability.CLIENT_DEPRECATE_EOF
MORE = ServerStatus.SERVER_MORE_RESULTS_EXISTS | ServerStatus.SERVER_STATUS_AUTOCOMMIT
COL = ColumnDefinition41(name=b"c", column_type=ColumnType.MYSQL_TYPE_VAR_STRING).encode()


def result_set(rows: list[bytes], caps: Capability, status: ServerStatus) -> list[bytes]:
    out = [int_lenenc(1), COL]
    if not caps & Capability.CLIENT_DEPRECATE_EOF:
        out.append(EofPacket().encode(caps))
    out += rows
    if caps & Capability.CLIENT_DEPRECATE_EOF:
        out.append(OkPacket(header=0xFE, status_flags=status).encode(caps))
    else:
        out.append(EofPacket(status_flags=status).encode(caps))
    return out


def feed(tracker: ResponseTracker, payloads: list[bytes]) -> list[PacketKind]:
    return [tracker.classify_payload(p) for p in payloads]


@pytest.mark.parametrize("caps", [BASE, DEPRECATE])
def test_multi_results_both_eof_modes(caps: Capability) -> None:
    t = ResponseTracker(Command.COM_QUERY, caps)
    rows = [encode_text_row([b"a"]), encode_text_row([None])]
    kinds = feed(t, result_set(rows, caps, MORE))
    assert not t.complete
    kinds += feed(t, [OkPacket(affected_rows=3, status_flags=MORE).encode(caps)])
    kinds += feed(t, result_set(rows[:1], caps, ServerStatus.SERVER_STATUS_AUTOCOMMIT))
    assert t.complete
    assert t.rows == 3
    assert t.result_sets == 2
    assert t.affected_rows == 3
    assert kinds.count(PacketKind.ROW) == 3
    end = PacketKind.OK if caps & Capability.CLIENT_DEPRECATE_EOF else PacketKind.EOF
    assert kinds[-1] is end


def test_row_starting_with_0xfe_is_a_row_under_deprecate_eof() -> None:
    """A first value of 16 MiB or more starts with 0xFE; its packet is a full 0xFFFFFF one."""
    t = ResponseTracker(Command.COM_QUERY, DEPRECATE)
    feed(t, [int_lenenc(1), COL])
    value = b"v" * (1 << 24)  # the smallest length whose lenenc starts with 0xFE
    row = encode_text_row([value])
    assert row[0] == 0xFE
    data, _ = frame(row, t.next_seq)
    # only the header and first byte are needed to classify a row
    assert t.classify(data, 0, 5) is PacketKind.ROW
    second = 4 + MAX_PACKET_PAYLOAD
    assert t.classify(data, second) is PacketKind.CONTINUATION
    assert not t.complete
    assert feed(t, [OkPacket(header=0xFE).encode(DEPRECATE)]) == [PacketKind.OK]
    assert t.complete
    assert t.rows == 1


def test_ok_and_err_need_the_whole_packet() -> None:
    t = ResponseTracker(Command.COM_QUERY, BASE)
    data, _ = frame(ErrPacket(error_code=1146, sqlstate=b"42S02", message=b"no").encode(), 1)
    assert t.classify(data, 0, len(data) - 1) is PacketKind.NEED_MORE
    assert t.classify(data, 0, 3) is PacketKind.NEED_MORE
    assert t.classify(data, 0) is PacketKind.ERR
    assert t.complete
    assert t.error is not None
    assert t.error.error_code == 1146


def test_out_of_order_sequence_raises() -> None:
    t = ResponseTracker(Command.COM_PING, BASE)
    data, _ = frame(OkPacket().encode(BASE), 5)
    with pytest.raises(RemoteProtocolError):
        t.classify(data, 0)
    assert not t.complete  # unchanged
    assert t.classify(frame(OkPacket().encode(BASE), 1)[0], 0) is PacketKind.OK


def test_packet_after_completion_raises() -> None:
    t = ResponseTracker(Command.COM_PING, BASE)
    feed(t, [OkPacket().encode(BASE)])
    with pytest.raises(RemoteProtocolError):
        feed(t, [OkPacket().encode(BASE)])


def test_local_infile_request_then_result() -> None:
    t = ResponseTracker(Command.COM_QUERY, BASE)
    kinds = feed(t, [LocalInfileRequest(filename=b"/etc/passwd").encode()])
    assert kinds == [PacketKind.LOCAL_INFILE_REQUEST]
    assert t.infile_request is not None
    assert t.infile_request.filename == b"/etc/passwd"
    # the client's file packets used sequence ids 2..4 that the tracker never saw
    data, _ = frame(OkPacket().encode(BASE), 5)
    assert t.classify(data, 0) is PacketKind.OK
    assert t.complete


@pytest.mark.parametrize("caps", [BASE, DEPRECATE])
def test_prepare_response(caps: Capability) -> None:
    t = ResponseTracker(Command.COM_STMT_PREPARE, caps)
    ok = StmtPrepareOk(statement_id=7, num_columns=2, num_params=1)
    eof = [] if caps & Capability.CLIENT_DEPRECATE_EOF else [EofPacket().encode(caps)]
    kinds = feed(t, [ok.encode(), COL, *eof, COL, COL, *eof])
    assert t.complete
    assert kinds[0] is PacketKind.PREPARE_OK
    assert kinds.count(PacketKind.PARAM_DEFINITION) == 1
    assert kinds.count(PacketKind.COLUMN_DEFINITION) == 2
    assert len(t.params) == 1
    assert len(t.columns) == 2


def test_prepare_without_params_or_columns() -> None:
    t = ResponseTracker(Command.COM_STMT_PREPARE, BASE)
    feed(t, [StmtPrepareOk(statement_id=1, num_columns=0, num_params=0).encode()])
    assert t.complete


def test_execute_with_cursor_ends_after_metadata() -> None:
    t = ResponseTracker(
        Command.COM_STMT_EXECUTE, BASE, execute_flags=CursorType.CURSOR_TYPE_READ_ONLY
    )
    status = ServerStatus.SERVER_STATUS_CURSOR_EXISTS | ServerStatus.SERVER_STATUS_AUTOCOMMIT
    feed(t, [int_lenenc(1), COL, EofPacket(status_flags=status).encode(BASE)])
    assert t.complete
    fetch = ResponseTracker(Command.COM_STMT_FETCH, BASE)
    fetch.fetch_columns = ((ColumnType.MYSQL_TYPE_LONG, False),)
    kinds = feed(fetch, [b"\x00\x00\x05\x00\x00\x00", EofPacket().encode(BASE)])
    assert kinds == [PacketKind.ROW, PacketKind.EOF]
    assert fetch.binary_row_columns() == ((ColumnType.MYSQL_TYPE_LONG, False),)


def test_field_list_and_statistics_and_set_option() -> None:
    t = ResponseTracker(Command.COM_FIELD_LIST, BASE)
    col = ColumnDefinition41(
        name=b"id", column_type=ColumnType.MYSQL_TYPE_LONG, has_default_values=True
    )
    assert feed(t, [col.encode(), EofPacket().encode(BASE)]) == [
        PacketKind.COLUMN_DEFINITION,
        PacketKind.EOF,
    ]
    assert t.columns[0].has_default_values
    t = ResponseTracker(Command.COM_STATISTICS, BASE)
    assert feed(t, [b"Uptime: 5  Threads: 1"]) == [PacketKind.STATISTICS]
    assert t.complete
    t = ResponseTracker(Command.COM_SET_OPTION, BASE)
    assert feed(t, [EofPacket().encode(BASE)]) == [PacketKind.EOF]
    assert t.complete


def test_commands_without_response_are_complete_at_once() -> None:
    for command in (Command.COM_STMT_CLOSE, Command.COM_STMT_SEND_LONG_DATA, Command.COM_QUIT):
        assert ResponseTracker(command, BASE).complete


@pytest.mark.parametrize("command", [Command.COM_CHANGE_USER, Command.COM_BINLOG_DUMP, 0x99])
def test_untrackable_commands_are_refused(command: int) -> None:
    with pytest.raises(LocalProtocolError) as err:
        ResponseTracker(command, BASE)
    assert err.value.error_code == 1047


def test_garbage_where_a_terminator_belongs_raises() -> None:
    t = ResponseTracker(Command.COM_PING, BASE)
    with pytest.raises(RemoteProtocolError):
        feed(t, [b"\x05hello"])
