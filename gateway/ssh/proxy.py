"""The SSH listeners and one handler per agent connection (trio side of gateway.ssh.host).

Theory of operation
-------------------
:func:`serve_ssh` opens the one asyncssh host (a trio-asyncio loop) for all ``[[ssh]]``
targets and starts their listeners with the gateway's host key
(``<data_dir>/ssh_host_ed25519_key``). Each TCP connection gets an :class:`SSHSession`,
which owns the connection's ``Session`` event stream:

1. Login (under ``handshake_timeout``, enforced by asyncssh): password or
   keyboard-interactive carrying the token; ``Authenticated`` or ``AuthenticationRejected``.
   The SSH user name is recorded as ``client_user`` and otherwise ignored: upstream the
   gateway logs in as the vaulted user.
2. Channels: exec commands go through ``Guard.check_shell``; shells, sftp, agent and port
   forwarding through ``Guard.check_session``. Denied: a message on stderr and exit status
   126, nothing reaches the target. Allowed: the upstream connection (opened at the first
   channel that needs it; sessions with a forwarded agent get their own, see ``_upstream``;
   host key always verified) runs it; output is masked and recorded by the taps
   of ``gateway.ssh.recording``; a ``ResponseRecorded`` carries the exit status in
   ``error_code`` and byte counts in ``transcript``.
3. Close: client quit, token expiry, an operator's termination, an upstream failure, or an
   error: exactly one ``Closed`` event. Expiry and termination write a message to every open
   channel first. A failure ends only its own connection.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import trio

from events.domain import Session
from gateway.context import GatewayContext
from gateway.guard import Verdict
from gateway.identity import Identity, TokenRejected
from gateway.masking import DEFAULT_PROFILE, MaskingProfile, StreamMasker
from gateway.policy.model import SessionKind
from gateway.recording import SessionRecorder
from gateway.session import SessionLog
from gateway.ssh.host import (
    ClientConnection,
    HostKey,
    ServerChannel,
    SSHHost,
    SSHListener,
    UpstreamConnection,
    UpstreamError,
    UpstreamLogin,
    connect_upstream,
    load_host_key,
    open_ssh_host,
)
from gateway.ssh.recording import (
    ChannelStream,
    MaskingTap,
    PassThroughTap,
    SftpInputTap,
    TypedInputTap,
    TypedLine,
)
from gateway.ssh.sftp import SftpOperation
from gateway.targets import SSHTarget
from gateway.vault import VaultError

logger = logging.getLogger("wardgate.ssh")

HOST_KEY_FILE = "ssh_host_ed25519_key"
DENIED_STATUS = 126
"""Exit status of a refused command (the shell's 'found but cannot run')."""
MAX_REJECTIONS = 5
"""Rejected tokens on one connection before it is closed (each is verified and recorded)."""
FAILED_STATUS = 255
"""Exit status when the gateway or the target failed (what ssh itself uses)."""


async def serve_ssh(
    targets: list[SSHTarget],
    ctx: GatewayContext,
    data_dir: Path,
    *,
    task_status: trio.TaskStatus[dict[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every SSH target from one asyncssh host until cancelled; reports the ports."""
    host_key = load_host_key(data_dir / HOST_KEY_FILE)
    async with open_ssh_host() as host, trio.open_nursery() as nursery:
        ports: dict[str, int] = {}
        proxies = []
        try:
            for target in targets:
                proxy = SSHProxy(target, ctx, host=host, nursery=nursery)
                ports[target.name] = await proxy.start(host_key)
                proxies.append(proxy)
            task_status.started(ports)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                for proxy in proxies:
                    await proxy.stop()


class SSHProxy:
    """One listener: an SSH target's port."""

    def __init__(
        self, target: SSHTarget, ctx: GatewayContext, *, host: SSHHost, nursery: trio.Nursery
    ) -> None:
        self.target = target
        self.ctx = ctx
        self.host = host
        self.nursery = nursery
        self.port = 0
        self._listener: SSHListener | None = None

    async def start(self, host_key: HostKey) -> int:
        listen_host, listen_port = self.target.listen
        listener = await self.host.listen(
            host=listen_host,
            port=listen_port,
            host_key=host_key,
            login_timeout=self.target.handshake_timeout,
            factory=lambda peer: SSHSession(self, peer),
        )
        self._listener = listener
        self.port = listener.port
        return self.port

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.aclose()

    def profile(self, name: str | None) -> MaskingProfile:
        """The profile the decision names, as the policy defines it. Streams are always
        masked: a policy that turns masking off (``"none"``) still gets the default here."""
        return self.ctx.guard.masking_profile(name) or DEFAULT_PROFILE


class SSHSession:
    """The trio-side handler of one agent connection (see the module docstring)."""

    def __init__(self, proxy: SSHProxy, peer: str) -> None:
        self.proxy = proxy
        self.ctx = proxy.ctx
        self.target = proxy.target
        self.log = SessionLog(node=self.ctx.node)
        self.peer = peer
        self.started = time.monotonic()
        self.identity: Identity | None = None
        self.rejections = 0
        self.conn: ClientConnection | None = None
        self.upstreams: dict[str | None, UpstreamConnection] = {}
        """Upstream connections by forwarded agent path (None: no agent forwarding)."""
        self._upstream_lock = trio.Lock()
        self._closing: tuple[str, str] | None = None
        self._watch = trio.CancelScope()
        self.recorder: SessionRecorder | None = None
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ConnectionAccepted,
                    node=self.ctx.node,
                    protocol="ssh",
                    target=self.target.name,
                    listener=f"{self.target.listen[0]}:{proxy.port}",
                    peer=peer,
                )
            ]
        )
        self.ctx.sessions.add(self.log.id, self._terminate)

    # -- lifecycle ------------------------------------------------------------------------

    def attach(self, connection: ClientConnection) -> None:
        self.conn = connection

    def _end(self, reason: str, detail: str, message: str) -> None:
        if self._closing is None:
            self._closing = (reason, detail)
        if self.conn is not None:
            self.conn.close(message)

    def _terminate(self, by: str, reason: str) -> None:
        self._end(
            "killed", f"ended by {by}: {reason}", f"wardgate: session ended by {by}: {reason}"
        )

    async def _watch_expiry(self, expires_at: float) -> None:
        with self._watch:
            await trio.sleep(max(0.0, expires_at - time.time()))
            self._end(
                "token_expired",
                "the token expired",
                "wardgate: your token expired; reconnect with a fresh token",
            )

    def connection_lost(self, error: str | None) -> None:
        self._watch.cancel()
        self.ctx.sessions.remove(self.log.id)
        if self._closing is not None:
            reason, detail = self._closing
        elif self.identity is None and self.rejections:
            reason, detail = "auth_failed", f"{self.rejections} rejected token(s)"
        elif self.identity is None:
            reason, detail = "error", error or "closed before authentication"
        else:
            reason, detail = "client_quit", error or ""
        recorder = self.recorder
        if recorder is not None:
            recorder.flush()  # the last chunks come before Closed
        self.ctx.writer.submit([self.log.event(Session.Closed, reason=reason, detail=detail)])
        if recorder is not None:
            try:  # the keyframe worker may finish its last screens, off the loop
                self.proxy.nursery.start_soon(recorder.aclose)
            except RuntimeError:  # the gateway is shutting down: write the index now
                recorder.close()
        for upstream in self.upstreams.values():
            upstream.close()

    # -- login ----------------------------------------------------------------------------

    async def authenticate(self, username: str, secret: str, method: str) -> str | None:
        writer = self.ctx.writer
        try:
            identity = await self.ctx.verifier.verify_async(secret)
        except TokenRejected as exc:
            self.rejections += 1
            await writer.write(
                [
                    self.log.event(
                        Session.AuthenticationRejected,
                        reason=str(exc.reason),
                        message=exc.message,
                        client_user=username,
                    )
                ]
            )
            return self._rejected(f"wardgate: token rejected: {exc.message}")
        except Exception as exc:  # the IdP is down and keys are needed: fail closed
            self.rejections += 1
            logger.warning("cannot verify an SSH token now: %s", exc)
            await writer.write(
                [
                    self.log.event(
                        Session.AuthenticationRejected,
                        reason="unavailable",
                        message=f"cannot verify the token now: {type(exc).__name__}",
                        client_user=username,
                    )
                ]
            )
            return self._rejected("wardgate: cannot verify tokens right now; try again later")
        self.identity = identity
        await writer.write(
            [
                self.log.event(
                    Session.Authenticated,
                    actor=identity.subject,
                    subject=identity.subject,
                    groups=sorted(identity.groups),
                    issuer=identity.issuer,
                    token_id=identity.token_id,
                    expires_at=identity.expires_at,
                    client_user=username,
                )
            ]
        )
        self.proxy.nursery.start_soon(self._watch_expiry, identity.expires_at)
        return None

    def _rejected(self, message: str) -> str:
        if self.rejections >= MAX_REJECTIONS:
            self._end("auth_failed", f"{self.rejections} rejected tokens", message)
        return message

    # -- upstream -------------------------------------------------------------------------

    async def _upstream(
        self, agent_path: str | None, *, any_agent: bool = False
    ) -> UpstreamConnection:
        """The connection's upstream for a channel: one with the agent forwarded for a
        session whose agent forwarding policy allowed, one without for a session without,
        each opened at its first use (asyncssh forwards the agent to every session channel
        of a connection that has it, so the two are never mixed). ``any_agent``: either
        will do (a port forward), the one without preferred.

        Before, the first channel opened the only upstream: an ``ssh -A -L`` whose tunnel
        was used before its session started lost the allowed agent forwarding."""
        async with self._upstream_lock:
            if any_agent and self.upstreams:
                return self.upstreams.get(None) or next(iter(self.upstreams.values()))
            upstream = self.upstreams.get(agent_path)
            if upstream is None:
                upstream = await connect_upstream(self._login(agent_path))
                self.upstreams[agent_path] = upstream
            return upstream

    def _login(self, agent_path: str | None) -> UpstreamLogin:
        target = self.target
        try:
            credential = self.ctx.vault.get(target.credential)
        except VaultError as exc:
            raise UpstreamError("config", f"target {target.name}: {exc}") from None
        if credential.kind not in ("ssh-password", "ssh-key"):
            raise UpstreamError(
                "config", f"credential {credential.name} is {credential.kind}, not an SSH one"
            )
        secret = credential.secret.reveal()
        return UpstreamLogin(
            host=target.upstream[0],
            port=target.upstream[1],
            username=credential.username,
            password=secret if credential.kind == "ssh-password" else None,
            private_key=secret if credential.kind == "ssh-key" else None,
            host_key=target.host_key,
            known_hosts=target.known_hosts,
            connect_timeout=target.connect_timeout,
            agent_path=agent_path,
        )

    def _upstream_failed(self, exc: UpstreamError, seq: int) -> None:
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ResponseRecorded,
                    seq=seq,
                    ok=False,
                    error_code=FAILED_STATUS,
                    error_message=f"{exc.reason}: {exc.message}",
                )
            ]
        )
        self._end("upstream_error", f"{exc.reason}: {exc.message}", f"wardgate: {exc.message}")

    # -- channels -------------------------------------------------------------------------

    async def _decide(self, what: SessionKind, text: str) -> Verdict:
        assert self.identity is not None
        return await self.ctx.guard.check_session(
            log=self.log,
            identity=self.identity,
            target=self.target.name,
            what=what,
            text=text,
            max_hold=self.target.max_hold,
        )

    async def session(self, channel: ServerChannel) -> None:
        identity = self.identity
        assert identity is not None
        request = channel.request
        agent_path: str | None = None
        if request.agent_requested:
            agent = await self._decide(SessionKind.AGENT_FORWARD, "auth-agent-req")
            if agent.forward:
                agent_path = channel.agent_path
            else:
                await channel.notice(f"wardgate: agent forwarding refused: {agent.message}")
        if request.kind == "exec":
            verdict = await self.ctx.guard.check_shell(
                log=self.log,
                identity=identity,
                target=self.target.name,
                text=request.command or "",
                max_hold=self.target.max_hold,
            )
        elif request.kind == "subsystem" and request.subsystem == "sftp":
            verdict = await self._decide(SessionKind.SFTP, "subsystem sftp")
        elif request.kind == "subsystem":
            await channel.fail(f"wardgate: subsystem {request.subsystem} is not supported", 126)
            return
        else:
            what = f"pty {request.term_type}" if request.term_type else "no pty"
            verdict = await self._decide(SessionKind.SHELL, what)
        if not verdict.forward:
            await channel.fail(verdict.message, DENIED_STATUS)
            return
        try:
            upstream = await self._upstream(agent_path)
        except UpstreamError as exc:
            await channel.fail(f"wardgate: {exc.message}", FAILED_STATUS)
            self._upstream_failed(exc, verdict.seq)
            return
        try:
            await self._relay(channel, upstream, verdict)
        except UpstreamError as exc:  # the upstream connection broke since it was opened
            await channel.fail(f"wardgate: {exc.message}", FAILED_STATUS)
            self._upstream_failed(exc, verdict.seq)

    async def _relay(
        self, channel: ServerChannel, upstream: UpstreamConnection, verdict: Verdict
    ) -> None:
        if channel.request.subsystem == "sftp":
            await self._relay_sftp(channel, upstream, verdict)
            return
        profile = self.proxy.profile(verdict.masking_profile)
        interactive = channel.request.term_type is not None
        recorder = self._recorder(channel)

        def stream(name: str) -> ChannelStream:
            return ChannelStream(
                recorder, name, limit=self.target.record_limit, rate=self.target.record_rate
            )

        # A terminal's stdout and stderr are one screen: both are the "pty" stream, which
        # replay renders (and the recorder keyframes); exec output keeps its two streams.
        stdout = MaskingTap(StreamMasker(profile), stream("pty" if interactive else "stdout"))
        stderr = MaskingTap(StreamMasker(profile), stream("pty" if interactive else "stderr"))
        typed = None
        if interactive:
            typed = TypedInputTap(
                profile=profile,
                recording=stream("input"),
                output_tail=lambda: stdout.tail,
                on_line=self._typed_line,
            )
        began = time.perf_counter()
        if channel.closed:  # the client left while the command was decided or held
            self._client_left(verdict.seq)
            return
        result = await channel.relay(upstream, stdout=stdout, stderr=stderr, stdin=typed)
        for tap in (stdout, stderr):
            tap.close()
        if typed is not None:
            typed.close()
        recorder.flush()  # the channel's chunks come before its ResponseRecorded
        masked: dict[str, int] = {}
        for counts in (stdout.masker.counts, stderr.masker.counts):
            for kind, n in counts.items():
                masked[kind] = masked.get(kind, 0) + n
        status = result.exit_status
        message = f"killed by signal {result.exit_signal}" if result.exit_signal else None
        if result.ended_by != "exit":
            message = f"{message or 'ended'} ({result.ended_by.replace('_', ' ')})"
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ResponseRecorded,
                    seq=verdict.seq,
                    ok=status == 0,
                    error_code=status,
                    error_message=message,
                    duration_ms=round((time.perf_counter() - began) * 1000, 3),
                    masked=masked,
                    transcript={
                        "stdin_bytes": result.bytes_in,
                        "stdout_bytes": result.bytes_out,
                        "stderr_bytes": result.bytes_err,
                        "exit_signal": result.exit_signal,
                        "ended_by": result.ended_by,
                        "hidden_input_bytes": typed.hidden_bytes if typed else 0,
                        "unrecorded_bytes": stdout.recording.unrecorded
                        + stderr.recording.unrecorded,
                        "recording_gaps": stdout.recording.gaps + stderr.recording.gaps,
                        "recorded_tail_bytes": stdout.recording.tail + stderr.recording.tail,
                    },
                    truncated=stdout.recording.truncated or stderr.recording.truncated,
                )
            ]
        )

    async def _relay_sftp(
        self, channel: ServerChannel, upstream: UpstreamConnection, verdict: Verdict
    ) -> None:
        """sftp is relayed unchanged (binary); its file operations become events."""
        if channel.closed:
            self._client_left(verdict.seq)
            return
        requests = SftpInputTap(self._sftp_operation)
        began = time.perf_counter()
        result = await channel.relay(
            upstream, stdout=PassThroughTap(), stderr=PassThroughTap(), stdin=requests
        )
        scanner = requests.scanner
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ResponseRecorded,
                    seq=verdict.seq,
                    ok=result.exit_status in (0, None) and result.ended_by != "interrupted",
                    error_code=result.exit_status,
                    duration_ms=round((time.perf_counter() - began) * 1000, 3),
                    transcript={
                        "stdin_bytes": result.bytes_in,
                        "stdout_bytes": result.bytes_out,
                        "sftp_requests": scanner.packets,
                        "sftp_write_bytes": scanner.write_bytes,
                        "sftp_malformed": scanner.malformed,
                        "ended_by": result.ended_by,
                    },
                )
            ]
        )

    def _sftp_operation(self, op: SftpOperation) -> None:
        subject = self.identity.subject if self.identity else "?"
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.CommandReceived,
                    actor=subject,
                    seq=self.log.next_seq(),
                    kind="sftp_op",
                    text=op.describe(),
                )
            ]
        )

    def _client_left(self, seq: int) -> None:
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.ResponseRecorded,
                    seq=seq,
                    ok=False,
                    error_message="not run: the client left before the command could run",
                )
            ]
        )

    def _recorder(self, channel: ServerChannel) -> SessionRecorder:
        """The connection's one recorder, made at its first recorded channel; offsets count
        from the connection's start. A terminal channel starts screen keyframes."""
        request = channel.request
        columns, lines = request.term_size[0] or 80, request.term_size[1] or 24
        pty = request.term_type is not None
        recorder = self.recorder
        if recorder is None:
            recorder = self.recorder = SessionRecorder(
                self.log,
                self.ctx.writer,
                pty=pty,
                columns=columns,
                lines=lines,
                origin=self.started,
                keyframes=self.ctx.keyframes,
            )
            self.proxy.nursery.start_soon(recorder.run)
        elif pty:
            recorder.open_terminal(columns, lines)
        return recorder

    def _typed_line(self, line: TypedLine) -> None:
        subject = self.identity.subject if self.identity else "?"
        self.ctx.writer.submit(
            [
                self.log.event(
                    Session.CommandReceived,
                    actor=subject,
                    seq=self.log.next_seq(),
                    kind="shell_line_approximate" if line.approximate else "shell_line",
                    text=line.text,
                )
            ]
        )

    # -- forwarding -----------------------------------------------------------------------

    async def direct_tcpip(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> UpstreamConnection | str:
        if self.identity is None:
            return "wardgate: not authenticated"
        verdict = await self._decide(
            SessionKind.PORT_FORWARD, f"direct-tcpip {dest_host}:{dest_port}"
        )
        if not verdict.forward:
            return verdict.message
        try:
            return await self._upstream(None, any_agent=True)
        except UpstreamError as exc:
            self._upstream_failed(exc, verdict.seq)
            return f"wardgate: {exc.message}"

    async def remote_forward(self, listen_host: str, listen_port: int) -> str:
        if self.identity is None:
            return "wardgate: not authenticated"
        verdict = await self._decide(
            SessionKind.PORT_FORWARD, f"tcpip-forward {listen_host}:{listen_port}"
        )
        if not verdict.forward:
            return verdict.message
        return "wardgate: remote forwarding (ssh -R) is not supported"
