"""Wire primitives: exact encodings at the lenenc boundaries, and truncation raises our error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.wire import PacketReader, int_fixed, int_lenenc, str_lenenc, str_null


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (250, b"\xfa"),
        (251, b"\xfc\xfb\x00"),
        (0xFFFF, b"\xfc\xff\xff"),
        (0x10000, b"\xfd\x00\x00\x01"),
        (0xFFFFFF, b"\xfd\xff\xff\xff"),
        (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
        (2**64 - 1, b"\xfe" + b"\xff" * 8),
    ],
)
def test_int_lenenc_boundaries(value: int, encoded: bytes) -> None:
    assert int_lenenc(value) == encoded
    r = PacketReader(encoded)
    assert r.int_lenenc() == value
    r.check_end()


@pytest.mark.parametrize("prefix", [b"\xfb", b"\xff"])
def test_lenenc_null_and_err_prefixes_are_not_integers(prefix: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        PacketReader(prefix).int_lenenc()


def test_null_marker_only_where_rows_allow_it() -> None:
    r = PacketReader(b"\xfb\x02hi")
    assert r.str_lenenc_or_null() is None
    assert r.str_lenenc_or_null() == b"hi"
    r.check_end()


@pytest.mark.parametrize(
    "data",
    [b"", b"\xfc\x01", b"\xfd\x01\x02", b"\xfe\x01", b"\x05abc"],
)
def test_truncated_lenenc_raises_remote_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        PacketReader(data).str_lenenc()


def test_fixed_ints_and_strings() -> None:
    r = PacketReader(b"\x01\x02\x00\x03\x00\x00\x04\x00\x00\x00abc\x00rest")
    assert (r.int1(), r.int2(), r.int3(), r.int4()) == (1, 2, 3, 4)
    assert r.str_null() == b"abc"
    assert r.str_eof() == b"rest"
    r.check_end()


def test_str_null_without_terminator_raises() -> None:
    with pytest.raises(RemoteProtocolError):
        PacketReader(b"abc").str_null()


def test_reader_respects_end_bound_on_memoryview() -> None:
    data = memoryview(b"xx\x03abcYY")
    r = PacketReader(data, 2, 6)
    assert r.str_lenenc() == b"abc"
    r.check_end()
    r2 = PacketReader(memoryview(b"ab\x00cd"), 0, 2)
    with pytest.raises(RemoteProtocolError):
        r2.str_null()  # the NUL lies outside the bound


def test_check_end_rejects_trailing_bytes() -> None:
    r = PacketReader(b"\x01\x02")
    r.int1()
    with pytest.raises(RemoteProtocolError):
        r.check_end()


def test_writers_refuse_what_cannot_be_encoded() -> None:
    with pytest.raises(LocalProtocolError):
        int_lenenc(-1)
    with pytest.raises(LocalProtocolError):
        int_fixed(256, 1)
    with pytest.raises(LocalProtocolError):
        str_null(b"a\x00b")


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_int_lenenc_roundtrip(value: int) -> None:
    r = PacketReader(int_lenenc(value))
    assert r.int_lenenc() == value
    r.check_end()


@given(st.binary(max_size=300))
def test_str_lenenc_roundtrip(value: bytes) -> None:
    r = PacketReader(str_lenenc(value))
    assert r.str_lenenc() == value
    r.check_end()
