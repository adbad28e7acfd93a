"""What every listener shares: the composition the server builds once and hands down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from events.domain import DomainEvent, SessionControl
from events.store import EventStore
from gateway.guard import Guard
from gateway.identity import TokenVerifier
from gateway.keyframe_process import KeyframeProcess
from gateway.live import LiveViews
from gateway.vault import Vault
from gateway.writer import EventWriter

Terminator = Callable[[str, str], None]
"""Called with (operator, reason) when an operator ends the session."""


class SessionRegistry:
    """The sessions this node serves, so that an operator's request can end them."""

    def __init__(self) -> None:
        self._live: dict[str, Terminator] = {}
        self._drains: dict[str, Callable[[], None]] = {}
        self._ticks: dict[str, Callable[[float], None]] = {}
        self._emptied = trio.Event()

    def add(
        self,
        session_id: uuid.UUID,
        terminate: Terminator,
        *,
        drain: Callable[[], None] | None = None,
        tick: Callable[[float], None] | None = None,
    ) -> None:
        self._live[str(session_id)] = terminate
        if drain is not None:
            self._drains[str(session_id)] = drain
        if tick is not None:
            self._ticks[str(session_id)] = tick

    def remove(self, session_id: uuid.UUID) -> None:
        self._live.pop(str(session_id), None)
        self._drains.pop(str(session_id), None)
        self._ticks.pop(str(session_id), None)
        if not self._live:
            self._emptied.set()
            self._emptied = trio.Event()

    async def wait_empty(self) -> None:
        """Return once no session is left."""
        while self._live:
            await self._emptied.wait()

    def drain_all(self) -> None:
        """Graceful shutdown: sessions that can finish their command in flight do;
        the others are ended now."""
        for sid, terminate in list(self._live.items()):
            drain = self._drains.get(sid)
            if drain is not None:
                drain()
            else:
                terminate("gateway", "the gateway is shutting down")

    async def sweep(self, interval: float = 1.0) -> None:
        """Every ``interval``, give each session the time (wall clock) to check its own
        deadlines: sessions whose token expired while they waited end within a tick,
        without a timeout scope around every wait for the client."""
        while True:
            await trio.sleep(interval)
            now = time.time()
            for tick in list(self._ticks.values()):
                tick(now)

    def __len__(self) -> int:
        return len(self._live)

    def on_events(self, page: list[tuple[int, DomainEvent]]) -> None:
        for _, event in page:
            if isinstance(event, SessionControl.TerminationRequested):
                terminate = self._live.get(event.session_id)
                if terminate is not None:
                    terminate(event.actor, event.reason)


@dataclass(slots=True, kw_only=True)
class GatewayContext:
    node: str
    store: EventStore
    writer: EventWriter
    views: LiveViews
    guard: Guard
    verifier: TokenVerifier
    vault: Vault
    sessions: SessionRegistry = field(default_factory=SessionRegistry)
    keyframes: KeyframeProcess | None = None
