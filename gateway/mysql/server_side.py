"""ServerSide: the sans-IO MySQL server the agent's stock client talks to.

Theory of operation
-------------------
The driver owns the socket; this object owns the protocol. The driver loops::

    srv = ServerSide(server_version=..., connection_id=..., capabilities=..., tls_configured=...)
    send(srv.data_to_send())                       # HandshakeV10, seq 0
    while True:
        event = srv.next_event()
        send(srv.data_to_send())                   # whatever the codec queued (auth switch ...)
        if event is NEED_DATA:
            srv.receive_data(await recv(srv.bytes_needed() if srv.in_login else BUFSIZE))
            continue
        ...  # TLSRequested -> wrap the socket in TLS, srv.tls_started()
             # LoginRequested -> verify the token, srv.accept_login() or srv.reject_login(...)
             # CommandReceived -> decide; relay (feeding event.tracker) or srv.send_response(...)
             # InvalidCommand -> srv.send_error(...)
             # ConnectionClosed -> stop

Login: the greeting names ``mysql_native_password`` with a fresh nonce, which every client
accepts; if the client already answered with ``mysql_clear_password`` data we take it, else we
switch to ``mysql_clear_password`` exactly once and take the answer (the password is the OIDC
token). Plain-text passwords are refused unless TLS is up or ``allow_cleartext_without_tls``.
During login the driver reads at most ``bytes_needed()`` so the TLS ClientHello that follows an
SSLRequest stays in the socket.

Command phase: each command comes with a ``ResponseTracker``; while it is incomplete the codec
holds any further client bytes (a client may not pipeline commands) and ``next_event`` returns
NEED_DATA. Prepared statements are remembered from their PREPARE responses so that
COM_STMT_EXECUTE parameters can be decoded and COM_STMT_FETCH rows typed.

The capabilities offered are the caller's mask (normally the upstream server's) limited to
``GATEWAY_CAPABILITIES``: never CLIENT_LOCAL_FILES, never compression, CLIENT_SSL only when TLS
is configured, no MariaDB extended capabilities.
"""

from __future__ import annotations

import secrets

from gateway.mysql.commands import (
    CommandPacket,
    ComStmtExecute,
    ComStmtSendLongData,
    OtherCommand,
    StatementCommand,
    decode_command,
)
from gateway.mysql.constants import (
    GATEWAY_CAPABILITIES,
    SCRAMBLE_LENGTH,
    AuthPlugin,
    Capability,
    Charset,
    Command,
    CursorType,
    ErrorCode,
    ServerStatus,
    sqlstate_for,
)
from gateway.mysql.errors import LocalProtocolError, MySQLProtocolError, RemoteProtocolError
from gateway.mysql.framing import PacketEndpoint, frame
from gateway.mysql.packets import (
    AuthSwitchRequest,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    SSLRequest,
    decode_login,
)
from gateway.mysql.protocol_events import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginRequested,
    NeedData,
    ServerEvent,
    TLSRequested,
)
from gateway.mysql.rows import BinaryColumn
from gateway.mysql.states import (
    SERVER_REMOTE_TRIGGERS,
    SERVER_TRANSITIONS,
    ServerState,
    ServerTrigger,
    transition,
)
from gateway.mysql.tracker import ResponseTracker, expects_response

_REQUIRED = (
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_PLUGIN_AUTH
)
_LOGIN_STATES = frozenset(
    {
        ServerState.AWAIT_LOGIN,
        ServerState.TLS_PENDING,
        ServerState.AWAIT_LOGIN_TLS,
        ServerState.AWAIT_AUTH_SWITCH,
        ServerState.AWAIT_LOGIN_DECISION,
    }
)


class PreparedStatement:
    """What the gateway knows about one prepared statement of this connection."""

    __slots__ = ("bound_types", "columns", "long_data", "num_params", "statement_id")

    def __init__(self, statement_id: int, num_params: int, columns: tuple[BinaryColumn, ...]):
        self.statement_id = statement_id
        self.num_params = num_params
        self.columns = columns
        self.bound_types: tuple[BinaryColumn, ...] | None = None
        self.long_data: set[int] = set()


class ServerSide(PacketEndpoint):
    """See the module docstring."""

    def __init__(
        self,
        *,
        server_version: str,
        connection_id: int,
        capabilities: Capability,
        character_set: int = Charset.UTF8MB4_GENERAL_CI,
        status_flags: ServerStatus = ServerStatus.SERVER_STATUS_AUTOCOMMIT,
        tls_configured: bool = False,
        allow_cleartext_without_tls: bool = False,
        nonce: bytes | None = None,
        max_payload: int = 64 << 20,
    ) -> None:
        caps = (Capability(capabilities) & GATEWAY_CAPABILITIES) | _REQUIRED
        if tls_configured:
            caps |= Capability.CLIENT_SSL
        else:
            caps &= ~Capability.CLIENT_SSL
        if nonce is None:
            # printable, NUL-free bytes: some clients treat the nonce as a C string
            nonce = bytes(33 + secrets.randbelow(94) for _ in range(SCRAMBLE_LENGTH))
        self.handshake = HandshakeV10(
            server_version=server_version,
            connection_id=connection_id,
            auth_plugin_data=nonce,
            capabilities=caps,
            character_set=character_set,
            status_flags=status_flags,
            auth_plugin_name=AuthPlugin.MYSQL_NATIVE_PASSWORD,
        )
        self.capabilities = caps
        """Offered until login, then what the client and the gateway agreed."""
        self.allow_cleartext_without_tls = allow_cleartext_without_tls
        self.state = ServerState.AWAIT_LOGIN
        self.tls = False
        self.login: HandshakeResponse41 | None = None
        self.tracker: ResponseTracker | None = None
        self.statements: dict[int, PreparedStatement] = {}
        self._statement: PreparedStatement | None = None
        super().__init__(max_payload=max_payload)
        self._queue(self.handshake.encode())

    # -- byte plumbing -------------------------------------------------------------------

    @property
    def in_login(self) -> bool:
        return self.state in _LOGIN_STATES

    def bytes_needed(self) -> int:
        return self._deframer.bytes_needed()

    def _move(self, trigger: ServerTrigger) -> None:
        self.state = transition(SERVER_TRANSITIONS, self.state, trigger, SERVER_REMOTE_TRIGGERS)

    def _check(self, trigger: ServerTrigger) -> None:
        transition(SERVER_TRANSITIONS, self.state, trigger, SERVER_REMOTE_TRIGGERS)

    # -- events --------------------------------------------------------------------------

    def next_event(self) -> ServerEvent | NeedData:
        if self.state is ServerState.RESPONSE:
            if self._eof:  # the client left while its command was being answered
                self._move(ServerTrigger.CLOSE)
                return ConnectionClosed(by_quit=False)
            if self.tracker is None or not self.tracker.complete:
                return NEED_DATA
            self._finish_response()
        if self.state in (ServerState.TLS_PENDING, ServerState.AWAIT_LOGIN_DECISION):
            return NEED_DATA
        if self.state is ServerState.CLOSED:
            return ConnectionClosed(by_quit=False)
        got = self._deframer.next_payload()
        if got is None:
            if self._eof:
                self._move(ServerTrigger.CLOSE)
                return ConnectionClosed(by_quit=False)
            return NEED_DATA
        payload, first_seq, last_seq = got
        if self.state is ServerState.COMMAND:
            if first_seq != 0:
                raise RemoteProtocolError(
                    f"command with sequence id {first_seq}",
                    error_code=ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER,
                )
            self._seq = (last_seq + 1) & 0xFF
            return self._command(payload)
        if first_seq != self._seq:
            raise RemoteProtocolError(
                f"packet sequence {first_seq}, expected {self._seq}",
                error_code=ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER,
            )
        self._seq = (last_seq + 1) & 0xFF
        if self.state is ServerState.AWAIT_AUTH_SWITCH:
            return self._switched(payload)
        return self._login_packet(payload)

    def _login_packet(self, payload: bytes) -> ServerEvent | NeedData:
        message = decode_login(payload)
        if isinstance(message, SSLRequest):
            if not self.capabilities & Capability.CLIENT_SSL:
                raise RemoteProtocolError(
                    "SSLRequest but TLS was not offered", error_code=ErrorCode.ER_HANDSHAKE_ERROR
                )
            self._move(ServerTrigger.SSL_REQUEST)
            return TLSRequested(request=message, trailing_data=self._deframer.take_buffered())
        if not self.tls and not self.allow_cleartext_without_tls:
            raise RemoteProtocolError(
                "connections to this gateway must use TLS",
                error_code=ErrorCode.ER_ACCESS_DENIED_ERROR,
            )
        if not message.capabilities & Capability.CLIENT_PROTOCOL_41:
            raise RemoteProtocolError("client without CLIENT_PROTOCOL_41")
        if message.client_plugin_name == AuthPlugin.MYSQL_CLEAR_PASSWORD and message.auth_response:
            self._check(ServerTrigger.LOGIN_WITH_PASSWORD)
            self.login = message
            self._move(ServerTrigger.LOGIN_WITH_PASSWORD)
            return self._login_requested(message, message.auth_response, switched=False)
        if not message.capabilities & Capability.CLIENT_PLUGIN_AUTH:
            raise RemoteProtocolError(
                "client cannot switch to mysql_clear_password",
                error_code=ErrorCode.ER_NOT_SUPPORTED_AUTH_MODE,
            )
        self._check(ServerTrigger.LOGIN_NEEDS_SWITCH)
        self.login = message
        self._move(ServerTrigger.LOGIN_NEEDS_SWITCH)
        self._queue(AuthSwitchRequest(plugin_name=AuthPlugin.MYSQL_CLEAR_PASSWORD).encode())
        return self.next_event()  # the client's answer may already be buffered

    def _switched(self, payload: bytes) -> ServerEvent:
        assert self.login is not None
        self._move(ServerTrigger.AUTH_SWITCH_RESPONSE)
        return self._login_requested(self.login, payload, switched=True)

    def _login_requested(
        self, login: HandshakeResponse41, auth_data: bytes, *, switched: bool
    ) -> LoginRequested:
        password = auth_data[:-1] if auth_data.endswith(b"\0") else auth_data
        agreed = login.capabilities & self.capabilities
        self.capabilities = agreed
        return LoginRequested(
            username=login.username,
            password=password,
            database=login.database or None,
            capabilities=agreed,
            character_set=login.character_set,
            attrs=login.attrs or (),
            client_plugin_name=login.client_plugin_name,
            tls=self.tls,
            switched=switched,
        )

    # -- login decisions ----------------------------------------------------------------

    def tls_started(self) -> None:
        """The driver finished the TLS handshake; the client's login comes next, encrypted."""
        self._move(ServerTrigger.TLS_STARTED)
        self.tls = True

    def accept_login(self, ok: OkPacket | None = None) -> None:
        self._check(ServerTrigger.ACCEPT)
        packet = ok or OkPacket(status_flags=self.handshake.status_flags)
        self._queue(packet.encode(self.capabilities))
        self._move(ServerTrigger.ACCEPT)

    def reject_login(
        self, message: str, *, error_code: int = ErrorCode.ER_ACCESS_DENIED_ERROR
    ) -> None:
        self._check(ServerTrigger.REJECT)
        self._queue(self._err(error_code, message).encode())
        self._move(ServerTrigger.REJECT)

    def _err(self, error_code: int, message: str) -> ErrPacket:
        return ErrPacket(
            error_code=error_code, sqlstate=sqlstate_for(error_code), message=message.encode()
        )

    # -- command phase -------------------------------------------------------------------

    def _command(self, payload: bytes) -> ServerEvent:
        first = payload[0] if payload else -1
        raw, _ = frame(payload, 0)
        if first == Command.COM_QUIT:
            self._move(ServerTrigger.QUIT)
            return ConnectionClosed(by_quit=True)
        packet: CommandPacket | None = None
        try:
            packet, statement = self._decode_command(first, payload)
            if not expects_response(first):
                self._move(ServerTrigger.COMMAND_NO_RESPONSE)
                self._note_statement_command(packet)
                return CommandReceived(command=first, packet=packet, raw=raw, tracker=None)
            tracker = self._tracker_for(first, packet)
        except RemoteProtocolError as exc:
            # answered locally with ERR (send_error_for); the connection stays usable
            self._move(ServerTrigger.COMMAND)
            self.tracker = ResponseTracker(Command.COM_PING, self.capabilities, first_seq=self._seq)
            return InvalidCommand(command=first, packet=packet, error=exc, raw=raw)
        self._move(ServerTrigger.COMMAND)
        self._statement = statement
        if isinstance(packet, ComStmtExecute) and statement is not None:
            if packet.new_params_bound and packet.param_types:
                statement.bound_types = packet.param_types
        elif isinstance(packet, StatementCommand):
            self._statement = self.statements.get(packet.statement_id)
            if self._statement is not None and packet.command == Command.COM_STMT_FETCH:
                tracker.fetch_columns = self._statement.columns
        self.tracker = tracker
        return CommandReceived(command=first, packet=packet, raw=raw, tracker=tracker)

    def _decode_command(
        self, first: int, payload: bytes
    ) -> tuple[CommandPacket, PreparedStatement | None]:
        if first != Command.COM_STMT_EXECUTE:
            return decode_command(payload, self.capabilities), None
        statement_id = ComStmtExecute.peek_statement_id(payload)
        statement = self.statements.get(statement_id)
        if statement is None:
            raise RemoteProtocolError(
                f"unknown prepared statement {statement_id}",
                error_code=ErrorCode.ER_UNKNOWN_STMT_HANDLER,
            )
        packet = decode_command(
            payload,
            self.capabilities,
            param_count=statement.num_params,
            bound_types=statement.bound_types,
            long_data_params=frozenset(statement.long_data),
        )
        return packet, statement

    def _tracker_for(self, first: int, packet: CommandPacket) -> ResponseTracker:
        flags = CursorType.CURSOR_TYPE_NO_CURSOR
        if isinstance(packet, ComStmtExecute):
            flags = packet.flags
        if isinstance(packet, OtherCommand):
            message = f"command 0x{first:02x} is not supported"
        else:
            try:
                return ResponseTracker(
                    first, self.capabilities, first_seq=self._seq, execute_flags=flags
                )
            except LocalProtocolError as exc:
                message = exc.message
        raise RemoteProtocolError(message, error_code=ErrorCode.ER_UNKNOWN_COM_ERROR)

    def _note_statement_command(self, packet: object) -> None:
        if isinstance(packet, ComStmtSendLongData):
            statement = self.statements.get(packet.statement_id)
            if statement is not None:
                statement.long_data.add(packet.param_id)
        elif isinstance(packet, StatementCommand) and packet.command == Command.COM_STMT_CLOSE:
            self.statements.pop(packet.statement_id, None)

    def _finish_response(self) -> None:
        tracker = self.tracker
        assert tracker is not None
        statement = self._statement
        if tracker.command == Command.COM_STMT_PREPARE and tracker.prepare_ok is not None:
            ok = tracker.prepare_ok
            self.statements[ok.statement_id] = PreparedStatement(
                ok.statement_id, ok.num_params, tracker.binary_row_columns()
            )
        elif statement is not None and tracker.command == Command.COM_STMT_EXECUTE:
            statement.long_data.clear()
            if tracker.status_flags & ServerStatus.SERVER_STATUS_CURSOR_EXISTS:
                statement.columns = tracker.binary_row_columns()  # typing the FETCHed rows
        elif statement is not None and tracker.command == Command.COM_STMT_RESET:
            statement.long_data.clear()
        self._move(ServerTrigger.RESPONSE_COMPLETE)
        self.tracker = None
        self._statement = None

    def send_response(self, packet: OkPacket | ErrPacket | EofPacket | bytes) -> None:
        """Answer the current command locally (instead of relaying the upstream answer)."""
        tracker = self.tracker
        if self.state is not ServerState.RESPONSE or tracker is None:
            raise LocalProtocolError(f"no command to answer in state {self.state.name}")
        if isinstance(packet, bytes):
            payload = packet
        elif isinstance(packet, ErrPacket):
            payload = packet.encode()
        else:
            payload = packet.encode(self.capabilities)
        if tracker.complete:
            raise LocalProtocolError("the response to this command is already complete")
        data, _ = frame(payload, tracker.next_seq)
        try:
            tracker.classify_payload(payload)
        except RemoteProtocolError as exc:  # the packet is ours: our mistake, not the peer's
            raise LocalProtocolError(f"packet does not fit the response: {exc.message}") from None
        self._out += data

    def send_error(self, message: str, *, error_code: int) -> None:
        """ERR for the login in progress (refused) or for the current command (answered; the
        connection goes on). Between commands there is nothing to answer: LocalProtocolError
        (the driver then sends its own unsolicited ERR before closing)."""
        if self.in_login:
            self.reject_login(message, error_code=error_code)
        elif self.state is ServerState.RESPONSE:
            self.send_response(self._err(error_code, message))
        else:
            raise LocalProtocolError(f"no command to answer in state {self.state.name}")

    def send_error_for(self, error: MySQLProtocolError) -> None:
        """ERR for a protocol error the codec raised or reported (InvalidCommand)."""
        self.send_error(error.message, error_code=error.error_code)
