"""Real clients through the gateway to the real MariaDB: PyMySQL, the ``mysql`` command-line
client, mysql-connector-python (pure, over the gateway's TLS) and SQLAlchemy over PyMySQL."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pymysql
import pytest
import sqlalchemy
from pymysql.constants import CLIENT

from events.domain import Session
from gateway.demo import self_signed_certificate

from .harness import RunningGateway, mariadb, running_gateway

DB = "wg_clients"
MYSQL_CLI = "/usr/bin/mysql"

CLIENT_POLICY = """
version = 1

[policy]
name = "clients"
default = "deny"
unknown = "deny"
masking_profile = "none"  # masking is tested in test_mysql_masking.py

[[rule]]
name = "no-drop"
action = "deny"
protocol = "mysql"
statements = ["DDL:DROP", "DDL:TRUNCATE"]

[[rule]]
name = "no-files"
action = "deny"
protocol = "mysql"
statements = ["ADMIN", "GRANT"]

[[rule]]
name = "work"
action = "allow"
protocol = "mysql"
statements = [
    "SELECT", "SHOW", "TRANSACTION", "SESSION", "INSERT", "UPDATE", "DELETE", "DDL", "LOAD_OUTFILE"
]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("clients")
    cert, key = self_signed_certificate(tmp)
    extra = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    with running_gateway(tmp, policy=CLIENT_POLICY, database=DB, extra=extra) as g:
        with mariadb(DB) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS items")
            cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50)) ENGINE=InnoDB")
            cur.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')")
            cur.execute("DROP TABLE IF EXISTS contacts")
            cur.execute("CREATE TABLE contacts (id INT PRIMARY KEY, email VARCHAR(80))")
            cur.execute("INSERT INTO contacts VALUES (1, 'ada.lovelace@example.com')")
        yield g


def events(gw: RunningGateway) -> list[object]:
    store = gw.store()
    try:
        return [e for _, e in store.iter_events()]
    finally:
        store.close()


def connector(gw: RunningGateway, **kw: object):  # type: ignore[no-untyped-def]
    """mysql-connector-python, pure Python, over the gateway's TLS (it refuses cleartext
    passwords otherwise)."""
    return mysql.connector.connect(
        host="127.0.0.1",
        port=gw.ports["shop"],
        user="agent",
        password=gw.token(),
        database=DB,
        use_pure=True,
        auth_plugin="mysql_clear_password",
        ssl_verify_cert=False,
        **kw,
    )


def mysql_cli(
    gw: RunningGateway, sql: str, *, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            MYSQL_CLI,
            "-h",
            "127.0.0.1",
            "-P",
            str(gw.ports["shop"]),
            "-u",
            "agent",
            "--default-auth=mysql_clear_password",
            f"-p{token or gw.token()}",
            "--batch",
            "--skip-ssl",
            DB,
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- PyMySQL -------------------------------------------------------------------------------


def test_pymysql_query_error_and_the_session_goes_on(gw: RunningGateway) -> None:
    with gw.connect(database=DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM items WHERE id > %s ORDER BY id", (1,))
        assert cur.fetchall() == ((2, "two"), (3, "three"))
        with pytest.raises(pymysql.err.ProgrammingError) as err:
            cur.execute("SELECT id FROM items WHERE")
        assert err.value.args[0] == 1064  # the server's own ERR, relayed
        with pytest.raises(pymysql.err.ProgrammingError) as err:
            cur.execute("SELECT * FROM no_such_table")
        assert err.value.args[0] == 1146
        cur.execute("SELECT COUNT(*) FROM items")
        assert cur.fetchone() == (3,)
    responses = [e for e in events(gw) if isinstance(e, Session.ResponseRecorded)]
    assert any(r.error_code == 1064 and not r.ok for r in responses)


def test_pymysql_transactions_really_roll_back(gw: RunningGateway) -> None:
    with gw.connect(database=DB, autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO items VALUES (100, 'temporary')")
        cur.execute("SELECT COUNT(*) FROM items WHERE id = 100")
        assert cur.fetchone() == (1,)
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM items WHERE id = 100")
        assert cur.fetchone() == (0,)
        cur.execute("START TRANSACTION")
        cur.execute("UPDATE items SET name = 'uno' WHERE id = 1")
        conn.commit()
    with mariadb(DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT name FROM items WHERE id = 1")
        assert cur.fetchone() == ("uno",)
        cur.execute("SELECT COUNT(*) FROM items WHERE id = 100")
        assert cur.fetchone() == (0,)
        cur.execute("UPDATE items SET name = 'one' WHERE id = 1")


def test_multi_statements_each_inspected(gw: RunningGateway) -> None:
    with (
        gw.connect(database=DB, client_flag=CLIENT.MULTI_STATEMENTS) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT 1; SELECT name FROM items WHERE id = 2")
        assert cur.fetchall() == ((1,),)
        assert cur.nextset()
        assert cur.fetchall() == (("two",),)
        assert not cur.nextset()
        with pytest.raises(pymysql.err.OperationalError) as err:
            cur.execute("SELECT 1; DROP TABLE items; SELECT 2")
        assert err.value.args[0] == 1227
        assert "no-drop" in err.value.args[1]
        cur.execute("SELECT COUNT(*) FROM items")  # nothing of the denied text ran
        assert cur.fetchone() == (3,)
    decided = [e for e in events(gw) if isinstance(e, Session.CommandDecided)]
    denial = [d for d in decided if d.rule == "no-drop"]
    assert denial and denial[-1].action == "deny"


def test_load_data_local_is_refused_clearly(gw: RunningGateway, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("200,loaded\n")
    with gw.connect(database=DB, local_infile=True) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as err:
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE items FIELDS TERMINATED BY ','"
            )
        assert err.value.args[0] == 1148
        assert "wardgate: LOAD DATA LOCAL is refused" in err.value.args[1]
        cur.execute("SELECT COUNT(*) FROM items WHERE id = 200")
        assert cur.fetchone() == (0,)


# -- the mysql command-line client -----------------------------------------------------


def test_mysql_cli_query_and_error(gw: RunningGateway) -> None:
    ok = mysql_cli(gw, "SELECT id, name FROM items ORDER BY id")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["id\tname", "1\tone", "2\ttwo", "3\tthree"]
    bad = mysql_cli(gw, "SELECT 1; SELECT FROM WHERE; SELECT 2")
    assert bad.returncode == 1
    assert "ERROR 1064" in bad.stderr
    denied = mysql_cli(gw, "DROP TABLE items")
    assert denied.returncode == 1 and "no-drop" in denied.stderr
    refused = mysql_cli(gw, "SELECT 1", token="not-a-token")
    assert refused.returncode == 1 and "token rejected" in refused.stderr


# -- mysql-connector-python ---------------------------------------------------------------


def test_connector_over_tls_queries_and_errors(gw: RunningGateway) -> None:
    conn = connector(gw)
    try:
        cur = conn.cursor()
        cur.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        cur.fetchall()
        cur.execute("SELECT name FROM items WHERE id = %s", (3,))
        assert cur.fetchall() == [("three",)]
        with pytest.raises(mysql.connector.errors.ProgrammingError) as err:
            cur.execute("SELECT 1 FROM WHERE")
        assert err.value.errno == 1064
        cur.execute("SELECT 2")
        assert cur.fetchall() == [(2,)]
    finally:
        conn.close()


def test_connector_prepared_statements_record_parameters(gw: RunningGateway) -> None:
    conn = connector(gw)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT id, name FROM items WHERE id = ? AND name <> ?", (2, "marker-7781"))
        assert cur.fetchall() == [(2, "two")]
        cur.execute("SELECT id, name FROM items WHERE id = ? AND name <> ?", (3, "marker-7782"))
        assert cur.fetchall() == [(3, "three")]
        cur.close()
    finally:
        conn.close()
    received = [e for e in events(gw) if isinstance(e, Session.CommandReceived)]
    prepares = [e for e in received if e.kind == "COM_STMT_PREPARE" and "name <> ?" in e.text]
    executes = [e for e in received if e.kind == "COM_STMT_EXECUTE" and "name <> ?" in e.text]
    assert prepares
    assert [2, "marker-7781"] in [e.params for e in executes]
    assert [3, "marker-7782"] in [e.params for e in executes]


def test_executed_statements_are_masked_as_decided_at_prepare(gw: RunningGateway) -> None:
    """This policy turns masking off: rows of EXECUTE follow the PREPARE's decision (they
    used to get the default profile, whatever the policy said)."""
    conn = connector(gw)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT email FROM contacts WHERE id = ?", (1,))
        assert [tuple(r) for r in cur.fetchall()] == [("ada.lovelace@example.com",)]
        cur.close()
        text = conn.cursor()
        text.execute("SELECT email FROM contacts WHERE id = 1")
        assert text.fetchall() == [("ada.lovelace@example.com",)]
    finally:
        conn.close()


def test_connector_transaction_rolls_back(gw: RunningGateway) -> None:
    conn = connector(gw)
    try:
        conn.start_transaction()
        cur = conn.cursor()
        cur.execute("INSERT INTO items VALUES (101, 'temporary')")
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM items WHERE id = 101")
        assert cur.fetchall() == [(0,)]
    finally:
        conn.close()


def test_change_user_is_refused(gw: RunningGateway) -> None:
    conn = connector(gw)
    try:
        with pytest.raises(mysql.connector.errors.Error) as err:
            conn.cmd_change_user(username="root", password="")
        assert "wardgate: COM_CHANGE_USER is not allowed" in str(err.value)
    finally:
        conn.close()

    def refusals() -> list[object]:
        return [
            e
            for e in events(gw)
            if isinstance(e, Session.CommandDecided) and e.rule == "protocol" and e.action == "deny"
        ]

    deadline = time.monotonic() + 5  # refusals are recorded without waiting (nothing ran)
    while not refusals() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refusals()


# -- SQLAlchemy over PyMySQL -----------------------------------------------------------------


def test_sqlalchemy_over_pymysql(gw: RunningGateway) -> None:
    engine = sqlalchemy.create_engine(
        f"mysql+pymysql://agent:{gw.token()}@127.0.0.1:{gw.ports['shop']}/{DB}",
        poolclass=sqlalchemy.pool.NullPool,
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text("SELECT id, name FROM items WHERE id <= :n ORDER BY id"), {"n": 2}
            ).all()
            assert [tuple(r) for r in rows] == [(1, "one"), (2, "two")]
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO items VALUES (102, 'sa')"))
            conn.rollback()
        with engine.connect() as conn:
            n = conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM items WHERE id = 102")).scalar()
            assert n == 0
            with pytest.raises(sqlalchemy.exc.ProgrammingError):
                conn.execute(sqlalchemy.text("SELECT 1 FROM WHERE"))
    finally:
        engine.dispose()
