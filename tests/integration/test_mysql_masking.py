"""Masking end to end on MySQL: the synthetic demo data seen through PyMySQL and the
``mysql`` client (text protocol) and mysql-connector prepared statements (binary protocol)
is masked, and none of the original values reaches the event store."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pytest

from events.domain import Session
from gateway.demo import self_signed_certificate
from gateway.masking import DEFAULT_PROFILE, ColumnInfo, MaskingProfile
from gateway.mysql.result_masking import RowMaskerPool

from .harness import RunningGateway, mariadb, running_gateway

DB = "wg_masking"
SEED = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "seed.sql"
QUERIES = (
    "SELECT id, name, email, phone, ssn, card_number, notes FROM customers ORDER BY id",
    "SELECT id, card_number, iban, amount FROM payments ORDER BY id",
)

POLICY = """
version = 1

[policy]
name = "masking"
default = "deny"
unknown = "deny"

[[rule]]
name = "reads"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SHOW", "SESSION"]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("masking")
    cert, key = self_signed_certificate(tmp)
    extra = f'tls_cert = "{cert}"\ntls_key = "{key}"\nrecord_rows = 100'
    with running_gateway(tmp, policy=POLICY, database=DB, extra=extra) as g:
        subprocess.run(
            ["/usr/bin/mysql", "-h", "127.0.0.1", "-u", "root", DB],
            stdin=SEED.open(),
            check=True,
            timeout=60,
        )
        yield g


@pytest.fixture(scope="module")
def originals(gw: RunningGateway) -> dict[str, list[str]]:
    """The sensitive values as stored, read directly from MariaDB (not through wardgate)."""
    found: dict[str, list[str]] = {}
    with mariadb(DB) as conn, conn.cursor() as cur:
        for column in ("email", "phone", "ssn", "card_number"):
            cur.execute(f"SELECT {column} FROM customers ORDER BY id")
            found[column] = [r[0] for r in cur.fetchall() if r[0]]
        cur.execute("SELECT card_number, iban FROM payments")
        rows = cur.fetchall()
        found["card_number"] += [r[0] for r in rows if r[0]]
        found["iban"] = [r[1] for r in rows if r[1]]
    assert all(len(v) >= 20 for v in found.values())
    return found


def assert_masked(text: str, originals: dict[str, list[str]]) -> None:
    for column, values in originals.items():
        leaked = [v for v in values if v in text]
        assert not leaked, f"{column}: {leaked[:3]} reached the client"


def test_pymysql_sees_masked_values(gw: RunningGateway, originals: dict[str, list[str]]) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute(QUERIES[0])
        customers = cur.fetchall()
        cur.execute(QUERIES[1])
        payments = cur.fetchall()
    assert len(customers) == len(originals["email"])
    assert_masked(repr(customers) + repr(payments), originals)
    names = {r[1] for r in customers}
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM customers")
        assert names == {r[0] for r in cur.fetchall()}  # what is not sensitive is intact
    # partial masking keeps the last digits of a card, so a support agent can still talk
    # about "the card ending in 1731"
    cards = originals["card_number"][: len(customers)]
    assert [str(r[5])[-4:] for r in customers] == [c[-4:] for c in cards]


def test_mysql_cli_sees_masked_values(gw: RunningGateway, originals: dict[str, list[str]]) -> None:
    out = subprocess.run(
        [
            "/usr/bin/mysql",
            "-h",
            "127.0.0.1",
            "-P",
            str(gw.ports["shop"]),
            "-u",
            "agent",
            "--default-auth=mysql_clear_password",
            f"-p{gw.token()}",
            "--batch",
            "--skip-ssl",
            DB,
            "-e",
            "; ".join(QUERIES),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert len(out.splitlines()) > 2 * len(originals["email"])
    assert_masked(out, originals)


def test_connector_prepared_statements_see_masked_values(
    gw: RunningGateway, originals: dict[str, list[str]]
) -> None:
    conn = mysql.connector.connect(
        host="127.0.0.1",
        port=gw.ports["shop"],
        user="agent",
        password=gw.token(),
        database=DB,
        use_pure=True,
        auth_plugin="mysql_clear_password",
        ssl_verify_cert=False,
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(QUERIES[0].replace("ORDER BY", "WHERE id > ? ORDER BY"), (0,))
        customers = cur.fetchall()
        cur.execute(QUERIES[1].replace("ORDER BY", "WHERE amount > ? ORDER BY"), (0,))
        payments = cur.fetchall()
        cur.close()
    finally:
        conn.close()
    assert len(customers) == len(originals["email"])
    values = [
        v.decode() if isinstance(v, bytes | bytearray) else str(v)
        for row in [*customers, *payments]
        for v in row
    ]
    assert_masked("\n".join(values), originals)
    assert "************1731" in values  # the binary rows were rewritten, not dropped


def test_the_event_store_holds_no_original_value(
    gw: RunningGateway, originals: dict[str, list[str]]
) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        for query in QUERIES:
            cur.execute(query)
            cur.fetchall()
    totals: dict[str, int] = {}
    deadline = time.monotonic() + 5  # response events ride on a later transaction
    while time.monotonic() < deadline and not totals.get("iban"):
        time.sleep(0.2)
        store = gw.store()
        try:
            states = [store.compressor.decompress(raw.state) for raw in store.recorder.raw_events()]
            totals = {}
            for _, e in store.iter_events():
                if isinstance(e, Session.ResponseRecorded):
                    for kind, n in e.masked.items():
                        totals[kind] = totals.get(kind, 0) + n
        finally:
            store.close()
    for kind in ("email", "phone", "ssn", "card", "iban"):
        assert totals.get(kind, 0) > 0, (kind, totals)  # the counts say what was masked
    assert len(states) > 10
    everything = b"\n".join(states)
    for column, values in originals.items():
        leaked = [v for v in values if v.encode() in everything]
        assert not leaked, f"{column}: {leaked[:3]} is in the event store"
    files = b"".join(p.read_bytes() for p in gw.data_dir.glob("events.db*"))
    assert not [v for vs in originals.values() for v in vs if v.encode() in files]


# -- the row masker pool (pure) ---------------------------------------------------------


def test_pooled_row_maskers_count_per_result_and_never_cross_profiles() -> None:
    pool = RowMaskerPool(shapes=2, per_shape=1)
    columns = (
        ColumnInfo(schema="s", table="t", org_table="t", name="e", org_name="e", is_text=True),
    )
    first = pool.take(DEFAULT_PROFILE, columns)
    assert first.mask_row([b"mail ada@example.com"]) is not None
    concurrent = pool.take(DEFAULT_PROFILE, columns)
    assert concurrent is not first  # a result in progress keeps its own masker
    pool.give_back(DEFAULT_PROFILE, columns, first)
    pool.give_back(DEFAULT_PROFILE, columns, concurrent)  # over per_shape: dropped
    again = pool.take(DEFAULT_PROFILE, columns)
    assert again is first and not again.counts  # counts start from zero for each result
    assert pool.take(DEFAULT_PROFILE, columns) is not first
    other = MaskingProfile(name="emails-only", detectors=frozenset({"email"}))
    assert pool.take(other, columns) is not first
    pool.give_back(DEFAULT_PROFILE, columns, first)
    assert pool.take(other, columns) is not first  # another profile never gets it


# -- recording: results as the client saw them ------------------------------------------


def _recorded_results(
    gw: RunningGateway, columns: list[str], count: int
) -> list[Session.ResponseRecorded]:
    """The ResponseRecorded events whose transcript has these columns (waits for ``count``:
    response events ride on a later transaction)."""
    found: list[Session.ResponseRecorded] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(found) < count:
        time.sleep(0.2)
        store = gw.store()
        try:
            found = [
                e
                for _, e in store.iter_events()
                if isinstance(e, Session.ResponseRecorded)
                and isinstance(e.transcript, dict)
                and e.transcript.get("columns") == columns
            ]
        finally:
            store.close()
    return found


def test_results_are_recorded_masked_as_the_client_saw_them(
    gw: RunningGateway, originals: dict[str, list[str]]
) -> None:
    query = "SELECT id, email, card_number, 'wg-marker' AS marker FROM customers ORDER BY id"
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute(query)
        seen = [list(r) for r in cur.fetchall()]
    conn = mysql.connector.connect(
        host="127.0.0.1",
        port=gw.ports["shop"],
        user="agent",
        password=gw.token(),
        database=DB,
        use_pure=True,
        auth_plugin="mysql_clear_password",
        ssl_verify_cert=False,
    )
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(query.replace("ORDER BY", "WHERE id > ? ORDER BY"), (0,))
        binary = cur.fetchall()
        cur.close()
    finally:
        conn.close()
    recorded = _recorded_results(gw, ["id", "email", "card_number", "marker"], 2)
    assert len(recorded) == 2, recorded
    text, prepared = recorded
    # the text protocol: exactly the cells the client got (ids stay text on this protocol)
    assert [[int(r[0]), *r[1:]] for r in text.transcript["rows"]] == seen  # type: ignore[index]
    # the binary protocol: numbers stay numbers, the masked strings are the same
    rows = prepared.transcript["rows"]  # type: ignore[index]
    assert [r[0] for r in rows] == [r[0] for r in binary]
    assert [r[1:] for r in rows] == [
        [str(v) if v is not None else None for v in r[1:]] for r in binary
    ]
    for event in recorded:
        assert event.transcript["limit"] == 100 and not event.truncated  # type: ignore[index]
        assert_masked(repr(event.transcript), originals)
        assert event.transcript["rows"][0][3] == "wg-marker"  # type: ignore[index]


def test_recorded_rows_are_capped_and_the_cap_is_recorded(gw: RunningGateway) -> None:
    query = "SELECT seq AS wg_cap FROM seq_1_to_250"  # MariaDB's sequence engine
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute(query)
        assert len(cur.fetchall()) == 250  # the client gets everything
    (event,) = _recorded_results(gw, ["wg_cap"], 1)
    transcript = event.transcript
    assert isinstance(transcript, dict)
    assert event.truncated and event.rows == 250
    assert transcript["limit"] == 100 and transcript["rows_total"] == 250
    assert transcript["rows"] == [[str(i)] for i in range(1, 101)]
