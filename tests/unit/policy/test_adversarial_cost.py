"""Crafted inputs must not stall the classifiers: cost stays linear in the text's size.

Exponential regex backtracking or quadratic rescans would finish in hours on these, so a
generous time limit separates them clearly from the milliseconds the linear code needs.
"""

from __future__ import annotations

import time

import pytest

from gateway.policy import SqlMode, classify_shell, classify_sql

N = 5000

SQL_CASES = {
    "unterminated single quote": "SELECT '" + "a" * N,
    "unterminated escaped double quote": 'SELECT "' + "a\\" * N,
    "unterminated doubled quotes": "SELECT '" + "a''" * N,
    "unterminated backtick": "SELECT `" + "a``" * N,
    "unterminated quoted variable": "SELECT @'" + "a" * N,
    "unterminated comment": "SELECT 1 /*" + " *" * N,
    "many subquery FROMs": "SELECT " + ", ".join(f"(SELECT 1 FROM t{i})" for i in range(N)),
    "many joins": "SELECT * FROM a " + " ".join(f"JOIN t{i} ON 1" for i in range(N)),
    "many EXTRACT FROMs": "SELECT " + ", ".join(f"EXTRACT(YEAR FROM d{i})" for i in range(N)),
    "conditional comment and many statements": "/*!50700 SELECT 1 */; " + "SELECT 1; " * N,
    "deep parentheses": "SELECT " + "(" * N + "1" + ")" * N,
    "long digit word": "SELECT " + "1" * N + "x",
}

SHELL_CASES = {
    "nested substitutions": "echo " + "$(" * 300 + "ls" + ")" * 300,
    "unbalanced substitutions": "echo " + "$(" * N,
    "long pipeline": " | ".join(["ls"] * N),
    "many quotes": "echo " + "'a'\"b\"" * N,
    "unterminated double quote": 'echo "' + "$(x)" * N,
}

MODES = [SqlMode(), SqlMode(ansi_quotes=True), SqlMode(no_backslash_escapes=True)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(SQL_CASES))
def test_sql_cost_is_bounded(name: str) -> None:
    for mode in MODES:
        start = time.process_time()
        result = classify_sql(SQL_CASES[name], mode)
        assert result.statements
        assert time.process_time() - start < 5, (name, mode)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(SHELL_CASES))
def test_shell_cost_is_bounded(name: str) -> None:
    start = time.process_time()
    classify_shell(SHELL_CASES[name])
    assert time.process_time() - start < 5, name
