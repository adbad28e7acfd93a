"""Reading the log beside its chain, and writing rows as JSON Lines or CSV.

Theory of operation
-------------------
:func:`traced_pages` reads decoded events a page at a time (``store.read``) and walks the
chain table beside them, so each event comes with its chain hash. The ``events`` export
without per-aggregate filters takes a faster road, :func:`raw_event_lines`: one query
per page reads the stored rows with their chain hashes (:func:`stored_page`); each row is
decompressed (and decrypted) and its stored JSON spliced into the output without decoding
it into an event and encoding it again (the mapper stores compact UTF-8 JSON, as the export
writes it). Its rows are byte for byte what :func:`event_row` builds from decoded events; a
test holds the two together.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from eventsourcing.persistence import PersistenceError, StoredEvent

from events.domain import DomainEvent, Session, SessionControl
from events.export.assemble import OpenApproval, OpenSession, RowAssembler
from events.export.rows import (
    ENVELOPE_FIELDS,
    FORMATS,
    PAGE,
    ExportError,
    ExportFilter,
    iso,
)
from events.projections import id_text
from events.recorders import ChainedSQLiteRecorder
from events.store import EventStore, StoreUnavailable

# ------------------------------------------------------------------------------ reading

Traced = tuple[int, DomainEvent, str | None]


def traced_pages(
    store: EventStore, *, after: int = 0, end: int | None = None, page: int = PAGE
) -> Iterator[list[Traced]]:
    """Pages of (notification id, event, chain hash hex) up to ``end`` (default: the head now).

    The chain table is walked beside the events, a page at a time; an event without a
    chain entry gets ``None`` (``wardgate audit verify`` reports it as inserted).
    """
    end = store.max_id() if end is None else end
    chain = store.recorder.chain_entries(after)
    try:
        entry = next(chain, None)
        while after < end:
            batch = store.read(after, page)
            if not batch:
                return
            out: list[Traced] = []
            for nid, event in batch:
                if nid > end:
                    break
                while entry is not None and entry.notification_id < nid:
                    entry = next(chain, None)
                digest = (
                    entry.hash.hex() if entry is not None and entry.notification_id == nid else None
                )
                out.append((nid, event, digest))
            if out:
                yield out
            after = batch[-1][0]
            if len(batch) < page:
                return
    finally:
        close = getattr(chain, "close", None)  # a generator: release its cursor now
        if close is not None:
            close()


def topic_pages(
    store: EventStore, topic_prefix: str, *, end: int, page: int = PAGE
) -> Iterator[tuple[int, list[Traced]]]:
    """Like :func:`traced_pages`, but only events whose topic starts with ``topic_prefix``
    are decoded (``store.decode``) and returned; yields (events read, page).

    For exports that need one aggregate type (approvals, policy): the others are skipped
    before their state is even decompressed.
    """
    after = read = 0
    while after < end:
        rows = stored_page(store, after, page)
        if not rows:
            return
        out: list[Traced] = []
        for nid, oid, version, topic, state, digest in rows:
            if nid > end:
                break
            read += 1
            if topic.startswith(topic_prefix):
                stored = StoredEvent(
                    originator_id=uuid.UUID(oid),
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                out.append((nid, store.decode(stored), digest))
        yield read, out
        after = rows[-1][0]
        if len(rows) < page:
            return


# ------------------------------------------------------------------------------ writing


_FORMULA_START = frozenset("=+-@\t\r'")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def csv_cell(value: Any) -> str:
    """One CSV cell: empty for null, true/false, numbers as such, lists and objects as JSON.

    Text that a spreadsheet could run as a formula (first character ``= + - @``, tab or
    carriage return) gets a leading ``'``; so does text that already starts with ``'``, so
    that dropping the first character of any cell starting with ``'`` restores the value.
    """
    if type(value) is str:
        text = value
    elif value is None:
        return ""
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    elif isinstance(value, int | float):
        return repr(value)
    else:
        text = _dumps(value)
    if text and text[0] in _FORMULA_START:
        return "'" + text
    return text


def csv_value(cell: str) -> str:
    """The text a ``csv_cell`` was made from (undoes the formula guard)."""
    return cell[1:] if cell.startswith("'") else cell


def _csv_field(text: str) -> str:
    """RFC 4180 quoting as the csv module does it (minimal): for the fast path's text cells."""
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


class RowWriter:
    """Writes row dicts as JSON Lines or CSV (RFC 4180: header, CRLF, quoted as needed)."""

    def __init__(self, out: TextIO, fmt: str, columns: Sequence[str]) -> None:
        if fmt not in FORMATS:
            raise ExportError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        self.out, self.fmt, self.columns = out, fmt, tuple(columns)
        self._csv = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(self.columns)

    def write_prepared(self, lines: Sequence[str]) -> None:
        """Lines already in the output format, each with its line end."""
        self.out.write("".join(lines))

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._csv is None:
            self.out.write("".join([_dumps(r) + "\n" for r in rows]))
        else:
            self._csv.writerows([[csv_cell(v) for v in r.values()] for r in rows])


def event_row(nid: int, e: DomainEvent, digest: str | None) -> dict[str, Any]:
    """One ``events`` row: the envelope, and the event's own fields under ``data``."""
    return {
        "notification_id": nid,
        "chain_hash": digest,
        "at": iso(e.at),
        "type": type(e).__qualname__,
        "originator_id": id_text(e),
        "originator_version": e.originator_version,
        "actor": e.actor,
        "data": {k: v for k, v in e.__dict__.items() if k not in ENVELOPE_FIELDS},
    }


class EventSelector:
    """The ``events`` export: one row per stored event that passes the filter.

    With ``--identity``, ``--group`` or ``--target`` an event is judged by the aggregate it
    belongs to (its session or approval), whose context a :class:`RowAssembler` keeps. A
    session's first events come before its identity is known: with ``--identity`` or
    ``--group`` they wait (one session's worth at most) and are written when it
    authenticates, or dropped when it is rejected or closes unauthenticated.
    """

    def __init__(self, f: ExportFilter, out: list[dict[str, Any]]) -> None:
        self.f, self.out = f, out
        self.rows = 0
        self.context = RowAssembler(keep_approvals=True) if f.needs_context else None

    def _emit(self, row: dict[str, Any]) -> None:
        self.out.append(row)
        self.rows += 1

    def _lookup(self, e: DomainEvent) -> OpenSession | OpenApproval | None:
        assert self.context is not None
        if isinstance(e, SessionControl.TerminationRequested):
            return self.context.sessions.get(e.session_id)
        oid = id_text(e)
        return self.context.sessions.get(oid) or self.context.approvals.get(oid)

    def _who(
        self, row: dict[str, Any], subject: str | None, groups: Sequence[str], target: str | None
    ) -> bool:
        f = self.f
        return (
            (f.identity is None or f.identity in (subject, row["actor"]))
            and (f.group is None or f.group in groups)
            and (f.target is None or f.target == target)
        )

    def feed(self, nid: int, event: DomainEvent, chain: str | None) -> None:
        e, digest, f = event, chain, self.f
        wanted = f.in_window(e.at) and (
            f.decision is None or (isinstance(e, Session.CommandDecided) and e.action == f.decision)
        )
        ctx = self.context
        if ctx is None:
            if wanted:
                self._emit(event_row(nid, e, digest))
            return
        owner = self._lookup(e)  # before feeding: a closing event removes its owner
        ctx.feed(nid, e, digest)
        owner = owner or self._lookup(e)
        row = event_row(nid, e, digest) if wanted else None
        if isinstance(owner, OpenApproval):
            q = owner.request
            if row is not None and self._who(row, q.subject, q.groups, q.target):
                self._emit(row)
            return
        if not isinstance(owner, OpenSession):
            if row is not None and self._who(row, None, (), None):
                self._emit(row)
            return
        known = owner.auth is not None or owner.rejected is not None
        if not known and (f.identity is not None or f.group is not None):
            if isinstance(e, Session.Closed):
                owner.deferred.clear()
            elif row is not None:
                owner.deferred.append(row)
            return
        subject, groups, target = owner.subject, owner.groups, owner.accepted.target
        if owner.deferred:
            for early in owner.deferred:
                if self._who(early, subject, groups, target):
                    self._emit(early)
            owner.deferred.clear()
        if row is not None and self._who(row, subject, groups, target):
            self._emit(row)


# ------------------------------------------------------------------- the events fast path

# The C string scanner behind json.loads: parses one JSON string, returns it and its end.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

_HEAD = '{"at":'
_ACTOR = ',"actor":"'


def _split_stored(text: str) -> tuple[float, str, str, str]:
    """(at, actor as JSON text, actor, the other fields as a JSON object) of a stored event.

    The mapper writes an event's fields in declaration order, so ``at`` and ``actor`` come
    first; anything else is decoded the slow, general way.
    """
    comma = text.find(_ACTOR, len(_HEAD)) if text.startswith(_HEAD) else -1
    if comma > 0:
        try:
            at = float(text[len(_HEAD) : comma])
            start = comma + len(_ACTOR)
            quote = text.find('"', start)
            if quote > 0 and "\\" not in text[start:quote]:
                actor, stop = text[start:quote], quote + 1
            else:
                actor, stop = _scanstring(text, start)
        except ValueError:
            pass
        else:
            rest = text[stop:]
            if rest.startswith(","):
                return at, text[start - 1 : stop], actor, "{" + rest[1:]
            if rest == "}":
                return at, text[start - 1 : stop], actor, "{}"
    data = json.loads(text)
    at, actor = float(data.pop("at")), str(data.pop("actor"))
    return at, _dumps(actor), actor, _dumps(data)


_SQLITE_PAGE = (
    "SELECT e.rowid, substr(e.originator_id, 1, 8) || '-' || substr(e.originator_id, 9, 4) "
    "|| '-' || substr(e.originator_id, 13, 4) || '-' || substr(e.originator_id, 17, 4) "
    "|| '-' || substr(e.originator_id, 21), e.originator_version, e.topic, e.state, "
    "CASE WHEN c.hash IS NULL THEN NULL ELSE lower(hex(c.hash)) END "
    "FROM stored_events e LEFT JOIN wardgate_chain c ON c.notification_id = e.rowid "
    "WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?"
)


def stored_page(store: EventStore, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Stored rows after ``after`` with their chain hashes, in one query:
    (id, uuid text, version, topic, state, chain hash hex or None)."""
    r = store.recorder
    try:
        if isinstance(r, ChainedSQLiteRecorder):
            return r.query(_SQLITE_PAGE, (after, limit))
        from psycopg.sql import SQL  # noqa: PLC0415

        return r.query(
            SQL(
                "SELECT e.notification_id, e.originator_id::text, e.originator_version, "
                "e.topic, e.state, encode(c.hash, 'hex') FROM {0} e LEFT JOIN {1} c "
                "ON c.notification_id = e.notification_id WHERE e.notification_id > %s "
                "ORDER BY e.notification_id LIMIT %s"
            ).format(r.events_table, r.chain_table),
            (after, limit),
        )
    except (PersistenceError, sqlite3.Error) as exc:
        raise StoreUnavailable(f"event store {store.settings.display}: {exc}") from None


def raw_event_lines(
    store: EventStore,
    writer: RowWriter,
    f: ExportFilter,
    *,
    end: int,
    page: int = PAGE,
) -> Iterator[tuple[int, int]]:
    """Write the ``events`` export from stored rows; yields (events read, rows written).

    Only for filters that need no aggregate context (time window at most).
    """
    decompress = store.compressor.decompress
    cipher = store.mapper.cipher
    decrypt = cipher.decrypt if cipher is not None else None
    types: dict[str, str] = {}
    jsonl = writer.fmt == "jsonl"
    in_window = f.in_window
    after = read = written = 0
    last_at, last_iso = -1.0, ""
    while after < end:
        rows = stored_page(store, after, page)
        if not rows:
            return
        lines: list[str] = []
        for nid, oid, version, topic, state, digest in rows:
            if nid > end:
                break
            read += 1
            plain = decrypt(state) if decrypt is not None else state
            at, actor_json, actor, data = _split_stored(decompress(plain).decode())
            if not in_window(at):
                continue
            if at != last_at:  # events of one batch often share their time
                last_at, last_iso = at, iso(at)
            kind = types.get(topic)
            if kind is None:
                kind = types[topic] = topic.partition(":")[2]
            if jsonl:
                h = "null" if digest is None else f'"{digest}"'
                lines.append(
                    f'{{"notification_id":{nid},"chain_hash":{h},"at":"{last_iso}",'
                    f'"type":"{kind}","originator_id":"{oid}","originator_version":{version},'
                    f'"actor":{actor_json},"data":{data}}}\n'
                )
            else:
                lines.append(
                    f"{nid},{digest or ''},{last_iso},{kind},{oid},{version},"
                    f"{_csv_field(csv_cell(actor))},{_csv_field(data)}\r\n"
                )
        written += len(lines)
        writer.write_prepared(lines)
        yield read, written
        after = rows[-1][0]
        if len(rows) < page:
            return
