"""Result rows and binary-protocol values.

Text rows (COM_QUERY) are a run of lenenc strings, 0xFB meaning NULL. Binary rows (prepared
statements) start with 0x00, then a NULL bitmap whose first two bits are unused ("offset 2"),
then each non-NULL value in the encoding its column type prescribes. COM_STMT_EXECUTE parameters
share the value encoding (with a NULL bitmap at offset 0), so both live here.

Rows are decoded only when something must read or rewrite them (masking): the relay passes
other rows through as bytes. Decoding then re-encoding an unmodified row gives back the same
bytes; the temporal values remember their wire length for that reason. Strings, DECIMAL, BIT,
JSON, ENUM, SET and GEOMETRY values stay ``bytes`` (the masker rewrites bytes; DECIMAL text
would not survive a round trip through ``decimal.Decimal`` unchanged).
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.mysql.constants import NULL_LENENC, OK_HEADER, ColumnFlag, ColumnType
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError
from gateway.mysql.packets import ColumnDefinition41
from gateway.mysql.wire import Buffer, PacketReader, int_lenenc, str_lenenc

BINARY_ROW_BITMAP_OFFSET = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class MySQLDateTime:
    """DATE / DATETIME / TIMESTAMP in the binary protocol (zero dates are legal, hence no
    ``datetime.datetime``)."""

    year: int = 0
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0
    length: int | None = None
    """Wire length (0, 4, 7 or 11); None picks the shortest that holds the value."""

    def wire_length(self) -> int:
        if self.length is not None:
            return self.length
        if self.microsecond:
            return 11
        if self.hour or self.minute or self.second:
            return 7
        if self.year or self.month or self.day:
            return 4
        return 0

    def to_python(self) -> datetime.datetime | None:
        """The value as ``datetime.datetime``; None for zero/invalid dates."""
        try:
            return datetime.datetime(
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
                self.microsecond,
            )
        except ValueError:
            return None


@dataclass(frozen=True, slots=True, kw_only=True)
class MySQLTime:
    """TIME in the binary protocol: a signed duration."""

    negative: bool = False
    days: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0
    length: int | None = None
    """Wire length (0, 8 or 12); None picks the shortest."""

    def wire_length(self) -> int:
        if self.length is not None:
            return self.length
        if self.microsecond:
            return 12
        if self.negative or self.days or self.hour or self.minute or self.second:
            return 8
        return 0

    def to_python(self) -> datetime.timedelta:
        delta = datetime.timedelta(
            days=self.days,
            hours=self.hour,
            minutes=self.minute,
            seconds=self.second,
            microseconds=self.microsecond,
        )
        return -delta if self.negative else delta


BinaryValue = int | float | bytes | MySQLDateTime | MySQLTime | None
BinaryColumn = tuple[int, bool]
"""(column type, unsigned) - what decoding a binary value needs to know about its column."""

_INT_SIZE: dict[int, int] = {
    ColumnType.MYSQL_TYPE_TINY: 1,
    ColumnType.MYSQL_TYPE_SHORT: 2,
    ColumnType.MYSQL_TYPE_YEAR: 2,
    ColumnType.MYSQL_TYPE_INT24: 4,
    ColumnType.MYSQL_TYPE_LONG: 4,
    ColumnType.MYSQL_TYPE_LONGLONG: 8,
}
_DATETIME_TYPES = frozenset(
    {
        ColumnType.MYSQL_TYPE_DATE,
        ColumnType.MYSQL_TYPE_DATETIME,
        ColumnType.MYSQL_TYPE_TIMESTAMP,
        ColumnType.MYSQL_TYPE_NEWDATE,
    }
)


def binary_columns(columns: Sequence[ColumnDefinition41]) -> tuple[BinaryColumn, ...]:
    return tuple((int(c.column_type), bool(c.flags & ColumnFlag.UNSIGNED_FLAG)) for c in columns)


def decode_value(r: PacketReader, column_type: int, unsigned: bool) -> BinaryValue:
    """One non-NULL binary-protocol value of ``column_type`` at the reader's position."""
    size = _INT_SIZE.get(column_type)
    if size is not None:
        return r.int_fixed(size) if unsigned else r.signed(size)
    if column_type == ColumnType.MYSQL_TYPE_DOUBLE:
        return r.float8()
    if column_type == ColumnType.MYSQL_TYPE_FLOAT:
        return r.float4()
    if column_type in _DATETIME_TYPES:
        return _decode_datetime(r)
    if column_type == ColumnType.MYSQL_TYPE_TIME:
        return _decode_time(r)
    if column_type == ColumnType.MYSQL_TYPE_NULL:
        return None
    return r.str_lenenc()


def _decode_datetime(r: PacketReader) -> MySQLDateTime:
    length = r.int1()
    if length not in (0, 4, 7, 11):
        raise RemoteProtocolError(f"DATETIME value of length {length}")
    year = month = day = hour = minute = second = micro = 0
    if length >= 4:
        year, month, day = r.int2(), r.int1(), r.int1()
    if length >= 7:
        hour, minute, second = r.int1(), r.int1(), r.int1()
    if length == 11:
        micro = r.int4()
    return MySQLDateTime(
        year=year,
        month=month,
        day=day,
        hour=hour,
        minute=minute,
        second=second,
        microsecond=micro,
        length=length,
    )


def _decode_time(r: PacketReader) -> MySQLTime:
    length = r.int1()
    if length not in (0, 8, 12):
        raise RemoteProtocolError(f"TIME value of length {length}")
    negative = False
    days = hour = minute = second = micro = 0
    if length >= 8:
        negative = bool(r.int1())
        days, hour, minute, second = r.int4(), r.int1(), r.int1(), r.int1()
    if length == 12:
        micro = r.int4()
    return MySQLTime(
        negative=negative,
        days=days,
        hour=hour,
        minute=minute,
        second=second,
        microsecond=micro,
        length=length,
    )


def encode_value(value: BinaryValue, column_type: int, unsigned: bool) -> bytes:
    """Binary-protocol encoding of a non-NULL ``value``."""
    try:
        size = _INT_SIZE.get(column_type)
        if size is not None:
            if not isinstance(value, int):
                raise LocalProtocolError(f"integer column given {type(value).__name__}")
            return value.to_bytes(size, "little", signed=not unsigned)
        if column_type == ColumnType.MYSQL_TYPE_DOUBLE:
            return struct.pack("<d", value)
        if column_type == ColumnType.MYSQL_TYPE_FLOAT:
            return struct.pack("<f", value)
        if isinstance(value, MySQLDateTime):
            return _encode_datetime(value)
        if isinstance(value, MySQLTime):
            return _encode_time(value)
        if isinstance(value, bytes):
            return str_lenenc(value)
    except (OverflowError, struct.error) as exc:
        raise LocalProtocolError(f"cannot encode {value!r} as type {column_type}: {exc}") from None
    raise LocalProtocolError(f"cannot encode {type(value).__name__} as type {column_type}")


def _encode_datetime(v: MySQLDateTime) -> bytes:
    length = v.wire_length()
    out = bytes((length,))
    if length >= 4:
        out += v.year.to_bytes(2, "little") + bytes((v.month, v.day))
    if length >= 7:
        out += bytes((v.hour, v.minute, v.second))
    if length == 11:
        out += v.microsecond.to_bytes(4, "little")
    return out


def _encode_time(v: MySQLTime) -> bytes:
    length = v.wire_length()
    out = bytes((length,))
    if length >= 8:
        out += bytes((int(v.negative),)) + v.days.to_bytes(4, "little")
        out += bytes((v.hour, v.minute, v.second))
    if length == 12:
        out += v.microsecond.to_bytes(4, "little")
    return out


def decode_text_row(payload: Buffer, column_count: int) -> list[bytes | None]:
    """A text-protocol row: one lenenc string or NULL per column, nothing else."""
    r = PacketReader(payload)
    values = [r.str_lenenc_or_null() for _ in range(column_count)]
    r.check_end()
    return values


def encode_text_row(values: Sequence[bytes | None]) -> bytes:
    return b"".join(bytes((NULL_LENENC,)) if v is None else int_lenenc(len(v)) + v for v in values)


def decode_binary_row(payload: Buffer, columns: Sequence[BinaryColumn]) -> list[BinaryValue]:
    """A binary-protocol row given its columns' (type, unsigned)."""
    r = PacketReader(payload)
    if r.int1() != OK_HEADER:
        raise RemoteProtocolError("binary row without 0x00 header")
    bitmap = r.bytes_fixed((len(columns) + 7 + BINARY_ROW_BITMAP_OFFSET) // 8)
    values: list[BinaryValue] = []
    for i, (column_type, unsigned) in enumerate(columns):
        bit = i + BINARY_ROW_BITMAP_OFFSET
        if bitmap[bit >> 3] & (1 << (bit & 7)):
            values.append(None)
        else:
            values.append(decode_value(r, column_type, unsigned))
    r.check_end()
    return values


def encode_binary_row(values: Sequence[BinaryValue], columns: Sequence[BinaryColumn]) -> bytes:
    if len(values) != len(columns):
        raise LocalProtocolError("binary row with a value count unlike its column count")
    bitmap = bytearray((len(columns) + 7 + BINARY_ROW_BITMAP_OFFSET) // 8)
    body: list[bytes] = []
    for i, (value, (column_type, unsigned)) in enumerate(zip(values, columns, strict=True)):
        if value is None:
            bit = i + BINARY_ROW_BITMAP_OFFSET
            bitmap[bit >> 3] |= 1 << (bit & 7)
        else:
            body.append(encode_value(value, column_type, unsigned))
    return bytes((OK_HEADER,)) + bytes(bitmap) + b"".join(body)
