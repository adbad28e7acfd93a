"""Evasion corpora: every tricky SQL text and shell line must end denied or held, never allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import (
    Action,
    CommandRequest,
    Protocol,
    SqlMode,
    classify_shell,
    classify_sql,
    decide,
    load_policy,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "policies"
POLICY = load_policy((FIXTURES / "evasion.toml").read_text())


def corpus(name: str) -> list[str]:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return [ln.replace("\\n", "\n") for ln in lines if ln.strip() and not ln.startswith("# ")]


SQL = corpus("evasion_sql.txt")
SHELL = corpus("evasion_shell.txt")


def test_corpora_are_substantial() -> None:
    assert len(SQL) >= 90
    assert len(SHELL) >= 75


@pytest.mark.parametrize("text", SQL)
def test_sql_evasion_is_never_allowed(text: str) -> None:
    request = CommandRequest(
        subject="agent",
        groups=("agents",),
        target="db",
        protocol=Protocol.MYSQL,
        sql=classify_sql(text),
    )
    decision = decide(POLICY, request)
    assert decision.action in (Action.DENY, Action.REVIEW), (text, decision)


@pytest.mark.parametrize("text", SHELL)
def test_shell_evasion_is_never_allowed(text: str) -> None:
    request = CommandRequest(
        subject="agent",
        groups=("agents",),
        target="host",
        protocol=Protocol.SSH,
        shell=classify_shell(text),
    )
    decision = decide(POLICY, request)
    assert decision.action in (Action.DENY, Action.REVIEW), (text, decision)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM users WHERE name = 'DROP TABLE users'",
        "SELECT `drop`, `truncate` FROM `drop`.`table`",
        "SELECT 1 -- DROP TABLE users",
        "SELECT 1 # DROP TABLE users",
        "SELECT 1 /* DROP TABLE users */",
        'SELECT "; DROP TABLE users; --" AS x',
        "SELECT dropped, truncated FROM drops",
        "SELECT 5 --1",
        "SHOW TABLES",
        # With backslash escapes on (the default) the quote is escaped and all of it is one
        # string; the integration test shows the server agrees.
        "SELECT '\\'; DROP TABLE users; -- '",
        'SELECT "\\"; DROP TABLE users; -- "',
    ],
)
def test_reads_that_merely_mention_drop_are_allowed(text: str) -> None:
    request = CommandRequest(
        subject="agent", groups=(), target="db", protocol=Protocol.MYSQL, sql=classify_sql(text)
    )
    assert decide(POLICY, request).action is Action.ALLOW, text


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("SELECT '\\'; DROP TABLE users; -- '", SqlMode(no_backslash_escapes=True)),
        ('SELECT "\\"; DROP TABLE users; -- "', SqlMode(no_backslash_escapes=True)),
        ('SELECT "\\"; DROP TABLE users; -- "', SqlMode(ansi_quotes=True)),
    ],
)
def test_sql_mode_changes_where_strings_end(text: str, mode: SqlMode) -> None:
    request = CommandRequest(
        subject="agent", target="db", protocol=Protocol.MYSQL, sql=classify_sql(text, mode)
    )
    assert decide(POLICY, request).action is Action.DENY, text


@pytest.mark.parametrize(
    "text",
    ["ls -la /var/log", "cat /etc/hostname | grep -c x", "echo 'rm -rf /'", "ls 2>/dev/null"],
)
def test_plain_shell_reads_are_allowed(text: str) -> None:
    request = CommandRequest(
        subject="agent", groups=(), target="h", protocol=Protocol.SSH, shell=classify_shell(text)
    )
    assert decide(POLICY, request).action is Action.ALLOW, text
