"""A minimal blocking relay built on the sans-IO codec: the shape the trio driver will take.

``ResponseRelay`` is the hot-path loop for one response, fed one received buffer at a time: it
walks headers with ``FrameScanner``, asks the tracker to classify each packet, forwards at once
every byte it may (complete packets, and rows still arriving), and holds back only the start of
a packet the tracker must decode whole. ``serve_one`` is a one-connection gateway over blocking
sockets used by the client/server pair tests.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from gateway.mysql.connection import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginFailed,
    LoginRequested,
    LoginSucceeded,
    ServerGreeting,
    ServerSide,
    TLSRequested,
    UpstreamSide,
)
from gateway.mysql.errors import RemoteProtocolError
from gateway.mysql.framing import FrameScanner
from gateway.mysql.tracker import PacketKind, ResponseTracker


class ResponseRelay:
    def __init__(self, tracker: ResponseTracker) -> None:
        self.tracker = tracker
        self.scanner = FrameScanner()
        self.held = b""
        self.kinds: list[PacketKind] = []

    def feed(self, data: bytes) -> bytes:
        """Returns the bytes to forward now."""
        buf = self.held + data if self.held else data
        scan = self.scanner.scan(buf)
        for start in scan.starts:
            kind = self.tracker.classify(buf, start)
            assert kind is not PacketKind.NEED_MORE
            self.kinds.append(kind)
        cut = scan.tail
        if cut < len(buf):
            kind = self.tracker.classify(buf, cut)
            if kind is PacketKind.NEED_MORE:
                pass  # must be decoded whole: hold it back
            else:
                self.kinds.append(kind)  # a row: stream it
                cut = self.scanner.stream_tail(buf, cut)
        self.held = buf[cut:]
        return buf[:cut]


def relay_response(
    upstream: socket.socket, client: socket.socket, tracker: ResponseTracker
) -> None:
    relay = ResponseRelay(tracker)
    while not tracker.complete:
        data = upstream.recv(65536)
        if not data:
            raise ConnectionError("upstream closed mid-response")
        out = relay.feed(data)
        if out:
            client.sendall(out)
    assert not relay.held


def _upstream_event(up: UpstreamSide, sock: socket.socket) -> object:
    while True:
        event = up.next_event()
        out = up.data_to_send()
        if out:
            sock.sendall(out)
        if event is not NEED_DATA:
            return event
        up.receive_data(sock.recv(65536))


def serve_one(
    listener: socket.socket,
    *,
    upstream_addr: tuple[str, int],
    check_token: Callable[[bytes], bool],
    upstream_user: str,
    upstream_password: bytes,
    log: list[object],
    tls: ssl.SSLContext | None = None,
) -> None:
    """Accept one client, log it in with a token, relay its commands to the real server."""
    client, _ = listener.accept()
    with client, socket.create_connection(upstream_addr) as up_sock:
        _serve(client, up_sock, upstream_user, upstream_password, check_token, log, tls)


def _serve(
    client: socket.socket,
    up_sock: socket.socket,
    upstream_user: str,
    upstream_password: bytes,
    check_token: Callable[[bytes], bool],
    log: list[object],
    tls: ssl.SSLContext | None,
) -> None:
    for s in (client, up_sock):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up = UpstreamSide(username=upstream_user, password=upstream_password)
    greeting = _upstream_event(up, up_sock)
    assert isinstance(greeting, ServerGreeting)
    hs = greeting.handshake
    srv = ServerSide(
        server_version=hs.server_version,
        connection_id=hs.connection_id,
        capabilities=hs.capabilities,
        character_set=hs.character_set,
        tls_configured=tls is not None,
        allow_cleartext_without_tls=tls is None,
    )
    client.sendall(srv.data_to_send())
    while True:
        try:
            event = srv.next_event()
        except RemoteProtocolError as exc:
            # the codec says what to answer; a broken peer gets its ERR and the door
            srv.send_error_for(exc)
            client.sendall(srv.data_to_send())
            return
        out = srv.data_to_send()
        if out:
            client.sendall(out)
        if event is NEED_DATA:
            size = srv.bytes_needed() if srv.in_login else 65536
            srv.receive_data(client.recv(size))
            continue
        log.append(event)
        if isinstance(event, TLSRequested):
            assert tls is not None
            assert not event.trailing_data  # we read only bytes_needed()
            client = tls.wrap_socket(client, server_side=True)
            srv.tls_started()
        elif isinstance(event, LoginRequested):
            if not check_token(event.password):
                srv.reject_login("token rejected")
                client.sendall(srv.data_to_send())
                return
            up.login(
                capabilities=event.capabilities,
                database=event.database,
                character_set=event.character_set,
            )
            result = _upstream_event(up, up_sock)
            log.append(result)
            if isinstance(result, LoginFailed):
                srv.reject_login("upstream login failed")
                client.sendall(srv.data_to_send())
                return
            assert isinstance(result, LoginSucceeded)
            srv.accept_login()
        elif isinstance(event, CommandReceived):
            up_sock.sendall(event.raw)
            if event.tracker is not None:
                relay_response(up_sock, client, event.tracker)
                log.append(event.tracker)
        elif isinstance(event, InvalidCommand):
            srv.send_error_for(event.error)
        elif isinstance(event, ConnectionClosed):
            if event.by_quit:
                up_sock.sendall(b"\x01\x00\x00\x00\x01")
            return
