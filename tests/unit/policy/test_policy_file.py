"""Policy files: loading, validation errors with their line, dict round trip, diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.policy import (
    Action,
    Policy,
    PolicyError,
    Protocol,
    SessionKind,
    diff_policies,
    load_policy,
    parse_duration,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "policies"

BASE = """\
version = 1

[policy]
name = "t"
default = "deny"
unknown = "review"

[policy.review]
approver_groups = ["oncall"]
expiry = "10m"

[[rule]]
name = "reads"
action = "allow"
statements = ["SELECT", "show"]
tables = ["shop.*"]
masking_profile = "pii"

[[rule]]
name = "hold"
action = "review"
statements = ["UPDATE"]
approver_groups = ["dba", "oncall"]
quorum = 2
expiry = "1h30m"

[masking.profiles.pii]
detectors = ["card", "ssn", "email"]
"""


def test_load_base() -> None:
    policy = load_policy(BASE)
    assert policy.default is Action.DENY and policy.unknown is Action.REVIEW
    assert policy.review is not None and policy.review.expiry_seconds == 600
    reads = policy.rule("reads")
    assert reads.statements == ("SELECT", "SHOW") and reads.masking_profile == "pii"
    hold = policy.rule("hold")
    assert hold.review is not None
    assert (hold.review.approver_groups, hold.review.quorum, hold.review.expiry_seconds) == (
        ("dba", "oncall"),
        2,
        5400,
    )


@pytest.mark.parametrize("name", ["demo.toml", "evasion.toml"])
def test_fixture_policies_load_and_round_trip(name: str) -> None:
    policy = load_policy((FIXTURES / name).read_text())
    data = json.loads(json.dumps(policy.to_dict()))
    assert Policy.from_dict(data) == policy
    assert diff_policies(policy, Policy.from_dict(data)).empty


def test_demo_policy_has_what_the_demo_needs() -> None:
    policy = load_policy((FIXTURES / "demo.toml").read_text())
    assert policy.masking_profile and policy.unknown is Action.REVIEW
    assert any(r.action is Action.DENY and "DDL:DROP" in r.statements for r in policy.rules)
    hold = next(r for r in policy.rules if r.tables == ("payments.*",))
    assert (
        hold.action is Action.REVIEW and hold.review and hold.review.approver_groups == ("oncall",)
    )


@pytest.mark.parametrize(
    ("patch", "line", "fragment"),
    [
        (('unknown = "review"', 'unknown = "allow"'), 6, "never allow"),
        (('default = "deny"', 'default = "maybe"'), 5, "'maybe' is not one of"),
        (('action = "review"', 'action = "hold"'), 21, "rule 'hold', field 'action'"),
        (('statements = ["UPDATE"]', 'statements = ["UPSERT"]'), 22, "unknown statement kind"),
        (("quorum = 2", "quorum = 0"), 24, "quorum"),
        (('expiry = "1h30m"', 'expiry = "soon"'), 25, "duration"),
        (
            ('masking_profile = "pii"', 'masking_profle = "pii"'),
            17,
            "unknown field(s) masking_profle",
        ),
        (('name = "hold"', 'name = "reads"'), 20, "duplicate rule name"),
        (
            ('statements = ["SELECT", "show"]', 'statements = ["SELECT", "UNKNOWN"]'),
            15,
            "never allowed",
        ),
        (('tables = ["shop.*"]', 'tables = ["shop.*"]\nprograms = ["ls"]'), 12, "not both"),
        (("[policy.review]", "[policy.reviews]"), 8, "review"),
        (("version = 1", "version = 2"), 1, "unsupported policy version"),
        (('name = "t"', 'name = "t'), 4, "not valid TOML"),
    ],
)
def test_errors_name_the_line_and_field(patch: tuple[str, str], line: int, fragment: str) -> None:
    text = BASE.replace(*patch)
    assert text != BASE
    with pytest.raises(PolicyError) as err:
        load_policy(text)
    assert fragment in str(err.value)
    assert err.value.line == line, str(err.value)


def test_review_without_any_approvers_is_rejected() -> None:
    text = BASE.replace('[policy.review]\napprover_groups = ["oncall"]\nexpiry = "10m"\n', "")
    text = text.replace('unknown = "review"', 'unknown = "deny"')
    text = text.replace('approver_groups = ["dba", "oncall"]\n', "").replace("quorum = 2\n", "")
    with pytest.raises(PolicyError, match="approver"):
        load_policy(text)


def test_review_rule_inherits_policy_approvers() -> None:
    text = BASE.replace('approver_groups = ["dba", "oncall"]\nquorum = 2\nexpiry = "1h30m"\n', "")
    policy = load_policy(text)
    assert policy.rule("hold").review is None  # decided with [policy.review] at decision time


def test_allow_rule_cannot_rest_on_a_regex_alone() -> None:
    text = BASE + '\n[[rule]]\nname = "re"\naction = "allow"\nmatch_regex = "^SELECT"\n'
    with pytest.raises(PolicyError, match="secondary"):
        load_policy(text)
    ok = BASE + '\n[[rule]]\nname = "re"\naction = "deny"\nmatch_regex = "(?i)drop"\n'
    assert load_policy(ok).rule("re").match_regex == "(?i)drop"
    bad = BASE + '\n[[rule]]\nname = "re"\naction = "deny"\nmatch_regex = "("\n'
    with pytest.raises(PolicyError, match="regular expression"):
        load_policy(bad)


def test_ssh_fields() -> None:
    text = BASE + (
        '\n[[rule]]\nname = "ssh"\naction = "allow"\nprotocol = "ssh"\nprograms = ["ls", "/usr/bin/*"]\n'
        'args = ["-*"]\nfile_writes = true\n'
        '\n[[rule]]\nname = "fwd"\naction = "deny"\nsessions = ["port_forward", "agent_forward"]\n'
    )
    policy = load_policy(text)
    assert policy.rule("ssh").protocol is Protocol.SSH and policy.rule("ssh").file_writes
    assert policy.rule("fwd").sessions == (SessionKind.PORT_FORWARD, SessionKind.AGENT_FORWARD)
    with pytest.raises(PolicyError, match="sessions"):
        load_policy(text.replace('"agent_forward"]', '"x11"]'))


@pytest.mark.parametrize(
    ("value", "seconds"), [("15m", 900), ("90s", 90), ("1h30m", 5400), ("2d", 172800), (60, 60)]
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "15", "m", "1x", 0, -5, True, "0m"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(PolicyError):
        parse_duration(value)


def test_diff() -> None:
    old = load_policy(BASE)
    new_text = (
        BASE.replace('default = "deny"', 'default = "review"')
        .replace("quorum = 2", "quorum = 3")
        .replace('name = "reads"', 'name = "reads2"')
    )
    new_text += '\n[[rule]]\nname = "extra"\naction = "deny"\nstatements = ["DDL"]\n'
    diff = diff_policies(old, load_policy(new_text))
    assert diff.added == ("reads2", "extra")
    assert diff.removed == ("reads",)
    assert [c.name for c in diff.changed] == ["hold"]
    assert [(f.field, f.old, f.new) for f in diff.changed[0].fields] == [("quorum", 2, 3)]
    assert [(f.field, f.old, f.new) for f in diff.settings] == [("default", "deny", "review")]
    text = str(diff)
    assert "+ rule extra" in text and "- rule reads" in text and "quorum: 2 -> 3" in text
    assert json.loads(json.dumps(diff.to_dict()))["added"] == ["reads2", "extra"]


def test_diff_reports_reordering_and_nothing_else() -> None:
    a = load_policy(BASE)
    b = Policy.from_dict({**a.to_dict(), "rule": list(reversed(a.to_dict()["rule"]))})
    diff = diff_policies(a, b)
    assert diff.reordered and not diff.changed and not diff.added
    assert str(diff_policies(a, a)) == "no changes"
