"""SQL tokenizer: golden tokenizations, errors, and properties on random text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.sql_tokens import (
    DEFAULT_SQL_MODE,
    SqlMode,
    SqlTokenError,
    Tok,
    scan,
    scan_readings,
    scan_significant,
    tokenize,
)

ANSI = SqlMode(ansi_quotes=True)
NBE = SqlMode(no_backslash_escapes=True)


def kinds_texts(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> list[tuple[str, str]]:
    return [(t.kind.name, t.text) for t in tokenize(text, mode) if t.kind is not Tok.WS]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1", [("WORD", "SELECT"), ("NUMBER", "1")]),
        ("--1", [("OPERATOR", "-"), ("OPERATOR", "-"), ("NUMBER", "1")]),
        ("-- 1", [("COMMENT", "-- 1")]),
        ("--\t1", [("COMMENT", "--\t1")]),
        ("--\x011", [("COMMENT", "--\x011")]),
        ("--", [("COMMENT", "--")]),
        ("1 # x\n2", [("NUMBER", "1"), ("COMMENT", "# x"), ("NUMBER", "2")]),
        ("/* a */x", [("COMMENT", "/* a */"), ("WORD", "x")]),
        ("/**/", [("COMMENT", "/**/")]),
        ("/*!x*/", [("EXEC_OPEN", "/*!"), ("WORD", "x"), ("EXEC_CLOSE", "*/")]),
        ("/*!50001 x */", [("EXEC_OPEN", "/*!50001"), ("WORD", "x"), ("EXEC_CLOSE", "*/")]),
        ("/*!1000001x*/", [("EXEC_OPEN", "/*!100000"), ("WORD", "1x"), ("EXEC_CLOSE", "*/")]),
        ("/*M!100100 x*/", [("EXEC_OPEN", "/*M!100100"), ("WORD", "x"), ("EXEC_CLOSE", "*/")]),
        (
            "/*!1234 x*/",
            [("EXEC_OPEN", "/*!"), ("NUMBER", "1234"), ("WORD", "x"), ("EXEC_CLOSE", "*/")],
        ),
        ("a */ b", [("WORD", "a"), ("OPERATOR", "*"), ("OPERATOR", "/"), ("WORD", "b")]),
        ("'it''s'", [("STRING", "'it''s'")]),
        ("'a\\'b'", [("STRING", "'a\\'b'")]),
        ('"a""b"', [("STRING", '"a""b"')]),
        ("`a``b`", [("QUOTED_IDENT", "`a``b`")]),
        (
            "@v @@global.x @'q q'",
            [("VARIABLE", "@v"), ("VARIABLE", "@@global.x"), ("VARIABLE", "@'q q'")],
        ),
        ("a=?", [("WORD", "a"), ("OPERATOR", "="), ("PLACEHOLDER", "?")]),
        (
            "1abc 0x1F 0x1G 1.5e3 .5",
            [
                ("WORD", "1abc"),
                ("NUMBER", "0x1F"),
                ("WORD", "0x1G"),
                ("NUMBER", "1.5e3"),
                ("NUMBER", ".5"),
            ],
        ),
        ("a<=>b", [("WORD", "a"), ("OPERATOR", "<=>"), ("WORD", "b")]),
        ("_utf8mb4'x'", [("WORD", "_utf8mb4"), ("STRING", "'x'")]),
        ("DROP\u00a0TABLE", [("WORD", "DROP\u00a0TABLE")]),
        ("a;b", [("WORD", "a"), ("SEMICOLON", ";"), ("WORD", "b")]),
    ],
)
def test_golden_tokens(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds_texts(text) == expected


def test_ansi_quotes_make_double_quotes_identifiers_without_escapes() -> None:
    assert kinds_texts('"a\\"', ANSI) == [("QUOTED_IDENT", '"a\\"')]
    with pytest.raises(SqlTokenError):
        tokenize('"a\\"')  # with escapes the quote is escaped: unterminated


def test_no_backslash_escapes() -> None:
    assert kinds_texts("'a\\' x", NBE) == [("STRING", "'a\\'"), ("WORD", "x")]
    with pytest.raises(SqlTokenError):
        tokenize("'a\\' x")


@pytest.mark.parametrize(
    "text",
    [
        "'abc",
        '"abc',
        "`abc",
        "SELECT /* x",
        "/*! SELECT 1",
        "/*! /*! x */ */",
        "@'x",
        "SELECT 1 /*!999999 '*/ x ' */",  # ends differently when the server skips it
    ],
)
def test_errors(text: str) -> None:
    with pytest.raises(SqlTokenError):
        tokenize(text)
    with pytest.raises(SqlTokenError):
        scan_significant(text)


def test_error_positions() -> None:
    with pytest.raises(SqlTokenError) as err:
        tokenize("SELECT 'abc")
    assert err.value.position == 7


def test_conditional_comments_have_two_readings() -> None:
    assert len(scan_readings("SELECT 1")) == 1
    assert len(scan_readings("SELECT /*! 1 */")) == 1  # runs on every server
    run, skip = scan_readings("SELECT 1 /*!50700 , 2 */")
    assert [t[2] for t in run[0]] == ["SELECT", "1", ",", "2"]
    assert [t[2] for t in skip[0]] == ["SELECT", "1"]
    assert len(scan_readings("/*M! SELECT 1 */")) == 2


def test_keywords_upper_case_ascii_only() -> None:
    assert scan_significant("select \u017felect")[0][1] == "SELECT"
    assert scan_significant("select \u017felect")[1][1] == "\u017felect"


_ALPHABET = st.sampled_from(
    [
        *"abcSELECTdrop01 \t\n;,.()'\"`\\-#/*!@?$=<>M5",
        "--",
        "/*",
        "*/",
        "/*!",
        "/*!50700",
        "\u00a0",
        "é",
    ]
)
_TEXT = st.one_of(st.text(max_size=60), st.lists(_ALPHABET, max_size=40).map("".join))
_MODES = st.builds(SqlMode, ansi_quotes=st.booleans(), no_backslash_escapes=st.booleans())


@settings(max_examples=400, deadline=None)
@given(_TEXT, _MODES)
def test_tokenizer_is_lossless_or_raises_its_own_error(text: str, mode: SqlMode) -> None:
    try:
        tokens = tokenize(text, mode)
    except SqlTokenError:
        with pytest.raises(SqlTokenError):
            scan_significant(text, mode)
        return
    assert "".join(t.text for t in tokens) == text
    assert all(t.text for t in tokens)
    assert [t.start for t in tokens] == [
        sum(len(u.text) for u in tokens[:i]) for i in range(len(tokens))
    ]


@settings(max_examples=400, deadline=None)
@given(_TEXT, _MODES)
def test_fast_and_stateful_paths_agree(text: str, mode: SqlMode) -> None:
    try:
        full = scan(text, mode, skip_trivia=True)
    except SqlTokenError:
        return
    fast = scan_significant(text, mode)
    assert [(k, v) for k, _, v in fast] == [(k, v) for k, v, _ in full]
