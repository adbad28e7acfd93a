"""What a node does on start about what it left behind when it crashed.

Sessions: every session this node opened and never closed (by the live views, after
catching up) is closed as ``aborted``: its connection died with the process. The version of
the ``Closed`` event follows the last stored event of that session (the crashed process's
counter is gone; the store has the truth).

Held approvals: they stay pending. The agent's connection is gone, but an approval given
later still lets the same statement run once when the agent retries; the sweeper of this
node expires them at their expiry time, as for a hold whose client went away.
"""

from __future__ import annotations

import logging
import time
import uuid

from events.domain import DomainEvent, Session
from events.store import ConcurrencyConflict, EventStore
from gateway.live import LiveViews

logger = logging.getLogger("wardgate.recovery")


def close_abandoned_sessions(store: EventStore, views: LiveViews, node: str) -> int:
    """Close this node's sessions left open by a crash; returns how many."""
    closed = 0
    for record in views.sessions.live():
        if record.node != node:
            continue
        sid = uuid.UUID(record.id)
        events = store.events_of(sid)
        if not events or isinstance(events[-1], Session.Closed):
            continue
        event: DomainEvent = Session.Closed(
            originator_id=sid,
            originator_version=events[-1].originator_version + 1,
            at=time.time(),
            actor=f"gateway:{node}",
            reason="aborted",
            detail="the gateway node stopped without closing the session (restart after a crash)",
        )
        try:
            store.append([event])
        except ConcurrencyConflict:
            continue  # something else wrote to it first: leave it alone
        closed += 1
    if closed:
        logger.warning("closed %d session(s) left open by a previous run of node %s", closed, node)
    return closed
