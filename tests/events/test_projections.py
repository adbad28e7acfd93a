"""Projection bounds: live items are kept, finished ones up to a cap, in linear time."""

from __future__ import annotations

import time
import uuid

from events.domain import Session
from events.projections import SessionsView

from .factories import session_events


def test_closed_sessions_are_capped_and_live_ones_kept() -> None:
    view = SessionsView(keep_closed=2)
    nid = 0
    live_id = None
    for i in range(6):
        sid = uuid.uuid4()
        events = session_events(0, sid=sid)
        if i > 0:
            events.append(
                Session.Closed(
                    originator_id=sid,
                    originator_version=3,
                    at=time.time(),
                    actor="gw",
                    reason="client_quit",
                )
            )
        else:
            live_id = str(sid)
        for e in events:
            nid += 1
            view.handle(nid, e)
    assert [s.id for s in view.live()] == [live_id]
    assert len(view.sessions) == 3  # the live one and the two most recently closed


def test_folding_many_sessions_is_linear() -> None:
    def fold(n: int) -> float:
        view = SessionsView(keep_closed=100)
        events = []
        for _ in range(n):
            sid = uuid.uuid4()
            events += [
                *session_events(0, sid=sid),
                Session.Closed(
                    originator_id=sid,
                    originator_version=3,
                    at=0.0,
                    actor="gw",
                    reason="client_quit",
                ),
            ]
        started = time.perf_counter()
        for nid, e in enumerate(events, 1):
            view.handle(nid, e)
        return time.perf_counter() - started

    small, large = fold(2_000), fold(20_000)
    assert large < small * 30  # 10x the sessions costs ~10x, not ~100x
