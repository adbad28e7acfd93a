"""Checksums and range rules, independent of any pattern."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fixtures.masking.generate import card_digits, iban_compact, luhn_complete
from gateway.masking.validators import card_ok, iban_ok, jwt_header_ok, luhn_ok, ssn_ok


def test_luhn_known_numbers() -> None:
    assert luhn_ok(b"4111111111111111")
    assert luhn_ok(b"79927398713")
    assert not luhn_ok(b"4111111111111112")
    assert not luhn_ok(b"79927398710")


@given(st.randoms(use_true_random=False), st.integers(min_value=13, max_value=19))
def test_luhn_completion_always_valid_and_one_digit_change_breaks_it(
    rng: random.Random, n: int
) -> None:
    number = luhn_complete("4", n, rng).encode()
    assert luhn_ok(number)
    i = rng.randrange(n)
    changed = number[:i] + bytes([48 + (number[i] - 48 + rng.randint(1, 9)) % 10]) + number[i + 1 :]
    assert not luhn_ok(changed)


@given(st.randoms(use_true_random=False))
def test_generated_cards_are_cards(rng: random.Random) -> None:
    assert card_ok(card_digits(rng).encode())


def test_card_rejects_unknown_ranges_and_lengths() -> None:
    assert card_ok(b"4111111111111111")
    assert card_ok(b"378282246310005")  # Amex, 15
    assert not card_ok(b"1111111111111117")  # no brand starts with 1
    assert not card_ok(b"37828224631000")  # Amex must have 15 digits
    assert not card_ok(b"411111111111")  # too short


def test_ssn_reserved_ranges() -> None:
    assert ssn_ok(b"123", b"45", b"6789")
    for area in (b"000", b"666", b"900", b"999"):
        assert not ssn_ok(area, b"45", b"6789")
    assert not ssn_ok(b"123", b"00", b"6789")
    assert not ssn_ok(b"123", b"45", b"0000")


def test_iban_known_and_tampered() -> None:
    assert iban_ok(b"DE89370400440532013000")
    assert iban_ok(b"GB82WEST12345698765432")
    assert not iban_ok(b"DE89370400440532013001")
    assert not iban_ok(b"DE8937040044053201300")  # wrong length for DE
    assert not iban_ok(b"ZZ89370400440532013000")  # no such country


@given(st.randoms(use_true_random=False))
def test_iban_generator_agrees_with_validator(rng: random.Random) -> None:
    assert iban_ok(iban_compact(rng).encode())
    assert not iban_ok(iban_compact(rng, valid=False).encode())


def test_jwt_header() -> None:
    assert jwt_header_ok(b"eyJhbGciOiJIUzI1NiJ9")  # {"alg":"HS256"}
    assert not jwt_header_ok(b"eyJ0eXAiOiJKV1QifQ")  # {"typ":"JWT"}: no alg
    assert not jwt_header_ok(b"eyJ!!!")
    assert not jwt_header_ok(b"bm90IGpzb24")  # "not json"
