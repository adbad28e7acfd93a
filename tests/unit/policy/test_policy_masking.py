"""Masking profiles defined in the policy file and named by rules."""

from __future__ import annotations

import json

import pytest

from gateway.masking import Strategy
from gateway.policy import Policy, PolicyError, load_policy

BASE = """
[policy]
default = "deny"
unknown = "deny"

[[rule]]
name = "reads"
action = "allow"
statements = ["SELECT"]
masking_profile = "analyst"

[masking.profiles.analyst]
detectors = ["card", "email"]

[masking.profiles.analyst.strategies]
email = "redact"
"""


def test_profiles_load_and_survive_the_event_round_trip() -> None:
    policy = load_policy(BASE)
    analyst = policy.masking_profiles["analyst"]
    assert analyst.strategy_for("email").strategy is Strategy.REDACT
    again = Policy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert again.masking_profiles["analyst"].to_dict() == analyst.to_dict()


def test_a_rule_naming_an_undefined_profile_is_refused() -> None:
    with pytest.raises(PolicyError, match="masking_profile 'nope' is not defined"):
        load_policy(BASE.replace('masking_profile = "analyst"', 'masking_profile = "nope"'))


def test_builtin_names_are_accepted_and_cannot_be_redefined() -> None:
    load_policy(BASE.replace('masking_profile = "analyst"', 'masking_profile = "none"'))
    with pytest.raises(PolicyError, match="built in"):
        load_policy(BASE + "\n[masking.profiles.default]\n")


def test_a_bad_profile_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="masking"):
        load_policy(BASE + '\n[masking.profiles.broken]\ndetectors = ["no-such-detector"]\n')
