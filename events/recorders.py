"""eventsourcing application recorders that chain every insert, for SQLite and PostgreSQL.

Theory of operation
-------------------
Both recorders keep eventsourcing's own tables and formats, so ``select_notifications``,
``select_events`` and the notification log read them as usual. They replace the insert:

* one transaction inserts the events, reads the chain head, and inserts one chain entry per
  event (see :mod:`events.integrity`); the transaction holds the store's write lock from the
  first insert (SQLite) or takes eventsourcing's table lock first (PostgreSQL), so the
  chain follows the notification order exactly, whatever the number of writers and nodes;
* SQLite: ``executemany`` on a pooled long-lived connection (per-event ``execute`` and
  ``lastrowid`` cost more than the commit on the hot path), and ``PRAGMA synchronous`` set on
  every connection from the configured durability (eventsourcing leaves WAL at FULL);
  automatic WAL checkpoints can be turned off so that a background task does them;
* PostgreSQL: ``NOTIFY`` on the events channel in the same transaction, for followers.

Side tables: ``<prefix>chain`` (notification id, hash), ``<prefix>dictionaries`` (trained
zstd dictionaries) and ``<prefix>meta`` (settings fixed at creation, such as the chain mode).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from events.integrity import GENESIS, U64, ChainEntry, RawEvent

PAGE = 5000


class EncodedEvent(NamedTuple):
    """An event in stored form, like eventsourcing's ``StoredEvent`` (same attributes) but a
    tuple: building the frozen dataclass cost more than encoding the event's state."""

    originator_id: uuid.UUID | str
    originator_version: int
    topic: str
    state: bytes


Stored = StoredEvent | EncodedEvent

_IDS: dict[int, tuple[uuid.UUID, str, bytes]] = {}


def _id_forms(originator_id: uuid.UUID) -> tuple[str, bytes]:
    """(hex, length-prefixed canonical text) of an aggregate id, cached by object identity:
    a session's events all carry its one id object (hashing a UUID runs Python code)."""
    found = _IDS.get(id(originator_id))
    if found is None or found[0] is not originator_id:
        if len(_IDS) > 8192:
            _IDS.clear()
        text = str(originator_id).encode()
        found = _IDS[id(originator_id)] = (
            originator_id,
            originator_id.hex,
            U64.pack(len(text)) + text,
        )
    return found[1], found[2]


def _oid_text(originator_id: uuid.UUID | str) -> str:
    """The canonical text of an aggregate id (hyphenated), whatever form it was read in."""
    text = str(originator_id)
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


_TOPICS: dict[str, bytes] = {}


def _chain(
    prev: bytes, first_id: int | Sequence[int], stored: Sequence[Stored], key: bytes | None
) -> list[tuple[int, bytes]]:
    """The chain entries of ``stored`` following ``prev``: :func:`events.integrity.link`,
    with the length-prefixed id and topic of each event built once and reused."""
    rows: list[tuple[int, bytes]] = []
    topics = _TOPICS
    pack = U64.pack
    sha256 = hashlib.sha256
    join = b"".join
    for i, s in enumerate(stored):
        nid = first_id + i if isinstance(first_id, int) else first_id[i]
        topic = topics.get(s.topic)
        if topic is None:
            raw = s.topic.encode()
            topic = topics[s.topic] = pack(len(raw)) + raw
        oid = s.originator_id
        if isinstance(oid, uuid.UUID):
            oid_part = _id_forms(oid)[1]
        else:
            text = _oid_text(oid).encode()
            oid_part = pack(len(text)) + text
        state = s.state
        message = join(
            (prev, pack(nid), oid_part, pack(s.originator_version), topic, pack(len(state)), state)
        )
        if key is None:
            prev = sha256(message).digest()
        else:
            prev = hmac.new(key, message, hashlib.sha256).digest()
        rows.append((nid, prev))
    return rows


def _raw_events(
    page: Callable[[int, int], list[tuple[int, str, int, str, bytes]]], after: int
) -> Iterator[RawEvent]:
    while True:
        rows = page(after, PAGE)
        for nid, oid, version, topic, state in rows:
            yield RawEvent(
                notification_id=nid,
                originator_id=_oid_text(oid),
                originator_version=version,
                topic=topic,
                state=bytes(state),
            )
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


_WRITE_LOCK = threading.Lock()
RESTART_WAIT = 0.02
"""How long a RESTART checkpoint may hold commits back waiting for readers (seconds)."""


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """SQLite recorder: chained inserts, configurable durability and checkpointing."""

    chain_key: bytes | None = None
    synchronous: str = "NORMAL"
    autocheckpoint: bool = True

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements += [
            "CREATE TABLE IF NOT EXISTS wardgate_chain "
            "(notification_id INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS wardgate_dictionaries "
            "(dict_id INTEGER PRIMARY KEY, created REAL NOT NULL, data BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS wardgate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]
        return statements

    def _configure(self, conn: Any) -> None:
        wanted = (self.synchronous, self.autocheckpoint)
        if getattr(conn, "_wardgate_config", None) != wanted:
            raw = conn._sqlite_conn
            raw.execute(f"PRAGMA synchronous={self.synchronous}")
            raw.execute(f"PRAGMA wal_autocheckpoint={1000 if self.autocheckpoint else 0}")
            conn._wardgate_config = wanted

    _writer: sqlite3.Connection | None = None
    _checkpointer: sqlite3.Connection | None = None
    _writer_config: tuple[str, bool] | None = None

    def insert_events(self, stored_events: Sequence[Stored], **kwargs: Any) -> Sequence[int]:
        if not stored_events:
            return []
        if self.datastore.pool.is_sqlite_memory_mode:
            with self.datastore.get_connection(commit=True) as conn:
                self._configure(conn)
                with conn.transaction(commit=True) as c:
                    return self._insert_events(c, stored_events, **kwargs)
        # One long-lived connection of its own (no pool, no wrapper objects per
        # transaction): the writer's commits are the hot path.
        with _WRITE_LOCK:
            writer = self._write_connection()
            cursor = writer.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                ids = self._insert_events(cursor, stored_events, **kwargs)
                cursor.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                _rollback(writer)
                raise IntegrityError(exc) from exc
            except BaseException:
                _rollback(writer)
                raise
            return ids

    def _write_connection(self) -> sqlite3.Connection:
        conn = self._writer
        if conn is None:
            pool = self.datastore.pool
            conn = self._writer = sqlite3.connect(
                pool.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                timeout=pool.lock_timeout or 5.0,
            )
        wanted = (self.synchronous, self.autocheckpoint)
        if self._writer_config != wanted:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={1000 if self.autocheckpoint else 0}")
            self._writer_config = wanted
        return conn

    def close_writer(self) -> None:
        with _WRITE_LOCK:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None

    def _insert_events(self, c: Any, stored_events: Sequence[Stored], **_: Any) -> list[int]:
        c.executemany(
            self.insert_events_statement,
            [
                (
                    _id_forms(s.originator_id)[0]
                    if isinstance(s.originator_id, uuid.UUID)
                    else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        c.execute("SELECT MAX(rowid) FROM stored_events")
        last = int(c.fetchone()[0])
        first = last - len(stored_events) + 1
        c.execute("SELECT hash FROM wardgate_chain ORDER BY notification_id DESC LIMIT 1")
        row = c.fetchone()
        prev = bytes(row[0]) if row else GENESIS
        c.executemany(
            "INSERT INTO wardgate_chain VALUES (?, ?)",
            _chain(prev, first, stored_events, self.chain_key),
        )
        return list(range(first, last + 1))

    # -- side tables ----------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [tuple(r) for r in c.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.datastore.get_connection(commit=True) as conn:
            self._configure(conn)
            with conn.transaction(commit=True) as c:
                c.execute(sql, params)

    def raw_page(
        self,
        after: int,
        limit: int,
        topics: Sequence[str] = (),
        upto: int | None = None,
    ) -> list[tuple[int, str, int, str, bytes]]:
        """Stored rows after ``after`` (and up to ``upto``), of these topics if given:
        (id, canonical uuid text, version, topic, state)."""
        where, params = "rowid > ?", list[object]([after])
        if upto is not None:
            where += " AND rowid <= ?"
            params.append(upto)
        if topics:
            where += f" AND topic IN ({','.join('?' * len(topics))})"
            params += list(topics)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM stored_events WHERE {where} ORDER BY rowid LIMIT ?",
                (*params, limit),
            )
            return [
                (
                    r[0],
                    f"{r[1][:8]}-{r[1][8:12]}-{r[1][12:16]}-{r[1][16:20]}-{r[1][20:]}",
                    r[2],
                    r[3],
                    r[4],
                )
                for r in c.sqlite_cursor.fetchall()
            ]

    def raw_events(self, after: int = 0) -> Iterator[RawEvent]:
        return _raw_events(self.raw_page, after)

    def chain_entries(self, after: int = 0) -> Iterator[ChainEntry]:
        while True:
            rows = self.query(
                "SELECT notification_id, hash FROM wardgate_chain "
                "WHERE notification_id > ? ORDER BY notification_id LIMIT ?",
                (after, PAGE),
            )
            for nid, digest in rows:
                yield ChainEntry(notification_id=nid, hash=bytes(digest))
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def checkpoint(self) -> None:
        """Copy the WAL into the database, then have the log restart from its beginning.

        A PASSIVE checkpoint never blocks the writer, but under a steady stream of commits
        it never catches up with the end of the log either, and SQLite only rewinds the log
        once everything in it was copied: the WAL then grows without bound (1 GB in a few
        minutes of benchmark, with reads and commits slowing down). So the PASSIVE pass,
        which copies nearly everything while the writer goes on, is followed by a RESTART
        one that holds new commits back just while it copies the last frames, and gives up
        after ``RESTART_WAIT`` when a long reader is in the way (the next round retries)."""
        conn = self._checkpointer
        if conn is None:
            conn = self._checkpointer = sqlite3.connect(
                self.datastore.pool.db_name, uri=True, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout={int(RESTART_WAIT * 1000)}")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def data_version_probe(self) -> Any:
        """A dedicated connection whose ``PRAGMA data_version`` changes on others' commits."""
        import sqlite3  # noqa: PLC0415 - only followers need it

        return sqlite3.connect(self.datastore.pool.db_name, uri=True, check_same_thread=False)


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """PostgreSQL recorder: chained inserts under eventsourcing's table lock, with NOTIFY."""

    chain_key: bytes | None = None

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        prefix = events_table_name.removesuffix("events")
        schema = Identifier(self.datastore.schema)
        self.chain_table = SQL("{0}.{1}").format(schema, Identifier(f"{prefix}chain"))
        self.dict_table = SQL("{0}.{1}").format(schema, Identifier(f"{prefix}dictionaries"))
        self.meta_table = SQL("{0}.{1}").format(schema, Identifier(f"{prefix}meta"))
        self.events_table = SQL("{0}.{1}").format(schema, Identifier(events_table_name))
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (notification_id bigint PRIMARY KEY, "
                "hash bytea NOT NULL)"
            ).format(self.chain_table),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (dict_id bigint PRIMARY KEY, "
                "created double precision NOT NULL, data bytea NOT NULL)"
            ).format(self.dict_table),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (key text PRIMARY KEY, value text NOT NULL)"
            ).format(self.meta_table),
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int]:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events)
            ids = [int(r["notification_id"]) for r in curs.fetchall()]
            curs.execute(
                SQL("SELECT hash FROM {0} ORDER BY notification_id DESC LIMIT 1").format(
                    self.chain_table
                ),
                prepare=True,
            )
            row = curs.fetchone()
            prev = bytes(row["hash"]) if row else GENESIS
            chain = _chain(prev, ids, stored_events, self.chain_key)
            curs.execute(
                SQL("INSERT INTO {0} SELECT * FROM unnest(%s::bigint[], %s::bytea[])").format(
                    self.chain_table
                ),
                ([n for n, _ in chain], [h for _, h in chain]),
                prepare=True,
            )
        return ids

    def query(self, sql: Any, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # Plain tuples (the pool's connections default to dict rows, which cost more per
        # row than the decoding of the event itself on catch-up).
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(sql, params)
            return curs.fetchall()

    def execute(self, sql: Any, params: Sequence[Any] = ()) -> None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(sql, params)

    def raw_page(
        self,
        after: int,
        limit: int,
        topics: Sequence[str] = (),
        upto: int | None = None,
    ) -> list[tuple[int, str, int, str, bytes]]:
        """Stored rows after ``after`` (and up to ``upto``), of these topics if given:
        (id, canonical uuid text, version, topic, state)."""
        clauses, params = ["notification_id > %s"], list[object]([after])
        if upto is not None:
            clauses.append("notification_id <= %s")
            params.append(upto)
        if topics:
            clauses.append("topic = ANY(%s)")
            params.append(list(topics))
        where = SQL(" AND ".join(clauses))  # fixed strings only: no input reaches the SQL
        rows = self.query(
            SQL(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {0} WHERE {1} ORDER BY notification_id LIMIT %s"
            ).format(self.events_table, where),
            (*params, limit),
        )
        return [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

    def raw_events(self, after: int = 0) -> Iterator[RawEvent]:
        return _raw_events(self.raw_page, after)

    def chain_entries(self, after: int = 0) -> Iterator[ChainEntry]:
        while True:
            rows = self.query(
                SQL(
                    "SELECT notification_id, hash FROM {0} WHERE notification_id > %s "
                    "ORDER BY notification_id LIMIT %s"
                ).format(self.chain_table),
                (after, PAGE),
            )
            for nid, digest in rows:
                yield ChainEntry(notification_id=nid, hash=bytes(digest))
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""
