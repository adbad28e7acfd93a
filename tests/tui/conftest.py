"""Console fixtures: a seeded SQLite store in tmp_path and a console app over it."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.css.query import NoMatches
from textual.pilot import Pilot

from events.store import EventStore
from tui.app import ConsoleApp
from tui.data import ConsoleData
from tui.rows import Operator

from .fixtures import T0, seed, store_at


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh asyncio loop (Textual's), without a plugin."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


ALICE = Operator(subject="alice", groups=frozenset({"dba", "oncall"}))


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[EventStore]:
    store = store_at(tmp_path)
    seed(store)
    yield store
    store.close()


def make_app(store: EventStore, operator: Operator = ALICE, *, now: float = T0) -> ConsoleApp:
    data = ConsoleData(store, operator, kill_groups=frozenset({"oncall"}), clock=lambda: now)
    return ConsoleApp(data, min_interval=0.05)


async def until(pilot: Pilot[None], check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Let the app run until ``check()`` holds (or fail after ``timeout`` seconds).

    The timeout is generous because the test machine is shared; a passing check returns at
    once. A widget not mounted yet (a screen still composing) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except NoMatches:
            pass
        await pilot.pause(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


async def ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ConsoleApp)
    await until(pilot, lambda: app.snapshot is not None)
    await pilot.pause()
