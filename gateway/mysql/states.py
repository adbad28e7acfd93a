"""The connection state machines as transition tables.

Each table maps (state, trigger) to the next state. ``transition`` looks the pair up before
anything is changed, so an illegal trigger raises and leaves the connection as it was. Triggers
caused by the peer's bytes raise ``RemoteProtocolError``; triggers caused by our own calls raise
``LocalProtocolError`` (see ``errors.py``).

ServerSide (the gateway facing the agent's client)::

    AWAIT_LOGIN --SSL_REQUEST--> TLS_PENDING --TLS_STARTED--> AWAIT_LOGIN_TLS
    AWAIT_LOGIN[_TLS] --LOGIN_WITH_PASSWORD--> AWAIT_LOGIN_DECISION
    AWAIT_LOGIN[_TLS] --LOGIN_NEEDS_SWITCH--> AWAIT_AUTH_SWITCH --AUTH_SWITCH_RESPONSE-->
        AWAIT_LOGIN_DECISION --ACCEPT--> COMMAND      (--REJECT--> CLOSED)
    COMMAND --COMMAND--> RESPONSE --RESPONSE_COMPLETE--> COMMAND
    COMMAND --COMMAND_NO_RESPONSE--> COMMAND;  COMMAND --QUIT--> CLOSED

UpstreamSide (the gateway as a client of the real server)::

    AWAIT_GREETING --GREETING--> GREETED --LOGIN--> AUTHENTICATING --OK--> READY
    GREETED --LOGIN_TLS--> TLS_PENDING --TLS_STARTED--> AUTHENTICATING
    AUTHENTICATING --AUTH_STEP--> AUTHENTICATING;  --ERR--> CLOSED

Any state --CLOSE--> CLOSED (connection lost, or closed by the driver).

The phases of one command's response (``ResponsePhase``) are driven by ``tracker.py``, where
the decision depends on bytes as much as on the phase.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TypeVar

from gateway.mysql.constants import ErrorCode
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError


class ServerState(Enum):
    AWAIT_LOGIN = auto()
    TLS_PENDING = auto()
    AWAIT_LOGIN_TLS = auto()
    AWAIT_AUTH_SWITCH = auto()
    AWAIT_LOGIN_DECISION = auto()
    COMMAND = auto()
    RESPONSE = auto()
    CLOSED = auto()


class ServerTrigger(Enum):
    SSL_REQUEST = auto()
    TLS_STARTED = auto()
    LOGIN_WITH_PASSWORD = auto()
    LOGIN_NEEDS_SWITCH = auto()
    AUTH_SWITCH_RESPONSE = auto()
    ACCEPT = auto()
    REJECT = auto()
    COMMAND = auto()
    COMMAND_NO_RESPONSE = auto()
    RESPONSE_COMPLETE = auto()
    QUIT = auto()
    CLOSE = auto()


_S = ServerState
_T = ServerTrigger

SERVER_TRANSITIONS: dict[tuple[ServerState, ServerTrigger], ServerState] = {
    (_S.AWAIT_LOGIN, _T.SSL_REQUEST): _S.TLS_PENDING,
    (_S.AWAIT_LOGIN, _T.LOGIN_WITH_PASSWORD): _S.AWAIT_LOGIN_DECISION,
    (_S.AWAIT_LOGIN, _T.LOGIN_NEEDS_SWITCH): _S.AWAIT_AUTH_SWITCH,
    (_S.AWAIT_LOGIN, _T.REJECT): _S.CLOSED,
    (_S.TLS_PENDING, _T.TLS_STARTED): _S.AWAIT_LOGIN_TLS,
    (_S.TLS_PENDING, _T.REJECT): _S.CLOSED,
    (_S.AWAIT_LOGIN_TLS, _T.LOGIN_WITH_PASSWORD): _S.AWAIT_LOGIN_DECISION,
    (_S.AWAIT_LOGIN_TLS, _T.LOGIN_NEEDS_SWITCH): _S.AWAIT_AUTH_SWITCH,
    (_S.AWAIT_LOGIN_TLS, _T.REJECT): _S.CLOSED,
    (_S.AWAIT_AUTH_SWITCH, _T.AUTH_SWITCH_RESPONSE): _S.AWAIT_LOGIN_DECISION,
    (_S.AWAIT_AUTH_SWITCH, _T.REJECT): _S.CLOSED,
    (_S.AWAIT_LOGIN_DECISION, _T.ACCEPT): _S.COMMAND,
    (_S.AWAIT_LOGIN_DECISION, _T.REJECT): _S.CLOSED,
    (_S.COMMAND, _T.COMMAND): _S.RESPONSE,
    (_S.COMMAND, _T.COMMAND_NO_RESPONSE): _S.COMMAND,
    (_S.COMMAND, _T.QUIT): _S.CLOSED,
    (_S.RESPONSE, _T.RESPONSE_COMPLETE): _S.COMMAND,
}
SERVER_TRANSITIONS.update({(state, _T.CLOSE): _S.CLOSED for state in ServerState})

SERVER_REMOTE_TRIGGERS = frozenset(
    {
        _T.SSL_REQUEST,
        _T.LOGIN_WITH_PASSWORD,
        _T.LOGIN_NEEDS_SWITCH,
        _T.AUTH_SWITCH_RESPONSE,
        _T.COMMAND,
        _T.COMMAND_NO_RESPONSE,
        _T.QUIT,
    }
)


class UpstreamState(Enum):
    AWAIT_GREETING = auto()
    GREETED = auto()
    TLS_PENDING = auto()
    AUTHENTICATING = auto()
    READY = auto()
    CLOSED = auto()


class UpstreamTrigger(Enum):
    GREETING = auto()
    LOGIN = auto()
    LOGIN_TLS = auto()
    TLS_STARTED = auto()
    AUTH_STEP = auto()
    OK = auto()
    ERR = auto()
    CLOSE = auto()


_U = UpstreamState
_V = UpstreamTrigger

UPSTREAM_TRANSITIONS: dict[tuple[UpstreamState, UpstreamTrigger], UpstreamState] = {
    (_U.AWAIT_GREETING, _V.GREETING): _U.GREETED,
    (_U.AWAIT_GREETING, _V.ERR): _U.CLOSED,
    (_U.GREETED, _V.LOGIN): _U.AUTHENTICATING,
    (_U.GREETED, _V.LOGIN_TLS): _U.TLS_PENDING,
    (_U.TLS_PENDING, _V.TLS_STARTED): _U.AUTHENTICATING,
    (_U.AUTHENTICATING, _V.AUTH_STEP): _U.AUTHENTICATING,
    (_U.AUTHENTICATING, _V.OK): _U.READY,
    (_U.AUTHENTICATING, _V.ERR): _U.CLOSED,
}
UPSTREAM_TRANSITIONS.update({(state, _V.CLOSE): _U.CLOSED for state in UpstreamState})

UPSTREAM_REMOTE_TRIGGERS = frozenset({_V.GREETING, _V.AUTH_STEP, _V.OK, _V.ERR})

StateT = TypeVar("StateT", bound=Enum)
TriggerT = TypeVar("TriggerT", bound=Enum)


def transition(
    table: dict[tuple[StateT, TriggerT], StateT],
    state: StateT,
    trigger: TriggerT,
    remote: frozenset[TriggerT],
) -> StateT:
    """The next state, or raise without side effects."""
    try:
        return table[(state, trigger)]
    except KeyError:
        message = f"{trigger.name} is not allowed in state {state.name}"
        if trigger in remote:
            raise RemoteProtocolError(message, error_code=ErrorCode.ER_NET_READ_ERROR) from None
        raise LocalProtocolError(message, error_code=ErrorCode.ER_NET_READ_ERROR) from None


class ResponsePhase(Enum):
    """Where a response to one command stands (see tracker.py)."""

    FIRST = auto()
    """Next: OK, ERR, LOCAL INFILE request, or the column count of a result set."""
    COLUMNS = auto()
    COLUMNS_EOF = auto()
    ROWS = auto()
    PREPARE_FIRST = auto()
    PREPARE_PARAMS = auto()
    PREPARE_PARAMS_EOF = auto()
    PREPARE_COLUMNS = auto()
    PREPARE_COLUMNS_EOF = auto()
    FIELD_LIST = auto()
    STATUS = auto()
    """Next: OK, EOF or ERR and nothing else (COM_PING, COM_INIT_DB, COM_SET_OPTION, ...)."""
    STATISTICS = auto()
    INFILE_RESULT = auto()
    DONE = auto()
