"""Protocol errors of the MySQL codec, split as h11 splits them.

* ``RemoteProtocolError``: the peer sent bytes that are malformed or illegal in the current state.
  The driver answers with an ERR carrying ``error_code``/``sqlstate`` (when the peer is the
  agent's client) and closes the connection.
* ``LocalProtocolError``: our own code asked the codec for something illegal (sending a packet in
  the wrong state, an argument that cannot be encoded). It is a bug or a refused request; the
  state is left unchanged.

Both carry the MySQL error number and SQLSTATE so the driver never invents them.
"""

from __future__ import annotations

from gateway.mysql.constants import ErrorCode, sqlstate_for


class MySQLProtocolError(Exception):
    """Base of the codec's errors; never raised itself."""

    error_code: int
    sqlstate: bytes

    def __init__(self, message: str, *, error_code: int = ErrorCode.ER_MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = int(error_code)
        self.sqlstate = sqlstate_for(error_code)


class RemoteProtocolError(MySQLProtocolError):
    """The peer violated the protocol."""


class LocalProtocolError(MySQLProtocolError):
    """We tried to violate the protocol; nothing was changed."""
