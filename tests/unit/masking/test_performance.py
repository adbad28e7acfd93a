"""Adversarial input shapes: masking cost stays linear, whatever the bytes.

Each shape once cost a Python step per byte or per pre-filter hit, or a search repeated on
every feed (0.15 MB/s on a run of digits, 0.3 MB/s on repeated keywords). The limits are
CPU seconds with a wide margin (about 10x the figures measured on a loaded 2-core machine),
so a regression to per-byte work fails them while a busy machine does not.
"""

from __future__ import annotations

import base64
import random
import time

import pytest

from gateway.masking import DEFAULT_PROFILE, ColumnInfo, RowMasker, StreamMasker, mask_text
from gateway.masking.detectors import BUILTIN_FAMILIES, Views
from tests.unit.masking.helpers import GENERATORS

MB = 1_000_000


def _repeat(unit: bytes, size: int) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def _shapes() -> dict[str, bytes]:
    rng = random.Random(5)
    return {
        "base64": base64.b64encode(rng.randbytes(MB * 3 // 4)),
        "nul": bytes(MB),
        "digits": _repeat(b"7", MB),
        "random digits": bytes(rng.choice(b"0123456789") for _ in range(MB)),
        "at-dot noise": _repeat(b"@.", MB),
        "word characters": _repeat(b"a", MB),
        "minified json": _repeat(b'{"id":12345,"name":"w","tags":["a"],"price":9.99},', MB),
        "ssn keywords": _repeat(b"ssn ", MB),
        "jwt prefixes": _repeat(b"eyJ", MB),
        "iban prefixes": _repeat(b"DE89", MB),
        "pem prefixes": _repeat(b"-----BEGIN ", MB),
        "dashes": _repeat(b"-", MB),
        "plus signs": _repeat(b"+1", MB),
    }


# Shapes where every few bytes is a real candidate that only a checksum or a shape rule in
# Python can reject: linear, but about 1-2 MB/s; a smaller input keeps the test quick.
_DENSE = {
    "email-like": _repeat(b"a@b.", 200_000),
    "card-like groups": _repeat(b"5678 1234 ", 200_000),
}


def _cpu(action: object) -> float:
    assert callable(action)
    start = time.process_time()
    action()
    return time.process_time() - start


def _stream(data: bytes, chunk: int) -> bytes:
    masker = StreamMasker(DEFAULT_PROFILE)
    out = [masker.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    out.append(masker.flush())
    return b"".join(out)


@pytest.mark.parametrize("name", sorted(_shapes()))
def test_one_megabyte_of_each_shape_streams_in_well_under_a_second(name: str) -> None:
    data = _shapes()[name]
    assert _cpu(lambda: _stream(data, 4096)) < 1.0, name


@pytest.mark.parametrize("name", sorted(_DENSE))
def test_dense_candidates_stay_linear(name: str) -> None:
    data = _DENSE[name]
    assert _cpu(lambda: _stream(data, 4096)) < 2.0, name


@pytest.mark.parametrize("name", ["base64", "digits", "at-dot noise", "ssn keywords"])
def test_one_megabyte_value_in_a_row_in_well_under_a_second(name: str) -> None:
    columns = [
        ColumnInfo(schema="s", table="t", org_table="t", name=n, org_name=n, is_text=True)
        for n in ("a", "b")
    ]
    masker = RowMasker(DEFAULT_PROFILE, columns)
    data = _shapes()[name]
    assert _cpu(lambda: masker.mask_rows([[data, b"x"], [b"y", data]])) < 1.0, name


def test_a_long_held_jwt_candidate_fed_in_small_pieces_is_not_rescanned_quadratically() -> None:
    # "eyJ" and 8 KiB of base64url: held back as a possible JWT until it breaks off.
    data = (b"x eyJ" + _repeat(b"abcdefgh", 8100) + b" done\n") * 4
    assert _cpu(lambda: _stream(data, 16)) < 2.0


def test_values_inside_long_runs_are_found_whatever_the_chunking() -> None:
    # Region search doubles inside a run of hits; a value beyond it must still be found,
    # and found alike for every chunking.
    card = b"4111 1111 1111 1111"
    data = b"1" * 20_000 + b" " + card + b" " + b"2" * 9_000 + b" SSN: 123456789\n"
    whole = mask_text(DEFAULT_PROFILE, data)
    assert card not in whole and b"123456789" not in whole
    for chunk in (1000, 4096, 7777):
        assert _stream(data, chunk) == whole


def test_family_spans_cover_every_generated_value() -> None:
    # Region search trusts ``span``: no pattern may look further from a value's start.
    rng = random.Random(9)
    by_kind = {
        alt.kind: (family, alt) for family in BUILTIN_FAMILIES for alt in family.alternatives
    }
    for kind, generate in GENERATORS.items():
        if kind not in by_kind or kind == "private_key":
            continue  # PEM blocks: the BEGIN line is matched, the body is unbounded
        family, _ = by_kind[kind]
        for _ in range(50):
            text = b" " + generate(rng).encode() + b" "
            view: bytes = getattr(Views(text), family.match_view)
            matches = [
                m for alt in family.alternatives if (m := alt.pattern.match(view, 1)) is not None
            ]
            assert matches, (kind, text)
            assert max(m.end() for m in matches) + 2 - 1 <= family.span, (kind, text)
