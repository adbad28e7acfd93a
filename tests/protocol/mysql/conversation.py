"""Split a capture into login and command/response exchanges using the codec itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mysql.constants import Capability, Command
from gateway.mysql.framing import Deframer
from gateway.mysql.packets import HandshakeResponse41, HandshakeV10
from gateway.mysql.tracker import PacketKind, ResponseTracker
from tests.protocol.mysql.capture import stream


def payloads(data: bytes) -> list[tuple[bytes, int]]:
    deframer = Deframer()
    deframer.feed(data)
    out = []
    while (got := deframer.next_payload()) is not None:
        out.append((got[0], got[1]))
    assert deframer.buffered() == 0
    return out


@dataclass
class Exchange:
    command: bytes
    tracker: ResponseTracker
    packets: list[tuple[PacketKind, bytes, int]] = field(default_factory=list)


@dataclass
class Conversation:
    handshake: HandshakeV10
    handshake_payload: bytes
    login: HandshakeResponse41
    login_payload: bytes
    login_server_packets: list[tuple[bytes, int]]
    login_client_packets: list[tuple[bytes, int]]
    capabilities: Capability
    mariadb_capabilities: int
    exchanges: list[Exchange]


def replay(name: str) -> Conversation:
    server = payloads(stream(name, "s"))
    client = payloads(stream(name, "c"))
    handshake = HandshakeV10.decode(server[0][0])
    login = HandshakeResponse41.decode(client[0][0])
    caps = handshake.capabilities & login.capabilities
    mariadb = handshake.mariadb_capabilities & login.mariadb_capabilities
    # login: server packets up to the first OK; client packets until the first command (seq 0)
    s = 1
    while server[s][0][0] != 0x00:
        s += 1
    c = 1
    while c < len(client) and client[c][1] != 0:
        c += 1
    conv = Conversation(
        handshake=handshake,
        handshake_payload=server[0][0],
        login=login,
        login_payload=client[0][0],
        login_server_packets=server[1 : s + 1],
        login_client_packets=client[1:c],
        capabilities=caps,
        mariadb_capabilities=mariadb,
        exchanges=[],
    )
    s += 1
    for payload, _seq in client[c:]:
        command = payload[0]
        if command == Command.COM_QUIT:
            break
        tracker = ResponseTracker(command, caps, mariadb_capabilities=mariadb)
        exchange = Exchange(command=payload, tracker=tracker)
        while not tracker.complete:
            body, seq = server[s]
            s += 1
            exchange.packets.append((tracker.classify_payload(body, seq), body, seq))
        conv.exchanges.append(exchange)
    assert s == len(server), "server packets left over"
    return conv
