"""Record the bytes a real MySQL client and a real server exchange, for golden-bytes tests.

A loopback TCP recorder: it listens on 127.0.0.1 (port 0), connects each accepted client to
the real server, relays both directions and records every chunk with its direction. Captures
are saved as JSON under ``fixtures/mysql/``::

    {"name": ..., "client": ..., "server": ..., "chunks": [["c", "<hex>"], ["s", "<hex>"], ...]}

``c`` is client-to-server, ``s`` server-to-client. Used two ways:

* from Python (``with Recorder() as rec: connect(port=rec.port) ...; rec.save(...)``), and
* from the shell, around any client (``{port}`` is replaced)::

    python tests/protocol/mysql/capture.py NAME -- mysql -h127.0.0.1 -P{port} -uU -pP -e 'SELECT 1'

The fixtures are regenerated with ``python tests/protocol/mysql/make_fixtures.py``.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "mysql"
UPSTREAM = ("127.0.0.1", 3306)


class Recorder:
    """Relays one client connection at a time to the upstream server and records it."""

    def __init__(self, upstream: tuple[str, int] = UPSTREAM) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.chunks: list[tuple[str, bytes]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop = True
        self._thread.join(timeout=10)
        self.listener.close()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            with client, socket.create_connection(self.upstream) as server:
                self._relay(client, server)

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peers = {client: (server, "c"), server: (client, "s")}
        open_ = {client, server}
        while open_:
            ready, _, _ = select.select(list(open_), [], [], 5)
            if not ready:
                return
            for s in ready:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                other, direction = peers[s]
                if not data:
                    open_.discard(s)
                    with contextlib.suppress(OSError):
                        other.shutdown(socket.SHUT_WR)
                    continue
                self.chunks.append((direction, data))
                other.sendall(data)

    def save(self, name: str, *, client: str, server: str = "") -> Path:
        path = FIXTURES / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "name": name,
            "client": client,
            "server": server,
            "chunks": [[d, data.hex()] for d, data in self.chunks],
        }
        path.write_text(json.dumps(record, indent=1) + "\n")
        return path


def load(name: str) -> list[tuple[str, bytes]]:
    """The chunks of a saved capture."""
    record = json.loads((FIXTURES / f"{name}.json").read_text())
    return [(d, bytes.fromhex(h)) for d, h in record["chunks"]]


def stream(name: str, direction: str) -> bytes:
    """All bytes one side sent, in order."""
    return b"".join(data for d, data in load(name) if d == direction)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__)
        return 2
    name, command = argv[0], argv[2:]
    with Recorder() as rec:
        rc = subprocess.call([a.replace("{port}", str(rec.port)) for a in command])
    rec.save(name, client=" ".join(command))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
