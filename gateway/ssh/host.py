"""The one module that runs asyncssh (asyncio) inside the trio gateway, via trio-asyncio.

Theory of operation
-------------------
asyncssh is asyncio-only. :func:`open_ssh_host` opens ONE trio-asyncio loop for the life of
every asyncssh object (listeners, client connections, upstream connections); everything
asyncio lives in this module, and the rest of the gateway sees a narrow trio-facing API:

* :meth:`SSHHost.listen` starts an agent-facing SSH server. For each connection it calls a
  :data:`HandlerFactory` (a trio-side :class:`ConnectionHandler`); asyncssh's callbacks
  (password / keyboard-interactive, session channels, port forwards) run on the asyncio
  side and cross to the handler with ``trio_as_aio``.
* :func:`connect_upstream` logs in to the target with the vaulted credential, always
  verifying the target's host key, and returns an :class:`UpstreamConnection`.
* :class:`ServerChannel` is one client session channel (exec, shell, subsystem). The
  handler decides it, then either :meth:`ServerChannel.fail` (message on stderr, exit
  status) or :meth:`ServerChannel.relay` to an upstream process.

The relay's pumps run on the asyncio side (no loop crossing per chunk). Each pump reads
at most :data:`CHUNK` bytes, passes them through a synchronous tap (masking, recording:
pure code from ``gateway.ssh.recording``) and awaits ``drain()`` before reading again, so
SSH flow control holds: a slow reader on one side stops the window of the other side and
memory stays bounded whatever the volume. A masker that holds back a possible value
prefix is flushed after a short idle pause so that interactive echo is not delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncssh
import trio_asyncio
from asyncssh.constants import EXTENDED_DATA_STDERR, MSG_IGNORE
from asyncssh.mac import get_mac_algs
from trio_asyncio import aio_as_trio, trio_as_aio

logger = logging.getLogger("wardgate.ssh")

CHUNK = 128 * 1024
"""Largest read per pump step: a few SSH packets, so per-chunk costs (masking, scheduling)
are amortized while the memory held per channel stays small."""
FAST_CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
"""Preferred on both legs: one AEAD call per packet (about 12 us per 32 KiB packet here).
asyncssh's chacha20-poly1305 builds two cipher contexts per packet (46 us). On the
agent-facing leg the client's order decides, so chacha20 is not offered there at all."""
SERVER_CIPHERS = [*FAST_CIPHERS, "aes256-ctr", "aes192-ctr", "aes128-ctr"]
"""No CBC mode on either leg (which is what lets :func:`_drop_ignore_packets` apply). CTR
stays for clients without GCM (paramiko before 3.5); OpenSSH's own order picks aes128-ctr
whenever it is offered, so that is what a stock ``ssh`` uses here."""
_UMAC = [alg for alg in ("umac-128-etm@openssh.com",) if alg.encode() in get_mac_algs()]
SERVER_MACS = [
    *_UMAC,
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
]
"""For CTR only. UMAC-128 (asyncssh calls libnettle's, through ctypes, when it is installed)
costs 25 us per 32 KiB packet with AES-CTR; HMAC-SHA2-256 costs 40 us, two thirds of it the
hash: a stock ``ssh`` (which prefers UMAC) then costs the gateway about 0.5 ms less per MB in
each direction. Offered without umac-64 (OpenSSH's first choice): a 128-bit tag."""
CLIENT_CIPHERS = [*FAST_CIPHERS, "chacha20-poly1305@openssh.com", "aes256-ctr", "aes128-ctr"]
TOKEN_PROMPT = "Password (wardgate token): "  # noqa: S105 (a prompt, not a secret)
"""Keyboard-interactive prompt; says 'Password' so that sshpass and people recognise it."""


class UpstreamError(Exception):
    """The target could not be reached or refused us; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# -- data that crosses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelRequest:
    """What a client asked of a session channel."""

    command: str | None
    subsystem: str | None
    term_type: str | None
    term_size: tuple[int, int, int, int]
    agent_requested: bool

    @property
    def kind(self) -> str:
        if self.subsystem is not None:
            return "subsystem"
        if self.command is not None:
            return "exec"
        return "shell"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamLogin:
    host: str
    port: int
    username: str
    password: str | None = None
    private_key: str | None = None
    host_key: str | None = None
    known_hosts: Path | None = None
    connect_timeout: float = 5.0
    agent_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayResult:
    exit_status: int | None
    exit_signal: str | None
    bytes_in: int
    bytes_out: int
    bytes_err: int
    ended_by: str  # "exit", "client_closed", "upstream_closed", "interrupted"


class OutputTap(Protocol):
    """Synchronous filter on an output stream (masking and recording)."""

    def feed(self, data: bytes) -> bytes: ...
    def idle(self) -> bytes: ...
    def idle_delay(self) -> float | None: ...


class InputTap(Protocol):
    def feed(self, data: bytes) -> None: ...
    def idle(self) -> None: ...
    def idle_delay(self) -> float | None: ...
    def resized(self, columns: int, lines: int) -> None:
        """The client's terminal changed size (relayed upstream already)."""


class ConnectionHandler(Protocol):
    """The trio side of one client connection; every method runs in trio."""

    def attach(self, connection: ClientConnection) -> None: ...
    async def authenticate(self, username: str, secret: str, method: str) -> str | None:
        """None when the token is accepted, else the message to show the client."""

    async def session(self, channel: ServerChannel) -> None: ...
    async def direct_tcpip(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> UpstreamConnection | str: ...
    async def remote_forward(self, listen_host: str, listen_port: int) -> str: ...
    def connection_lost(self, error: str | None) -> None: ...


HostKey = asyncssh.SSHKey
"""The gateway's own host key (an opaque handle outside this module)."""
HandlerFactory = Callable[[str], ConnectionHandler]
"""Called with the peer address for each accepted TCP connection."""


# -- host keys --------------------------------------------------------------------------


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The gateway's own host key; generated once (ed25519, mode 0600) if missing."""
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519", comment="wardgate")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    elif path.stat().st_mode & 0o077:
        logger.warning("%s is readable by others: chmod 600 it (it proves the gateway)", path)
    return asyncssh.read_private_key(str(path))


# -- the host ---------------------------------------------------------------------------


class SSHHost:
    """Owns the trio-asyncio loop; made by :func:`open_ssh_host`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def listen(
        self,
        *,
        host: str,
        port: int,
        host_key: asyncssh.SSHKey,
        login_timeout: float,
        factory: HandlerFactory,
    ) -> SSHListener:
        """Start an agent-facing SSH server; returns once it is bound."""

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                lambda: _Server(factory),
                host,
                port,
                server_host_keys=[host_key],
                encoding=None,
                line_editor=False,
                login_timeout=login_timeout,
                agent_forwarding=True,  # decided per session by policy, see ServerChannel
                x11_forwarding=False,
                allow_scp=False,
                keepalive_interval=30,
                encryption_algs=SERVER_CIPHERS,
                mac_algs=SERVER_MACS,
            )

        acceptor = await aio_as_trio(start)()
        return SSHListener(acceptor)


# -- asyncssh's per-packet costs --------------------------------------------------------
#
# A relayed MB is 32 SSH packets in and 32 out on each leg, so what asyncssh does per packet
# and per socket read is most of the relay's CPU. Four of its habits cost a lot and buy
# nothing here; asyncssh has no options for them, so the methods involved are wrapped (not
# replaced: each wrapper calls asyncssh's own code, and only skips or splits the call).
# Installed once by open_ssh_host(); tests/unit/ssh/test_host.py checks each wrapper, and
# that they are in place on the asyncssh installed.

_EMPTY_STRING = b"\x00\x00\x00\x00"
RECV_SLICE = 64 * 1024
"""Largest piece of a socket read handed to asyncssh's packet parser at once."""
KEEPALIVE_SLACK = 1.0
"""A keepalive timer reset less than this long ago is not reset again (seconds)."""


def _wrap(cls: type[Any], name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(cls, name)
    if getattr(original, "_wardgate", False):
        return
    wrapper: Any = functools.update_wrapper(make(original), original)
    wrapper._wardgate = True
    setattr(cls, name, wrapper)


def _drop_ignore_packets(cls: type[Any]) -> None:
    """Stop asyncssh from sending an empty SSH_MSG_IGNORE before every packet.

    asyncssh sends one ahead of each packet once encryption is on: the defence of CBC modes
    against attacks on their predictable IVs. Neither leg here ever negotiates CBC
    (SERVER_CIPHERS, CLIENT_CIPHERS), and with CTR or an AEAD mode the extra packet protects
    nothing; it cost a second encryption, MAC and socket write per relayed packet (about
    8% of the relay's CPU). An empty IGNORE on a connection whose send cipher is not CBC is
    not sent (on a CBC connection, which another user of asyncssh in this process might
    make, it still is).
    """

    def make(send: Any) -> Any:
        def send_packet(self: Any, pkttype: int, *args: bytes, handler: Any = None) -> None:
            if (
                pkttype == MSG_IGNORE
                and args == (_EMPTY_STRING,)
                and not str(self.get_extra_info("send_cipher", "")).endswith("-cbc")
            ):
                return
            send(self, pkttype, *args, handler=handler)

        return send_packet

    _wrap(cls, "send_packet", make)


def _slice_large_reads(cls: type[Any]) -> None:
    """Hand asyncssh a large socket read in pieces of :data:`RECV_SLICE` bytes.

    asyncssh keeps unparsed input in a bytes object and, for each packet it takes off the
    front, copies the whole rest (twice: header, then body). A 256 KiB read (asyncio's
    largest, and what a busy relay gets) holds eight 32 KiB packets, so its bytes were
    copied about nine times: 1.3 ms per MB on this machine, against 0.25 ms when the parser
    sees at most two packets at a time. The pieces are views of the read, each appended once.
    After an error that closed the connection the rest of the read is dropped, as asyncssh
    itself stops parsing there.
    """

    def make(received: Any) -> Any:
        def data_received(self: Any, data: bytes, datatype: Any = None) -> None:
            if len(data) <= RECV_SLICE:
                received(self, data, datatype)
                return
            view = memoryview(data)
            for at in range(0, len(data), RECV_SLICE):
                received(self, view[at : at + RECV_SLICE], datatype)
                if getattr(self, "_transport", None) is None:
                    return

        return data_received

    _wrap(cls, "data_received", make)


def _coalesce_keepalive_resets(cls: type[Any]) -> None:
    """Reset the keepalive timer at most once per :data:`KEEPALIVE_SLACK`.

    asyncssh cancels its keepalive timer and makes a new one on every socket read (hundreds
    a second in a transfer; through trio-asyncio each is two trips through its loop). A
    timer reset less than a second ago is left alone: the keepalive then fires between 29
    and 30 s (``keepalive_interval``) after the last input instead of exactly at 30 s.
    """

    def make(reset: Any) -> Any:
        def _reset_keepalive_timer(self: Any) -> None:
            timer = getattr(self, "_keepalive_timer", None)
            interval = getattr(self, "_keepalive_interval", 0)
            if (
                timer is not None
                and interval > KEEPALIVE_SLACK
                and timer.when() - self._loop.time() > interval - KEEPALIVE_SLACK
            ):
                return
            reset(self)

        return _reset_keepalive_timer

    _wrap(cls, "_reset_keepalive_timer", make)


def _skip_unlogged_packet_logs(cls: type[Any]) -> None:
    """Describe a packet for the log only when packets are logged.

    asyncssh formats a description of every packet sent and received (name, size, note)
    and only then asks its logger, which drops it unless the debug level is 3 or more
    (``asyncssh.set_debug_level``): about 2% of the relay's CPU for nothing. The wrapper
    asks the same question first.
    """

    def make(log: Any) -> Any:
        def _log_packet(self: Any, *args: Any) -> None:
            if self.logger._debug_level >= 3:
                log(self, *args)

        return _log_packet

    _wrap(cls, "_log_packet", make)


def tune_asyncssh(cls: type[Any] = asyncssh.connection.SSHConnection) -> None:
    """Install the wrappers above on ``cls`` (idempotent); packet logging is wrapped where
    asyncssh defines it, on the class every connection and channel inherits it from."""
    _drop_ignore_packets(cls)
    _slice_large_reads(cls)
    _coalesce_keepalive_resets(cls)
    _skip_unlogged_packet_logs(asyncssh.packet.SSHPacketLogger)


@contextlib.asynccontextmanager
async def open_ssh_host() -> AsyncIterator[SSHHost]:
    tune_asyncssh()
    async with trio_asyncio.open_loop() as loop:
        # trio-asyncio's default handler re-raises stray asyncio errors into the trio
        # nursery, which would end the whole gateway; one session's mishap is logged instead.
        loop.set_exception_handler(_log_stray_error)
        yield SSHHost(loop)


def _log_stray_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    if isinstance(error, asyncio.CancelledError):
        return
    logger.error("asyncio: %s", context.get("message"), exc_info=error)


class SSHListener:
    def __init__(self, acceptor: asyncssh.SSHAcceptor) -> None:
        self._acceptor = acceptor
        self.port: int = acceptor.get_port()

    async def aclose(self) -> None:
        acceptor = self._acceptor

        async def close() -> None:
            acceptor.close()
            await acceptor.wait_closed()

        await aio_as_trio(close)()


class ClientConnection:
    """Handle on an agent's SSH connection, for the trio side."""

    def __init__(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Future[None]] = set()  # keeps the close task referenced
        self._context = contextvars.copy_context()
        self.channels: set[ServerChannel] = set()

    def close(self, message: str) -> None:
        """Tell every open channel ``message`` on stderr, then disconnect with it (sync).

        The disconnect waits (briefly) until the channels are closed, so that their
        messages and exit statuses reach the client before the connection goes."""

        async def run() -> None:
            closing = []
            for channel in list(self.channels):
                channel.interrupt_now(message)
                closing.append(channel._process.wait_closed())
            if closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 2)
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, message)

        # Run in the asyncio context captured at connection time: a trio task (the operator
        # request follower) has no asyncio loop in its own context.
        self._loop.call_soon(
            lambda: self._tasks.add(asyncio.ensure_future(run())), context=self._context.copy()
        )


class _Server(asyncssh.SSHServer):
    """asyncssh's per-connection callbacks: all cross to the trio handler."""

    def __init__(self, factory: HandlerFactory) -> None:
        self._factory = factory
        self.handler: ConnectionHandler | None = None
        self.client: ClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername") or ("?", 0)
        self.client = ClientConnection(conn)
        self.handler = self._factory(f"{peer[0]}:{peer[1]}")
        self.handler.attach(self.client)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handler is not None:
            self.handler.connection_lost(None if exc is None else _describe(exc))

    def session_requested(self) -> _Process:
        return _Process(_run_process, None, 0, False)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        return await self._authenticate(username, password, "password")

    async def _authenticate(self, username: str, secret: str, method: str) -> bool:
        assert self.handler is not None and self.client is not None
        refusal: str | None = await trio_as_aio(self.handler.authenticate)(username, secret, method)
        if refusal is not None:
            # a banner is the one way to tell an SSH client why before it gives up
            self.client._conn.send_auth_banner(refusal + "\r\n")
        return refusal is None

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, list[tuple[str, bool]]]:
        return ("wardgate", "Enter your access token.", "", [(TOKEN_PROMPT, False)])

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> bool:
        assert self.handler is not None
        if len(responses) != 1:
            return False
        return await self._authenticate(username, responses[0], "keyboard-interactive")

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        return self._direct(dest_host, dest_port, orig_host, orig_port)

    async def _direct(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        assert self.handler is not None and self.client is not None
        answer = await trio_as_aio(self.handler.direct_tcpip)(
            dest_host, dest_port, orig_host, orig_port
        )
        if isinstance(answer, str):
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, answer)
        return await self.client._conn.forward_tunneled_connection(
            answer._conn, dest_host, dest_port
        )

    async def server_requested(self, listen_host: str, listen_port: int) -> bool:
        assert self.handler is not None
        await trio_as_aio(self.handler.remote_forward)(listen_host, listen_port)
        return False


class _Process(asyncssh.SSHServerProcess[bytes]):
    """asyncssh's server process, except that every subsystem, sftp included, reaches our
    handler (which decides it by policy): asyncssh would serve sftp itself or refuse it."""

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def session_started(self) -> None:
        chan = self._chan
        assert chan is not None and self._conn is not None
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            self._conn.create_task(handler, stdin.logger)


async def _run_process(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """asyncssh's process factory: hand the channel to the trio handler."""
    owner = process.channel.get_connection().get_owner()
    assert isinstance(owner, _Server) and owner.handler is not None and owner.client is not None
    channel = ServerChannel(process, owner.client)
    owner.client.channels.add(channel)
    try:
        await trio_as_aio(owner.handler.session)(channel)
    except Exception:
        logger.exception("SSH session handler failed")
        channel.fail_now("wardgate: internal error; see the gateway log", 255)
    finally:
        owner.client.channels.discard(channel)
        if not process.is_closing():
            process.exit(255)


# -- session channels -------------------------------------------------------------------


class ServerChannel:
    """One client session channel; its methods are called from trio."""

    def __init__(self, process: asyncssh.SSHServerProcess[bytes], client: ClientConnection) -> None:
        self._process = process
        self._client = client
        self._upstream: asyncssh.SSHClientProcess[bytes] | None = None
        self._interrupted = False
        channel = process.channel
        self.request = ChannelRequest(
            command=process.command,
            subsystem=process.subsystem,
            term_type=process.get_terminal_type(),
            term_size=process.get_terminal_size(),
            agent_requested=channel.get_agent_path() is not None,
        )
        self.agent_path: str | None = channel.get_agent_path()

    @property
    def closed(self) -> bool:
        """Whether the client has closed (or is closing) this channel."""
        return self._process.is_closing()

    @property
    def newline(self) -> bytes:
        return b"\r\n" if self.request.term_type else b"\n"

    def fail_now(self, message: str, status: int) -> None:
        if self._process.is_closing():
            return
        self._process.stderr.write(message.encode() + self.newline)
        self._process.exit(status)

    async def fail(self, message: str, status: int) -> None:
        """``message`` on the client's stderr and ``status`` as the exit status."""

        async def run() -> None:
            self.fail_now(message, status)

        await aio_as_trio(run)()

    async def notice(self, message: str) -> None:
        """A line on the client's stderr; the channel goes on."""

        async def run() -> None:
            self._process.stderr.write(message.encode() + self.newline)

        await aio_as_trio(run)()

    def interrupt_now(self, message: str) -> None:
        """End the channel with ``message`` (asyncio side)."""
        self._interrupted = True
        if self._upstream is not None:
            self._upstream.close()
        self.fail_now(message, 255)

    async def relay(
        self,
        upstream: UpstreamConnection,
        *,
        stdout: OutputTap,
        stderr: OutputTap,
        stdin: InputTap | None,
    ) -> RelayResult:
        """Run the request on ``upstream`` and relay both ways until the process ends."""
        result: RelayResult = await aio_as_trio(self._relay)(upstream, stdout, stderr, stdin)
        return result

    async def _relay(
        self,
        upstream: UpstreamConnection,
        stdout: OutputTap,
        stderr: OutputTap,
        stdin: InputTap | None,
    ) -> RelayResult:
        req, client = self.request, self._process
        try:
            remote = await upstream._conn.create_process(
                req.command,
                subsystem=req.subsystem,
                term_type=req.term_type,
                term_size=req.term_size if req.term_type else None,
                encoding=None,
            )
        except asyncssh.ChannelOpenError as exc:
            raise UpstreamError(
                "refused", f"the target refused the session: {exc.reason}"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise UpstreamError(
                "unreachable", f"the target connection failed: {_describe(exc)}"
            ) from None
        self._upstream = remote
        counts = {"in": 0, "out": 0, "err": 0}
        out_task = asyncio.ensure_future(
            _pump_out(remote.stdout, client.stdout, stdout, counts, "out")
        )
        err_task = asyncio.ensure_future(
            _pump_out(remote.stderr, client.stderr, stderr, counts, "err")
        )
        in_task = asyncio.ensure_future(_pump_in(client, remote, stdin, counts))
        pumps: asyncio.Future[Any] = asyncio.gather(out_task, err_task)
        gone: asyncio.Future[Any] = asyncio.ensure_future(client.wait_closed())
        ended_by = "exit"
        try:
            done, _ = await asyncio.wait({pumps, gone}, return_when=asyncio.FIRST_COMPLETED)
            if pumps not in done or pumps.exception() is not None:
                ended_by = "client_closed"  # the client left (or stopped accepting output)
            else:
                await remote.wait_closed()
        finally:
            for task in (out_task, err_task, in_task, gone, pumps):
                task.cancel()
            await asyncio.gather(out_task, err_task, in_task, gone, pumps, return_exceptions=True)
            remote.close()
        if self._interrupted:
            ended_by = "interrupted"
        signal = remote.exit_signal
        status = remote.exit_status
        if ended_by == "exit" and status is None and signal is None:
            ended_by = "upstream_closed"
        if not client.is_closing():
            with contextlib.suppress(asyncssh.Error, OSError):
                client.stdout.write_eof()
            if signal is not None:
                client.exit_with_signal(signal[0], signal[1], signal[2])
            else:
                client.exit(status if status is not None else 255)
        return RelayResult(
            exit_status=status,
            exit_signal=signal[0] if signal else None,
            bytes_in=counts["in"],
            bytes_out=counts["out"],
            bytes_err=counts["err"],
            ended_by=ended_by,
        )


class _IdleFlush:
    """Flushes a tap's held bytes and recording once its stream has been quiet for the tap's
    idle delay.

    Noted after every chunk, but not re-armed per chunk: cancelling and creating a timer for
    each of thousands of chunks a second cost more than the check. :meth:`arm` only moves
    the due time; the one pending timer, when it fires before that time (more output came),
    waits again for the rest. The tap is flushed exactly when the last :meth:`arm` asked for
    a delay and that delay has passed since, as if the timer had been re-armed each time.
    """

    def __init__(self, tap: OutputTap | InputTap, write: Callable[[bytes], None] | None) -> None:
        self._tap = tap
        self._write = write
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._due: float | None = None  # None: nothing to flush (the last arm held nothing)

    def arm(self) -> None:
        delay = self._tap.idle_delay()
        if delay is None:
            self._due = None
            return
        due = self._due = self._loop.time() + delay
        timer = self._timer
        if timer is not None and timer.when() > due:  # a shorter delay than before
            timer.cancel()
            timer = self._timer = None
        if timer is None:
            self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        due = self._due
        if due is None:
            return
        if due > self._loop.time():
            self._timer = self._loop.call_at(due, self._fire)
            return
        self._due = None
        out = self._tap.idle()
        if out and self._write is not None:
            with contextlib.suppress(asyncssh.Error, OSError):
                self._write(out)
        self.arm()

    def cancel(self) -> None:
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _pump_out(
    reader: asyncssh.SSHReader[bytes],
    writer: asyncssh.SSHWriter[bytes],
    tap: OutputTap,
    counts: dict[str, int],
    name: str,
) -> None:
    idle = _IdleFlush(tap, writer.write)
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            counts[name] += len(data)
            out = tap.feed(data)
            if out:
                writer.write(out)
                await writer.drain()
            idle.arm()
    finally:
        idle.cancel()
        rest = tap.idle()
        if rest:
            with contextlib.suppress(asyncssh.Error, OSError):
                writer.write(rest)


async def _pump_in(
    client: asyncssh.SSHServerProcess[bytes],
    remote: asyncssh.SSHClientProcess[bytes],
    tap: InputTap | None,
    counts: dict[str, int],
) -> None:
    idle = _IdleFlush(tap, None) if tap is not None else None
    try:
        while True:
            try:
                data = await client.stdin.read(CHUNK)
            except asyncssh.TerminalSizeChanged as exc:
                remote.change_terminal_size(exc.width, exc.height, exc.pixwidth, exc.pixheight)
                if tap is not None:
                    tap.resized(exc.width, exc.height)
                continue
            except asyncssh.BreakReceived as exc:
                remote.send_break(exc.msec)
                continue
            except asyncssh.SignalReceived as exc:
                remote.send_signal(exc.signal)
                continue
            if not data:
                remote.stdin.write_eof()
                return
            counts["in"] += len(data)
            if tap is not None:
                tap.feed(data)
                assert idle is not None
                idle.arm()
            remote.stdin.write(data)
            await remote.stdin.drain()
    finally:
        if tap is not None and idle is not None:
            idle.cancel()
            tap.idle()


# -- upstream ---------------------------------------------------------------------------


class UpstreamConnection:
    """A logged-in connection to the target."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()

    def close(self) -> None:
        self._loop.call_soon(self._conn.close, context=self._context.copy())


async def connect_upstream(login: UpstreamLogin) -> UpstreamConnection:
    """Log in to the target; raises :class:`UpstreamError` with a reason code."""
    conn: UpstreamConnection = await aio_as_trio(_connect)(login)
    return conn


def _known_hosts(login: UpstreamLogin) -> Any:
    if login.host_key:
        try:
            key = asyncssh.import_public_key(login.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise UpstreamError(
                "config", f"the configured host_key cannot be read: {exc}"
            ) from None
        return ([key], [], [])
    if login.known_hosts is not None:
        try:
            return asyncssh.read_known_hosts(str(login.known_hosts))
        except (OSError, ValueError) as exc:
            raise UpstreamError("config", f"known_hosts {login.known_hosts}: {exc}") from None
    raise UpstreamError("config", "no host_key or known_hosts: refusing to connect unverified")


async def _connect(login: UpstreamLogin) -> UpstreamConnection:
    where = f"{login.host}:{login.port}"
    options: dict[str, Any] = {
        "username": login.username,
        "known_hosts": _known_hosts(login),
        "config": [],
        "agent_path": login.agent_path,
        "agent_forwarding": login.agent_path is not None,
        "connect_timeout": login.connect_timeout,
        "login_timeout": login.connect_timeout * 2,
        "client_keys": [],
        "password": login.password,
        "preferred_auth": "password,keyboard-interactive",
        "keepalive_interval": 30,
        "encryption_algs": CLIENT_CIPHERS,
    }
    if login.private_key is not None:
        try:
            key = asyncssh.import_private_key(login.private_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise UpstreamError(
                "config", f"the vaulted private key cannot be read: {exc}"
            ) from None
        options.update(client_keys=[key], password=None, preferred_auth="publickey")
    try:
        conn = await asyncssh.connect(login.host, login.port, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise UpstreamError(
            "host_key_mismatch",
            f"the host key of {where} does not match the configured key ({exc.reason}); "
            "refusing to connect",
        ) from None
    except asyncssh.PermissionDenied:
        raise UpstreamError(
            "upstream_auth", f"{where} refused the vaulted credential for {login.username}"
        ) from None
    except TimeoutError:
        raise UpstreamError("unreachable", f"{where} did not answer in time") from None
    except (OSError, asyncssh.Error) as exc:
        raise UpstreamError("unreachable", f"cannot reach {where}: {_describe(exc)}") from None
    return UpstreamConnection(conn)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
