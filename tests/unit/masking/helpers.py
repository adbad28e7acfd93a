"""Shared helpers for the masking tests: profiles and value generators."""

from __future__ import annotations

import random

from fixtures.masking import generate
from gateway.masking import BUILTIN_KINDS, DEFAULT_PROFILE, MaskingProfile, mask_text
from gateway.masking.engine import Engine
from gateway.masking.strategies import REDACT

# Every detector redacts: a masked value then shares no digits with the original.
REDACT_ALL = MaskingProfile(name="redact-all", strategies={k: REDACT for k in BUILTIN_KINDS})

GENERATORS = {
    "card": generate.card,
    "ssn": generate.ssn,
    "email": generate.email,
    "phone": generate.phone,
    "iban": generate.iban,
    "aws_access_key": generate.aws_access_key,
    "gcp_api_key": generate.gcp_api_key,
    "github_token": generate.github_token,
    "slack_token": generate.slack_token,
    "jwt": generate.jwt,
    "private_key": generate.private_key,
}

_ENGINE = Engine(DEFAULT_PROFILE)


def kinds(text: bytes | str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f.kind for f in _ENGINE.findings(data)]


def spans(text: bytes | str) -> list[tuple[int, int, str]]:
    data = text.encode() if isinstance(text, str) else text
    return [(f.value_start, f.value_end, f.kind) for f in _ENGINE.findings(data)]


def masked(text: bytes | str, profile: MaskingProfile = DEFAULT_PROFILE) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return mask_text(profile, data)


def value(kind: str, seed: int) -> str:
    return GENERATORS[kind](random.Random(seed))
