"""The decision engine, table-driven: precedence, defaults, scoping, parts, review fields."""

from __future__ import annotations

import json

import pytest

from gateway.policy import (
    DEFAULT_RULE,
    UNKNOWN_RULE,
    Action,
    CommandRequest,
    Decision,
    Policy,
    Protocol,
    SessionKind,
    classify_shell,
    classify_sql,
    decide,
    load_policy,
)

POLICY = load_policy(
    """
[masking.profiles.base]
[masking.profiles.strict]
detectors = "all"

[policy]
default = "deny"
unknown = "review"
masking_profile = "base"

[policy.review]
approver_groups = ["oncall"]
expiry = "15m"

[[rule]]
name = "allow-reads"
action = "allow"
statements = ["SELECT", "SHOW"]

[[rule]]
name = "deny-drop"
action = "deny"
statements = ["DDL:DROP", "DDL:TRUNCATE"]

[[rule]]
name = "review-payments"
action = "review"
statements = ["INSERT", "UPDATE", "DELETE"]
tables = ["payments.*"]
approver_groups = ["oncall", "finance"]
quorum = 2
expiry = "30m"

[[rule]]
name = "allow-shop-writes"
action = "allow"
statements = ["INSERT", "UPDATE", "DELETE"]
tables = ["shop.*"]
masking_profile = "strict"

[[rule]]
name = "dba-ddl"
action = "allow"
groups = ["dba*"]
targets = ["staging-*"]
statements = ["DDL"]

[[rule]]
name = "secrets-denied"
action = "deny"
subjects = ["agent-*"]
tables = ["*.secrets"]

[[rule]]
name = "deny-regex"
action = "deny"
protocol = "mysql"
match_regex = "(?i)sleep\\\\("

[[rule]]
name = "deny-rm"
action = "deny"
programs = ["/bin/rm", "shred"]

[[rule]]
name = "deny-rf"
action = "deny"
programs = ["*"]
args = ["-rf", "--no-preserve-root"]

[[rule]]
name = "review-sudo"
action = "review"
programs = ["sudo"]
expiry = "5m"

[[rule]]
name = "allow-tools"
action = "allow"
programs = ["ls", "cat", "grep", "/usr/bin/tail", "sudo", "systemctl"]

[[rule]]
name = "allow-status-only"
action = "allow"
programs = ["systemctl"]
args = ["status", "nginx"]

[[rule]]
name = "allow-log-writes"
action = "allow"
programs = ["grep"]
file_writes = true

[[rule]]
name = "no-forwarding"
action = "deny"
sessions = ["port_forward", "agent_forward"]

[[rule]]
name = "shells-for-oncall"
action = "allow"
groups = ["oncall"]
sessions = ["shell"]
"""
)


def sql(text: str, *, subject: str = "user", groups: tuple[str, ...] = (), target: str = "prod-db",
        database: str | None = "shop", policy: Policy = POLICY) -> Decision:  # fmt: skip
    request = CommandRequest(
        subject=subject,
        groups=groups,
        target=target,
        protocol=Protocol.MYSQL,
        sql=classify_sql(text),
        database=database,
    )
    return decide(policy, request)


def sh(text: str, *, groups: tuple[str, ...] = ()) -> Decision:
    request = CommandRequest(
        subject="user",
        groups=groups,
        target="host",
        protocol=Protocol.SSH,
        shell=classify_shell(text),
    )
    return decide(POLICY, request)


def session(kind: SessionKind, groups: tuple[str, ...] = ()) -> Decision:
    request = CommandRequest(
        subject="u", groups=groups, target="h", protocol=Protocol.SSH, session=kind
    )
    return decide(POLICY, request)


@pytest.mark.parametrize(
    ("text", "action", "rule"),
    [
        ("SELECT * FROM t", Action.ALLOW, "allow-reads"),
        ("SHOW TABLES", Action.ALLOW, "allow-reads"),
        ("DROP TABLE t", Action.DENY, "deny-drop"),
        ("UPDATE payments.charges SET a = 1", Action.REVIEW, "review-payments"),
        ("UPDATE charges SET a = 1", Action.ALLOW, "allow-shop-writes"),  # current db is shop
        ("UPDATE other.t SET a = 1", Action.DENY, DEFAULT_RULE),
        ("UPDATE shop.a, payments.b SET a.x = 1", Action.REVIEW, "review-payments"),
        (
            "UPDATE shop.a, other.b SET a.x = 1",
            Action.DENY,
            DEFAULT_RULE,
        ),  # allow needs every table
        ("BEGIN", Action.DENY, DEFAULT_RULE),
        ("FROBNICATE", Action.REVIEW, UNKNOWN_RULE),
        ("SELECT SLEEP(5)", Action.DENY, "deny-regex"),
        ("SELECT 1; DROP TABLE t", Action.DENY, "deny-drop"),
        ("SELECT 1; UPDATE payments.c SET a = 1", Action.REVIEW, "review-payments"),
        ("SELECT 1; FROBNICATE; DROP TABLE t", Action.DENY, "deny-drop"),
        ("INSERT INTO shop.t SELECT LOAD_FILE('/etc/passwd')", Action.DENY, DEFAULT_RULE),
    ],
)
def test_sql_decisions(text: str, action: Action, rule: str) -> None:
    decision = sql(text)
    assert (decision.action, decision.rule) == (action, rule), decision


def test_deny_overrides_allow_whatever_the_order() -> None:
    # allow-reads comes first in the file and matches; secrets-denied comes later and wins.
    decision = sql("SELECT * FROM shop.secrets", subject="agent-7")
    assert (decision.action, decision.rule) == (Action.DENY, "secrets-denied")
    assert sql("SELECT * FROM shop.secrets", subject="human").action is Action.ALLOW


def test_review_overrides_allow() -> None:
    # payments.x also matches nothing that allows, shop.y is allowed: review wins over allow.
    decision = sql("DELETE FROM payments.x WHERE id IN (SELECT id FROM shop.y)")
    assert decision.action is Action.REVIEW


def test_unknown_database_is_conservative() -> None:
    # Without a current database, payments.* matches an unqualified name for review...
    assert sql("UPDATE charges SET a = 1", database=None).action is Action.REVIEW
    # ...while shop.* does not allow it.
    policy = load_policy(
        '[policy]\ndefault = "deny"\nunknown = "deny"\n[[rule]]\nname = "w"\naction = "allow"\n'
        'statements = ["UPDATE"]\ntables = ["shop.*"]\n'
    )
    assert sql("UPDATE charges SET a = 1", database=None, policy=policy).action is Action.DENY
    assert sql("UPDATE charges SET a = 1", database="shop", policy=policy).action is Action.ALLOW


def test_groups_and_targets_scope_rules() -> None:
    assert (
        sql("ALTER TABLE t ADD c INT", groups=("dba-team",), target="staging-1").action
        is Action.ALLOW
    )
    assert (
        sql("ALTER TABLE t ADD c INT", groups=("dba-team",), target="prod-1").action is Action.DENY
    )
    assert (
        sql("ALTER TABLE t ADD c INT", groups=("devs",), target="staging-1").action is Action.DENY
    )
    # deny still overrides the group's allow
    assert sql("DROP TABLE t", groups=("dba",), target="staging-1").action is Action.DENY


def test_review_fields() -> None:
    d = sql("UPDATE payments.c SET a = 1")
    assert (d.approver_groups, d.quorum, d.expiry_seconds) == (("oncall", "finance"), 2, 1800)
    assert d.statement_index == 0 and d.statement == "UPDATE payments.c SET a = 1"
    unknown = sql("FROBNICATE")
    assert (unknown.approver_groups, unknown.quorum, unknown.expiry_seconds) == (
        ("oncall",),
        1,
        900,
    )
    assert "not understood" in unknown.reason
    allowed = sql("SELECT 1")
    assert (allowed.approver_groups, allowed.quorum, allowed.expiry_seconds) == ((), 0, 0)


def test_review_over_several_statements_combines_strictly() -> None:
    d = sql("UPDATE payments.a SET x = 1; FROBNICATE")
    assert d.action is Action.REVIEW
    assert d.approver_groups == ("oncall",)  # the groups common to both parts
    assert (d.quorum, d.expiry_seconds) == (2, 900)  # largest quorum, shortest expiry
    assert d.statement_index == 0


def test_review_with_disjoint_approvers_is_denied() -> None:
    policy = load_policy(
        '[policy]\ndefault = "deny"\nunknown = "deny"\n'
        '[[rule]]\nname = "a"\naction = "review"\nstatements = ["INSERT"]\napprover_groups = ["x"]\n'
        '[[rule]]\nname = "b"\naction = "review"\nstatements = ["DELETE"]\napprover_groups = ["y"]\n'
    )
    d = sql("INSERT INTO t VALUES (1); DELETE FROM t", policy=policy)
    assert d.action is Action.DENY and "different groups" in d.reason


def test_decision_to_dict_is_json_able() -> None:
    data = json.loads(json.dumps(sql("UPDATE payments.c SET a = 1").to_dict()))
    assert data["action"] == "review" and data["approver_groups"] == ["oncall", "finance"]
    assert data["statement_index"] == 0


def test_triggering_statement_is_named() -> None:
    d = sql("SELECT 1; SELECT 2; DROP TABLE t; SELECT 3")
    assert (d.statement_index, d.statement) == (2, "DROP TABLE t")


def test_masking_profiles() -> None:
    assert sql("SELECT 1").masking_profile == "base"  # rule names none: the policy's
    assert sql("UPDATE t SET a = 1").masking_profile == "strict"
    assert sql("DROP TABLE t").masking_profile is None


def test_unknown_default_never_allows_even_with_catch_all_allow() -> None:
    policy = load_policy(
        '[policy]\ndefault = "allow"\nunknown = "deny"\n[[rule]]\nname = "all"\naction = "allow"\n'
    )
    assert sql("SELECT 1", policy=policy).action is Action.ALLOW
    d = sql("FROBNICATE", policy=policy)
    assert (d.action, d.rule) == (Action.DENY, UNKNOWN_RULE)
    assert sh("$X", groups=()).action is Action.REVIEW  # POLICY: unknown review


def test_deny_rules_may_match_unknown_statements() -> None:
    policy = load_policy(
        '[policy]\ndefault = "allow"\nunknown = "review"\n[policy.review]\napprover_groups = ["o"]\n'
        '[[rule]]\nname = "no-unknown"\naction = "deny"\nstatements = ["UNKNOWN"]\n'
    )
    assert sql("FROBNICATE", policy=policy).rule == "no-unknown"


@pytest.mark.parametrize(
    ("text", "action", "rule"),
    [
        ("ls -la", Action.ALLOW, "allow-tools"),
        ("/usr/bin/tail -f x", Action.ALLOW, "allow-tools"),
        ("tail -f x", Action.DENY, DEFAULT_RULE),  # a path glob allows only that path
        ("/bin/rm x", Action.DENY, "deny-rm"),
        ("rm x", Action.DENY, "deny-rm"),  # a deny path glob also catches the bare name
        ("ls -rf", Action.DENY, "deny-rf"),
        ("sudo ls", Action.REVIEW, "review-sudo"),
        ("sudo rm x", Action.DENY, "deny-rm"),
        ("ls | grep x", Action.ALLOW, "allow-tools"),
        ("ls | wc -l", Action.DENY, DEFAULT_RULE),
        ("ls $(shred x)", Action.DENY, "deny-rm"),
        ("$X", Action.REVIEW, UNKNOWN_RULE),
        ("echo x | sh", Action.DENY, DEFAULT_RULE),  # echo and sh are not allowed anyway
        ("ls | sh", Action.DENY, DEFAULT_RULE),  # sh is no allowed program; unknown too
        ("cat x > /tmp/y", Action.DENY, DEFAULT_RULE),  # cat is allowed, writing a file is not
        ("grep x y > /tmp/z", Action.ALLOW, "allow-tools"),
        ("systemctl status nginx", Action.ALLOW, "allow-tools"),
        ("./ls", Action.DENY, DEFAULT_RULE),  # a bare-name allow does not cover a path
        ("/tmp/x/ls", Action.DENY, DEFAULT_RULE),
    ],
)
def test_shell_decisions(text: str, action: Action, rule: str) -> None:
    decision = sh(text)
    assert (decision.action, decision.rule) == (action, rule), decision


def test_sudo_review_uses_policy_approvers_and_rule_expiry() -> None:
    d = sh("sudo ls")
    assert (d.approver_groups, d.quorum, d.expiry_seconds) == (("oncall",), 1, 300)


def test_allow_args_must_all_match() -> None:
    policy = load_policy(
        '[policy]\ndefault = "deny"\nunknown = "deny"\n[[rule]]\nname = "s"\naction = "allow"\n'
        'programs = ["systemctl"]\nargs = ["status", "nginx"]\n'
    )
    req = CommandRequest(
        subject="u",
        target="h",
        protocol=Protocol.SSH,
        shell=classify_shell("systemctl status nginx"),
    )
    assert decide(policy, req).action is Action.ALLOW
    req2 = CommandRequest(
        subject="u", target="h", protocol=Protocol.SSH, shell=classify_shell("systemctl stop nginx")
    )
    assert decide(policy, req2).action is Action.DENY


@pytest.mark.parametrize(
    ("kind", "groups", "action"),
    [
        (SessionKind.PORT_FORWARD, ("oncall",), Action.DENY),
        (SessionKind.AGENT_FORWARD, (), Action.DENY),
        (SessionKind.SHELL, ("oncall",), Action.ALLOW),
        (SessionKind.SHELL, ("devs",), Action.DENY),
        (SessionKind.SFTP, ("oncall",), Action.DENY),
    ],
)
def test_sessions(kind: SessionKind, groups: tuple[str, ...], action: Action) -> None:
    assert session(kind, groups).action is action


def test_protocol_scoping() -> None:
    # deny-regex is mysql-only: a shell line with sleep( is not caught by it.
    assert sh("grep 'sleep(' f").action is Action.ALLOW


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CommandRequest(subject="u", target="t", protocol=Protocol.MYSQL)
    with pytest.raises(ValueError, match="exactly one"):
        CommandRequest(
            subject="u",
            target="t",
            protocol=Protocol.MYSQL,
            sql=classify_sql("SELECT 1"),
            session=SessionKind.SHELL,
        )
    with pytest.raises(ValueError, match="mysql"):
        CommandRequest(subject="u", target="t", protocol=Protocol.SSH, sql=classify_sql("SELECT 1"))


def test_case_insensitive_globs() -> None:
    assert sql("UPDATE PAYMENTS.C SET a = 1").action is Action.REVIEW
