"""Shared fixtures: event stores on SQLite (temporary file) and the local PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from events.store import EventStore, StoreSettings

PG_BASE = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url(schema: str) -> str:
    return f"{PG_BASE}?schema={schema}"


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store location on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'events.db'}"
        return
    schema = f"wg_test_{uuid.uuid4().hex[:12]}"
    try:
        yield pg_url(schema)
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    s = EventStore(StoreSettings(url=store_url))
    try:
        yield s
    finally:
        s.close()
