"""Screens as pictures (pytest-textual-snapshot): fixture data, a frozen clock, fixed ids.

Update after a deliberate change of the look with ``--snapshot-update`` and commit the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from events.store import EventStore
from tui.app import ConsoleApp
from tui.widgets.live_table import LiveTable

from .conftest import make_app, ready, until
from .fixtures import seed, store_at

SIZE = (160, 48)


@pytest.fixture
def app(tmp_path: Path) -> Any:
    store: EventStore = store_at(tmp_path)
    seed(store)
    yield make_app(store)
    store.close()


async def settled(pilot: Pilot[None], selector: str | None = None) -> None:
    await ready(pilot)
    if selector is not None:
        await until(pilot, lambda: pilot.app.screen.query_one(selector, LiveTable).row_count > 0)
    await pilot.pause(0.1)


def shoot(snap_compare: Any, app: ConsoleApp, keys: list[str], selector: str | None) -> bool:
    async def before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.05)
        await settled(pilot, selector)

    return bool(snap_compare(app, terminal_size=SIZE, run_before=before))


def test_sessions_screen(snap_compare: Any, app: ConsoleApp) -> None:
    assert shoot(snap_compare, app, [], "#live-sessions")


def test_session_detail_mysql(snap_compare: Any, app: ConsoleApp) -> None:
    assert shoot(snap_compare, app, ["down", "enter"], "#session-events")


def test_session_detail_ssh_with_end_prompt(snap_compare: Any, app: ConsoleApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press("enter")
        await settled(pilot, "#session-events")
        await until(pilot, lambda: pilot.app.screen.query_one("#session-output").display)
        await pilot.press("k")
        await pilot.press(*"stuck")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_approvals_screen(snap_compare: Any, app: ConsoleApp) -> None:
    assert shoot(snap_compare, app, ["a"], "#pending")


def test_approve_for_a_window_prompt(snap_compare: Any, app: ConsoleApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press("a")
        await settled(pilot, "#pending")
        await pilot.press("w")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_audit_screen(snap_compare: Any, app: ConsoleApp) -> None:
    assert shoot(snap_compare, app, ["l"], "#audit")


def test_audit_event_detail(snap_compare: Any, app: ConsoleApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press("l")
        await settled(pilot, "#audit")
        await pilot.press("down", "down", "down", "enter")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_policy_screen_with_diff(snap_compare: Any, app: ConsoleApp) -> None:
    async def before(pilot: Pilot[None]) -> None:
        await ready(pilot)
        await pilot.press("p")
        await settled(pilot, "#policy-history")
        await pilot.press("enter")
        await until(pilot, lambda: "--- v1" in pilot.app.screen.query_one("#policy-text").shown)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_help_screen(snap_compare: Any, app: ConsoleApp) -> None:
    assert shoot(snap_compare, app, ["question_mark"], None)
