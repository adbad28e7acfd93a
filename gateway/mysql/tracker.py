"""ResponseTracker: classifies the server's packets after one command and says when it is done.

Theory of operation
-------------------
The relay forwards the server's bytes as they arrive and asks the tracker, for each packet
header it walks (see ``framing.FrameScanner``), what the packet is. Classification looks at the
response phase and the first payload byte. Only what steers the phase is read: the column
count, OK/EOF status flags and counters, PREPARE_OK, ERR. Column and parameter definitions
and OK details (info, session state) are kept as raw payloads and decoded when someone reads
``columns``, ``params``, ``last_ok`` or ``binary_row_columns()``. Rows are counted and never
copied: a row may be classified as soon as its header and first byte are in the buffer, so
the relay can stream rows larger than its buffer.

Telling rows from terminators: an EOF is 0xFE with a payload under 9 bytes. Under
CLIENT_DEPRECATE_EOF the end of a result set is an OK with header 0xFE instead, and a row can
only start with 0xFE when its first value is at least 16 MiB, i.e. when the packet is a full
0xFFFFFF one; so any shorter 0xFE packet in the rows phase ends the result set. 0xFF in the rows
phase is ERR (no row starts with 0xFF). After a terminator, SERVER_MORE_RESULTS_EXISTS starts
the next result (multi-statements, CALL). A COM_STMT_EXECUTE that opens a cursor ends after the
column definitions (SERVER_STATUS_CURSOR_EXISTS); COM_STMT_FETCH then returns rows and a
terminator.

``classify`` is idempotent until it returns a real kind: when it needs the whole packet and the
packet is incomplete it returns ``PacketKind.NEED_MORE`` and changes nothing.

Commands whose responses cannot be tracked (COM_CHANGE_USER, replication, ...) are refused at
construction with ``LocalProtocolError``: the gateway must answer those itself.
"""

from __future__ import annotations

from enum import IntEnum

from gateway.mysql.constants import (
    EOF_HEADER,
    EOF_MAX_PAYLOAD,
    ERR_HEADER,
    HEADER_SIZE,
    LOCAL_INFILE_HEADER,
    MAX_PACKET_PAYLOAD,
    OK_HEADER,
    Capability,
    ColumnFlag,
    Command,
    CursorType,
    ErrorCode,
    MariaDBCapability,
    ServerStatus,
)
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.framing import frame
from gateway.mysql.packets import (
    ColumnDefinition41,
    ErrPacket,
    LocalInfileRequest,
    OkPacket,
    StmtPrepareOk,
)
from gateway.mysql.rows import BinaryColumn
from gateway.mysql.states import ResponsePhase
from gateway.mysql.wire import Buffer


class PacketKind(IntEnum):
    NEED_MORE = 0
    OK = 1
    ERR = 2
    EOF = 3
    INTERMEDIATE_EOF = 4
    COLUMN_COUNT = 5
    COLUMN_DEFINITION = 6
    ROW = 7
    CONTINUATION = 8
    LOCAL_INFILE_REQUEST = 9
    PREPARE_OK = 10
    PARAM_DEFINITION = 11
    STATISTICS = 12


_P = ResponsePhase
_NO_RESPONSE = frozenset(
    {Command.COM_QUIT, Command.COM_STMT_CLOSE, Command.COM_STMT_SEND_LONG_DATA}
)
_STATUS_ONLY = frozenset(
    {
        Command.COM_INIT_DB,
        Command.COM_PING,
        Command.COM_SET_OPTION,
        Command.COM_STMT_RESET,
        Command.COM_RESET_CONNECTION,
        Command.COM_PROCESS_KILL,
        Command.COM_REFRESH,
        Command.COM_DEBUG,
        Command.COM_CREATE_DB,
        Command.COM_DROP_DB,
        Command.COM_SHUTDOWN,
    }
)
_RESULT_SET = frozenset({Command.COM_QUERY, Command.COM_STMT_EXECUTE, Command.COM_PROCESS_INFO})


_INITIAL_PHASE: dict[int, ResponsePhase] = {
    **{c: _P.DONE for c in _NO_RESPONSE},
    **{c: _P.FIRST for c in _RESULT_SET},
    **{c: _P.STATUS for c in _STATUS_ONLY},
    Command.COM_STMT_PREPARE: _P.PREPARE_FIRST,
    Command.COM_STMT_FETCH: _P.ROWS,
    Command.COM_FIELD_LIST: _P.FIELD_LIST,
    Command.COM_STATISTICS: _P.STATISTICS,
}
# plain ints: IntFlag arithmetic costs microseconds, this code runs per packet
_DEPRECATE_EOF = int(Capability.CLIENT_DEPRECATE_EOF)
_PROTOCOL_41 = int(Capability.CLIENT_PROTOCOL_41)
_EXTENDED_METADATA = int(MariaDBCapability.MARIADB_CLIENT_EXTENDED_METADATA)
_CACHE_METADATA = int(MariaDBCapability.MARIADB_CLIENT_CACHE_METADATA)
_READ_ONLY_CURSOR = int(CursorType.CURSOR_TYPE_READ_ONLY)
_MORE_RESULTS = int(ServerStatus.SERVER_MORE_RESULTS_EXISTS)
_CURSOR_EXISTS = int(ServerStatus.SERVER_STATUS_CURSOR_EXISTS)
_UNSIGNED = int(ColumnFlag.UNSIGNED_FLAG)


def _lenenc_at(payload: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos`` by index arithmetic (PacketReader is dearer)."""
    try:
        first = payload[pos]
        if first < 0xFB:
            return first, pos + 1
        size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    except (IndexError, KeyError):
        raise RemoteProtocolError("malformed length-encoded integer") from None
    if pos + 1 + size > len(payload):
        raise RemoteProtocolError("truncated length-encoded integer")
    return int.from_bytes(payload[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


_NAMES: dict[tuple[bytes, ...], list[str]] = {}


def expects_response(command: int) -> bool:
    """False for the commands the server never answers."""
    return command not in _NO_RESPONSE


class ResponseTracker:
    """Follows the response to one command; see the module docstring.

    Results: ``rows``, ``affected_rows``, ``last_insert_id``, ``warnings``, ``result_sets``,
    ``status_flags``, ``error`` (the ERR that ended it), ``prepare_ok``; and, decoded only when
    read, ``columns``/``params`` (definitions of the current result set or statement) and
    ``last_ok`` (info and session-state changes).
    """

    __slots__ = (
        "_binary_columns",
        "_cache_metadata",
        "_column_index",
        "_column_payloads",
        "_columns",
        "_columns_expected",
        "_continuing",
        "_cursor",
        "_extended_metadata",
        "_ok_payload",
        "_param_payloads",
        "_phase",
        "_protocol_41",
        "_seq",
        "_seq_free",
        "_status",
        "_terminator_limit",
        "affected_rows",
        "binary",
        "capabilities",
        "command",
        "error",
        "fetch_columns",
        "infile_request",
        "last_insert_id",
        "prepare_ok",
        "result_sets",
        "rows",
        "warnings",
    )

    def __init__(
        self,
        command: int,
        capabilities: Capability,
        *,
        first_seq: int = 1,
        execute_flags: int = 0,
        mariadb_capabilities: int = 0,
    ) -> None:
        caps = int(capabilities)
        self.command = command
        self.capabilities = capabilities
        # a 0xFE packet shorter than this ends a result set (see the module docstring)
        self._terminator_limit = MAX_PACKET_PAYLOAD if caps & _DEPRECATE_EOF else EOF_MAX_PAYLOAD
        self._protocol_41 = bool(caps & _PROTOCOL_41)
        self._seq = first_seq & 0xFF
        # only to read captures of MariaDB clients: the gateway never offers the extensions
        self._extended_metadata = bool(mariadb_capabilities & _EXTENDED_METADATA)
        self._cache_metadata = bool(mariadb_capabilities & _CACHE_METADATA)
        self._seq_free = False
        self._continuing = False
        self._cursor = bool(execute_flags & _READ_ONLY_CURSOR)
        self._column_index = 0
        self._columns_expected = 0
        self._column_payloads: list[bytes] = []
        self._binary_columns: tuple[tuple[int, int], tuple[BinaryColumn, ...]] | None = None
        self._param_payloads: list[bytes] = []
        self._columns: list[ColumnDefinition41] | None = None
        self._ok_payload: bytes | None = None
        self._status = 0
        self.binary = command in (Command.COM_STMT_EXECUTE, Command.COM_STMT_FETCH)
        self.rows = 0
        self.affected_rows = 0
        self.last_insert_id = 0
        self.warnings = 0
        self.result_sets = 0
        self.error: ErrPacket | None = None
        self.prepare_ok: StmtPrepareOk | None = None
        self.infile_request: LocalInfileRequest | None = None
        self.fetch_columns: tuple[BinaryColumn, ...] = ()
        """For COM_STMT_FETCH (no column definitions in the response): the cursor's columns."""
        phase = _INITIAL_PHASE.get(command)
        if phase is None:
            raise LocalProtocolError(
                f"the response to command 0x{command:02x} cannot be tracked; refuse it",
                error_code=ErrorCode.ER_UNKNOWN_COM_ERROR,
            )
        self._phase = phase

    # -- results, decoded on demand -------------------------------------------------------

    @property
    def columns(self) -> list[ColumnDefinition41]:
        """Column definitions of the current result set (or of the prepared statement)."""
        if self._columns is None:
            ext = self._extended_metadata
            self._columns = [
                ColumnDefinition41.decode(p, extended_metadata=ext) for p in self._column_payloads
            ]
        return self._columns

    def column_names(self) -> list[str]:
        """The names of the current result set's columns, read from the raw definitions
        (the fifth length-encoded string) without decoding them whole; cached by the
        definitions' bytes, which repeat for every run of the same statement."""
        key = tuple(self._column_payloads)
        found = _NAMES.get(key)
        if found is None:
            found = []
            for payload in key:
                pos = 0
                for _ in range(4):  # catalog, schema, table, org_table
                    size, pos = _lenenc_at(payload, pos)
                    pos += size
                size, pos = _lenenc_at(payload, pos)
                if pos + size > len(payload):
                    raise RemoteProtocolError("truncated column definition")
                found.append(payload[pos : pos + size].decode("utf-8", "replace"))
            if len(_NAMES) > 1024:
                _NAMES.clear()
            _NAMES[key] = found
        return list(found)

    @property
    def params(self) -> list[ColumnDefinition41]:
        ext = self._extended_metadata
        return [ColumnDefinition41.decode(p, extended_metadata=ext) for p in self._param_payloads]

    @property
    def last_ok(self) -> OkPacket | None:
        """The last OK of the response (info, session-state changes), when it had one."""
        if self._ok_payload is None:
            return None
        return OkPacket.decode(self._ok_payload, self.capabilities)

    @property
    def status_flags(self) -> ServerStatus:
        return ServerStatus(self._status)

    def binary_row_columns(self) -> tuple[BinaryColumn, ...]:
        """(type, unsigned) per column for ``rows.decode_binary_row`` on this response's rows."""
        payloads = self._column_payloads
        if not payloads:
            return self.fetch_columns
        key = (id(payloads), len(payloads))  # a new result set starts a new list
        cached = self._binary_columns
        if cached is not None and cached[0] == key:
            return cached[1]
        ext = self._extended_metadata
        types = []
        for payload in payloads:
            column_type, flags = ColumnDefinition41.peek_type(payload, extended_metadata=ext)
            types.append((column_type, bool(flags & _UNSIGNED)))
        found = tuple(types)
        self._binary_columns = (key, found)
        return found

    @property
    def phase(self) -> ResponsePhase:
        return self._phase

    @property
    def complete(self) -> bool:
        return self._phase is _P.DONE

    @property
    def next_seq(self) -> int:
        """Sequence id the next packet of this response must carry."""
        return self._seq

    # -- classification --------------------------------------------------------------------

    def classify_payload(self, payload: bytes, seq: int | None = None) -> PacketKind:
        """Classify a whole payload (not on the hot path: it frames a copy)."""
        data, _ = frame(payload, self._seq if seq is None else seq)
        pos = 0
        kind = PacketKind.NEED_MORE
        while pos < len(data):
            kind = self.classify(data, pos)
            pos += HEADER_SIZE + (data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16)
        return kind

    def classify(self, buf: Buffer, pos: int, end: int | None = None) -> PacketKind:
        """Classify the packet whose header is at ``buf[pos]``; ``end`` bounds the valid bytes.

        Rows and continuations need only the header and the first payload byte; everything
        else needs the whole packet, or ``NEED_MORE`` is returned with nothing changed.
        """
        if end is None:
            end = len(buf)
        if end - pos > HEADER_SIZE and self._phase is _P.ROWS and not self._continuing:
            # the hot path: one row among many
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            first = buf[pos + HEADER_SIZE]
            seq = buf[pos + 3]
            if (
                seq == self._seq
                and first != ERR_HEADER
                and (first != EOF_HEADER or length >= self._terminator_limit)
                and length
            ):
                self._seq = (seq + 1) & 0xFF
                self._continuing = length == MAX_PACKET_PAYLOAD
                self.rows += 1
                return PacketKind.ROW
        return self._classify(buf, pos, end)

    def _classify(self, buf: Buffer, pos: int, end: int) -> PacketKind:
        if end - pos < HEADER_SIZE:
            return PacketKind.NEED_MORE
        phase = self._phase
        if phase is _P.DONE:
            raise RemoteProtocolError("packet after the end of the response")
        length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        seq = buf[pos + 3]
        if seq != self._seq and not self._seq_free:
            raise RemoteProtocolError(
                f"packet sequence {seq}, expected {self._seq}",
                error_code=ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER,
            )
        if self._continuing:
            self._advance(seq, length)
            return PacketKind.CONTINUATION
        if length == 0:
            if phase is _P.STATISTICS:
                self._advance(seq, length)
                self._phase = _P.DONE
                return PacketKind.STATISTICS
            raise RemoteProtocolError("empty packet in a response")
        if end - pos <= HEADER_SIZE:
            return PacketKind.NEED_MORE
        first = buf[pos + HEADER_SIZE]
        if phase is _P.ROWS and first != ERR_HEADER and not self._is_terminator(first, length):
            self._advance(seq, length)
            self.rows += 1
            return PacketKind.ROW
        stop = pos + HEADER_SIZE + length
        if stop > end:
            return PacketKind.NEED_MORE
        payload = bytes(buf[pos + HEADER_SIZE : stop])
        kind = self._decode(phase, first, payload)
        self._advance(seq, length)
        if kind is PacketKind.LOCAL_INFILE_REQUEST:
            self._seq_free = True  # the client's file packets take sequence ids we never see
        return kind

    def _advance(self, seq: int, length: int) -> None:
        self._seq = (seq + 1) & 0xFF
        self._seq_free = False
        self._continuing = length == MAX_PACKET_PAYLOAD

    def _is_terminator(self, first: int, length: int) -> bool:
        return first == EOF_HEADER and length < self._terminator_limit

    def _decode(self, phase: ResponsePhase, first: int, payload: bytes) -> PacketKind:
        if first == ERR_HEADER and phase is not _P.STATISTICS:
            self.error = ErrPacket.decode(payload)
            self._phase = _P.DONE
            return PacketKind.ERR
        if phase is _P.FIRST or phase is _P.INFILE_RESULT:
            return self._decode_first(phase, first, payload)
        if phase is _P.COLUMNS or phase is _P.PREPARE_PARAMS or phase is _P.PREPARE_COLUMNS:
            return self._definition(phase, payload)
        if (
            phase is _P.COLUMNS_EOF
            or phase is _P.PREPARE_PARAMS_EOF
            or phase is _P.PREPARE_COLUMNS_EOF
        ):
            if not self._is_terminator(first, len(payload)):
                raise RemoteProtocolError("expected EOF after the definitions")
            _, status = self._eof(payload)  # its warnings are repeated at the end
            self._status = status
            if phase is _P.PREPARE_PARAMS_EOF:
                self._start_prepare_columns()
            elif phase is _P.PREPARE_COLUMNS_EOF or (self._cursor and status & _CURSOR_EXISTS):
                self._phase = _P.DONE
            else:
                self._phase = _P.ROWS
            return PacketKind.INTERMEDIATE_EOF
        if phase is _P.ROWS or phase is _P.FIELD_LIST:
            if self._is_terminator(first, len(payload)):
                return self._terminate(payload)
            if phase is _P.ROWS:
                raise RemoteProtocolError("unexpected packet among rows")
            ColumnDefinition41.decode(payload, extended_metadata=self._extended_metadata)
            self._column_payloads.append(payload)
            self._columns = None
            return PacketKind.COLUMN_DEFINITION
        if phase is _P.PREPARE_FIRST:
            ok = StmtPrepareOk.decode(payload)
            self.prepare_ok = ok
            self.warnings = ok.warning_count
            if ok.num_params:
                self._columns_expected = ok.num_params
                self._column_index = 0
                self._phase = _P.PREPARE_PARAMS
            else:
                self._start_prepare_columns()
            return PacketKind.PREPARE_OK
        if phase is _P.STATUS:
            if first == OK_HEADER:
                self._ok(payload)
                self._phase = _P.DONE
                return PacketKind.OK
            if self._is_terminator(first, len(payload)):
                return self._terminate(payload)
            raise RemoteProtocolError(f"expected OK or ERR, got header 0x{first:02x}")
        # STATISTICS: a plain human-readable string
        self._phase = _P.DONE
        return PacketKind.STATISTICS

    def _decode_first(self, phase: ResponsePhase, first: int, payload: bytes) -> PacketKind:
        if first == OK_HEADER:
            self._after_result(self._ok(payload))
            return PacketKind.OK
        if phase is _P.INFILE_RESULT:
            raise RemoteProtocolError("expected OK or ERR after LOCAL INFILE data")
        if first == LOCAL_INFILE_HEADER:
            self.infile_request = LocalInfileRequest.decode(payload)
            self._phase = _P.INFILE_RESULT
            return PacketKind.LOCAL_INFILE_REQUEST
        count, pos = _lenenc_at(payload, 0)
        metadata_follows = 1
        if self._cache_metadata and pos < len(payload):
            metadata_follows = payload[pos]
            pos += 1
        if pos != len(payload):
            raise RemoteProtocolError("malformed column count")
        if count == 0:
            raise RemoteProtocolError("result set with no columns")
        self.result_sets += 1
        self._columns_expected = count
        self._column_index = 0
        if metadata_follows:
            self._column_payloads = []
            self._columns = None
            self._phase = _P.COLUMNS
        else:  # the client cached the definitions: keep the last ones
            self._phase = (
                _P.ROWS if self._terminator_limit == MAX_PACKET_PAYLOAD else _P.COLUMNS_EOF
            )
        return PacketKind.COLUMN_COUNT

    def _definition(self, phase: ResponsePhase, payload: bytes) -> PacketKind:
        # kept raw: decoded (and validated) only when someone reads .columns
        self._column_index += 1
        done = self._column_index >= self._columns_expected
        deprecate_eof = self._terminator_limit == MAX_PACKET_PAYLOAD
        if phase is _P.PREPARE_PARAMS:
            self._param_payloads.append(payload)
            if done:
                if deprecate_eof:
                    self._start_prepare_columns()
                else:
                    self._phase = _P.PREPARE_PARAMS_EOF
            return PacketKind.PARAM_DEFINITION
        self._column_payloads.append(payload)
        if done:
            if phase is _P.PREPARE_COLUMNS:
                self._phase = _P.DONE if deprecate_eof else _P.PREPARE_COLUMNS_EOF
            else:
                self._phase = _P.ROWS if deprecate_eof else _P.COLUMNS_EOF
        return PacketKind.COLUMN_DEFINITION

    def _start_prepare_columns(self) -> None:
        assert self.prepare_ok is not None
        self._column_index = 0
        self._columns_expected = self.prepare_ok.num_columns
        self._phase = _P.PREPARE_COLUMNS if self._columns_expected else _P.DONE

    def _eof(self, payload: bytes) -> tuple[int, int]:
        """(warnings, status) of an EOF packet."""
        if not self._protocol_41:
            return 0, 0
        if len(payload) != 5:
            raise RemoteProtocolError("EOF packet of the wrong length")
        return payload[1] | payload[2] << 8, payload[3] | payload[4] << 8

    def _ok(self, payload: bytes) -> int:
        """Account for an OK packet; returns its status flags. The rest decodes on demand."""
        affected, pos = _lenenc_at(payload, 1)
        insert_id, pos = _lenenc_at(payload, pos)
        status = 0
        if self._protocol_41:
            if pos + 4 > len(payload):
                raise RemoteProtocolError("OK packet too short")
            status = payload[pos] | payload[pos + 1] << 8
            self.warnings += payload[pos + 2] | payload[pos + 3] << 8
        self.affected_rows += affected
        if insert_id:
            self.last_insert_id = insert_id
        self._ok_payload = payload
        self._status = status
        return status

    def _terminate(self, payload: bytes) -> PacketKind:
        if self._terminator_limit == MAX_PACKET_PAYLOAD:
            status = self._ok(payload)
            kind = PacketKind.OK
        else:
            warnings, status = self._eof(payload)
            self.warnings += warnings
            self._status = status
            kind = PacketKind.EOF
        self._after_result(status)
        return kind

    def _after_result(self, status: int) -> None:
        if status & _MORE_RESULTS and self.command in _RESULT_SET:
            self._phase = _P.FIRST
        else:
            self._phase = _P.DONE
