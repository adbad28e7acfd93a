"""Profiles: the policy-file form, validation, defaults; strategies' outputs."""

from __future__ import annotations

import tomllib

import pytest

from gateway.masking import (
    BUILTIN_KINDS,
    DEFAULT_PROFILE,
    MaskingConfigError,
    MaskingProfile,
    Strategy,
    StrategySpec,
    mask_text,
    profile_from_dict,
)
from gateway.masking.strategies import render

POLICY = """
[masking.profiles.analyst]
detectors = ["card", "ssn", "email", "iban", "phone"]
strict = false
hash_key_env = "WARDGATE_TEST_MASKING_KEY"

[masking.profiles.analyst.strategies]
email = "hash"
card = { strategy = "partial", keep = 2 }
phone = { strategy = "redact", fill = "<phone>" }

[[masking.profiles.analyst.columns]]
match = "customers.ssn"
strategy = "partial"
kind = "ssn"

[[masking.profiles.analyst.columns]]
match = "payments.*"
strategy = "null"

[[masking.profiles.analyst.patterns]]
name = "employee_id"
regex = "EMP-[0-9]{6}"
strategy = "redact"
max_length = 10
"""


def test_policy_file_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDGATE_TEST_MASKING_KEY", "s3cret")
    table = tomllib.loads(POLICY)["masking"]["profiles"]["analyst"]
    profile = profile_from_dict(table, name="analyst")
    assert profile.detectors == frozenset({"card", "ssn", "email", "iban", "phone"})
    assert not profile.strict
    assert profile.hash_key == b"s3cret"
    assert profile.strategy_for("email") == StrategySpec(strategy=Strategy.HASH)
    assert profile.strategy_for("card") == StrategySpec(strategy=Strategy.PARTIAL, keep=2)
    assert profile.strategy_for("jwt") == StrategySpec(strategy=Strategy.REDACT)  # default kept
    assert [r.pattern for r in profile.column_rules] == ["customers.ssn", "payments.*"]
    assert profile.custom_patterns[0].max_length == 10
    data = profile.to_dict()
    assert "hash_key" not in data and data["hash_key_env"] == "WARDGATE_TEST_MASKING_KEY"
    assert profile_from_dict(data, name="analyst") == profile


def test_default_profile() -> None:
    assert DEFAULT_PROFILE.detectors == frozenset(BUILTIN_KINDS)
    assert DEFAULT_PROFILE.strict
    assert DEFAULT_PROFILE.column_rules == ()
    for kind in ("card", "ssn", "phone", "iban", "email"):
        assert DEFAULT_PROFILE.strategy_for(kind).strategy is Strategy.PARTIAL
    for kind in (
        "aws_access_key",
        "aws_secret_key",
        "gcp_api_key",
        "github_token",
        "slack_token",
        "jwt",
        "private_key",
    ):
        assert DEFAULT_PROFILE.strategy_for(kind).strategy is Strategy.REDACT
    assert profile_from_dict({}) == DEFAULT_PROFILE
    assert profile_from_dict(DEFAULT_PROFILE.to_dict()) == DEFAULT_PROFILE


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"colour": "red"}, "unknown keys"),
        ({"detectors": ["card", "dna"]}, "unknown detectors"),
        ({"strategies": {"card": "shred"}}, "unknown strategy"),
        ({"strategies": {"card": {"strategy": "partial", "keep": "4"}}}, "keep must be an integer"),
        ({"strategies": {"private_key": "partial"}}, "private_key"),
        ({"strategies": {"email": "hash"}}, "hash_key"),
        ({"hash_key_env": "WARDGATE_TEST_UNSET_VARIABLE"}, "not set"),
        ({"columns": [{"strategy": "redact"}]}, "match must be"),
        ({"patterns": [{"name": "x", "regex": "("}]}, "pattern 'x'"),
        ({"patterns": [{"name": "x", "regex": "a*"}]}, "empty string"),
        ({"patterns": [{"name": "card", "regex": "a"}]}, "custom pattern name"),
        ({"strict": "yes"}, "strict must be a boolean"),
        ({"columns": [{"match": "a..b"}]}, "expected column"),
        ({"columns": [{"match": "s.t.c.x"}]}, "expected column"),
    ],
)
def test_bad_profiles_are_rejected(table: dict[str, object], message: str) -> None:
    with pytest.raises(MaskingConfigError, match=message):
        profile_from_dict(table)


def test_strategies_render() -> None:
    partial = StrategySpec(strategy=Strategy.PARTIAL)
    assert render(partial, "ssn", b"123-45-6789", b"") == b"***-**-6789"
    assert render(partial, "phone", b"+44 20 7946 0958", b"") == b"+** ** **** 0958"
    assert render(partial, "email", b"jane@example.com", b"") == b"j***@example.com"
    assert render(partial, "card", b"12345", b"") == b"***45"  # never more than half shown
    fill = StrategySpec(strategy=Strategy.REDACT, fill="####")
    assert render(fill, "card", b"4111", b"") == b"####"
    assert render(StrategySpec(strategy=Strategy.NULL), "card", b"4111", b"") is None
    hashed = StrategySpec(strategy=Strategy.HASH)
    assert render(hashed, "email", b"Jane@Example.com", b"k") == render(
        hashed, "email", b"jane@example.com", b"k"
    )


def test_profile_repr_hides_the_hash_key() -> None:
    profile = MaskingProfile(
        strategies={"email": StrategySpec(strategy=Strategy.HASH)}, hash_key=b"topsecret"
    )
    assert "topsecret" not in repr(profile)


def test_disabled_detectors_do_not_run() -> None:
    profile = profile_from_dict({"detectors": ["email"]})
    assert (
        mask_text(profile, b"4111111111111111 a@example.com")
        == b"4111111111111111 a***@example.com"
    )
