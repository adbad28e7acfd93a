"""UpstreamSide: the sans-IO MySQL client the gateway uses to log in to the real server.

Theory of operation
-------------------
::

    up = UpstreamSide(username=..., password=vaulted, use_tls=...)
    loop: event = up.next_event(); send(up.data_to_send()); on NEED_DATA receive_data(recv())
      ServerGreeting   -> (announce its version to the agent) up.login(capabilities=..., ...)
                          with use_tls, login() queues the SSLRequest and next_event()
                          returns NEED_DATA in state UpstreamState.TLS_PENDING: send it,
                          wrap the socket in TLS, then up.tls_started()
      LoginSucceeded   -> the connection is ready; relay commands (``start_command`` for the
                          gateway's own ones); use ``event.capabilities`` for trackers
      LoginFailed      -> close; the agent gets a generic error (never the upstream detail)

Authentication runs inside: an AuthSwitchRequest is answered once for the named plugin;
caching_sha2_password fast auth (0x03) waits for OK, full auth (0x04) sends the password in
clear over TLS, or RSA-encrypted with the server's public key (given, or requested with 0x02
when not on TLS); sha256_password likewise. mysql_clear_password is only answered over TLS.
The capabilities sent are the caller's intersected with the server's and the gateway's.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.mysql import auth
from gateway.mysql.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    CACHING_SHA2_FAST_AUTH_SUCCESS,
    CACHING_SHA2_PERFORM_FULL_AUTHENTICATION,
    ERR_HEADER,
    GATEWAY_CAPABILITIES,
    OK_HEADER,
    AuthPlugin,
    Capability,
    ErrorCode,
)
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.framing import PacketEndpoint, frame
from gateway.mysql.packets import (
    AuthMoreData,
    AuthSwitchRequest,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    OkPacket,
    SSLRequest,
)
from gateway.mysql.protocol_events import (
    NEED_DATA,
    ConnectionClosed,
    LoginFailed,
    LoginSucceeded,
    NeedData,
    ServerGreeting,
    UpstreamEvent,
)
from gateway.mysql.states import (
    UPSTREAM_REMOTE_TRIGGERS,
    UPSTREAM_TRANSITIONS,
    UpstreamState,
    UpstreamTrigger,
    transition,
)
from gateway.mysql.tracker import ResponseTracker

_REQUIRED = (
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_PLUGIN_AUTH
)
_DEFAULT_MAX_PACKET = 1 << 24


class UpstreamSide(PacketEndpoint):
    """See the module docstring."""

    def __init__(
        self,
        *,
        username: str,
        password: bytes,
        use_tls: bool = False,
        server_public_key: bytes | None = None,
        max_payload: int = 64 << 20,
    ) -> None:
        self.username = username
        self._password = password
        self.use_tls = use_tls
        self.server_public_key = server_public_key
        self.state = UpstreamState.AWAIT_GREETING
        self.handshake: HandshakeV10 | None = None
        self.capabilities = Capability(0)
        self.plugin = ""
        self._nonce = b""
        self._switched = False
        self._awaiting_key = False
        self._pending_login: HandshakeResponse41 | None = None
        super().__init__(max_payload=max_payload)

    def __repr__(self) -> str:  # never show the vaulted password
        return f"<UpstreamSide {self.username!r} {self.state.name}>"

    def _move(self, trigger: UpstreamTrigger) -> None:
        self.state = transition(UPSTREAM_TRANSITIONS, self.state, trigger, UPSTREAM_REMOTE_TRIGGERS)

    def _check(self, trigger: UpstreamTrigger) -> None:
        transition(UPSTREAM_TRANSITIONS, self.state, trigger, UPSTREAM_REMOTE_TRIGGERS)

    def next_event(self) -> UpstreamEvent | NeedData:
        while True:
            if self.state in (UpstreamState.GREETED, UpstreamState.TLS_PENDING):
                return NEED_DATA  # waiting for the driver, not for bytes
            if self.state is UpstreamState.READY:
                return NEED_DATA  # command traffic is relayed, not parsed here
            if self.state is UpstreamState.CLOSED:
                return ConnectionClosed(by_quit=False)
            got = self._deframer.next_payload()
            if got is None:
                if self._eof:
                    self._move(UpstreamTrigger.CLOSE)
                    return ConnectionClosed(by_quit=False)
                return NEED_DATA
            payload, first_seq, last_seq = got
            if first_seq != self._seq:
                raise RemoteProtocolError(
                    f"packet sequence {first_seq}, expected {self._seq}",
                    error_code=ErrorCode.ER_NET_PACKETS_OUT_OF_ORDER,
                )
            if not payload:
                raise RemoteProtocolError("empty packet during login")
            self._seq = (last_seq + 1) & 0xFF
            event = self._packet(payload)
            if event is not None:
                return event

    def _packet(self, payload: bytes) -> UpstreamEvent | None:
        first = payload[0]
        if first == ERR_HEADER:
            self._check(UpstreamTrigger.ERR)
            error = ErrPacket.decode(payload)
            self._move(UpstreamTrigger.ERR)
            return LoginFailed(error=error)
        if self.state is UpstreamState.AWAIT_GREETING:
            handshake = HandshakeV10.decode(payload)
            self._move(UpstreamTrigger.GREETING)
            self.handshake = handshake
            return ServerGreeting(handshake=handshake)
        if first == OK_HEADER:
            self._check(UpstreamTrigger.OK)
            ok = OkPacket.decode(payload, self.capabilities)
            self._move(UpstreamTrigger.OK)
            return LoginSucceeded(ok=ok, capabilities=self.capabilities)
        self._check(UpstreamTrigger.AUTH_STEP)
        if first == AUTH_SWITCH_HEADER:
            self._auth_switch(AuthSwitchRequest.decode(payload))
        elif first == AUTH_MORE_DATA_HEADER:
            self._more_data(AuthMoreData.decode(payload).data)
        else:
            raise RemoteProtocolError(f"unexpected packet 0x{first:02x} during authentication")
        return None

    def _auth_switch(self, request: AuthSwitchRequest) -> None:
        if self._switched:
            raise RemoteProtocolError(
                "second auth switch", error_code=ErrorCode.CR_MALFORMED_PACKET
            )
        self._switched = True
        self.plugin = request.plugin_name
        self._nonce = auth.nonce_of(request.plugin_data)
        self._respond_with(self._first_response())

    def _respond_with(self, data: bytes) -> None:
        self._queue(data)

    def _first_response(self) -> bytes:
        tls = self.use_tls
        if self.plugin == AuthPlugin.SHA256_PASSWORD and not tls and self.server_public_key:
            return auth.sha2_rsa_encrypt(self._password, self._nonce, self.server_public_key)
        if self.plugin == AuthPlugin.SHA256_PASSWORD and not tls:
            self._awaiting_key = True
        return auth.first_response(self.plugin, self._password, self._nonce, tls=tls)

    def _more_data(self, data: bytes) -> None:
        if self._awaiting_key:
            self._awaiting_key = False
            self._respond_with(auth.sha2_rsa_encrypt(self._password, self._nonce, data))
            return
        if self.plugin != AuthPlugin.CACHING_SHA2_PASSWORD or len(data) != 1:
            raise RemoteProtocolError(f"unexpected AuthMoreData for {self.plugin}")
        if data[0] == CACHING_SHA2_FAST_AUTH_SUCCESS:
            return  # OK follows
        if data[0] != CACHING_SHA2_PERFORM_FULL_AUTHENTICATION:
            raise RemoteProtocolError(f"unknown caching_sha2_password status {data[0]}")
        if self.use_tls:
            self._respond_with(auth.clear_password(self._password))
        elif self.server_public_key:
            key = self.server_public_key
            self._respond_with(auth.sha2_rsa_encrypt(self._password, self._nonce, key))
        else:
            self._awaiting_key = True
            self._respond_with(auth.REQUEST_PUBLIC_KEY)

    def login(
        self,
        *,
        capabilities: Capability,
        database: str | None = None,
        character_set: int | None = None,
        attrs: tuple[tuple[str, str], ...] = (),
        max_packet_size: int = _DEFAULT_MAX_PACKET,
    ) -> None:
        """Queue the login (or, with ``use_tls``, the SSLRequest that precedes it)."""
        handshake = self.handshake
        if handshake is None:
            raise LocalProtocolError(f"login() in state {self.state.name}")
        server = handshake.capabilities
        if server & _REQUIRED != _REQUIRED:
            raise LocalProtocolError(
                "upstream server lacks protocol 4.1 plugin authentication",
                error_code=ErrorCode.CR_UNKNOWN_ERROR,
            )
        if self.use_tls and not server & Capability.CLIENT_SSL:
            raise LocalProtocolError(
                "upstream server does not offer TLS", error_code=ErrorCode.CR_SSL_CONNECTION_ERROR
            )
        caps = Capability(capabilities) & GATEWAY_CAPABILITIES & server
        caps |= _REQUIRED
        caps &= ~(Capability.CLIENT_SSL | Capability.CLIENT_CONNECT_WITH_DB)
        if self.use_tls:
            caps |= Capability.CLIENT_SSL
        if database:
            caps |= Capability.CLIENT_CONNECT_WITH_DB
        if not attrs:
            caps &= ~Capability.CLIENT_CONNECT_ATTRS
        self.plugin = handshake.auth_plugin_name
        if self.plugin not in auth.SUPPORTED_PLUGINS or (
            self.plugin == AuthPlugin.MYSQL_CLEAR_PASSWORD and not self.use_tls
        ):
            self.plugin = AuthPlugin.MYSQL_NATIVE_PASSWORD  # the server will switch us
        self._nonce = auth.nonce_of(handshake.auth_plugin_data)
        charset = handshake.character_set if character_set is None else character_set
        self.capabilities = caps
        login = HandshakeResponse41(
            capabilities=caps,
            max_packet_size=max_packet_size,
            character_set=charset,
            username=self.username,
            auth_response=b"",
            database=database if database else None,
            client_plugin_name=self.plugin,
            attrs=attrs if attrs else None,
        )
        if self.use_tls:
            self._move(UpstreamTrigger.LOGIN_TLS)
            ssl = SSLRequest(
                capabilities=caps, max_packet_size=max_packet_size, character_set=charset
            )
            self._queue(ssl.encode())
            self._pending_login = login
            return
        self._move(UpstreamTrigger.LOGIN)
        self._send_login(login)

    def tls_started(self) -> None:
        """The TLS handshake with the server is done: send the login over it."""
        self._move(UpstreamTrigger.TLS_STARTED)
        assert self._pending_login is not None
        login, self._pending_login = self._pending_login, None
        self._send_login(login)

    def _send_login(self, login: HandshakeResponse41) -> None:
        response = self._first_response()
        self._queue(replace(login, auth_response=response).encode())

    def start_command(self, payload: bytes) -> ResponseTracker:
        """Queue one of the gateway's own commands; returns the tracker for its response."""
        if self.state is not UpstreamState.READY:
            raise LocalProtocolError(f"start_command() in state {self.state.name}")
        tracker = ResponseTracker(payload[0], self.capabilities)
        data, _ = frame(payload, 0)
        self._out += data
        return tracker
