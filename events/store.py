"""The event store: settings, opening SQLite or PostgreSQL, appending, reading, verifying.

Theory of operation
-------------------
``EventStore`` wraps one eventsourcing ``Application`` (the service boundary) configured
explicitly, never from whatever happens to be in the process environment: the persistence
module, our chained recorder, a zstd compressor with trained dictionaries, and AES-GCM
encryption at rest when a key is given. Library errors are translated into our own:
:class:`StoreUnavailable` (cannot open or reach the store) and :class:`ConcurrencyConflict`
(an aggregate version was taken by someone else: the optimistic-concurrency signal).

The hot path is :meth:`EventStore.append`: many events from many aggregates, one
transaction, durable when it returns (per the durability setting). It encodes with the
library's own stored format (JSON, then zstd, then AES-GCM when on), so everything the
library reads (notification log, repository-style loads) reads them back, but it encodes
them itself: orjson instead of the mapper's ``json`` encoder (15x cheaper per event, falling
back to the library's transcoder for anything orjson refuses), no ``Application.save``, no
aggregate triggers; their per-event costs dominate at gateway rates (see NOTES.md).

Durability (``WARDGATE_DURABILITY``): ``process-crash`` (default) keeps SQLite in WAL with
``synchronous=NORMAL``: a commit survives the gateway process dying, not the machine losing
power. ``power-loss`` sets ``synchronous=FULL`` (an fsync per commit). PostgreSQL commits are
durable in both modes.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    Notification,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.utils import Environment, get_topic, resolve_topic

from events.compression import (
    LARGE_LEVEL,
    CompressionError,
    ZstdDictCompressor,
    train_dictionary,
)
from events.domain import Aggregate, DomainEvent
from events.integrity import VerifyReport, merge_by_id, verify
from events.recorders import (
    ChainedPostgresRecorder,
    ChainedSQLiteRecorder,
    EncodedEvent,
    Stored,
)

Durability = Literal["process-crash", "power-loss"]
PG_RECONNECT_WINDOW = 2.0
"""Seconds a lost PostgreSQL pool connection is retried in the background before the next
writer asks for a fresh one (see ``EventStore.__init__``)."""
A = TypeVar("A", bound=Aggregate)
TRAIN_SAMPLE_MAX = 4096
"""Events larger than this (bytes of JSON) are left out of dictionary training."""


class StoreError(Exception):
    """Base of the store's errors; the message is one line, fit for a user."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or reached."""


class ConcurrencyConflict(StoreError):
    """An aggregate version is already taken: someone else changed it first."""


class CorruptEvent(StoreError):
    """A stored event cannot be decoded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    url: str
    durability: Durability = "process-crash"
    cipher_key: str | None = None
    integrity_key: bytes | None = None
    autocheckpoint: bool = True
    compression_level: int = 3
    large_compression_level: int = LARGE_LEVEL
    """For events of ``events.compression.LARGE`` bytes and more (recorded output)."""

    @property
    def backend(self) -> str:
        return "postgresql" if self.url.startswith(("postgresql:", "postgres:")) else "sqlite"

    @property
    def display(self) -> str:
        """The URL without any password."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        return self.url

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, data_dir: Path | None = None
    ) -> StoreSettings:
        env = os.environ if env is None else env
        data = data_dir or default_data_dir(env)
        url = env.get("WARDGATE_STORE_URL") or f"sqlite:///{data / 'events.db'}"
        durability = env.get("WARDGATE_DURABILITY", "process-crash")
        if durability not in ("process-crash", "power-loss"):
            raise StoreError(
                f"WARDGATE_DURABILITY must be 'process-crash' or 'power-loss', not {durability!r}"
            )
        integrity = env.get("WARDGATE_INTEGRITY_KEY")
        key_file = data / "integrity.key"
        integrity_key: bytes | None = None
        if integrity:
            integrity_key = integrity.encode()
        elif key_file.exists():
            integrity_key = key_file.read_bytes().strip()
        return cls(
            url=url,
            durability=durability,  # type: ignore[arg-type]
            cipher_key=env.get("WARDGATE_STORE_KEY") or None,
            integrity_key=integrity_key,
        )


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("WARDGATE_DATA_DIR") or ".wardgate").absolute()


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)


def new_cipher_key() -> str:
    """A fresh AES-256 key, base64, for ``WARDGATE_STORE_KEY``."""
    return base64.b64encode(os.urandom(32)).decode()


class _Log(Application[uuid.UUID]):
    """The eventsourcing application behind the store (its name prefixes PostgreSQL tables)."""

    name = "Wardgate"

    def __init__(self, env: dict[str, str], compressor: ZstdDictCompressor, cipher: Any) -> None:
        self._wg_compressor = compressor
        self._wg_cipher = cipher
        super().__init__(env)

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Only what we pass: a stray PERSISTENCE_MODULE or POSTGRES_* in the shell must not
        # silently redirect the audit log (an unset module even means "in memory").
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: Any) -> None:
        # None: events hold JSON-native values only, so a UUID or datetime slipping into
        # one fails loudly at write time, and the fast reader stays exact.
        return None

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return Mapper(
            transcoder=self.construct_transcoder(),
            compressor=self._wg_compressor,
            cipher=self._wg_cipher,
        )


def _library_env(settings: StoreSettings) -> dict[str, str]:
    if settings.backend == "sqlite":
        path = settings.url.removeprefix("sqlite://").removeprefix("/")
        path = "/" + path if not path.startswith("/") else path
        db = Path(path)
        ensure_private_dir(db.parent)
        if not db.exists():
            os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(db),
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": "events.recorders:ChainedSQLiteRecorder",
        }
    parts = urllib.parse.urlsplit(settings.url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": urllib.parse.unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": urllib.parse.unquote(parts.password or ""),
        "POSTGRES_SCHEMA": query.get("schema", ""),
        "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", "5"),
        "POSTGRES_POOL_SIZE": query.get("pool_size", "4"),
        "POSTGRES_LOCK_TIMEOUT": "5",
        "APPLICATION_RECORDER_TOPIC": "events.recorders:ChainedPostgresRecorder",
    }


_ORJSON_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON-native")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class EventStore:
    """The one service boundary to stored events (thread-safe, synchronous)."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.compressor = ZstdDictCompressor(
            level=settings.compression_level, large_level=settings.large_compression_level
        )
        cipher = None
        if settings.cipher_key:
            from eventsourcing.cryptography import AESCipher  # noqa: PLC0415

            try:
                cipher = AESCipher(Environment("", {"CIPHER_KEY": settings.cipher_key}))
            except (ValueError, OSError) as exc:
                raise StoreError(f"WARDGATE_STORE_KEY is not a valid AES key: {exc}") from None
        try:
            if settings.backend == "postgresql":
                _ensure_pg_schema(settings)
            self.app = _Log(_library_env(settings), self.compressor, cipher)
        except (PersistenceError, sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(
                f"cannot open event store {settings.display}: {_describe(exc)}"
            ) from None
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise StoreUnavailable(
                    f"cannot open event store {settings.display}: {_describe(exc)}"
                ) from None
            raise
        recorder = self.app.recorder
        assert isinstance(recorder, ChainedSQLiteRecorder | ChainedPostgresRecorder)
        self.recorder: ChainedSQLiteRecorder | ChainedPostgresRecorder = recorder
        self.recorder.chain_key = settings.integrity_key
        if isinstance(recorder, ChainedPostgresRecorder):
            # psycopg_pool retries a lost connection with exponential backoff (1, 2, 4, ...
            # seconds) for five minutes: after an outage of a minute the pool would wait half
            # a minute more before trying the server again, refusing every command meanwhile.
            # Giving up a retry chain quickly makes the next waiting writer open a fresh
            # connection at once, so service resumes within about a second of the store.
            recorder.datastore.pool.reconnect_timeout = PG_RECONNECT_WINDOW
        if isinstance(recorder, ChainedSQLiteRecorder):
            recorder.synchronous = "FULL" if settings.durability == "power-loss" else "NORMAL"
            recorder.autocheckpoint = settings.autocheckpoint
        self.mapper = self.app.mapper
        self._classes: dict[str, Any] = {}
        self._topics: dict[type, tuple[str, int]] = {}
        self.compressor.loader = self.dictionaries
        self._guard(self._check_chain_mode)
        self._guard(self.compressor.refresh)

    @property
    def backend(self) -> str:
        return self.settings.backend

    def _guard(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except IntegrityError as exc:
            raise ConcurrencyConflict(_describe(exc)) from None
        except (PersistenceError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"event store {self.settings.display} failed: {_describe(exc)}"
            ) from None

    # -- meta -----------------------------------------------------------------------------

    def _meta_sql(self) -> tuple[Any, Any, str]:
        r = self.recorder
        if isinstance(r, ChainedSQLiteRecorder):
            return (
                "SELECT value FROM wardgate_meta WHERE key = ?",
                "INSERT OR IGNORE INTO wardgate_meta VALUES (?, ?)",
                "?",
            )
        from psycopg.sql import SQL  # noqa: PLC0415

        return (
            SQL("SELECT value FROM {0} WHERE key = %s").format(r.meta_table),
            SQL("INSERT INTO {0} VALUES (%s, %s) ON CONFLICT DO NOTHING").format(r.meta_table),
            "%s",
        )

    def meta(self, key: str) -> str | None:
        select, _, _ = self._meta_sql()
        rows = self._guard(self.recorder.query, select, (key,))
        return str(rows[0][0]) if rows else None

    def _check_chain_mode(self) -> None:
        mode = "hmac-sha256" if self.settings.integrity_key else "sha256"
        _, insert, _ = self._meta_sql()
        self.recorder.execute(insert, ("chain_mode", mode))
        stored = self.meta("chain_mode")
        self.chain_mode = stored or mode

    # -- writing --------------------------------------------------------------------------

    def append(self, events: Sequence[DomainEvent]) -> list[int]:
        """Store ``events`` in one transaction; returns their notification ids when durable."""
        if self.chain_mode == "hmac-sha256" and not self.settings.integrity_key:
            raise StoreError(
                "this store chains events with an integrity key: set WARDGATE_INTEGRITY_KEY"
            )
        ids: list[int] = self._guard(self.recorder.insert_events, self.encode(events))
        return ids

    def encode(self, events: Sequence[DomainEvent]) -> list[Stored]:
        """``events`` in the mapper's stored format (what ``Mapper.to_stored_event`` gives;
        as plain tuples for SQLite, as the library's ``StoredEvent`` for PostgreSQL)."""
        topics = self._topics
        compress = self.compressor.compress
        cipher = self.mapper.cipher
        dumps = orjson.dumps
        make: type[Stored] = (
            EncodedEvent if isinstance(self.recorder, ChainedSQLiteRecorder) else StoredEvent
        )
        out: list[Stored] = []
        for event in events:
            cls = type(event)
            known = topics.get(cls)
            if known is None:
                known = topics[cls] = (get_topic(cls), getattr(cls, "class_version", 1))
            state = dict(event.__dict__)
            originator_id = state.pop("originator_id")
            originator_version = state.pop("originator_version")
            if known[1] > 1:
                state["class_version"] = known[1]
            try:
                data = dumps(state, default=_not_json, option=_ORJSON_STRICT)
            except TypeError:  # what orjson refuses the library's transcoder decides
                data = self.mapper.transcoder.encode(state)
            data = compress(data)
            if cipher is not None:
                data = cipher.encrypt(data)
            out.append(make(originator_id, originator_version, known[0], data))
        return out

    # -- reading --------------------------------------------------------------------------

    def decode(self, notification: Any) -> DomainEvent:
        try:
            event = self.mapper.to_domain_event(notification)
        except (CompressionError, ValueError, KeyError, TypeError) as exc:
            raise CorruptEvent(
                f"stored event {getattr(notification, 'id', '?')} cannot be decoded: {exc}"
            ) from None
        assert isinstance(event, DomainEvent)
        return event

    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        topics: Sequence[str] = (),
        upto: int | None = None,
    ) -> list[tuple[int, DomainEvent]]:
        """Events after notification id ``after`` (up to ``upto``; only ``topics`` if given),
        decoded on the fast path.

        Equivalent to the mapper's ``to_domain_event`` for our events, which hold only
        JSON-native values (the transcoder has no custom transcodings registered): the C
        JSON scanner without an object hook, the topic resolved once per class.
        """
        rows = self._guard(self.recorder.raw_page, after, limit, topics, upto)
        decompress = self.compressor.decompress
        decrypt = self.mapper.cipher.decrypt if self.mapper.cipher is not None else None
        classes = self._classes
        ids: dict[str, uuid.UUID] = {}
        loads = json.loads
        out: list[tuple[int, DomainEvent]] = []
        new = object.__new__
        setattr_ = object.__setattr__
        for nid, oid, version, topic, stored in rows:
            try:
                plain = decrypt(stored) if decrypt is not None else stored
                data = loads(decompress(plain).decode())
                cls = classes.get(topic)
                if cls is None:
                    cls = classes[topic] = resolve_topic(topic)
            except Exception as exc:
                raise CorruptEvent(f"stored event {nid} cannot be decoded: {exc}") from None
            ident = ids.get(oid)
            if ident is None:
                if len(ids) > 4096:
                    ids.clear()
                ident = ids[oid] = uuid.UUID(oid)
            data["originator_id"] = ident
            data["originator_version"] = version
            event = new(cls)
            setattr_(event, "__dict__", data)
            out.append((nid, event))
        return out

    def read_kinds(
        self, classes: Sequence[type[DomainEvent]], after: int = 0, limit: int = 1000
    ) -> list[tuple[int, DomainEvent]]:
        """Only events of these classes (filtered by topic in the database)."""
        topics = [f"{c.__module__}:{c.__qualname__}" for c in classes]
        rows: Sequence[Notification] = self._guard(
            lambda: self.recorder.select_notifications(
                start=after, limit=limit, topics=topics, inclusive_of_start=False
            )
        )
        return [(n.id, self.decode(n)) for n in rows]

    def iter_events(self, after: int = 0, batch: int = 2000) -> Iterator[tuple[int, DomainEvent]]:
        while True:
            page = self.read(after, batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1][0]

    def max_id(self) -> int:
        value = self._guard(self.recorder.max_notification_id)
        return int(value or 0)

    def events_of(self, originator_id: uuid.UUID) -> list[DomainEvent]:
        rows = self._guard(self.recorder.select_events, originator_id)
        return [self.decode(r) for r in rows]

    def load(self, cls: type[A], originator_id: uuid.UUID) -> A | None:
        events = self.events_of(originator_id)
        if not events:
            return None
        return cls.project(originator_id, events)

    # -- integrity ------------------------------------------------------------------------

    def verify(self, *, since: str | None = None) -> VerifyReport:
        if self.chain_mode == "hmac-sha256" and not self.settings.integrity_key:
            raise StoreError("this store's chain is keyed: set WARDGATE_INTEGRITY_KEY to verify")
        since_bytes = bytes.fromhex(since) if since else None
        r = self.recorder
        try:
            return verify(
                merge_by_id(r.raw_events(), r.chain_entries()),
                key=self.settings.integrity_key,
                since=since_bytes,
            )
        except (PersistenceError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"event store {self.settings.display}: {_describe(exc)}"
            ) from None

    # -- dictionaries ---------------------------------------------------------------------

    def dictionaries(self) -> dict[int, bytes]:
        r = self.recorder
        if isinstance(r, ChainedSQLiteRecorder):
            rows = r.query("SELECT dict_id, data FROM wardgate_dictionaries")
        else:
            from psycopg.sql import SQL  # noqa: PLC0415

            rows = r.query(SQL("SELECT dict_id, data FROM {0}").format(r.dict_table))
        return {int(i): bytes(d) for i, d in rows}

    def train_dictionary(self, *, samples: int = 5000, min_events: int = 500) -> int | None:
        """Train a zstd dictionary on recent events and make it current; returns its id."""
        last = self.max_id()
        if last < min_events:
            return None
        notifications = self._guard(
            lambda: self.recorder.select_notifications(
                start=max(0, last - samples), limit=samples, inclusive_of_start=False
            )
        )
        raw: list[bytes] = []
        cipher = self.mapper.cipher
        for n in notifications:
            state = n.state
            if cipher is not None:
                state = cipher.decrypt(state)
            plain = self.compressor.decompress(state)
            # The dictionary is for small events (large ones compress well without one);
            # big samples would only make training slow (seconds of CPU on recorded output).
            if len(plain) <= TRAIN_SAMPLE_MAX:
                raw.append(plain)
        if len(raw) < 100:
            return None
        dict_id, data = train_dictionary(raw)
        r = self.recorder
        if isinstance(r, ChainedSQLiteRecorder):
            r.execute(
                "INSERT OR IGNORE INTO wardgate_dictionaries VALUES (?, ?, ?)",
                (dict_id, time.time(), data),
            )
        else:
            from psycopg.sql import SQL  # noqa: PLC0415

            r.execute(
                SQL("INSERT INTO {0} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING").format(
                    r.dict_table
                ),
                (dict_id, time.time(), data),
            )
        self.compressor.refresh()
        return dict_id

    # -- upkeep ---------------------------------------------------------------------------

    def checkpoint(self) -> None:
        self._guard(self.recorder.checkpoint)

    def close(self) -> None:
        if isinstance(self.recorder, ChainedSQLiteRecorder):
            self.recorder.close_writer()
        self.app.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pg_conninfo(settings: StoreSettings) -> str:
    """The PostgreSQL URL without wardgate's own query parameters (schema, pool size)."""
    parts = urllib.parse.urlsplit(settings.url)
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query)
        if k not in ("schema", "pool_size", "connect_timeout")
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _ensure_pg_schema(settings: StoreSettings) -> None:
    """Create the configured schema (``?schema=``) when it does not exist yet."""
    parts = urllib.parse.urlsplit(settings.url)
    schema = dict(urllib.parse.parse_qsl(parts.query)).get("schema")
    if not schema:
        return
    import psycopg  # noqa: PLC0415
    from psycopg.sql import SQL, Identifier  # noqa: PLC0415

    with psycopg.connect(pg_conninfo(settings), autocommit=True, connect_timeout=5) as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(schema)))


def topic_of(cls: type) -> str:
    """The stored topic of an event class (``module:Qualified.Name``)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def open_store(settings: StoreSettings | None = None) -> EventStore:
    return EventStore(settings or StoreSettings.from_env())
