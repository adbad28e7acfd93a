"""The sans-IO MySQL connection objects: the public face of the codec.

Two objects, one per direction of the gateway, both in the h11/wsproto mould: they never touch
a socket. The driver hands them received bytes (``receive_data``; ``b""`` for end of stream),
pulls events (``next_event()`` returns an event or ``NEED_DATA``), calls action methods, and
after every call writes whatever ``data_to_send()`` returns. States and legal transitions are
the tables in ``states.py``; an illegal step raises and changes nothing. Errors
(``errors.py``) carry the MySQL error number and SQLSTATE to answer with.

* ``ServerSide`` (server_side.py) faces the agent's stock client: handshake, SSLRequest, the
  ``mysql_clear_password`` switch that yields the OIDC token, then one ``CommandReceived`` per
  command with a ``ResponseTracker`` for its response.
* ``UpstreamSide`` (upstream_side.py) logs in to the real server with the vaulted password
  (native, caching_sha2 fast and full auth, sha256, clear over TLS).
* ``ResponseTracker`` (tracker.py) classifies relayed response packets cheaply and says when a
  response is complete; ``FrameScanner`` (framing.py) finds packet boundaries in each read.

A relay keeps the capabilities identical on both legs (offer the client the upstream's
capabilities, log in upstream with what the client chose), so response bytes pass through
unchanged and one tracker reads them for both sides.
"""

from __future__ import annotations

from gateway.mysql.protocol_events import (
    NEED_DATA,
    CommandReceived,
    ConnectionClosed,
    InvalidCommand,
    LoginFailed,
    LoginRequested,
    LoginSucceeded,
    NeedData,
    ServerEvent,
    ServerGreeting,
    TLSRequested,
    UpstreamEvent,
)
from gateway.mysql.server_side import PreparedStatement, ServerSide
from gateway.mysql.states import ServerState, UpstreamState
from gateway.mysql.tracker import PacketKind, ResponseTracker
from gateway.mysql.upstream_side import UpstreamSide

__all__ = [
    "NEED_DATA",
    "CommandReceived",
    "ConnectionClosed",
    "InvalidCommand",
    "LoginFailed",
    "LoginRequested",
    "LoginSucceeded",
    "NeedData",
    "PacketKind",
    "PreparedStatement",
    "ResponseTracker",
    "ServerEvent",
    "ServerGreeting",
    "ServerSide",
    "ServerState",
    "TLSRequested",
    "UpstreamEvent",
    "UpstreamSide",
    "UpstreamState",
]
