"""Reading history straight from the log: audit pages and policy source diffs.

The live views fold only the recent log; history reads the log itself, a page at a time,
so the audit screen reaches back to the first event however long the log is.
"""

from __future__ import annotations

import difflib

from events.domain import POLICY_ID, Policy
from events.projections import ApprovalsView, SessionsView
from events.store import EventStore
from tui.data.views import event_row
from tui.rows import AuditFilter, AuditPage, EventRow


def audit_page(
    store: EventStore,
    sessions: SessionsView,
    approvals: ApprovalsView,
    *,
    before: int | None,
    wanted: AuditFilter,
    limit: int,
    scan_budget: int,
    chunk: int = 1000,
) -> AuditPage:
    """Matching events below notification id ``before`` (None: the newest), newest first.

    Walks the log backwards in chunks of notification ids, reading at most ``scan_budget``
    events per call: a filter that rarely matches still answers quickly, with a short page
    whose ``next_before`` says where to continue. Identities and targets of session events
    come from the sessions view when it still knows the session.
    """
    top = store.max_id() + 1 if before is None else before
    cursor, scanned = top, 0
    rows: list[EventRow] = []
    while cursor > 1 and len(rows) < limit and scanned < scan_budget:
        after = max(0, cursor - 1 - chunk)
        page = [(n, e) for n, e in store.read(after, cursor - 1 - after) if n < cursor]
        scanned += len(page)
        next_cursor = after + 1
        for nid, event in reversed(page):
            row = event_row(nid, event, sessions, approvals)
            if wanted.accepts(row):
                rows.append(row)
                if len(rows) == limit:
                    next_cursor = nid
                    break
        cursor = next_cursor
    return AuditPage(
        rows=tuple(rows), before=top, next_before=cursor if cursor > 1 else 0, scanned=scanned
    )


def policy_source_diff(store: EventStore, version: int) -> str | None:
    """The unified diff of the policy source into ``version``; None if there is no such one."""
    sources: dict[int, tuple[str, str]] = {}
    for event in store.events_of(POLICY_ID):
        if isinstance(event, Policy.Applied):
            sources[event.originator_version] = (event.source, event.actor)
    if version not in sources:
        return None
    old = sources.get(version - 1, ("", ""))[0]
    new, author = sources[version]
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"v{version - 1}" if version > 1 else "(none)",
        tofile=f"v{version} by {author}",
    )
    return "".join(lines) or "(source unchanged)\n"
