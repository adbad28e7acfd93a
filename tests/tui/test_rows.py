"""Pure parts of the console: durations, spans, audit filters, session matching, layering."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.rows import (
    AuditFilter,
    EventRow,
    SessionRow,
    format_span,
    parse_audit_filter,
    parse_duration,
    parse_time,
)

from .fixtures import T0

TUI = Path(__file__).resolve().parents[2] / "tui"


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "30m", "2h", "1d", "1.5H")] == [
        90,
        90,
        1800,
        7200,
        86400,
        5400,
    ]
    for bad in ("", "0", "-5m", "30 minutes", "m"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


@given(st.integers(min_value=1, max_value=10**7), st.sampled_from(["s", "m", "h", "d"]))
def test_parse_duration_reads_what_it_is_given(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_format_span_is_short_and_never_negative(seconds: float) -> None:
    text = format_span(seconds)
    assert len(text) <= 7 + len(str(int(abs(seconds)) // 86400))
    assert not text.startswith("-")


def test_format_span_examples() -> None:
    assert [format_span(s) for s in (-3, 0, 59, 60, 3599, 3600, 86399, 90061)] == [
        "0s",
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "23h59m",
        "1d01h",
    ]


def test_parse_audit_filter() -> None:
    f = parse_audit_filter("alice target:shop kind:Command decision:deny since:2h", now=T0)
    assert f == AuditFilter(
        identity="alice", target="shop", kind="Command", decision="deny", since=T0 - 7200
    )
    g = parse_audit_filter("since:2026-09-21T10:00 until:2026-09-22", now=T0)
    assert (g.since, g.until) == (parse_time("2026-09-21 10:00"), parse_time("2026-09-22"))
    assert parse_time("2026-09-21") == 1_789_948_800.0
    for bad in ("colour:red", "since:yesterday", "target:"):
        with pytest.raises(ValueError):
            parse_audit_filter(bad, now=T0)


def event(**kw: object) -> EventRow:
    base: dict[str, object] = {
        "notification_id": 1,
        "at": T0,
        "kind": "CommandDecided",
        "aggregate": "Session",
        "originator_id": "x",
        "version": 1,
        "actor": "gateway:n1",
        "subject": "alice",
        "target": "shop",
        "decision": "deny",
        "summary": "",
    }
    base.update(kw)
    return EventRow(**base)  # type: ignore[arg-type]


def test_audit_filter_accepts() -> None:
    row = event()
    assert AuditFilter().accepts(row)
    assert AuditFilter(identity="ALI", target="sho", kind="decided", decision="DENY").accepts(row)
    assert not AuditFilter(decision="den").accepts(row)  # decisions match whole words
    assert not AuditFilter(identity="bob").accepts(row)
    assert AuditFilter(identity="gateway").accepts(row)  # the acting identity counts too
    assert AuditFilter(since=T0, until=T0 + 1).accepts(row)
    assert not AuditFilter(until=T0).accepts(row)


def test_session_matches_every_word() -> None:
    row = SessionRow(
        id="a57945f0-0000",
        subject="ci-bot",
        target="shop",
        protocol="mysql",
        node="n1",
        peer="p",
        started_at=T0,
        last_activity=T0,
        closed_at=None,
        close_reason=None,
        rejected=None,
        commands=0,
        denied=0,
        held=0,
        masked=0,
        pending_approvals=0,
    )
    assert row.matches("") and row.matches("CI shop") and row.matches("a579 live")
    assert not row.matches("ci billing")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_tui_data_touches_events_and_nothing_touches_gateway() -> None:
    for path in TUI.rglob("*.py"):
        roots = {name.split(".")[0] for name in imports_of(path)}
        assert "gateway" not in roots, path
        if "data" not in path.relative_to(TUI).parts:
            assert "events" not in roots, f"{path} imports events: go through tui.data"
