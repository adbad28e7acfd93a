"""The row masker: fast path, detectors on text columns, column rules, errors, counters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.masking import (
    DEFAULT_PROFILE,
    ColumnInfo,
    ColumnRule,
    CustomPattern,
    MaskingError,
    MaskingProfile,
    RowMasker,
    StrategySpec,
)
from gateway.masking.engine import Engine
from gateway.masking.strategies import Strategy
from tests.unit.masking.helpers import GENERATORS, REDACT_ALL, value


def col(
    name: str,
    *,
    table: str = "customers",
    is_text: bool = True,
    org_name: str = "",
    org_table: str = "",
) -> ColumnInfo:
    return ColumnInfo(
        schema="shop",
        table=table,
        org_table=org_table or table,
        name=name,
        org_name=org_name or name,
        is_text=is_text,
    )


COLUMNS = [
    col("id", is_text=False),
    col("name"),
    col("contact"),
    col("amount", is_text=False),
    col("note"),
]


def test_clean_row_returns_none() -> None:
    masker = RowMasker(DEFAULT_PROFILE, COLUMNS)
    assert masker.mask_row([b"1", b"Alice Smith", None, b"12.50", b"called 2024-01-02"]) is None
    assert masker.counts == {} and masker.column_counts == {}


def test_detected_values_are_masked_and_counted() -> None:
    masker = RowMasker(DEFAULT_PROFILE, COLUMNS)
    row = [b"1", b"Alice", b"alice@example.com", b"4111111111111111", b"card 4111 1111 1111 1111"]
    out = masker.mask_row(row)
    assert out == [
        b"1",
        b"Alice",
        b"a***@example.com",
        b"4111111111111111",
        b"card **** **** **** 1111",
    ]
    assert masker.counts == {"email": 1, "card": 1}  # the numeric column is not scanned
    assert masker.column_counts == {"customers.contact": 1, "customers.note": 1}
    assert row[2] == b"alice@example.com"  # input untouched


def test_column_rules_by_glob_and_original_names() -> None:
    profile = MaskingProfile(
        column_rules=(
            ColumnRule(
                pattern="customers.ssn",
                strategy=StrategySpec(strategy=Strategy.PARTIAL),
                kind="ssn",
            ),
            ColumnRule(pattern="*.card_number", strategy=StrategySpec(strategy=Strategy.REDACT)),
            ColumnRule(pattern="payments.*", strategy=StrategySpec(strategy=Strategy.NULL)),
        )
    )
    columns = [
        col("x", org_name="SSN", table="c", org_table="Customers"),  # alias of customers.ssn
        col("card_number", table="orders"),
        col("total", table="payments", is_text=False),
        col("memo", table="payments"),
        col("name"),
    ]
    masker = RowMasker(profile, columns)
    out = masker.mask_row([b"123456789", b"not even a number", b"99.50", b"hello", b"Bob"])
    assert out == [b"*****6789", b"[REDACTED:column]", None, None, b"Bob"]
    assert masker.counts == {"ssn": 1, "column": 3}
    assert masker.column_counts == {
        "Customers.SSN": 1,
        "orders.card_number": 1,
        "payments.total": 1,
        "payments.memo": 1,
    }


def test_rule_on_non_text_column_yields_null() -> None:
    profile = MaskingProfile(
        column_rules=(
            ColumnRule(pattern="amount", strategy=StrategySpec(strategy=Strategy.REDACT)),
        )
    )
    assert RowMasker(profile, COLUMNS).mask_row([b"1", b"a", None, b"12.50", None]) == [
        b"1",
        b"a",
        None,
        None,
        None,
    ]


def test_null_strategy_for_a_detector_nulls_the_value() -> None:
    profile = MaskingProfile(strategies={"email": StrategySpec(strategy=Strategy.NULL)})
    out = RowMasker(profile, COLUMNS).mask_row([b"1", b"a", b"write to a@example.com", b"0", None])
    assert out == [b"1", b"a", None, b"0", None]


def test_hash_strategy_joins_equal_values_across_formats() -> None:
    profile = MaskingProfile(
        strategies={"card": StrategySpec(strategy=Strategy.HASH)}, hash_key=b"k1"
    )
    masker = RowMasker(profile, COLUMNS)
    a = masker.mask_row([b"1", b"4111 1111 1111 1111", None, b"0", None])
    b = masker.mask_row([b"2", b"4111-1111-1111-1111", None, b"0", None])
    assert (
        a is not None
        and b is not None
        and a[1] == b[1]
        and a[1].startswith(b"hash:")
        and len(a[1]) == 17
    )
    other = RowMasker(MaskingProfile(strategies=profile.strategies, hash_key=b"k2"), COLUMNS)
    c = other.mask_row([b"1", b"4111 1111 1111 1111", None, b"0", None])
    assert c is not None and c[1] != a[1]


def test_invalid_utf8_is_masked_without_crashing() -> None:
    masker = RowMasker(DEFAULT_PROFILE, COLUMNS)
    out = masker.mask_row(
        [b"1", b"\xff\xfe4111111111111111\x80", b"\xc3(", b"0", b"\xed\xa0\x80x@example.com"]
    )
    assert out == [
        b"1",
        b"\xff\xfe************1111\x80",
        b"\xc3(",
        b"0",
        b"\xed\xa0\x80x***@example.com",
    ]


def test_nul_inside_a_value_is_handled() -> None:
    masker = RowMasker(DEFAULT_PROFILE, COLUMNS)
    out = masker.mask_row([b"1", b"a\x00b", b"4111111111111111\x00", b"0", None])
    assert out == [b"1", b"a\x00b", b"************1111\x00", b"0", None]


def test_custom_patterns_in_rows() -> None:
    profile = MaskingProfile(
        custom_patterns=(CustomPattern(name="employee_id", regex="EMP-[0-9]{6}"),)
    )
    out = RowMasker(profile, COLUMNS).mask_row([b"1", b"EMP-123456", b"x", b"0", b"EMP-12"])
    assert out == [b"1", b"[REDACTED:employee_id]", b"x", b"0", b"EMP-12"]


def test_mask_rows_equals_mask_row() -> None:
    rng = random.Random(5)
    rows = []
    for i in range(200):
        kind = rng.choice(sorted(GENERATORS))
        rows.append(
            [str(i).encode(), b"Name", value(kind, i).encode() if i % 3 else None, b"1.0", b"note"]
        )
    one = RowMasker(DEFAULT_PROFILE, COLUMNS)
    many = RowMasker(DEFAULT_PROFILE, COLUMNS)
    assert many.mask_rows(rows) == [one.mask_row(r) for r in rows]
    assert many.counts == one.counts and many.column_counts == one.column_counts


def test_wrong_row_width_is_an_error() -> None:
    with pytest.raises(MaskingError):
        RowMasker(DEFAULT_PROFILE, COLUMNS).mask_row([b"1"])


def test_strict_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Engine, buf: bytes) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Engine, "findings", boom)
    with pytest.raises(MaskingError):
        RowMasker(DEFAULT_PROFILE, COLUMNS).mask_row([b"1", b"a@example.com", None, b"0", None])


def test_best_effort_failure_redacts_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Engine, buf: bytes) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Engine, "findings", boom)
    masker = RowMasker(MaskingProfile(strict=False), COLUMNS)
    out = masker.mask_row([b"1", b"a@example.com", None, b"0", b"x"])
    assert out == [None, b"[REDACTED:error]", None, None, b"[REDACTED:error]"]
    assert masker.counts == {"error": 1}


@settings(max_examples=150, deadline=None)
@given(
    rng=st.randoms(use_true_random=False),
    noise=st.lists(st.binary(max_size=20), min_size=3, max_size=3),
)
def test_detected_values_never_leave_unmasked(rng: random.Random, noise: list[bytes]) -> None:
    kind = rng.choice(sorted(GENERATORS))
    secret = GENERATORS[kind](rng).encode()
    row = [b"7", noise[0] + b" " + secret + b" " + noise[1], noise[2], b"1", secret]
    out = RowMasker(REDACT_ALL, COLUMNS).mask_row(row)
    assert out is not None
    assert secret not in out[1] and secret not in out[4]  # type: ignore[operator]
    assert out[4] == f"[REDACTED:{kind}]".encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=5, max_size=5))
def test_arbitrary_values_never_crash(values: list[bytes | None]) -> None:
    RowMasker(DEFAULT_PROFILE, COLUMNS).mask_row(values)
