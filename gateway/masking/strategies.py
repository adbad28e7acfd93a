"""Strategies: what a detected value is replaced with.

* ``redact``: ``[REDACTED:kind]``, or a fixed ``fill``.
* ``partial``: every letter and digit but the last ``keep`` becomes ``*``, separators stay
  (``***-**-6789``); never more than half of the characters are kept, so a short value is not
  shown whole. E-mail addresses keep the first character and the domain (``j***@example.com``).
* ``hash``: ``hash:`` and the first 12 hex digits of HMAC-SHA256 under the profile's key, over a
  normalised value (digits and letters only, upper case, for numbers; lower case for e-mail),
  so ``4111-1111-...`` and ``4111 1111 ...`` hash alike and equal values still join.
* ``null``: SQL NULL for a row value; in a byte stream, where there is no NULL, it redacts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from gateway.masking.detectors import CARD, EMAIL, IBAN, PHONE, SSN


class Strategy(StrEnum):
    REDACT = "redact"
    PARTIAL = "partial"
    HASH = "hash"
    NULL = "null"


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategySpec:
    strategy: Strategy
    fill: str | None = None
    keep: int = 4


REDACT = StrategySpec(strategy=Strategy.REDACT)
PARTIAL = StrategySpec(strategy=Strategy.PARTIAL)

_NUMBER_KINDS = frozenset({CARD, SSN, PHONE, IBAN})
_ALNUM_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALNUM = frozenset(_ALNUM_BYTES)
_NON_ALNUM_BYTES = bytes(i for i in range(256) if i not in _ALNUM)
# Letters and digits -> "*", everything else unchanged: partial masking in one C call.
_STARS = bytes(0x2A if i in _ALNUM else i for i in range(256))


def redacted(spec: StrategySpec, kind: str) -> bytes:
    if spec.fill is not None:
        return spec.fill.encode()
    return b"[REDACTED:" + kind.encode() + b"]"


def _partial(value: bytes, keep: int) -> bytes:
    # Translations instead of a loop per byte: this runs once per masked value.
    total = len(value) - len(value.translate(None, _ALNUM_BYTES))
    keep = min(keep, total // 2)
    cut = len(value)
    while keep:  # walk back over the kept letters and digits (and separators among them)
        cut -= 1
        if value[cut] in _ALNUM:
            keep -= 1
    return value[:cut].translate(_STARS) + value[cut:]


def _partial_email(value: bytes) -> bytes:
    local, _, domain = value.rpartition(b"@")
    return local[:1] + b"***@" + domain


def hash_token(key: bytes, kind: str, value: bytes) -> bytes:
    if kind in _NUMBER_KINDS:
        value = value.translate(None, _NON_ALNUM_BYTES).upper()
    elif kind == EMAIL:
        value = value.lower()
    digest = hmac.new(key, value, hashlib.sha256).hexdigest()
    return b"hash:" + digest[:12].encode()


def render(spec: StrategySpec, kind: str, value: bytes, key: bytes) -> bytes | None:
    """The replacement for ``value``; None means SQL NULL."""
    if spec.strategy is Strategy.REDACT:
        return redacted(spec, kind)
    if spec.strategy is Strategy.PARTIAL:
        if kind == EMAIL and b"@" in value:
            return _partial_email(value)
        return _partial(value, spec.keep)
    if spec.strategy is Strategy.HASH:
        return hash_token(key, kind, value)
    return None


def render_stream(spec: StrategySpec, kind: str, value: bytes, key: bytes) -> bytes:
    """As :func:`render` where there is no NULL: a byte stream."""
    out = render(spec, kind, value, key)
    return redacted(spec, kind) if out is None else out
