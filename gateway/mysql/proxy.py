"""The MySQL listener and one task per client connection (the trio driver of the codec).

Theory of operation
-------------------
A connection goes through three phases, all recorded in its ``Session`` stream:

1. Login (under ``handshake_timeout``): the gateway greets with the real server's version
   and capabilities (cached from the last upstream connection), starts TLS if asked,
   switches the client to ``mysql_clear_password`` to receive the token, verifies it,
   then logs in upstream with the vaulted credential and the client's capabilities, so
   both legs agree and response bytes pass through unchanged.
2. Commands: each is classified and decided by the :class:`Guard`, whose events are
   durable before anything is forwarded. Denied or failed holds are answered with an ERR
   packet; forwarded ones are relayed back by :class:`ResponseRelay`, rows masked on the way.
   If the client vanishes while a statement runs, the statement is killed upstream.
3. Close: client quit, token expiry (an ERR and ``Closed(token_expired)``), an operator's
   termination, an upstream failure, or a protocol error: exactly one ``Closed`` event.

Everything per connection lives in one task; a failure ends that connection only.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import ssl
import time
from dataclasses import dataclass

import trio

from events.domain import Session
from events.store import StoreError
from gateway.context import GatewayContext
from gateway.identity import Identity, TokenRejected
from gateway.mysql.commands import (
    ComFieldList,
    ComInitDb,
    ComQuery,
    ComStmtExecute,
    ComStmtPrepare,
    StatementCommand,
)
from gateway.mysql.connection import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginRequested,
    ServerSide,
    TLSRequested,
)
from gateway.mysql.constants import Capability, Command, ErrorCode, sqlstate_for
from gateway.mysql.errors import MySQLProtocolError
from gateway.mysql.framing import frame
from gateway.mysql.packets import ErrPacket
from gateway.mysql.relay import ResponseRelay, UpstreamClosed
from gateway.mysql.result_masking import ResultMasker
from gateway.mysql.result_recording import ResultRecorder
from gateway.mysql.sockets import fast
from gateway.mysql.upstream import (
    UpstreamConnection,
    UpstreamError,
    UpstreamInfo,
    connect,
    kill_query,
)
from gateway.mysql.upstream_pool import PoolKey, UpstreamPool
from gateway.policy.sql import classify_sql
from gateway.policy.sql_model import StatementKind
from gateway.session import SessionLog
from gateway.targets import MySQLTarget
from gateway.vault import Credential, VaultError

logger = logging.getLogger("wardgate.mysql")

REFUSED = {
    Command.COM_PROCESS_KILL: "killing other connections is not allowed through the gateway",
    Command.COM_SHUTDOWN: "shutting the server down is not allowed through the gateway",
    Command.COM_DEBUG: "COM_DEBUG is not allowed through the gateway",
    Command.COM_REFRESH: "COM_REFRESH is not allowed through the gateway",
    Command.COM_CREATE_DB: "COM_CREATE_DB is not allowed: use CREATE DATABASE",
    Command.COM_DROP_DB: "COM_DROP_DB is not allowed: use DROP DATABASE",
    Command.COM_PROCESS_INFO: "COM_PROCESS_INFO is not allowed through the gateway",
    Command.COM_CHANGE_USER: "COM_CHANGE_USER is not allowed: the session's identity is its "
    "token; reconnect with another token",
    Command.COM_BINLOG_DUMP: "replication (COM_BINLOG_DUMP) is not allowed through the gateway",
    Command.COM_BINLOG_DUMP_GTID: "replication (COM_BINLOG_DUMP_GTID) is not allowed through "
    "the gateway",
    Command.COM_REGISTER_SLAVE: "replication (COM_REGISTER_SLAVE) is not allowed through the "
    "gateway",
}
LOCAL_INFILE_REFUSED = (
    "LOAD DATA LOCAL is refused: the gateway does not relay files from the client "
    "(load server-side files, or INSERT the rows)"
)
LOCAL_WORD = re.compile(r"\bLOCAL\b")
HOUSEKEEPING = {
    Command.COM_PING: "COM_PING",
    Command.COM_STATISTICS: "COM_STATISTICS",
    Command.COM_SET_OPTION: "COM_SET_OPTION",
    Command.COM_RESET_CONNECTION: "COM_RESET_CONNECTION",
    Command.COM_STMT_CLOSE: "COM_STMT_CLOSE",
    Command.COM_STMT_RESET: "COM_STMT_RESET",
    Command.COM_STMT_FETCH: "COM_STMT_FETCH",
    Command.COM_STMT_SEND_LONG_DATA: "COM_STMT_SEND_LONG_DATA",
}
RESPONSE_CAPABILITIES = (
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_DEPRECATE_EOF
    | Capability.CLIENT_SESSION_TRACK
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
    | Capability.CLIENT_MULTI_STATEMENTS
    | Capability.CLIENT_OPTIONAL_RESULTSET_METADATA
    | Capability.CLIENT_LONG_FLAG
    | Capability.CLIENT_TRANSACTIONS
)
"""Capabilities that change how responses look: both legs must agree on them."""
LOST = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
EXPIRED_GRACE = 300.0
"""How long a session whose token expired while idle waits for the client's next command
(to answer it with the reason) before closing without a word."""
SLOW_QUERY_WATCH = 0.05
"""After this long without a full answer, watch the client too (to kill a query it left)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedStatement:
    """What was decided at PREPARE, applied at every EXECUTE (and FETCH) of the statement."""

    sql: str
    rule: str
    masking_profile: str | None


UNKNOWN_STATEMENT = PreparedStatement(sql="", rule="?", masking_profile=None)
"""An id the session never prepared (the server answers with an error): default masking."""


class ClosingSession(Exception):
    """Ends the session loop with a reason recorded in ``Closed``."""

    def __init__(self, reason: str, detail: str, *, client_message: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.client_message = client_message


class MySQLProxy:
    """One listener: a MySQL target's port."""

    def __init__(self, target: MySQLTarget, ctx: GatewayContext) -> None:
        self.target = target
        self.ctx = ctx
        self.info: UpstreamInfo | None = None
        self.ids = itertools.count(1)
        self.tls: ssl.SSLContext | None = None
        if target.tls_cert and target.tls_key:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(str(target.tls_cert), str(target.tls_key))
        self.port = 0
        self.pool = UpstreamPool(size=target.pool_size)
        self._credential: tuple[tuple[int, int, int], Credential] | None = None

    async def upstream_info(self) -> UpstreamInfo:
        if self.info is None:
            self.info = (await connect(self.target, None)).info
        return self.info

    def credential(self) -> Credential:
        """The vaulted upstream login, decrypted again only when the vault file changed
        (``vault set`` replaces the file: a new inode and mtime), not on every connection."""
        vault = self.ctx.vault
        try:
            st = os.stat(vault.path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        cached = self._credential
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        try:
            credential = vault.get(self.target.credential)
        except VaultError as exc:
            raise UpstreamError(f"target {self.target.name}: {exc}") from None
        self._credential = (stamp, credential) if stamp is not None else None
        return credential

    async def serve(
        self,
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept until cancelled; connections run in ``handler_nursery`` when given, so
        that a graceful shutdown can stop accepting and let them finish."""
        host, port = self.target.listen
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self.handle, listeners, handler_nursery=handler_nursery)

    async def handle(self, stream: trio.SocketStream) -> None:
        session = MySQLSession(self, stream)
        await session.run()


class MySQLSession:
    def __init__(self, proxy: MySQLProxy, stream: trio.SocketStream) -> None:
        self.proxy = proxy
        self.ctx = proxy.ctx
        self.target = proxy.target
        self.client: trio.abc.Stream = fast(stream)
        self.log = SessionLog(node=self.ctx.node)
        self.identity: Identity | None = None
        self.upstream: UpstreamConnection | None = None
        self.server: ServerSide | None = None
        self.database: str | None = None
        self.prepared: dict[int, PreparedStatement] = {}
        self.terminated: tuple[str, str] | None = None
        self.cancel_scope = trio.CancelScope()
        self.draining = False
        self.idle_scope: trio.CancelScope | None = None
        self.waiting = False
        self.deadline = math.inf
        self.pool_key: PoolKey | None = None
        self.clean_quit = False
        try:
            host, port = stream.socket.getpeername()[:2]
            self.peer = f"{host}:{port}"
        except OSError:
            self.peer = "?"

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        ctx.writer.submit(
            [
                self.log.event(
                    Session.ConnectionAccepted,
                    node=ctx.node,
                    protocol="mysql",
                    target=self.target.name,
                    listener=f"{self.target.listen[0]}:{self.proxy.port}",
                    peer=self.peer,
                )
            ]
        )
        reason, detail = "error", ""
        ctx.sessions.add(self.log.id, self._terminate, drain=self._drain, tick=self._tick)
        try:
            with self.cancel_scope:
                await self._login()
                await self._commands()
            if self.terminated is not None:
                by, why = self.terminated
                reason, detail = "killed", f"ended by {by}: {why}"
                await self._send_error(
                    f"wardgate: session ended by operator {by}: {why}",
                    ErrorCode.ER_QUERY_INTERRUPTED,
                )
            else:
                reason, detail = "client_quit", ""
        except ClosingSession as exc:
            reason, detail = exc.reason, exc.detail
            if exc.client_message:
                await self._send_error(exc.client_message, ErrorCode.ER_ACCESS_DENIED_ERROR)
        except MySQLProtocolError as exc:
            reason, detail = "error", f"protocol error: {exc.message}"
            if self.server is not None:
                self.server.send_error_for(exc)
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            reason, detail = "client_quit", "connection lost"
        except UpstreamClosed as exc:
            reason, detail = "upstream_error", str(exc)
            await self._send_error(f"wardgate: {exc}", ErrorCode.CR_SERVER_LOST)
        except (OSError, ssl.SSLError) as exc:
            reason, detail = "error", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug ends this connection only, never the listener
            logger.exception("session %s failed", self.log.id)
            reason, detail = "error", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            ctx.sessions.remove(self.log.id)
            closed = self.log.event(Session.Closed, reason=reason, detail=detail)
            # rides on the next transaction (within flush_after when idle): waking the
            # writer for it was one commit more per connection
            ctx.writer.submit([closed])
            upstream, self.upstream = self.upstream, None
            if upstream is not None:
                if self.clean_quit and self.pool_key is not None and reason == "client_quit":
                    with trio.CancelScope(shield=True):
                        await self.proxy.pool.give_back(self.pool_key, upstream)
                else:
                    await trio.aclose_forcefully(upstream.stream)
            await trio.aclose_forcefully(self.client)

    def _drain(self) -> None:
        """Graceful shutdown: finish the command in flight, then close."""
        self.draining = True
        if self.waiting and self.idle_scope is not None:
            self.idle_scope.cancel()

    def _tick(self, now: float) -> None:
        """The registry's sweep: a wait for the client past its deadline ends now."""
        if self.waiting and now >= self.deadline and self.idle_scope is not None:
            self.idle_scope.cancel()

    def _terminate(self, by: str, reason: str) -> None:
        self.terminated = (by, reason)
        self.cancel_scope.cancel()

    async def _flush(self) -> None:
        if self.server is None:
            return
        out = self.server.data_to_send()
        if out:
            with contextlib.suppress(*LOST):
                await self.client.send_all(out)

    async def _send_error(self, message: str, code: int) -> None:
        """ERR to the client: the answer to the current command or login when there is one,
        else unsolicited (before the greeting, or idle between commands: the client reads
        it as the answer to its next command)."""
        server = self.server
        if server is not None:
            try:
                server.send_error(message, error_code=code)
            except MySQLProtocolError:
                server = None
            else:
                await self._flush()
                return
        err = ErrPacket(error_code=code, sqlstate=sqlstate_for(code), message=message.encode())
        data, _ = frame(err.encode(), 0)
        with contextlib.suppress(*LOST):
            await self.client.send_all(data)

    async def _receive(self) -> None:
        server = self.server
        assert server is not None
        size = server.bytes_needed() if server.in_login else 65536
        server.receive_data(bytes(await self.client.receive_some(max(1, size))))

    # -- login ----------------------------------------------------------------------------

    async def _login(self) -> None:
        try:
            with trio.fail_after(self.target.handshake_timeout):
                await self._handshake()
        except trio.TooSlowError:
            raise ClosingSession("error", "the client stalled during the handshake") from None

    async def _handshake(self) -> None:
        try:
            info = await self.proxy.upstream_info()
        except UpstreamError as exc:
            raise ClosingSession(
                "upstream_error", str(exc), client_message=f"wardgate: {exc}"
            ) from None
        server = self.server = ServerSide(
            server_version=info.server_version,
            connection_id=next(self.proxy.ids),
            capabilities=info.capabilities,
            character_set=info.character_set,
            tls_configured=self.proxy.tls is not None,
            allow_cleartext_without_tls=self.target.plaintext_allowed,
        )
        await self._flush()
        while True:
            event = server.next_event()
            await self._flush()
            if event is NEED_DATA:
                await self._receive()
                continue
            if isinstance(event, TLSRequested):
                assert self.proxy.tls is not None
                tls = trio.SSLStream(self.client, self.proxy.tls, server_side=True)
                await tls.do_handshake()
                self.client = tls
                server.tls_started()
                continue
            if isinstance(event, ConnectionClosed):
                raise ClosingSession("client_quit", "closed during the handshake")
            if isinstance(event, LoginRequested):
                await self._authenticate(event)
                return

    async def _authenticate(self, event: LoginRequested) -> None:
        try:
            await self._authenticate_recorded(event)
        except StoreError as exc:
            # Nothing runs unrecorded: without a durable Authenticated there is no session.
            server = self.server
            assert server is not None
            server.reject_login(
                "wardgate: the audit store is unavailable; login refused (nothing runs unrecorded)"
            )
            await self._flush()
            raise ClosingSession("error", f"store unavailable at login: {exc}") from None

    async def _authenticate_recorded(self, event: LoginRequested) -> None:
        ctx, server = self.ctx, self.server
        assert server is not None
        try:
            identity = await ctx.verifier.verify_async(event.password.decode("utf-8", "replace"))
        except TokenRejected as exc:
            await ctx.writer.write(
                [
                    self.log.event(
                        Session.AuthenticationRejected,
                        reason=str(exc.reason),
                        message=exc.message,
                        client_user=event.username,
                    )
                ]
            )
            server.reject_login(f"wardgate: token rejected: {exc.message}")
            await self._flush()
            raise ClosingSession("auth_failed", f"token rejected: {exc.reason}") from None
        except Exception as exc:  # the IdP is down and keys are needed: fail closed
            server.reject_login(f"wardgate: cannot verify the token now: {exc}")
            await self._flush()
            raise ClosingSession("auth_failed", f"verification unavailable: {exc}") from None
        self.identity = identity
        await ctx.writer.write(
            [
                self.log.event(
                    Session.Authenticated,
                    actor=identity.subject,
                    subject=identity.subject,
                    groups=sorted(identity.groups),
                    issuer=identity.issuer,
                    token_id=identity.token_id,
                    expires_at=identity.expires_at,
                    client_user=event.username,
                )
            ]
        )
        if self.target.pool_size > 0:
            self.pool_key = PoolKey(
                capabilities=int(event.capabilities),
                character_set=event.character_set,
                database=event.database or "",
            )
            self.upstream = self.proxy.pool.take(self.pool_key)
        if self.upstream is None:
            try:
                self.upstream = await connect(
                    self.target,
                    self.proxy.credential(),
                    capabilities=event.capabilities,
                    database=event.database,
                    character_set=event.character_set,
                )
            except UpstreamError as exc:
                server.reject_login(f"wardgate: {exc}")
                await self._flush()
                raise ClosingSession("upstream_error", str(exc)) from None
        self.proxy.info = self.upstream.info
        assert self.upstream.login is not None
        if (self.upstream.login.capabilities ^ server.capabilities) & RESPONSE_CAPABILITIES:
            server.reject_login("wardgate: the upstream server changed; please reconnect")
            await self._flush()
            raise ClosingSession("upstream_error", "upstream capabilities changed")
        self.database = event.database
        server.accept_login()
        await self._flush()

    # -- commands -------------------------------------------------------------------------

    async def _commands(self) -> None:
        server, identity = self.server, self.identity
        assert server is not None and identity is not None
        expires = self.deadline = identity.expires_at
        while True:
            # One cancel scope serves many waits for the client (a timeout scope per wait
            # cost a tenth of the CPU per query). It is cancelled only while the session
            # waits: by a shutdown, or by the registry's once-a-second sweep when the wait
            # outlives ``self.deadline`` (the token's expiry). Once it fired, a fresh one
            # takes over.
            with trio.CancelScope() as scope:
                self.idle_scope = scope
                while True:
                    event = server.next_event()
                    await self._flush()
                    if event is NEED_DATA:
                        if self.draining:
                            raise ClosingSession(
                                "shutdown",
                                "the gateway shut down",
                                client_message="wardgate: the gateway is shutting down; reconnect",
                            )
                        if time.time() < self.deadline:
                            self.waiting = True
                            try:
                                await self._receive()
                            finally:
                                self.waiting = False
                            if scope.cancel_called:
                                break  # a new scope for the command that came in
                            continue
                        if self.deadline == expires:
                            # Expired while idle: free the upstream now, but answer the client's
                            # next command with the reason (an ERR sent now would be lost in the
                            # reset when the client writes to a closed socket).
                            await self._drop_upstream()
                            self.deadline = time.time() + EXPIRED_GRACE
                            continue
                        raise ClosingSession(
                            "token_expired", "the token expired (the client was idle)"
                        )
                    if isinstance(event, ConnectionClosed):
                        if time.time() >= expires:
                            raise ClosingSession("token_expired", "the token expired")
                        if event.by_quit and self.upstream is not None:
                            if self.pool_key is not None:
                                self.clean_quit = True  # the upstream goes back to the pool
                            else:
                                await self.upstream.stream.send_all(b"\x01\x00\x00\x00\x01")
                        return
                    if time.time() >= expires:
                        raise ClosingSession(
                            "token_expired",
                            "the token expired",
                            client_message="wardgate: your token expired; reconnect with a fresh token",
                        )
                    if isinstance(event, InvalidCommand):
                        if event.command in REFUSED:
                            message = REFUSED[Command(event.command)]
                            await self._refuse(
                                event.command, message, ErrorCode.ER_SPECIFIC_ACCESS_DENIED_ERROR
                            )
                        else:
                            await self._refuse(
                                event.command, event.error.message, event.error.error_code
                            )
                    elif isinstance(event, CommandReceived):
                        await self._command(event)
            self.idle_scope = None

    async def _drop_upstream(self) -> None:
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            await trio.aclose_forcefully(upstream.stream)

    async def _refuse(self, command: int, message: str, code: int) -> None:
        seq = self.log.next_seq()
        name = _command_name(command)
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.CommandReceived, actor=self._subject(), seq=seq, kind=name, text=""
                ),
                self.log.event(
                    Session.CommandDecided, seq=seq, action="deny", rule="protocol", reason=message
                ),
            ]
        )
        server = self.server
        assert server is not None
        server.send_error(f"wardgate: {message}", error_code=code)
        await self._flush()

    def _subject(self) -> str:
        return self.identity.subject if self.identity else "?"

    async def _command(self, event: CommandReceived) -> None:
        command, packet = event.command, event.packet
        if command in REFUSED:
            if event.tracker is not None:
                await self._refuse(
                    command, REFUSED[Command(command)], ErrorCode.ER_SPECIFIC_ACCESS_DENIED_ERROR
                )
            return
        identity = self.identity
        assert identity is not None
        guard, target = self.ctx.guard, self.target
        params: list[object] | None = None
        profile_override: tuple[str | None] | None = None
        if isinstance(packet, ComQuery | ComStmtPrepare) and _loads_local_file(packet.sql):
            await self._refuse(command, LOCAL_INFILE_REFUSED, ErrorCode.ER_NOT_ALLOWED_COMMAND)
            return
        key = self.pool_key
        if (
            isinstance(packet, ComQuery)
            and key is not None
            and not key.database
            and _may_change_database(packet.sql)
        ):
            self.pool_key = None  # no way back to "no database": not reusable
        if isinstance(packet, ComQuery | ComStmtPrepare):
            verdict = await guard.check_sql(
                log=self.log,
                identity=identity,
                target=target.name,
                kind=_command_name(command),
                text=packet.sql,
                database=self.database,
                max_hold=target.max_hold,
            )
        elif isinstance(packet, ComInitDb):
            if self.pool_key is not None and not self.pool_key.database:
                self.pool_key = None  # no way back to "no database": not reusable
            name = packet.schema.decode(errors="replace")
            verdict = await guard.check_sql(
                log=self.log,
                identity=identity,
                target=target.name,
                kind="COM_INIT_DB",
                text=f"USE `{name}`",
                database=self.database,
                max_hold=target.max_hold,
            )
            if verdict.forward:
                self.database = name
        elif isinstance(packet, ComFieldList):
            table = packet.table.decode(errors="replace")
            verdict = await guard.check_sql(
                log=self.log,
                identity=identity,
                target=target.name,
                kind="COM_FIELD_LIST",
                text=f"SHOW COLUMNS FROM `{table}`",
                database=self.database,
                max_hold=target.max_hold,
            )
        elif isinstance(packet, ComStmtExecute):
            statement = self.prepared.get(packet.statement_id, UNKNOWN_STATEMENT)
            params = [_param(v) for v in packet.values]
            verdict = await guard.record_protocol(
                log=self.log,
                identity=identity,
                kind="COM_STMT_EXECUTE",
                text=statement.sql,
                params=params,
                rule=statement.rule,
            )
            profile_override = (statement.masking_profile,)
        elif command in HOUSEKEEPING:
            if isinstance(packet, StatementCommand):  # FETCH rows: the statement's masking
                found = self.prepared.get(packet.statement_id, UNKNOWN_STATEMENT)
                profile_override = (found.masking_profile,)
            verdict = await guard.record_protocol(
                log=self.log,
                identity=identity,
                kind=HOUSEKEEPING[Command(command)],
                text="",
                params=None,
                rule="protocol",
            )
        else:
            await self._refuse(
                command,
                f"command {_command_name(command)} is not supported",
                ErrorCode.ER_UNKNOWN_COM_ERROR,
            )
            return
        server = self.server
        assert server is not None
        if not verdict.forward:
            if event.tracker is not None:
                server.send_error(
                    verdict.message, error_code=ErrorCode.ER_SPECIFIC_ACCESS_DENIED_ERROR
                )
                await self._flush()
            return
        # Rows of an executed statement are masked by the profile decided at its PREPARE.
        profile = verdict.masking_profile if profile_override is None else profile_override[0]
        await self._forward(event, verdict.seq, profile)
        if isinstance(packet, ComStmtPrepare) and event.tracker is not None:
            ok = event.tracker.prepare_ok
            if ok is not None:
                self.prepared[ok.statement_id] = PreparedStatement(
                    sql=packet.sql, rule=verdict.rule, masking_profile=verdict.masking_profile
                )

    async def _forward(self, event: CommandReceived, seq: int, profile: str | None) -> None:
        upstream = self.upstream
        assert upstream is not None
        started = time.perf_counter()
        await upstream.stream.send_all(event.raw)
        tracker = event.tracker
        if tracker is None:
            return
        masker = self._masker(profile)
        limit = self.target.record_rows
        recorder = ResultRecorder(limit, masker) if limit > 0 else None
        rewrite = recorder if recorder is not None else masker
        relay = ResponseRelay(upstream.stream, self.client, tracker, rewrite=rewrite)
        try:
            if not await relay.run(trio.current_time() + SLOW_QUERY_WATCH):
                await self._relay_watching_client(relay)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._kill_upstream_query()
            raise
        duration = (time.perf_counter() - started) * 1000
        error = tracker.error
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ResponseRecorded,
                    seq=seq,
                    ok=error is None,
                    rows=tracker.rows,
                    affected_rows=tracker.affected_rows,
                    error_code=error.error_code if error is not None else None,
                    error_message=error.message.decode(errors="replace")[:500] if error else None,
                    duration_ms=round(duration, 3),
                    masked=masker.totals() if masker is not None else {},
                    transcript=recorder.transcript(tracker.rows) if recorder is not None else None,
                    truncated=recorder.truncated if recorder is not None else False,
                )
            ]
        )

    async def _relay_watching_client(self, relay: ResponseRelay) -> None:
        """The rest of a slow response, while watching whether the client goes away."""
        server = self.server
        assert server is not None
        gone = False
        failure: Exception | None = None

        async def watch(cancel: trio.CancelScope) -> None:
            nonlocal gone
            try:
                while data := await self.client.receive_some(65536):
                    server.receive_data(bytes(data))  # a pipelined next command
            except LOST:
                pass
            gone = True
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await relay.run()
            except Exception as exc:  # raised below, not as an ExceptionGroup
                failure = exc
            nursery.cancel_scope.cancel()
        if gone:
            await self._kill_upstream_query()
            raise trio.BrokenResourceError("the client went away mid-query")
        if failure is not None:
            raise failure

    async def _kill_upstream_query(self) -> None:
        upstream = self.upstream
        if upstream is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            try:
                await kill_query(self.target, self.proxy.credential(), upstream.thread_id)
                logger.info("killed upstream query on thread %d", upstream.thread_id)
            except UpstreamError as exc:
                logger.warning("could not kill the upstream query: %s", exc)

    def _masker(self, profile: str | None) -> ResultMasker | None:
        resolved = self.ctx.guard.masking_profile(profile)
        return ResultMasker(resolved) if resolved is not None else None


def _loads_local_file(sql: str) -> bool:
    """Whether a statement of ``sql`` is LOAD DATA/XML LOCAL (the client would send a file)."""
    for statement in classify_sql(sql).statements:
        if statement.kind is StatementKind.LOAD_OUTFILE and statement.subkind.startswith("LOAD"):
            head = statement.text.upper().split("INFILE", 1)[0]
            if LOCAL_WORD.search(head):
                return True
    return False


def _may_change_database(sql: str) -> bool:
    """Whether ``sql`` may change the connection's current database (USE, or a statement
    the classifier does not understand)."""
    return any(
        s.subkind == "USE" or s.kind is StatementKind.UNKNOWN for s in classify_sql(sql).statements
    )


def _command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"COM_0x{command:02x}"


def _param(value: object) -> object:
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return text if len(text) <= 200 else text[:200] + "..."
    return str(value)
