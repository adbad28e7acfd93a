"""Checks that turn a pattern match into a detection: Luhn, mod-97, SSN ranges, JWT headers.

Every function here takes the matched bytes and answers yes or no; none of them raises on
odd input (invalid UTF-8, bad base64, non-JSON headers all simply answer False).
"""

from __future__ import annotations

import base64
import binascii
import json

# Card brands by IIN prefix ranges and the lengths each brand issues. A number that passes
# Luhn but starts with 0, 1, 7, 8 or 9 is far more often an order or account number than a card.
_CARD_RANGES: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    # (prefix length, low, high, lengths)
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (4, 2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
    (2, 34, 34, frozenset({15})),  # American Express
    (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (3, 644, 649, frozenset({16, 17, 18, 19})),
    (2, 65, 65, frozenset({16, 17, 18, 19})),
    (2, 62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (4, 3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (3, 300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (2, 36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (2, 38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    (2, 50, 50, frozenset({13, 14, 15, 16, 17, 18, 19})),  # Maestro
    (2, 56, 69, frozenset({13, 14, 15, 16, 17, 18, 19})),
)

# IBAN lengths per country (ISO 13616 registry). Checking the length rejects most random
# "two letters, two digits" strings before the mod-97 arithmetic.
IBAN_LENGTHS: dict[bytes, int] = {
    b"AD": 24, b"AE": 23, b"AL": 28, b"AT": 20, b"AZ": 28, b"BA": 20, b"BE": 16, b"BG": 22,
    b"BH": 22, b"BR": 29, b"BY": 28, b"CH": 21, b"CR": 22, b"CY": 28, b"CZ": 24, b"DE": 22,
    b"DK": 18, b"DO": 28, b"EE": 20, b"EG": 29, b"ES": 24, b"FI": 18, b"FO": 18, b"FR": 27,
    b"GB": 22, b"GE": 22, b"GI": 23, b"GL": 18, b"GR": 27, b"GT": 28, b"HR": 21, b"HU": 28,
    b"IE": 22, b"IL": 23, b"IQ": 23, b"IS": 26, b"IT": 27, b"JO": 30, b"KW": 30, b"KZ": 20,
    b"LB": 28, b"LC": 32, b"LI": 21, b"LT": 20, b"LU": 20, b"LV": 21, b"LY": 25, b"MC": 27,
    b"MD": 24, b"ME": 22, b"MK": 19, b"MR": 27, b"MT": 31, b"MU": 30, b"NL": 18, b"NO": 15,
    b"PK": 24, b"PL": 28, b"PS": 29, b"PT": 25, b"QA": 29, b"RO": 24, b"RS": 22, b"SA": 24,
    b"SC": 31, b"SD": 18, b"SE": 24, b"SI": 19, b"SK": 24, b"SM": 27, b"ST": 25, b"SV": 28,
    b"TL": 23, b"TN": 24, b"TR": 26, b"UA": 29, b"VA": 22, b"VG": 24, b"XK": 20,
}  # fmt: skip


# Luhn: every second digit from the right is doubled (digit sums of 0, 2, ..., 18).
_DOUBLED = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))
_PREFIX_DIVISOR = {1: 1000, 2: 100, 3: 10, 4: 1}


def luhn_ok(digits: bytes) -> bool:
    """The Luhn checksum over ASCII digits (no separators)."""
    rev = digits[::-1]
    kept = rev[0::2]
    total = sum(kept) - 48 * len(kept) + sum(rev[1::2].translate(_DOUBLED))
    return total % 10 == 0


def card_ok(digits: bytes) -> bool:
    """A plausible payment card: known IIN range, a length that brand issues, Luhn valid."""
    n = len(digits)
    if n < 13 or n > 19:
        return False
    first4 = int(digits[:4])
    for plen, low, high, lengths in _CARD_RANGES:
        if low <= first4 // _PREFIX_DIVISOR[plen] <= high and n in lengths:
            return luhn_ok(digits)
    return False


def ssn_ok(area: bytes, group: bytes, serial: bytes) -> bool:
    """SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    a = int(area)
    return a not in {0, 666} and a < 900 and group != b"00" and serial != b"0000"


def iban_ok(compact: bytes) -> bool:
    """Country length and the ISO 7064 mod-97 check over an IBAN without spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = 0
    for ch in rearranged:
        if 48 <= ch <= 57:
            number = number * 10 + (ch - 48)
        elif 65 <= ch <= 90:
            number = number * 100 + (ch - 55)
        else:
            return False
    return number % 97 == 1


def jwt_header_ok(segment: bytes) -> bool:
    """The first JWT segment decodes (base64url) to a JSON object naming an "alg"."""
    try:
        raw = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


def digit_count(value: bytes) -> int:
    return len(value) - len(value.translate(None, b"0123456789"))
