"""The console's core: projections, snapshots and operator actions over the event store.

Theory of operation
-------------------
:class:`ConsoleData` owns an :class:`~events.store.EventStore`, the projections the console
folds (sessions, approvals, policy, the pending approvals as live domain aggregates, and the
tail of the one session being watched) and the loop that keeps them current. It runs
without any UI: the app calls :meth:`ConsoleData.follow` from a thread worker, tests and
scripts call :meth:`refresh` or run :meth:`start` for a background thread.

Every read the screens need comes out as an immutable :class:`~tui.rows.ConsoleSnapshot`
(or an :class:`~tui.rows.AuditPage`), built under one lock from the projections. The loop
coalesces bursts: after a change it waits until ``min_interval`` has passed since the last
snapshot, folds everything that arrived meanwhile, and hands over one snapshot; while idle
it still hands one over every ``tick`` seconds, so ages and time-left columns move.

Operator actions (approve, deny, end a session) load the aggregate from the store, let the
domain validate (requester, approver groups, quorum, expiry: the domain's message is shown
verbatim), and append. A :class:`~events.store.ConcurrencyConflict` means someone else
decided first: the aggregate is reloaded and the console reports who won.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from events.domain import (
    POLICY_ID,
    Approval,
    DomainError,
    DomainEvent,
    Policy,
    Session,
    SessionControl,
    short_id,
)
from events.follow import change_waiter
from events.projections import ApprovalsView, Projection, SessionsView, catch_up
from events.store import ConcurrencyConflict, EventStore, StoreError, StoreSettings
from tui.data import history
from tui.data.views import (
    PendingApprovals,
    PolicyHistory,
    SessionTailView,
    session_row,
    summarize_diff,
)
from tui.rows import (
    ActionResult,
    ApprovalRow,
    AuditFilter,
    AuditPage,
    ConsoleSnapshot,
    Operator,
    PolicyState,
    PolicyVersion,
    SessionTail,
)

Clock = Callable[[], float]


class ConsoleError(Exception):
    """An operator action was refused or failed; the message is fit to show as is."""


class ConsoleData:
    """Projections, snapshots and operator actions over one event store (thread-safe)."""

    def __init__(
        self,
        store: EventStore | StoreSettings,
        operator: Operator,
        *,
        kill_groups: frozenset[str] = frozenset(),
        clock: Clock = time.time,
        live_limit: int = 500,
        recent_limit: int = 200,
        decided_limit: int = 100,
        keep_closed: int = 10_000,
        fold_horizon: float | None = 86_400.0,
    ) -> None:
        self.owns_store = isinstance(store, StoreSettings)
        self.store = EventStore(store) if isinstance(store, StoreSettings) else store
        self.operator = operator
        self.kill_groups = frozenset(kill_groups)
        self.clock = clock
        self.live_limit, self.recent_limit, self.decided_limit = (
            live_limit,
            recent_limit,
            decided_limit,
        )
        self.sessions = SessionsView(keep_closed=keep_closed)
        self.approvals = ApprovalsView(keep_decided=decided_limit)
        self.policy = PolicyHistory()
        self.fold_horizon = fold_horizon
        self.pending = PendingApprovals()
        self._tail: SessionTailView | None = None
        self._lock = threading.RLock()
        self._announced_upto = 0
        self._started = False
        self.folded = 0
        """Events read from the log since the console started (for the status and bench)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- keeping current ------------------------------------------------------------------

    def _views(self) -> list[Projection]:
        views: list[Projection] = [self.sessions, self.approvals, self.policy, self.pending]
        if self._tail is not None:
            views.append(self._tail)
        return views

    @property
    def position(self) -> int:
        return min(v.position for v in self._views())

    def refresh(self) -> int:
        """Fold every event stored since the last refresh; returns how many were read."""
        with self._lock:
            if not self._started and self.fold_horizon is not None:
                self._skip_to(self.clock() - self.fold_horizon)
            count = catch_up(self.store, self._views())
            self.folded += count
            if not self._started:
                # What was pending when the console opened is not news: ring only for later.
                self._announced_upto = self.pending.requested_count
                self._started = True
            return count

    def _skip_to(self, since: float) -> None:
        """Start folding at the first event at or after ``since`` (the policy: all of it).

        Why this is safe for the live views: a session cannot outlive its token (the gateway
        closes it at expiry) and a pending approval its ``expires_at``; with a horizon longer
        than both, every live session and pending approval starts inside it. Older history
        is in the audit screen, which reads the log itself. Event times follow notification
        order closely enough (one clock per node) for a binary search to find the start.
        """
        for event in self.store.events_of(POLICY_ID):
            if isinstance(event, Policy.Applied):
                self.policy.on_Policy_Applied(event)
        low, high = 1, self.store.max_id()
        if high == 0:
            return
        while low < high:
            middle = (low + high) // 2
            page = self.store.read(middle - 1, 1)
            if page and page[0][1].at < since:
                low = page[0][0] + 1
            else:
                high = middle
        for view in (self.sessions, self.approvals, self.policy, self.pending):
            view.position = low - 1

    def follow(
        self,
        on_snapshot: Callable[[ConsoleSnapshot], None],
        *,
        stop: threading.Event,
        min_interval: float = 0.15,
        tick: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Hand ``on_snapshot`` a snapshot after each burst of changes (blocks until ``stop``)."""
        waiter = None
        last = 0.0
        try:
            while not stop.is_set():
                try:
                    if waiter is None:
                        waiter = change_waiter(self.store)
                        changed = True
                    else:
                        changed = waiter.wait(min(tick, 0.25))
                    now = time.monotonic()
                    if not changed and now - last < tick:
                        continue
                    if changed and now - last < min_interval:
                        # Coalesce: whatever else lands in the meantime rides along.
                        stop.wait(min_interval - (now - last))
                    self.refresh()
                    on_snapshot(self.snapshot())
                    last = time.monotonic()
                except StoreError as exc:
                    if on_error is not None:
                        on_error(str(exc))
                    if waiter is not None:
                        with contextlib.suppress(Exception):
                            waiter.close()
                    waiter = None
                    stop.wait(0.5)
        finally:
            if waiter is not None:
                waiter.close()

    def start(self, on_snapshot: Callable[[ConsoleSnapshot], None] | None = None) -> None:
        """Follow the store in a background thread (for use without the Textual app)."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.follow,
            args=(on_snapshot or (lambda _s: None),),
            kwargs={"stop": self._stop, "min_interval": 0.05},
            name="console-follow",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.owns_store:
            self.store.close()

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> ConsoleSnapshot:
        with self._lock:
            now = self.clock()
            pending_by_session: dict[str, int] = {}
            pending: list[ApprovalRow] = []
            for approval in self.pending.approvals.values():
                row = self.pending.row(approval, self.operator, now)
                pending.append(row)
                pending_by_session[row.session_id] = pending_by_session.get(row.session_id, 0) + 1
            pending.sort(key=lambda r: r.requested_at)
            terminations = self.sessions.termination_requests
            live = [session_row(s, pending_by_session, terminations) for s in self.sessions.live()]
            live.sort(key=lambda r: r.started_at, reverse=True)
            recent = [
                session_row(s, pending_by_session, terminations)
                for s in self.sessions.recent(self.recent_limit * 4)
                if not s.live
            ]
            recent.sort(key=lambda r: r.closed_at or 0.0, reverse=True)
            announced = tuple(
                r for r in pending if self.pending.order_of(r.id) > self._announced_upto
            )
            self._announced_upto = self.pending.requested_count
            decided = [
                self.pending.row_of_record(a)
                for a in reversed(self.approvals.approvals.values())
                if a.status != Approval.PENDING
            ][: self.decided_limit]
            return ConsoleSnapshot(
                position=self.position,
                now=now,
                live_sessions=tuple(live[: self.live_limit]),
                live_total=len(live),
                recent_sessions=tuple(recent[: self.recent_limit]),
                pending=tuple(pending),
                decided=tuple(decided),
                policy=self._policy_state(),
                announced=announced,
                watched=self._tail.snapshot(self.sessions, pending_by_session)
                if self._tail
                else None,
            )

    def _policy_state(self) -> PolicyState:
        p = self.policy
        history = tuple(
            PolicyVersion(
                version=c.version,
                author=c.author,
                at=c.at,
                digest=c.digest,
                diff_summary=summarize_diff(c.diff),
            )
            for c in reversed(p.history)
        )
        last = p.history[-1] if p.history else None
        return PolicyState(
            version=p.version,
            digest=p.digest,
            source=p.source,
            author=last.author if last else "",
            at=last.at if last else None,
            history=history,
        )

    def watch(self, session_id: str | None) -> SessionTail | None:
        """Follow one session's events in snapshots (None stops); returns its tail now."""
        with self._lock:
            if session_id is None:
                self._tail = None
                return None
            sid = self._session_uuid(session_id)
            tail = SessionTailView(str(sid), position=self.position)
            # Everything stored so far; later events reach the tail through refresh, and
            # the tail skips versions it already has, so nothing is lost or doubled.
            for event in self.store.events_of(sid):
                tail.add(0, event, self.sessions)
            self._tail = tail
            pending = Counter(
                a.request.session_id for a in self.pending.approvals.values() if a.request
            )
            return tail.snapshot(self.sessions, pending)

    # -- history --------------------------------------------------------------------------

    def audit_page(
        self,
        *,
        before: int | None = None,
        filter: AuditFilter | None = None,
        limit: int = 100,
        scan_budget: int = 50_000,
        chunk: int = 1000,
    ) -> AuditPage:
        """Up to ``limit`` matching events below notification id ``before``, newest first."""
        return history.audit_page(
            self.store,
            self.sessions,
            self.approvals,
            before=before,
            wanted=filter or AuditFilter(),
            limit=limit,
            scan_budget=scan_budget,
            chunk=chunk,
        )

    def policy_source_diff(self, version: int) -> str:
        """The unified diff of the policy source from ``version - 1`` to ``version``."""
        diff = history.policy_source_diff(self.store, version)
        if diff is None:
            raise ConsoleError(f"there is no policy version {version}")
        return diff

    # -- operator actions -----------------------------------------------------------------

    def approve(
        self, approval_id: str, reason: str = "", window_seconds: float | None = None
    ) -> ActionResult:
        def command(a: Approval) -> DomainEvent:
            return a.approve(
                subject=self.operator.subject,
                groups=self.operator.groups,
                reason=reason,
                window_seconds=window_seconds,
                now=self.clock(),
            )

        approval, ids = self._decide(approval_id, command)
        sid = short_id(approval.id)
        if approval.status == Approval.APPROVED:
            window = f" for {window_seconds:g}s" if window_seconds else ""
            return ActionResult(message=f"approved {sid}{window}", notification_ids=ids)
        assert approval.request is not None
        progress = f"{len(approval.approvers)} of {approval.request.quorum}"
        return ActionResult(
            message=f"approval of {sid} recorded ({progress})", notification_ids=ids
        )

    def deny(self, approval_id: str, reason: str) -> ActionResult:
        def command(a: Approval) -> DomainEvent:
            return a.deny(
                subject=self.operator.subject,
                groups=self.operator.groups,
                reason=reason,
                now=self.clock(),
            )

        approval, ids = self._decide(approval_id, command)
        return ActionResult(message=f"denied {short_id(approval.id)}", notification_ids=ids)

    def _check_token(self) -> None:
        expires_at = self.operator.expires_at
        if expires_at is not None and self.clock() >= expires_at:
            raise ConsoleError(
                "your operator token has expired: restart the console with a fresh token"
            )

    def _decide(
        self, approval_id: str, command: Callable[[Approval], DomainEvent]
    ) -> tuple[Approval, tuple[int, ...]]:
        self._check_token()
        aid = self._approval_uuid(approval_id)
        for _attempt in range(3):
            approval = self.store.load(Approval, aid)
            if approval is None:
                raise ConsoleError(f"there is no approval {approval_id}")
            try:
                event = command(approval)
            except DomainError as exc:
                raise ConsoleError(str(exc)) from None
            try:
                ids = self.store.append([event])
            except ConcurrencyConflict:
                # Someone decided in between; the next load shows who, and the domain says
                # "already approved by X" (or, below quorum, our approval still counts).
                continue
            except StoreError as exc:
                raise ConsoleError(str(exc)) from None
            approval.apply(event)
            return approval, tuple(ids)
        raise ConsoleError(f"approval {short_id(aid)} keeps changing under us; try again")

    def end_session(self, session_id: str, reason: str) -> ActionResult:
        """Ask the gateway to end a live session (a SessionControl.TerminationRequested)."""
        me = self.operator
        self._check_token()
        if not self.may_end_sessions:
            groups = ", ".join(sorted(self.kill_groups)) or "none configured"
            raise ConsoleError(f"{me.subject} is not in a group that may end sessions ({groups})")
        sid = self._session_uuid(session_id)
        session = self.store.load(Session, sid)
        if session is None:
            raise ConsoleError(f"there is no session {session_id}")
        if session.closed_reason is not None:
            raise ConsoleError(
                f"session {short_id(sid)} is already closed ({session.closed_reason})"
            )
        cid = SessionControl.id_for(sid)
        for _attempt in range(3):
            control = self.store.load(SessionControl, cid) or SessionControl(cid)
            try:
                event = control.request_termination(
                    session_id=sid, reason=reason, actor=me.subject, at=self.clock()
                )
                ids = self.store.append([event])
            except DomainError as exc:
                raise ConsoleError(str(exc)) from None
            except ConcurrencyConflict:
                continue  # another operator asked at the same moment: ask again after theirs
            except StoreError as exc:
                raise ConsoleError(str(exc)) from None
            return ActionResult(
                message=f"asked the gateway to end session {short_id(sid)}",
                notification_ids=tuple(ids),
            )
        raise ConsoleError(f"session {short_id(sid)} control keeps changing; try again")

    @property
    def may_end_sessions(self) -> bool:
        return bool(self.operator.groups & self.kill_groups)

    # -- ids ------------------------------------------------------------------------------

    def _approval_uuid(self, text: str) -> uuid.UUID:
        with self._lock:
            known = self.approvals.find(text) if len(text) < 32 else []
        if len(known) > 1:
            raise ConsoleError(f"{text} matches {len(known)} approvals; type more of the id")
        return _as_uuid(known[0].id if known else text, "approval")

    def _session_uuid(self, text: str) -> uuid.UUID:
        if len(text) < 32:
            with self._lock:
                p = text.replace("-", "").lower()
                found = [s for s in self.sessions.sessions if s.replace("-", "").startswith(p)]
            if len(found) > 1:
                raise ConsoleError(f"{text} matches {len(found)} sessions; type more of the id")
            if found:
                text = found[0]
        return _as_uuid(text, "session")


def _as_uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ConsoleError(f"there is no {what} {text}") from None
