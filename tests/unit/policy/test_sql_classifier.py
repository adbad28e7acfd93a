"""SQL classifier: statement kinds, facets and tables, table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy import SqlMode, StatementKind, classify_sql, normalize_sql
from gateway.policy.sql import (
    _classify_full,
    _classify_shaped,
    _classify_statement,
    _split,
    classify_sql_uncached,
)
from gateway.policy.sql_tokens import scan_readings


def labels(text: str) -> list[str]:
    return [s.facets()[0].label() for s in classify_sql(text).statements]


def all_facets(text: str) -> set[str]:
    return {f.label() for s in classify_sql(text).statements for f in s.facets()}


def table_names(text: str) -> set[str]:
    return {
        f"{t.database}.{t.name}" if t.database else t.name
        for s in classify_sql(text).statements
        for t in s.tables
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1", ["SELECT"]),
        ("(SELECT 1) UNION (SELECT 2)", ["SELECT"]),
        ("VALUES (1)", ["SELECT"]),
        ("TABLE t", ["SELECT"]),
        ("WITH c AS (SELECT 1) SELECT * FROM c", ["SELECT"]),
        ("WITH c AS (SELECT 1) DELETE FROM t", ["DELETE"]),
        ("insert into t values (1)", ["INSERT"]),
        ("REPLACE INTO t VALUES (1)", ["REPLACE"]),
        ("UPDATE t SET a = 1", ["UPDATE"]),
        ("DELETE FROM t", ["DELETE"]),
        ("CREATE TABLE t (a INT)", ["DDL:CREATE"]),
        ("CREATE OR REPLACE DEFINER = `root`@`%` VIEW v AS SELECT 1", ["DDL:CREATE"]),
        ("ALTER TABLE t ADD b INT", ["DDL:ALTER"]),
        ("DROP TABLE t", ["DDL:DROP"]),
        ("DROP DATABASE d", ["DDL:DROP"]),
        ("TRUNCATE t", ["DDL:TRUNCATE"]),
        ("RENAME TABLE a TO b", ["DDL:RENAME"]),
        ("GRANT SELECT ON d.* TO u", ["GRANT:GRANT"]),
        ("REVOKE ALL ON *.* FROM u", ["GRANT:REVOKE"]),
        ("CREATE USER u", ["GRANT:USER"]),
        ("DROP ROLE r", ["GRANT:ROLE"]),
        ("SET PASSWORD = 'x'", ["GRANT:PASSWORD"]),
        ("SET GLOBAL max_connections = 1", ["ADMIN:SET_GLOBAL"]),
        ("SET @@global.x = 1", ["ADMIN:SET_GLOBAL"]),
        ("SET a = 1, GLOBAL b = 2", ["ADMIN:SET_GLOBAL"]),
        ("SHUTDOWN", ["ADMIN:SHUTDOWN"]),
        ("KILL 5", ["ADMIN:KILL"]),
        ("FLUSH TABLES", ["ADMIN:FLUSH"]),
        ("INSTALL PLUGIN x SONAME 'y'", ["ADMIN:INSTALL"]),
        ("LOCK TABLES t READ", ["ADMIN:LOCK"]),
        ("START SLAVE", ["ADMIN:START"]),
        ("ANALYZE TABLE t", ["ADMIN:ANALYZE"]),
        ("BEGIN", ["TRANSACTION:BEGIN"]),
        ("BEGIN WORK", ["TRANSACTION:BEGIN"]),
        ("START TRANSACTION READ ONLY", ["TRANSACTION:BEGIN"]),
        ("COMMIT", ["TRANSACTION:COMMIT"]),
        ("ROLLBACK TO SAVEPOINT s", ["TRANSACTION:ROLLBACK"]),
        ("SAVEPOINT s", ["TRANSACTION:SAVEPOINT"]),
        ("RELEASE SAVEPOINT s", ["TRANSACTION:RELEASE"]),
        ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", ["TRANSACTION:SET_TRANSACTION"]),
        ("SET NAMES utf8mb4", ["SESSION:SET"]),
        ("SET autocommit = 0", ["SESSION:SET"]),
        ("SET @x = 1", ["SESSION:SET"]),
        ("USE shop", ["SESSION:USE"]),
        ("SHOW TABLES", ["SHOW:SHOW"]),
        ("DESC t", ["SHOW:DESCRIBE"]),
        ("EXPLAIN SELECT 1", ["SHOW:EXPLAIN"]),
        ("EXPLAIN ANALYZE DELETE FROM t", ["DELETE"]),
        ("ANALYZE UPDATE t SET a = 1", ["UPDATE"]),
        ("PREPARE s FROM @q", ["DYNAMIC:PREPARE"]),
        ("EXECUTE s", ["DYNAMIC:EXECUTE"]),
        ("EXECUTE IMMEDIATE 'SELECT 1'", ["DYNAMIC:EXECUTE"]),
        ("DEALLOCATE PREPARE s", ["DYNAMIC:DEALLOCATE"]),
        ("DROP PREPARE s", ["DYNAMIC:DEALLOCATE"]),
        ("CALL p()", ["DYNAMIC:CALL"]),
        ("HANDLER t OPEN", ["DYNAMIC:HANDLER"]),
        ("DO SLEEP(1)", ["DYNAMIC:DO"]),
        ("BEGIN NOT ATOMIC SELECT 1; END", ["DYNAMIC:COMPOUND", "UNKNOWN"]),
        ("IF 1 THEN SELECT 1; END IF", ["DYNAMIC:COMPOUND", "UNKNOWN"]),
        ("LOAD DATA INFILE 'f' INTO TABLE t", ["LOAD_OUTFILE:LOAD_DATA"]),
        ("LOAD XML INFILE 'f' INTO TABLE t", ["LOAD_OUTFILE:LOAD_XML"]),
        ("LOAD INDEX INTO CACHE t", ["ADMIN:LOAD_INDEX"]),
        ("SET STATEMENT max_statement_time = 1 FOR UPDATE t SET a = 1", ["UPDATE"]),
        ("SET STATEMENT x = 1", ["UNKNOWN"]),
        ("DELIMITER //", ["UNKNOWN"]),
        ("FROBNICATE", ["UNKNOWN"]),
        ("123", ["UNKNOWN"]),
        ("", ["UNKNOWN"]),
        ("-- nothing", ["UNKNOWN"]),
        ("SELECT 'unterminated", ["UNKNOWN"]),
        ("SELECT 1; DELETE FROM t; DROP TABLE x", ["SELECT", "DELETE", "DDL:DROP"]),
    ],
)
def test_kinds(text: str, expected: list[str]) -> None:
    assert labels(text) == expected


@pytest.mark.parametrize(
    ("text", "facet"),
    [
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "LOAD_OUTFILE:OUTFILE"),
        ("SELECT a INTO DUMPFILE '/tmp/x' FROM t", "LOAD_OUTFILE:DUMPFILE"),
        ("INSERT INTO t SELECT LOAD_FILE('/etc/passwd')", "LOAD_OUTFILE:LOAD_FILE"),
        ("SELECT NEXTVAL(sq)", "UPDATE:SEQUENCE"),
        ("SELECT SETVAL(sq, 100)", "UPDATE:SEQUENCE"),
        ("SELECT NEXT VALUE FOR sq", "UPDATE:SEQUENCE"),
    ],
)
def test_dangerous_parts_add_facets(text: str, facet: str) -> None:
    assert facet in all_facets(text)


def test_select_into_variable_is_a_plain_read() -> None:
    assert all_facets("SELECT a INTO @x FROM t") == {"SELECT"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT * FROM t", {"t"}),
        ("SELECT * FROM d.t AS x, u y JOIN v ON 1 LEFT JOIN w USING (id)", {"d.t", "u", "v", "w"}),
        ("SELECT * FROM `my db`.`my``t`", {"my db.my`t"}),
        ("SELECT (SELECT a FROM s) FROM t WHERE b IN (SELECT b FROM d.u)", {"s", "t", "d.u"}),
        ("SELECT EXTRACT(YEAR FROM d), TRIM(LEADING 'x' FROM c) FROM t", {"t"}),
        ("SELECT * FROM JSON_TABLE('[]', '$' COLUMNS (a INT PATH '$')) j", set()),
        ("SELECT * FROM t FORCE INDEX (i) WHERE a = 1", {"t"}),
        ("SELECT * FROM t PARTITION (p0), u", {"t", "u"}),
        ("SELECT * FROM (t, u)", {"t", "u"}),
        ("INSERT INTO d.t (a) VALUES (1)", {"d.t"}),
        ("INSERT LOW_PRIORITY IGNORE t VALUES (1)", {"t"}),
        ("INSERT INTO t SELECT * FROM u", {"t", "u"}),
        ("REPLACE t SET a = 1", {"t"}),
        ("UPDATE LOW_PRIORITY t, d.u SET t.a = 1", {"t", "d.u"}),
        ("UPDATE t JOIN u ON t.a = u.a SET t.b = 1", {"t", "u"}),
        ("DELETE FROM t WHERE a IN (SELECT a FROM u)", {"t", "u"}),
        ("DELETE t FROM t JOIN u USING (a)", {"t", "u"}),
        ("DELETE FROM t USING t, u", {"t", "u"}),
        ("DROP TABLE IF EXISTS a, d.b", {"a", "d.b"}),
        ("DROP DATABASE IF EXISTS prod", {"prod.*"}),
        ("CREATE DATABASE prod", {"prod.*"}),
        ("TRUNCATE TABLE d.t", {"d.t"}),
        ("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES p (id)", {"t", "p"}),
        ("CREATE TABLE t2 LIKE t1", {"t2", "t1"}),
        ("CREATE TABLE t2 AS SELECT * FROM t1", {"t2", "t1"}),
        ("CREATE INDEX i ON t (a)", {"t"}),
        ("DROP INDEX i ON t", {"t"}),
        ("CREATE VIEW v AS SELECT * FROM secret", {"v", "secret"}),
        ("RENAME TABLE a TO b, c TO d", {"a", "b", "c", "d"}),
        ("LOCK TABLES a READ, b WRITE", {"a", "b"}),
        ("GRANT SELECT ON d.* TO u", {"d.*"}),
        ("GRANT SELECT ON *.* TO u", {"*.*"}),
        ("GRANT SELECT ON TABLE d.t TO u", {"d.t"}),
        ("DESC d.t", {"d.t"}),
        ("SHOW COLUMNS FROM t", {"t"}),
        ("HANDLER t OPEN", {"t"}),
        ("LOAD DATA INFILE 'f' INTO TABLE d.t", {"d.t"}),
        ("SELECT 1 /*! , (SELECT COUNT(*) FROM hidden) */", {"hidden"}),
        ("WITH c AS (SELECT * FROM a) UPDATE b JOIN c SET b.x = 1", {"a", "b", "c"}),
        ("SET @x = (SELECT s FROM secret)", {"secret"}),
        ("SELECT * FROM t WHERE a = 'FROM x'", {"t"}),
        ("SELECT * FROM (SELECT 1 FROM c WHERE 1) AS x, b", {"c", "b"}),
        ("SELECT * FROM a JOIN b ON a.x = b.x, c", {"a", "b", "c"}),
        ("SELECT * FROM a STRAIGHT_JOIN b", {"a", "b"}),
        ("SELECT * FROM (a JOIN b ON 1), (c)", {"a", "b", "c"}),
        ("SELECT * FROM a NATURAL LEFT OUTER JOIN b CROSS JOIN c", {"a", "b", "c"}),
        ("SELECT * FROM a LIMIT 1, 2", {"a"}),
        ("SELECT * FROM a ORDER BY x, y", {"a"}),
        ("SELECT * FROM {OJ p.s LEFT OUTER JOIN a ON 1}", {"p.s", "a"}),
        ("SELECT NEXTVAL(d.sq), LASTVAL(s2), NEXT VALUE FOR s3", {"d.sq", "s2", "s3"}),
    ],
)
def test_tables(text: str, expected: set[str]) -> None:
    assert table_names(text) == expected


def test_statement_texts_are_the_original_spans() -> None:
    result = classify_sql("  SELECT 1 ;\n /* c */ DELETE  FROM t -- x\n")
    assert [s.text for s in result.statements] == ["SELECT 1", "DELETE  FROM t"]
    assert classify_sql("  SELECT  1  ").statements[0].text == "SELECT  1"


def test_duplicate_statements_are_kept() -> None:
    assert labels("SELECT 1; SELECT 1") == ["SELECT", "SELECT"]


def test_sql_mode_change_makes_the_rest_unknown() -> None:
    result = classify_sql("SET sql_mode = 'ANSI_QUOTES'; SELECT 1")
    assert [s.kind for s in result.statements] == [StatementKind.SESSION, StatementKind.UNKNOWN]
    assert result.statements[0].sets_sql_mode
    assert not result.understood
    assert classify_sql("SET @@session.sql_mode = ''").statements[0].sets_sql_mode


def test_understood() -> None:
    assert classify_sql("SELECT 1; UPDATE t SET a = 1").understood
    assert not classify_sql("SELECT 1; FROB").understood


def test_modes_change_classification() -> None:
    text = 'SELECT 1 AS "\\"; DROP TABLE t; -- "'
    assert labels(text) == ["SELECT"]
    assert "DDL:DROP" in {
        f.label()
        for s in classify_sql(text, SqlMode(ansi_quotes=True)).statements
        for f in s.facets()
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("select  *\nfrom T where a = 5", "SELECT * FROM T WHERE A = ?"),
        ("SELECT * FROM t WHERE a = 'x' AND b = 1.5e3", "SELECT * FROM T WHERE A = ? AND B = ?"),
        ("SELECT /* hi */ 1 -- bye", "SELECT ?"),
        ("SELECT 1 /*!50001 , 2 */", "SELECT ? , ?"),
        ("SELECT `Mixed` FROM `T`", "SELECT `Mixed` FROM `T`"),
        ("SELECT ?", "SELECT ?"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize_sql(text) == expected


def test_normalize_equal_for_same_shape() -> None:
    assert normalize_sql("DELETE FROM t WHERE id = 5") == normalize_sql("delete from t where id=6")


def test_cache_returns_equal_results() -> None:
    text = "SELECT a FROM t WHERE b = 1"
    assert classify_sql(text) == classify_sql_uncached(text)
    assert classify_sql(text) is classify_sql(text)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80), st.booleans())
def test_classifier_never_raises(text: str, ansi: bool) -> None:
    result = classify_sql(text, SqlMode(ansi_quotes=ansi))
    assert result.statements


_LITERAL_VARIANTS = ["1", "'DROP TABLE x'", '"; DELETE FROM y"', "0x44524f50", "?", "-5e3", "'('"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            "SELECT * FROM t WHERE a = {0}",
            "UPDATE t SET a = {0} WHERE b IN ({0}, {0})",
            "INSERT INTO d.t (a) VALUES ({0})",
            "SET GLOBAL x = {0}",
            "SELECT {0} INTO OUTFILE {0}",
            "DROP TABLE IF EXISTS t{0}",
            "CREATE TABLE t (a INT DEFAULT {0})",
            "SELECT LOAD_FILE({0}) FROM t",
            "GRANT SELECT ON d.* TO {0}",
        ]
    ),
    st.lists(st.sampled_from(_LITERAL_VARIANTS), min_size=2, max_size=2),
)
def test_shape_cache_agrees_with_direct_classification(template: str, literals: list[str]) -> None:
    # Warm the shape cache with one literal, then classify another with the same shape.
    for literal in literals:
        text = template.format(literal)
        for toks, starts in scan_readings(text):
            for sig, stmt_text in _split(text, SqlMode(), toks, starts):
                assert _classify_shaped(sig, stmt_text) == _classify_statement(sig, stmt_text)
        assert classify_sql_uncached(text) == _classify_full(text, SqlMode())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="sElEcT fromab1'\"`?.;-#\n()=*", max_size=40), st.booleans())
def test_raw_shape_cache_agrees_with_full_classification(text: str, ansi: bool) -> None:
    mode = SqlMode(ansi_quotes=ansi)
    twin = "".join("7" if c == "1" else c for c in text)  # same shape if 1 only sits in literals
    classify_sql_uncached(twin, mode)  # may warm the cache with the twin's shape
    assert classify_sql_uncached(text, mode) == _classify_full(text, mode)
