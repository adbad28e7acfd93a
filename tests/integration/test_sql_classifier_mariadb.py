"""The SQL classifier against the real MariaDB: what the server executes agrees with it.

Each case runs a tricky text on a scratch database and observes the server (which tables
it touched, whether a scratch table was really dropped, how many result sets came back),
then checks that the classification says the same or something stricter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql.constants import CLIENT

from gateway.policy import (
    Action,
    CommandRequest,
    Protocol,
    SqlMode,
    StatementKind,
    classify_sql,
    decide,
    load_policy,
    normalize_sql,
)
from gateway.policy.sql_tokens import DEFAULT_SQL_MODE, Tok, scan_readings, tokenize

pytestmark = pytest.mark.mariadb

_EVASION_POLICY = load_policy(
    (Path(__file__).resolve().parents[2] / "fixtures" / "policies" / "evasion.toml").read_text()
)

DB = "wg_classifier_test"
ER_NO_SUCH_TABLE = 1146
ER_PARSE_ERROR = 1064
ANSI = SqlMode(ansi_quotes=True)
NBE = SqlMode(no_backslash_escapes=True)


def _connect() -> pymysql.connections.Connection[Any]:
    try:
        return pymysql.connect(
            host="127.0.0.1",
            user="root",
            password="",
            client_flag=CLIENT.MULTI_STATEMENTS,
            autocommit=True,
            connect_timeout=3,
        )
    except pymysql.err.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"MariaDB not reachable: {exc}")


@pytest.fixture(scope="module")
def server() -> Iterator[pymysql.connections.Connection[Any]]:
    conn = _connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
    conn.select_db(DB)
    try:
        yield conn
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()


@pytest.fixture
def db(server: pymysql.connections.Connection[Any]) -> pymysql.connections.Connection[Any]:
    """Fresh scratch tables ``t`` (one row) and ``victim``, default sql_mode."""
    with server.cursor() as cur:
        cur.execute("SET SESSION sql_mode = DEFAULT")
        cur.execute("DROP TABLE IF EXISTS t, victim, other")
        cur.execute("CREATE TABLE t (a INT, b VARCHAR(10))")
        cur.execute("INSERT INTO t VALUES (1, 'x')")
        cur.execute("CREATE TABLE victim (a INT)")
    return server


def run(conn: pymysql.connections.Connection[Any], text: str) -> list[Any]:
    """All result sets of a (multi-statement) text; raises the server's error."""
    with conn.cursor() as cur:
        cur.execute(text)
        results = [cur.fetchall()]
        while cur.nextset():
            results.append(cur.fetchall())
    return results


def exists(conn: pymysql.connections.Connection[Any], table: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name=%s",
            (DB, table),
        )
        row = cur.fetchone()
    return bool(row and row[0])


def kinds(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> set[str]:
    return {f.label() for s in classify_sql(text, mode).statements for f in s.facets()}


def tables(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> set[str]:
    return {t.name for s in classify_sql(text, mode).statements for t in s.tables}


# -- executable comments: their content runs -------------------------------------------------


def test_executable_comment_content_reads_a_table(db: Any) -> None:
    text = "SELECT 1 /*! , (SELECT COUNT(*) FROM t) */"
    assert run(db, text) == [((1, 1),)]
    assert "t" in tables(text)
    run(db, "RENAME TABLE t TO other")
    with pytest.raises(pymysql.err.ProgrammingError) as err:
        run(db, text)  # the server really reads t: gone, it fails
    assert err.value.args[0] == ER_NO_SUCH_TABLE


def test_executable_comment_really_drops(db: Any) -> None:
    text = "/*!DROP TABLE victim*/"
    assert kinds(text) == {"DDL:DROP"}
    assert tables(text) == {"victim"}
    run(db, text)
    assert not exists(db, "victim")


@pytest.mark.parametrize(
    ("text", "drops"),
    [
        ("/*!100000 DROP TABLE victim */", True),  # version <= server: runs
        ("/*M!100000 DROP TABLE victim */", True),  # MariaDB-only comment: runs here
        ("/*!999999 DROP TABLE victim */", False),  # newer than the server: skipped
        ("/*!50700 DROP TABLE victim */", False),  # MariaDB skips MySQL 5.7+ versions
    ],
)
def test_versioned_comments_are_read_both_ways(db: Any, text: str, drops: bool) -> None:
    run(db, text)
    assert exists(db, "victim") is not drops
    # Whether it runs depends on the server: the classifier always sees the DROP.
    assert "DDL:DROP" in kinds(text)


def test_skipped_versioned_comment_that_ends_early_is_not_understood(db: Any) -> None:
    # The server that skips the comment ends it at the first */ (strings are not read), so
    # the DROP after it runs; a server that runs it sees a string. We refuse to guess.
    text = "SELECT 1 /*!999999 '*/; DROP TABLE victim; -- ' */"
    run(db, text)
    assert not exists(db, "victim")
    assert kinds(text) == {"UNKNOWN"}


def test_text_after_a_skipped_conditional_comment_is_classified(db: Any) -> None:
    text = "/*!50700 SELECT 1 */ DROP TABLE victim"
    run(db, text)
    assert not exists(db, "victim")
    assert "DDL:DROP" in kinds(text)


def test_nested_plain_comment_inside_executable_comment(db: Any) -> None:
    text = "SELECT 1 /*! , 2 /* c */ , 3 */"
    assert run(db, text) == [((1, 2, 3),)]
    assert kinds(text) == {"SELECT"}


# -- comments, dashes and hashes --------------------------------------------------------------


def test_dash_dash_without_space_is_arithmetic(db: Any) -> None:
    assert run(db, "SELECT 5 --1") == [((6,),)]
    assert normalize_sql("SELECT 5 --1") == "SELECT ? - - ?"
    assert run(db, "SELECT 5 -- 1") == [((5,),)]
    assert normalize_sql("SELECT 5 -- 1") == "SELECT ?"


def test_dash_dash_at_the_very_end_is_a_comment(db: Any) -> None:
    assert run(db, "SELECT 1 --") == [((1,),)]
    assert kinds("SELECT 1 --") == {"SELECT"}


def test_strings_and_comments_mentioning_drop_are_reads(db: Any) -> None:
    for text in (
        "SELECT '--', 'DROP TABLE victim'",
        "SELECT 1 # ; DROP TABLE victim",
        "SELECT 1 -- ; DROP TABLE victim",
        "SELECT `drop` FROM (SELECT 1 AS `drop`) d",
    ):
        run(db, text)
        assert exists(db, "victim"), text
        assert kinds(text) == {"SELECT"}, text


def test_comment_inside_keyword_is_not_drop(db: Any) -> None:
    with pytest.raises(pymysql.err.ProgrammingError) as err:
        run(db, "DR/**/OP TABLE victim")
    assert err.value.args[0] == ER_PARSE_ERROR
    assert exists(db, "victim")
    assert kinds("DR/**/OP TABLE victim") == {"UNKNOWN"}


@pytest.mark.parametrize(
    "text", ["DROP\u00a0TABLE victim", "DR\u041eP TABLE victim", "\u017fELECT 1"]
)
def test_unicode_lookalikes_are_not_keywords(db: Any, text: str) -> None:
    with pytest.raises(pymysql.err.ProgrammingError):
        run(db, text)
    assert exists(db, "victim")
    assert kinds(text) == {"UNKNOWN"}


# -- statements, quotes and sql_mode ----------------------------------------------------------


def test_multi_statement_drop_runs_and_is_seen(db: Any) -> None:
    text = "SELECT 1; DROP TABLE victim"
    run(db, text)
    assert not exists(db, "victim")
    assert kinds(text) == {"SELECT", "DDL:DROP"}


def test_backslash_escapes_decide_where_a_string_ends(db: Any) -> None:
    text = "SELECT '\\'; DROP TABLE victim; -- '"
    assert run(db, text) == [(("'; DROP TABLE victim; -- ",),)]
    assert exists(db, "victim")
    assert kinds(text) == {"SELECT"}
    run(db, "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
    run(db, text)
    assert not exists(db, "victim")
    assert "DDL:DROP" in kinds(text, NBE)


def test_ansi_quotes_turn_strings_into_identifiers(db: Any) -> None:
    assert run(db, 'SELECT "a" FROM t') == [(("a",),)]
    assert [t.kind for t in tokenize('"a"')] == [Tok.STRING]
    run(db, "SET SESSION sql_mode = 'ANSI_QUOTES'")
    assert run(db, 'SELECT "a" FROM t') == [((1,),)]  # now the column a
    assert [t.kind for t in tokenize('"a"', ANSI)] == [Tok.QUOTED_IDENT]
    text = 'SELECT 1 AS "\\"; DROP TABLE victim; -- "'
    run(db, text)
    assert not exists(db, "victim")
    assert "DDL:DROP" in kinds(text, ANSI)


def test_setting_sql_mode_makes_the_rest_of_the_text_unknown(db: Any) -> None:
    text = 'SET SESSION sql_mode = \'ANSI_QUOTES\'; SELECT 1 AS "\\"; DROP TABLE victim; -- "'
    run(db, text)
    assert not exists(db, "victim")
    assert "UNKNOWN" in kinds(text)


def test_prepared_drop_runs_and_is_dynamic(db: Any) -> None:
    text = "PREPARE s FROM 'DROP TABLE victim'; EXECUTE s"
    run(db, text)
    assert not exists(db, "victim")
    assert kinds(text) == {"DYNAMIC:PREPARE", "DYNAMIC:EXECUTE"}


def test_delimiter_is_a_client_command(db: Any) -> None:
    with pytest.raises(pymysql.err.ProgrammingError):
        run(db, "DELIMITER //")
    assert kinds("DELIMITER //") == {"UNKNOWN"}


@pytest.mark.parametrize(
    ("text", "touched"),
    [
        ("SELECT a FROM t WHERE a IN (SELECT a FROM victim)", {"t", "victim"}),
        ("SELECT t.a FROM t JOIN victim v ON v.a = t.a", {"t", "victim"}),
        ("SELECT t.a FROM t, victim", {"t", "victim"}),
        (f"SELECT a FROM {DB}.victim", {"victim"}),
        ("UPDATE t, victim SET t.a = 2 WHERE t.a = victim.a", {"t", "victim"}),
        ("INSERT INTO t (a) SELECT a FROM victim", {"t", "victim"}),
        ("DELETE t FROM t JOIN victim USING (a)", {"t", "victim"}),
        ("WITH c AS (SELECT a FROM victim) SELECT * FROM c", {"victim", "c"}),
        ("SET @x = (SELECT COUNT(*) FROM victim)", {"victim"}),
        ("SELECT * FROM {OJ victim LEFT OUTER JOIN t ON t.a = victim.a}", {"t", "victim"}),
        ("SELECT * FROM (SELECT a FROM t WHERE 1) AS x, victim", {"t", "victim"}),
    ],
)
def test_tables_touched_match_what_the_server_needs(db: Any, text: str, touched: set[str]) -> None:
    run(db, text)  # works with the tables present
    assert touched <= tables(text)
    run(db, "RENAME TABLE victim TO other")
    with pytest.raises(pymysql.err.ProgrammingError) as err:
        run(db, text)  # and needs victim: without it the server fails
    assert err.value.args[0] == ER_NO_SUCH_TABLE


# -- differential: statement boundaries agree with the server ---------------------------------

_FRAGMENTS = [
    "SELECT 1",
    "SELECT 2",
    ";",
    " ",
    "'",
    '"',
    "`",
    "--",
    "-- ",
    "#",
    "/*",
    "*/",
    "/*!",
    "/*!999999",
    "/*M!",
    "/*!50700",
    "/*!100000",
    "\\",
    "\n",
    "\t",
    "x",
    ",",
    "1",
    "'a'",
    '"b"',
    "`c`",
    "--1",
    "\\'",
    '\\"',
    "?",
]


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=10))
def test_statement_count_agrees_with_the_server(db: Any, parts: list[str]) -> None:
    text = "".join(parts)
    try:
        results = run(db, text)
    except pymysql.err.MySQLError:
        _reconnect_if_needed(db)
        return  # the server refused it: no claim to compare
    classified = classify_sql(text).statements
    if any(s.kind is StatementKind.UNKNOWN for s in classified):
        return  # we refused to read it, which is always safe
    # A piece that is only a comment after a ";" comes back as an empty OK result.
    selected = [r for r in results if r]
    if len(scan_readings(text)) > 1:
        # A versioned comment (/*!50700 ...*/, /*M! ...*/) runs or not depending on the
        # server's version, which the classifier does not know: it decides on the union of
        # both readings, so it may see more than this server runs, never less.
        assert len(selected) <= len(classified), (text, classified)
    else:
        assert len(selected) == len(classified), (text, classified)
    assert all(s.kind is StatementKind.SELECT for s in classified), (text, classified)


def _reconnect_if_needed(conn: pymysql.connections.Connection[Any]) -> None:
    try:
        conn.ping(reconnect=False)
    except pymysql.err.MySQLError:
        conn.connect()
    conn.select_db(DB)


_ATTACK_FRAGMENTS = [
    *_FRAGMENTS,
    "DROP TABLE victim",
    "DROP TABLE victim",
    "; DROP TABLE victim",
    "*/ DROP TABLE victim",
]


@settings(
    max_examples=int(os.environ.get("WG_ORACLE_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(_ATTACK_FRAGMENTS), min_size=1, max_size=8))
def test_whenever_the_server_drops_the_classifier_saw_it(db: Any, parts: list[str]) -> None:
    """The oracle: if the server really dropped the table, the text was never allowed."""
    text = "".join(parts)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS victim (a INT)")
    try:
        run(db, text)
    except pymysql.err.MySQLError:
        _reconnect_if_needed(db)
    if exists(db, "victim"):
        return
    request = CommandRequest(
        subject="a", target="db", protocol=Protocol.MYSQL, sql=classify_sql(text)
    )
    decision = decide(_EVASION_POLICY, request)
    assert decision.action is not Action.ALLOW, (text, decision)
    assert kinds(text) & {"DDL:DROP", "UNKNOWN"}, text
