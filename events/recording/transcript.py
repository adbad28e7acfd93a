"""Readable transcripts of a session (statements, decisions, result tables) and a live tail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from events.domain import JSON, DomainEvent, Session
from events.recording.chunks import chunk_bytes
from events.recording.seek import session_range
from events.store import EventStore

# ------------------------------------------------------------ transcripts and live tail


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptLine:
    """One readable line of a session: output, a statement, its decision, its result."""

    version: int
    at: float
    kind: str  # output | command | decision | response | closed
    text: str


def table_lines(transcript: JSON, *, limit: int = 50) -> list[str]:
    """A result table from ``ResponseRecorded.transcript`` (already masked by the proxy).

    Understood shapes: ``{"columns": [...], "rows": [[...], ...]}``, a list of row objects,
    a list of row lists; anything else is shown as its text.
    """
    columns: list[str]
    rows: list[list[JSON]]
    if isinstance(transcript, dict) and "rows" in transcript:
        rows = [list(r) if isinstance(r, list) else [r] for r in transcript.get("rows") or []]
        columns = [str(c) for c in transcript.get("columns") or []]
    elif isinstance(transcript, list) and transcript and isinstance(transcript[0], dict):
        columns = [str(c) for c in transcript[0]]
        rows = [[r.get(c) for c in columns] for r in transcript if isinstance(r, dict)]
    elif isinstance(transcript, list):
        rows = [list(r) if isinstance(r, list) else [r] for r in transcript]
        columns = []
    else:
        return [str(transcript)] if transcript is not None else []
    width = max([len(columns)] + [len(r) for r in rows]) if rows or columns else 0
    columns = columns + [""] * (width - len(columns))
    cells = [["NULL" if v is None else str(v) for v in r] + [""] * (width - len(r)) for r in rows]
    shown = cells[:limit]
    sizes = [max([len(columns[i])] + [len(r[i]) for r in shown]) for i in range(width)]
    rule = "+" + "+".join("-" * (n + 2) for n in sizes) + "+"

    def fmt(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(n) for v, n in zip(values, sizes, strict=True)) + " |"

    out = [rule]
    if any(columns):
        out += [fmt(columns), rule]
    out += [fmt(r) for r in shown] + [rule]
    if len(cells) > limit:
        out.append(f"... {len(cells) - limit} more rows")
    return out


def describe(event: DomainEvent) -> list[TranscriptLine]:
    """The readable lines of one session event (none for events that say nothing new)."""
    v, at = event.originator_version, event.at

    def line(kind: str, text: str) -> TranscriptLine:
        return TranscriptLine(version=v, at=at, kind=kind, text=text)

    match event:
        case Session.OutputRecorded():
            return [line("output", chunk_bytes(event).decode("utf-8", "replace"))]
        case Session.Authenticated():
            return [line("command", f"-- {event.subject} authenticated as {event.client_user}")]
        case Session.CommandReceived():
            return [line("command", f"{event.actor}> {event.text}")]
        case Session.CommandDecided():
            text = f"   {event.action} (rule {event.rule or '-'})"
            if event.action != "allow" and event.reason:
                text += f": {event.reason}"
            return [line("decision", text)]
        case Session.CommandForwarded() if event.approved_by:
            return [line("decision", f"   approved by {', '.join(event.approved_by)}")]
        case Session.ResponseRecorded():
            return [line("response", t) for t in _response_lines(event)]
        case Session.Closed():
            detail = f": {event.detail}" if event.detail else ""
            return [line("closed", f"-- session closed ({event.reason}{detail})")]
    return []


def _response_lines(e: Session.ResponseRecorded) -> list[str]:
    if not e.ok:
        return [f"   ERROR {e.error_code or ''} {e.error_message or ''}".rstrip()]
    lines = ["   " + t for t in table_lines(e.transcript)]
    what = f"{e.rows} row{'s' if e.rows != 1 else ''}" if e.rows else f"{e.affected_rows} affected"
    if e.truncated:
        what += ", result truncated in the recording"
    if e.masked:
        what += "; masked " + ", ".join(f"{k} {n}" for k, n in sorted(e.masked.items()))
    return [*lines, f"   {what} ({e.duration_ms:.1f} ms)"]


def tail(
    store: EventStore, session_id: uuid.UUID, after_version: int = 0
) -> Iterator[TranscriptLine]:
    """Lines of a (running) session after ``after_version``; ends when caught up.

    A live view polls: ``for line in tail(store, sid, last): ...; last = line.version``.
    """
    after = after_version
    while True:
        events = session_range(store, session_id, gt=after, limit=500)
        for event in events:
            yield from describe(event)
        if len(events) < 500:
            return
        after = events[-1].originator_version
