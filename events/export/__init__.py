"""Compliance exports: the event log as rows of events, sessions, commands, approvals, policy.

Theory of operation
-------------------
An export reads the log once, in notification order, page by page (``store.read``), up to
the last event stored when it started; it never holds the log. Beside each page it walks the
chain table (``recorder.chain_entries``) with the same ids, so every row carries the
notification id and the chain hash of the event it comes from, which ``wardgate audit
verify`` checks.

``events`` rows are the stored events themselves, one each (:mod:`events.export.stream`).
The other kinds combine several events: :class:`RowAssembler` (:mod:`events.export.assemble`)
keeps only the state of open items and hands a row out the moment an item is complete, and
what is still open at the end with ``complete = false``. Memory is bounded by what is open at
one moment, never by the size of the log. Filters apply to finished rows
(:mod:`events.export.rows`; ``docs/EXPORTS.md`` gives the exact meaning of each filter per
kind).

Modules: ``rows`` (schemas, filters, times), ``assemble`` (events to rows), ``stream``
(reading beside the chain, writing JSONL/CSV, the fast path of the ``events`` export), and
this one, the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from eventsourcing.utils import get_topic

from events.domain import Approval, DomainEvent, Policy
from events.export.assemble import RowAssembler
from events.export.rows import (
    DECISIONS,
    FORMATS,
    KINDS,
    PAGE,
    SCHEMAS,
    ApprovalRow,
    CommandRow,
    ExportError,
    ExportFilter,
    PolicyRow,
    SessionRow,
    iso,
    matches,
    parse_time,
    row_dict,
)
from events.export.stream import (
    EventSelector,
    RowWriter,
    Traced,
    csv_cell,
    csv_value,
    event_row,
    raw_event_lines,
    topic_pages,
    traced_pages,
)
from events.store import EventStore

__all__ = [
    "DECISIONS",
    "FORMATS",
    "KINDS",
    "PAGE",
    "SCHEMAS",
    "ApprovalRow",
    "CommandRow",
    "ExportError",
    "ExportFilter",
    "ExportSummary",
    "PolicyRow",
    "Progress",
    "RowAssembler",
    "RowWriter",
    "SessionRow",
    "Traced",
    "csv_cell",
    "csv_value",
    "event_row",
    "export",
    "iso",
    "matches",
    "parse_time",
    "row_dict",
    "traced_pages",
]

# ------------------------------------------------------------------------------ driving


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSummary:
    kind: str
    events_read: int
    rows: int
    incomplete: int
    last_id: int


Progress = Callable[[int, int], None]
"""Called after each page with (events read so far, events to read)."""


# Exports that fold one aggregate type read only its events.
_ONLY_TOPICS = {"approvals": get_topic(Approval) + ".", "policy": get_topic(Policy) + "."}


def _pages(
    store: EventStore, kind: str, *, end: int, page: int
) -> Iterator[tuple[int, list[Traced]]]:
    """(events read so far, page of traced events) for ``kind``."""
    prefix = _ONLY_TOPICS.get(kind)
    if prefix is not None:
        yield from topic_pages(store, prefix, end=end, page=page)
        return
    read = 0
    for batch in traced_pages(store, end=end, page=page):
        read += len(batch)
        yield read, batch


def export(
    store: EventStore,
    kind: str,
    out: TextIO,
    *,
    fmt: str = "jsonl",
    filt: ExportFilter | None = None,
    progress: Progress | None = None,
    page: int = PAGE,
) -> ExportSummary:
    """Stream one kind of export of the whole log (up to its head now) into ``out``."""
    f = filt or ExportFilter()
    f.check(kind)
    writer = RowWriter(out, fmt, SCHEMAS[kind])
    end = store.max_id()
    pending: list[dict[str, Any]] = []
    counts = {"rows": 0, "incomplete": 0}

    def keep(row: Any) -> None:
        if matches(f, row):
            pending.append(row_dict(row))
            counts["rows"] += 1
            counts["incomplete"] += 0 if getattr(row, "complete", True) else 1

    if kind == "events" and not f.needs_context and f.decision is None:
        done = (0, 0)
        for done in raw_event_lines(store, writer, f, end=end, page=page):
            if progress is not None:
                progress(done[0], end)
        read, written = done
        out.flush()
        return ExportSummary(kind=kind, events_read=read, rows=written, incomplete=0, last_id=end)
    selector: EventSelector | None = None
    assembler: RowAssembler | None = None
    feed: Callable[[int, DomainEvent, str | None], None]
    if kind == "events":
        selector = EventSelector(f, pending)
        feed = selector.feed
    else:
        assembler = RowAssembler(
            on_session=keep if kind == "sessions" else None,
            on_command=keep if kind == "commands" else None,
            on_approval=keep if kind == "approvals" else None,
            on_policy=keep if kind == "policy" else None,
        )
        feed = assembler.feed
    read = 0
    for read, batch in _pages(store, kind, end=end, page=page):
        for nid, event, digest in batch:
            feed(nid, event, digest)
        writer.write(pending)
        pending.clear()
        if progress is not None:
            progress(read, end)
    if assembler is not None:
        assembler.flush()
        writer.write(pending)
    if selector is not None:
        counts["rows"] = selector.rows
    out.flush()
    return ExportSummary(
        kind=kind,
        events_read=read,
        rows=counts["rows"],
        incomplete=counts["incomplete"],
        last_id=end,
    )
