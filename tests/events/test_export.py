"""Exports and reports over a crafted log, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from events.domain import Session, SessionControl
from events.export import (
    SCHEMAS,
    ExportError,
    ExportFilter,
    RowAssembler,
    RowWriter,
    event_row,
    export,
    iso,
    parse_time,
    row_dict,
    traced_pages,
)
from events.export.stream import _split_stored
from events.report import build_report, find_sessions, session_detail
from events.store import EventStore, StoreSettings, new_cipher_key

from .crafted_log import A1, A2, A3, S1, S2, S3, S4, T0, TRICKY, crafted_batches
from .factories import session_events
from .test_tampering import raw_db

DAY = 86400.0


@pytest.fixture
def crafted(store: EventStore) -> EventStore:
    for batch in crafted_batches():
        store.append(batch)
    return store


def rows_of(
    store: EventStore, kind: str, f: ExportFilter | None = None, **kw: Any
) -> list[dict[str, Any]]:
    out = io.StringIO()
    export(store, kind, out, filt=f, **kw)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows}


# --------------------------------------------------------------------------- each kind


def test_events_export_is_every_stored_event_with_its_chain_hash(crafted: EventStore) -> None:
    rows = rows_of(crafted, "events")
    assert [r["notification_id"] for r in rows] == list(range(1, crafted.max_id() + 1))
    assert all(tuple(r) == SCHEMAS["events"] for r in rows)
    chain = {e.notification_id: e.hash.hex() for e in crafted.recorder.chain_entries()}
    assert all(r["chain_hash"] == chain[r["notification_id"]] for r in rows)
    report = crafted.verify()
    assert report.ok and rows[-1]["chain_hash"] == report.head
    first = rows[1]
    assert first["type"] == "Session.ConnectionAccepted"
    assert first["originator_id"] == str(S1) and first["originator_version"] == 1
    assert first["at"] == "2026-01-01T00:00:00.000000Z"
    assert first["data"]["target"] == "shop" and "originator_id" not in first["data"]


def test_sessions_export(crafted: EventStore) -> None:
    rows = rows_of(crafted, "sessions")
    assert [r["session_id"] for r in rows] == [str(S1), str(S2), str(S3), str(S4)]
    assert all(tuple(r) == SCHEMAS["sessions"] for r in rows)
    s1, s2, s3, s4 = rows
    assert (s1["subject"], s1["groups"], s1["close_reason"], s1["duration_s"]) == (
        "alice",
        ["dev"],
        "client_quit",
        100.0,
    )
    assert (s1["commands"], s1["allowed"], s1["denied"], s1["reviewed"]) == (3, 1, 1, 1)
    assert s1["masked"] == {"email": 2} and s1["masked_total"] == 2
    assert s2["masked"] == {"ip": 3} and s2["close_reason"] == "killed"
    assert (s2["termination_requested_by"], s2["termination_reason"]) == ("carol", "incident 7")
    assert s3["authenticated"] is False and s3["rejected_reason"] == "expired"
    assert s3["subject"] is None and s3["close_reason"] == "auth_failed"
    # S4 is still open: flushed at the end, marked incomplete, traced to its last event.
    assert s4["complete"] is False and s4["ended_at"] is None
    assert [r["complete"] for r in rows[:3]] == [True, True, True]
    events = by(rows_of(crafted, "events"), "notification_id")
    for r in rows:
        assert r["notification_id"] == r["source_ids"][-1]
        assert r["chain_hash"] == events[r["notification_id"]]["chain_hash"]
        assert all(
            events[i]["originator_id"] in (r["session_id"],)
            or events[i]["type"] == "SessionControl.TerminationRequested"
            for i in r["source_ids"]
        )


def test_commands_export(crafted: EventStore) -> None:
    rows = rows_of(crafted, "commands")
    assert len(rows) == 3 + 2 + len(TRICKY) + 1
    keyed = {(r["session_id"], r["seq"]): r for r in rows}
    select = keyed[(str(S1), 1)]
    assert (select["decision"], select["ok"], select["rows"], select["masked"]) == (
        "allow",
        True,
        2,
        {"email": 2},
    )
    drop = keyed[(str(S1), 2)]
    assert (drop["decision"], drop["forwarded"], drop["ok"], drop["error_code"]) == (
        "deny",
        False,
        False,
        1142,
    )
    held = keyed[(str(S1), 3)]
    assert held["approval_id"] == str(A1) and held["approval_status"] == "approved"
    assert held["approvers"] == ["bob"] and held["approval_decided_by"] == "bob"
    assert held["forwarded_at"] == iso(T0 + 40.1) and held["affected_rows"] == 1
    refused = keyed[(str(S2), 1)]
    assert refused["approval_status"] == "denied" and refused["approval_decided_by"] == "carol"
    assert refused["forwarded"] is False and refused["ok"] is None
    assert refused["complete"] is True  # its session closed: nothing more can happen to it
    pending = keyed[(str(S4), len(TRICKY) + 1)]
    assert pending["complete"] is False and pending["approval_status"] == "pending"
    assert [keyed[(str(S4), i + 1)]["text"] for i in range(len(TRICKY))] == TRICKY
    events = by(rows_of(crafted, "events"), "notification_id")
    for r in rows:
        assert r["chain_hash"] == events[r["notification_id"]]["chain_hash"]
        assert {events[i]["originator_id"] for i in r["source_ids"]} == {r["session_id"]}


def test_approvals_export(crafted: EventStore) -> None:
    rows = by(rows_of(crafted, "approvals"), "approval_id")
    a1, a2, a3 = rows[str(A1)], rows[str(A2)], rows[str(A3)]
    assert (a1["status"], a1["decided_by"], a1["wait_s"], a1["reason"]) == (
        "approved",
        "bob",
        30.0,
        "ok, ticket 42",
    )
    assert (a2["status"], a2["decided_by"], a2["wait_s"]) == ("denied", "carol", 60.0)
    assert (a3["status"], a3["approvers"], a3["complete"], a3["decided_at"]) == (
        "pending",
        ["bob"],
        False,
        None,
    )
    assert a3["quorum"] == 2 and a1["session_id"] == str(S1) and a1["command_seq"] == 3


def test_policy_export(crafted: EventStore) -> None:
    rows = rows_of(crafted, "policy")
    assert [(r["version"], r["author"], r["digest"]) for r in rows] == [
        (1, "admin", "d1"),
        (2, "admin", "d2"),
    ]
    assert rows[1]["diff"] == {"changed": ["r1"]} and rows[1]["document"] == {"v": 2}


# ----------------------------------------------------------------------------- filters

WINDOW_DAY1 = {"since": T0, "until": T0 + DAY}


@pytest.mark.parametrize(
    ("kind", "filt", "key", "expected"),
    [
        ("sessions", {}, "session_id", {S1, S2, S3, S4}),
        ("sessions", WINDOW_DAY1, "session_id", {S1, S2, S3}),
        ("sessions", {"since": T0 + 3650, "until": T0 + 3651}, "session_id", {S2}),
        ("sessions", {"since": T0 + DAY}, "session_id", {S4}),
        ("sessions", {"identity": "alice"}, "session_id", {S1, S4}),
        ("sessions", {"group": "oncall"}, "session_id", {S2}),
        ("sessions", {"target": "shop"}, "session_id", {S1, S3}),
        ("sessions", {"decision": "deny"}, "session_id", {S1}),
        ("sessions", {"decision": "review", "target": "billing"}, "session_id", {S2, S4}),
        ("approvals", {}, "approval_id", {A1, A2, A3}),
        ("approvals", {"identity": "carol"}, "approval_id", {A2}),
        ("approvals", {"identity": "bob"}, "approval_id", {A1, A2, A3}),
        ("approvals", {"group": "dev"}, "approval_id", {A1, A3}),
        ("approvals", {"target": "billing"}, "approval_id", {A2, A3}),
        ("approvals", {"decision": "allow"}, "approval_id", {A1}),
        ("approvals", {"decision": "deny"}, "approval_id", {A2}),
        ("approvals", WINDOW_DAY1, "approval_id", {A1, A2}),
    ],
)
def test_filters_select_rows(
    crafted: EventStore, kind: str, filt: dict[str, Any], key: str, expected: set[uuid.UUID]
) -> None:
    rows = rows_of(crafted, kind, ExportFilter(**filt))
    assert {r[key] for r in rows} == {str(x) for x in expected}


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        ({}, 14),
        ({"identity": "bob"}, 2),
        ({"group": "dev"}, 12),
        ({"target": "shop"}, 3),
        ({"decision": "deny"}, 1),
        ({"decision": "review"}, 3),
        ({"since": T0 + 5, "until": T0 + 3670}, 2),
        ({"since": T0 + DAY + 3}, len(TRICKY) - 2 + 1),
    ],
)
def test_command_filters(crafted: EventStore, filt: dict[str, Any], expected: int) -> None:
    rows = rows_of(crafted, "commands", ExportFilter(**filt))
    assert len(rows) == expected
    for r in rows:
        assert filt.get("identity", r["subject"]) == r["subject"]
        assert filt.get("decision", r["decision"]) == r["decision"]


def test_events_filters_follow_the_aggregate(crafted: EventStore) -> None:
    alice = rows_of(crafted, "events", ExportFilter(identity="alice"))
    sessions = {r["originator_id"] for r in alice if r["type"].startswith("Session.")}
    assert sessions == {str(S1), str(S4)}
    # The ConnectionAccepted came before alice was known: held back, then written.
    assert sum(r["type"] == "Session.ConnectionAccepted" for r in alice) == 2
    assert {r["originator_id"] for r in alice if r["type"].startswith("Approval.")} == {
        str(A1),
        str(A3),
    }
    assert not any(r["type"] == "Policy.Applied" for r in alice)
    carol = rows_of(crafted, "events", ExportFilter(identity="carol"))
    assert [r["type"] for r in carol] == ["Approval.Denied", "SessionControl.TerminationRequested"]
    admin = rows_of(crafted, "events", ExportFilter(identity="admin"))
    assert [r["type"] for r in admin] == ["Policy.Applied", "Policy.Applied"]
    shop = rows_of(crafted, "events", ExportFilter(target="shop"))
    assert {r["originator_id"] for r in shop} == {str(S1), str(S3), str(A1)}
    denies = rows_of(crafted, "events", ExportFilter(decision="deny"))
    assert [(r["type"], r["data"]["action"]) for r in denies] == [
        ("Session.CommandDecided", "deny")
    ]
    day2 = rows_of(crafted, "events", ExportFilter(since=T0 + DAY))
    assert day2 and all(r["at"] >= iso(T0 + DAY) for r in day2)
    assert {r["originator_id"] for r in day2} == {str(S4), str(A3)}
    oncall = rows_of(crafted, "events", ExportFilter(group="oncall"))
    control = SessionControl.id_for(S2)  # the operator's request about S2 goes with S2
    assert {r["originator_id"] for r in oncall} == {str(S2), str(A2), str(control)}


@pytest.mark.parametrize(
    ("kind", "filt", "message"),
    [
        ("policy", {"target": "shop"}, "--target does not apply"),
        ("commands", {"decision": "maybe"}, "--decision must be one of"),
        ("sessions", {"since": T0 + 10, "until": T0}, "--from must be before --to"),
        ("nonsense", {}, "unknown export kind"),
    ],
)
def test_bad_filters_are_refused(
    crafted: EventStore, kind: str, filt: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExportError, match=message):
        export(crafted, kind, io.StringIO(), filt=ExportFilter(**filt))


# ---------------------------------------------------------------------------------- CSV


def test_csv_round_trip_of_tricky_sql(crafted: EventStore) -> None:
    out = io.StringIO(newline="")
    export(
        crafted, "commands", out, fmt="csv", filt=ExportFilter(target="billing", identity="alice")
    )
    text = out.getvalue()
    assert text.startswith(",".join(SCHEMAS["commands"]) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == SCHEMAS["commands"]
    texts = [r["text"] for r in rows[: len(TRICKY)]]
    for original, cell in zip(TRICKY, texts, strict=True):
        if original[0] in "=+-@\t'":
            assert cell == "'" + original  # a spreadsheet shows it as text, never runs it
        else:
            assert cell == original
    assert "\r\n" in texts[0] and "\n" in texts[3]  # newlines inside SQL survive
    first = rows[0]
    assert json.loads(first["masked"]) == {} and json.loads(first["groups"]) == ["dev"]
    assert first["ok"] == "true" and first["rows"] == "1" and first["error_code"] == ""
    assert first["session_id"] == str(S4)


# ----------------------------------------------------------------- the events fast path


def decoded_reference(store: EventStore, fmt: str, f: ExportFilter) -> str:
    """The events export built the general way: decoded events, one ``event_row`` each."""
    out = io.StringIO(newline="")
    writer = RowWriter(out, fmt, SCHEMAS["events"])
    for page in traced_pages(store, page=5):
        writer.write([event_row(n, e, h) for n, e, h in page if f.in_window(e.at)])
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("window", [{}, {"since": T0 + 3600, "until": T0 + DAY + 3}])
def test_the_fast_events_path_writes_what_decoded_events_give(
    crafted: EventStore, fmt: str, window: dict[str, float]
) -> None:
    f = ExportFilter(**window)
    out = io.StringIO(newline="")
    summary = export(crafted, "events", out, fmt=fmt, filt=f, page=7)
    assert out.getvalue() == decoded_reference(crafted, fmt, f)
    assert summary.events_read == crafted.max_id()
    in_window = [e for page in traced_pages(crafted) for _, e, _ in page if f.in_window(e.at)]
    assert summary.rows == len(in_window) and 0 < len(in_window) <= crafted.max_id()


def test_the_fast_events_path_reads_encrypted_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'enc.db'}"
    store = EventStore(StoreSettings(url=url, cipher_key=new_cipher_key()))
    try:
        for batch in crafted_batches():
            store.append(batch)
        out = io.StringIO(newline="")
        export(store, "events", out)
        assert out.getvalue() == decoded_reference(store, "jsonl", ExportFilter())
    finally:
        store.close()


def test_split_stored_handles_any_field_order_and_escapes() -> None:
    assert _split_stored('{"at":1.5,"actor":"a\\"b,\\"actor\\":\\"","seq":1}') == (
        1.5,
        '"a\\"b,\\"actor\\":\\""',
        'a"b,"actor":"',
        '{"seq":1}',
    )
    assert _split_stored('{"at":2,"actor":"x"}') == (2.0, '"x"', "x", "{}")
    assert _split_stored('{"actor":"é","at":3.0,"a":[1]}') == (3.0, '"é"', "é", '{"a":[1]}')


# ------------------------------------------------------------------- streaming & tracing


@pytest.mark.parametrize("kind", ["events", "sessions", "commands", "approvals", "policy"])
def test_page_size_does_not_change_the_export(crafted: EventStore, kind: str) -> None:
    assert rows_of(crafted, kind, page=3) == rows_of(crafted, kind)


@pytest.mark.parametrize("kind", ["approvals", "policy"])
def test_single_aggregate_exports_skip_other_events_and_miss_nothing(
    crafted: EventStore, kind: str
) -> None:
    rows: list[Any] = []
    assembler = RowAssembler(
        on_approval=rows.append if kind == "approvals" else None,
        on_policy=rows.append if kind == "policy" else None,
    )
    for page in traced_pages(crafted):
        for nid, event, digest in page:
            assembler.feed(nid, event, digest)
    assembler.flush()
    assert rows and rows_of(crafted, kind, page=4) == [row_dict(r) for r in rows]


def test_export_stops_at_the_head_it_started_with(crafted: EventStore) -> None:
    head = crafted.max_id()
    seen: list[int] = []

    def meanwhile(done: int, total: int) -> None:
        seen.append(total)
        if len(seen) == 1:
            crafted.append(session_events(3))

    rows = rows_of(crafted, "events", page=10, progress=meanwhile)
    assert len(rows) == head and set(seen) == {head}
    assert crafted.max_id() > head


def test_open_state_is_only_what_is_open(store: EventStore) -> None:
    for _ in range(20):
        events = session_events(3)
        closed = Session.Closed(
            originator_id=events[0].originator_id,
            originator_version=len(events) + 1,
            at=events[-1].at,
            actor="gateway:n1",
            reason="client_quit",
        )
        store.append([*events, closed])
    emitted: list[Any] = []
    assembler = RowAssembler(on_session=emitted.append, on_command=emitted.append)
    peak = 0
    for page in traced_pages(store, page=7):
        for nid, event, digest in page:
            assembler.feed(nid, event, digest)
            peak = max(peak, len(assembler.sessions))
    assert peak == 1 and assembler.sessions == {} and len(emitted) == 20 * 4


def test_an_event_without_chain_entry_is_exported_without_hash(crafted: EventStore) -> None:
    with raw_db(crafted) as (conn, _, chain, _):
        conn.execute(f"DELETE FROM {chain} WHERE notification_id = 5")
    hashes = {nid: digest for page in traced_pages(crafted, page=4) for nid, _, digest in page}
    assert hashes[5] is None
    assert all(digest is not None for nid, digest in hashes.items() if nid != 5)
    rows = by(rows_of(crafted, "events"), "notification_id")
    assert rows[5]["chain_hash"] is None and rows[6]["chain_hash"] is not None
    problem = crafted.verify().problem
    assert problem is not None and (problem.kind, problem.notification_id) == ("inserted", 5)


# ------------------------------------------------------------------------------- report


def test_report_numbers_on_the_crafted_log(crafted: EventStore) -> None:
    report = build_report(crafted, since=T0, until=T0 + DAY)
    ident = {line.key: line for line in report.by_identity}
    assert set(ident) == {"alice", "bob", "(unauthenticated)"}
    alice, bob = ident["alice"], ident["bob"]
    assert (alice.sessions, alice.commands, alice.allowed, alice.denied, alice.reviewed) == (
        1,
        3,
        1,
        1,
        1,
    )
    assert (alice.approvals, alice.approved, alice.refused, alice.median_approve_s) == (
        1,
        1,
        0,
        30.0,
    )
    assert (alice.masked, alice.masked_by_kind) == (2, {"email": 2})
    assert (bob.sessions, bob.commands, bob.approvals, bob.refused, bob.masked) == (1, 2, 1, 1, 3)
    assert bob.median_approve_s is None
    target = {line.key: line for line in report.by_target}
    assert (target["shop"].sessions, target["shop"].commands) == (2, 3)
    assert (target["billing"].sessions, target["billing"].denied) == (1, 0)
    assert (report.total.sessions, report.total.commands, report.total.masked) == (3, 5, 5)
    everything = build_report(crafted)
    all_alice = {line.key: line for line in everything.by_identity}["alice"]
    assert (all_alice.sessions, all_alice.commands, all_alice.approvals) == (2, 12, 2)
    assert all_alice.approved == 1 and all_alice.median_approve_s == 30.0


# ------------------------------------------------------------------------ one session


def test_find_and_show_a_session_by_prefix(crafted: EventStore) -> None:
    assert find_sessions(crafted, str(S2)[:6]) == [str(S2)]
    assert find_sessions(crafted, str(S2).replace("-", "")[:13]) == [str(S2)]
    assert find_sessions(crafted, str(S2)[:13].upper()) == [str(S2)]
    assert find_sessions(crafted, str(A1)) == []  # an approval is not a session
    with pytest.raises(ExportError, match="not a session id"):
        find_sessions(crafted, "zz'; drop")
    detail = session_detail(crafted, str(S1))
    assert detail is not None
    assert detail.session.close_reason == "client_quit" and detail.events == 14
    assert [c.decision for c in detail.commands] == ["allow", "deny", "review"]
    assert detail.commands[2].approvers == ["bob"]
    assert [a.approval_id for a in detail.approvals] == [str(A1)]
    assert detail.session.chain_hash is not None
    s2 = session_detail(crafted, str(S2))
    assert s2 is not None and s2.session.termination_requested_by == "carol"
    assert s2.commands[0].approval_status == "denied"
    assert session_detail(crafted, str(uuid.uuid4())) is None


# ----------------------------------------------------------------------------- parsing


def test_parse_time() -> None:
    now = T0 + 1000
    assert parse_time("7d", now=now) == now - 7 * DAY
    assert parse_time("12h", now=now) == now - 12 * 3600
    assert parse_time("30m", now=now) == now - 1800
    assert parse_time("2026-01-01", now=now) == T0
    assert parse_time("2026-01-01T00:10:00", now=now) == T0 + 600
    assert parse_time("2026-01-01T00:10:00Z", now=now) == T0 + 600
    assert parse_time("2026-01-01T01:10:00+01:00", now=now) == T0 + 600
    for bad in ("yesterday", "7x", "-3d", "2026-13-01", ""):
        with pytest.raises(ExportError, match="not a time"):
            parse_time(bad, now=now)
