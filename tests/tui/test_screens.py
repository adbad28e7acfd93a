"""Pilot tests: every screen and every operator action, on a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from textual.widgets import Input

from events.domain import Approval, SessionControl
from events.store import EventStore
from tui.app import ConsoleApp
from tui.rows import Operator
from tui.screens.approvals import ApprovalsScreen
from tui.screens.audit import AuditScreen
from tui.screens.event_detail import EventDetailScreen
from tui.screens.help import HelpScreen
from tui.screens.policy import PolicyScreen
from tui.screens.session_detail import SessionDetailScreen
from tui.screens.sessions import SessionsScreen
from tui.widgets.live_table import LiveTable
from tui.widgets.policy_text import PolicyText
from tui.widgets.reason_prompt import ReasonPrompt

from .conftest import make_app, ready, until
from .fixtures import sid

APPROVAL = sid("agent-1-approval-2")
SIZE = (160, 48)


def table(app: ConsoleApp, selector: str) -> LiveTable:
    return app.screen.query_one(selector, LiveTable)


def column(app: ConsoleApp, selector: str, index: int) -> list[str]:
    t = table(app, selector)
    return [str(t.get_row_at(i)[index]) for i in range(t.row_count)]


async def test_sessions_list_filter_and_detail_with_end_session(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert isinstance(app.screen, SessionsScreen)
        assert app.sub_title == "operator alice (dba, oncall)"
        assert column(app, "#live-sessions", 1) == ["ops-agent", "ci-bot", "report-bot"]
        assert column(app, "#live-sessions", 7) == ["", "1", ""]  # pending approvals
        assert column(app, "#recent-sessions", 7) == ["client_quit"]
        await pilot.press("slash", *"report")
        assert column(app, "#live-sessions", 1) == ["report-bot"]
        await pilot.press("enter", "enter")  # leave the filter, open the session
        await until(pilot, lambda: isinstance(app.screen, SessionDetailScreen))
        await until(pilot, lambda: table(app, "#session-events").row_count == 6)
        assert column(app, "#session-events", 1)[:3] == [
            "ConnectionAccepted",
            "Authenticated",
            "CommandReceived",
        ]
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await pilot.press("enter")  # an empty reason is refused in place
        assert isinstance(app.screen, ReasonPrompt)
        app.screen.query_one("#reason", Input).value = "runaway report"
        await pilot.press("enter")
        events: list[object] = []

        def stored() -> bool:
            events[:] = seeded.events_of(SessionControl.id_for(sid("agent-2")))
            return bool(events)

        await until(pilot, stored)
        (event,) = events
        assert isinstance(event, SessionControl.TerminationRequested)
        assert (event.actor, event.reason) == ("alice", "runaway report")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, SessionsScreen))


async def test_end_session_is_not_offered_outside_the_kill_groups(seeded: EventStore) -> None:
    app = make_app(seeded, Operator(subject="bob", groups=frozenset({"dba"})))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SessionDetailScreen))
        await until(pilot, lambda: table(app, "#session-events").row_count > 0)
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, SessionDetailScreen)
        assert not any(
            b.binding.action == "end_session"
            for b in app.screen.active_bindings.values()
            if b.enabled
        )
        assert seeded.events_of(SessionControl.id_for(sid("shell-1"))) == []


async def test_ssh_session_detail_shows_output_as_text(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("enter")  # ops-agent's SSH session is the newest
        await until(pilot, lambda: isinstance(app.screen, SessionDetailScreen))
        log = app.screen.query_one("#session-output")
        await until(pilot, lambda: log.display)
        assert "load 0.10" in "\n".join(log.lines)  # type: ignore[attr-defined]


async def test_approve_deny_and_window_approval_are_stored(seeded: EventStore) -> None:
    writer = textwrap.dedent(
        """
        import sys
        from events.store import EventStore, StoreSettings
        from tests.tui.fixtures import request, T0
        store = EventStore(StoreSettings(url=sys.argv[1]))
        store.append([request("agent-2", 2, subject="report-bot", target="billing", at=T0,
                              text="DELETE FROM invoices WHERE year < 2020")])
        store.append([request("shell-1", 3, subject="ops-agent", target="web-1", at=T0 + 1,
                              text="systemctl restart nginx")])
        store.close()
        """
    )
    app = make_app(seeded)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen))
        assert column(app, "#pending", 1) == ["ci-bot"]
        assert column(app, "#pending", 7) == ["may decide"]
        # Another process asks for two more approvals: they appear and are announced.
        subprocess.run([sys.executable, "-c", writer, seeded.settings.url], check=True, timeout=60)
        await until(pilot, lambda: table(app, "#pending").row_count == 3)
        assert len(bells) == 2
        # y: approve the first (ci-bot's UPDATE) with an optional reason
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await pilot.press(*"ok", "enter")
        await until(pilot, lambda: table(app, "#pending").row_count == 2)
        approved = seeded.events_of(APPROVAL)[-1]
        assert isinstance(approved, Approval.Approved)
        assert (approved.actor, approved.reason, approved.window_seconds) == ("alice", "ok", None)
        # n: deny report-bot's DELETE; a reason is required
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, ReasonPrompt))
        await pilot.press("enter")
        assert isinstance(app.screen, ReasonPrompt)  # an empty reason is refused in place
        app.screen.query_one("#reason", Input).value = "too broad"
        await pilot.press("enter")
        await until(pilot, lambda: table(app, "#pending").row_count == 1)
        denied = seeded.events_of(sid("agent-2-approval-2"))[-1]
        assert isinstance(denied, Approval.Denied)
        assert (denied.actor, denied.reason) == ("alice", "too broad")
        # w: approve the restart for a window of 30 minutes (the default offered)
        await pilot.press("w")
        await until(pilot, lambda: app.screen.query_one("#window", Input).value == "30m")
        await pilot.press("enter")
        await until(pilot, lambda: table(app, "#pending").row_count == 0)
        window = seeded.events_of(sid("shell-1-approval-3"))[-1]
        assert isinstance(window, Approval.Approved) and window.window_seconds == 1800
        await until(pilot, lambda: table(app, "#decided").row_count == 3)
        assert column(app, "#decided", 4) == ["approved", "denied", "approved"]


async def test_the_console_refuses_the_requester_and_outsiders(seeded: EventStore) -> None:
    for who, message in (
        (Operator(subject="ci-bot", groups=frozenset({"dba"})), "requester cannot decide"),
        (Operator(subject="eve", groups=frozenset({"dev"})), "not in an approver group"),
    ):
        app = make_app(seeded, who)
        notes: list[str] = []
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("a")
            assert column(app, "#pending", 7) == ["no"]
            app.notify = lambda text, _n=notes, **kw: _n.append(text)  # type: ignore[method-assign,assignment,misc]
            app.screen.notify = app.notify  # type: ignore[method-assign]
            for key in ("y", "n", "w"):
                await pilot.press(key)
                await pilot.pause()
                assert isinstance(app.screen, ApprovalsScreen)  # no prompt opened
            assert len(notes) == 3 and all(message in n for n in notes)
            detail = str(app.screen.query_one("#approval-detail").render())
            assert "you may not decide this" in detail and message in detail
    assert [type(e).__name__ for e in seeded.events_of(APPROVAL)] == ["Requested"]


async def test_audit_filters_pages_and_shows_an_event_in_full(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen))
        total = seeded.max_id()
        await until(pilot, lambda: table(app, "#audit").row_count == total)
        assert column(app, "#audit", 0)[0] == str(total)
        await pilot.press("slash")
        app.screen.query_one("#audit-filter", Input).value = "decision:review"
        await pilot.press("enter")
        await until(pilot, lambda: table(app, "#audit").row_count == 2)
        assert set(column(app, "#audit", 2)) == {"CommandDecided", "Requested"}
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventDetailScreen))
        fields = str(app.screen.query_one("#event-fields").render())
        assert "writes-need-review" in fields
        await pilot.press("escape")
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await pilot.press("slash")
        screen.query_one("#audit-filter", Input).value = "bogus:1"
        await pilot.press("enter")
        assert screen.filter.decision == "review"  # a bad filter keeps the last good one
        # paging: 5 events a page
        screen.query_one("#audit-filter", Input).value = ""
        await pilot.press("enter")
        await until(pilot, lambda: table(app, "#audit").row_count == total)


async def test_audit_pages_older_and_newer(seeded: EventStore, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("tui.screens.audit.PAGE", 10)
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("l")
        total = seeded.max_id()
        await until(pilot, lambda: table(app, "#audit").row_count == 10)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: column(app, "#audit", 0)[0] == str(total - 10))
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: column(app, "#audit", 0)[0] == str(total - 20))
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: column(app, "#audit", 0)[0] == str(total - 10))
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: column(app, "#audit", 0)[0] == str(total))


async def test_policy_source_history_and_diff(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PolicyScreen))
        await until(pilot, lambda: table(app, "#policy-history").row_count == 2)
        assert column(app, "#policy-history", 2) == ["dave", "carol"]
        title = app.screen.query_one("#policy-title").render()
        assert "Policy v2" in str(title) and "dave" in str(title)
        text = app.screen.query_one(PolicyText)
        assert "writes-need-review" in text.shown and text.shown.startswith("[[rule]]")
        await pilot.press("enter")  # v2 selected: its diff
        await until(pilot, lambda: text.shown.startswith("--- v1"))
        assert '+name = "writes-need-review"' in text.shown
        await pilot.press("c")
        assert "Current source" in str(app.screen.query_one("#policy-text-title").render())


async def test_help_and_command_palette_reach_every_screen(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        for title, screen in (
            ("Approvals", ApprovalsScreen),
            ("Audit log", AuditScreen),
            ("Policy", PolicyScreen),
            ("Sessions", SessionsScreen),
        ):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*title.replace(" ", ""))
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda s=screen: isinstance(app.screen, s))


OTHER_CONSOLE = textwrap.dedent(
    """
    import sys
    from events.store import StoreSettings
    from tests.tui.fixtures import T0
    from tui.data import ConsoleData
    from tui.rows import Operator
    data = ConsoleData(StoreSettings(url=sys.argv[1]), Operator(subject="bob", groups=frozenset({"dba"})),
                       clock=lambda: T0)
    data.refresh()
    print(data.approve(sys.argv[2], "from the other console").message)
    data.close()
    """
)


async def test_a_decision_in_another_console_process_shows_up_here(seeded: EventStore) -> None:
    app = make_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("a")
        await until(pilot, lambda: table(app, "#pending").row_count == 1)
        out = subprocess.run(
            [sys.executable, "-c", OTHER_CONSOLE, seeded.settings.url, str(APPROVAL)],
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        assert out.stdout.startswith("approved ")
        await until(pilot, lambda: table(app, "#pending").row_count == 0)
        await until(pilot, lambda: column(app, "#decided", 5) == ["bob"])
        assert column(app, "#decided", 6) == ["from the other console"]
