"""Wire primitives of the MySQL protocol: fixed and length-encoded integers and strings.

``PacketReader`` walks one payload with an offset and never copies more than the field it
returns; every read past the end raises ``RemoteProtocolError`` (``ER_MALFORMED_PACKET``), so a
truncated or hostile packet can never surface as ``IndexError`` or ``struct.error``. A decoder
finishes with ``check_end()`` so a packet with trailing garbage is rejected too.

The writers are plain functions returning ``bytes``; packet encoders join their results.
"""

from __future__ import annotations

import struct

from gateway.mysql.constants import ErrorCode
from gateway.mysql.errors import LocalProtocolError, RemoteProtocolError

Buffer = bytes | bytearray | memoryview

_LENENC_2 = 0xFC
_LENENC_3 = 0xFD
_LENENC_8 = 0xFE
_NULL = 0xFB
_ERR = 0xFF


def _short(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"packet too short for {what}", error_code=ErrorCode.ER_MALFORMED_PACKET
    )


class PacketReader:
    """Sequential reader over one payload."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: Buffer, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def check_end(self) -> None:
        """Raise unless the whole payload was consumed."""
        if self.pos != self.end:
            raise RemoteProtocolError(
                f"{self.end - self.pos} unexpected trailing bytes in packet",
                error_code=ErrorCode.ER_MALFORMED_PACKET,
            )

    def expect(self, header: int, name: str) -> None:
        """Consume the packet's header byte, which must be ``header``."""
        got = self.int1()
        if got != header:
            raise RemoteProtocolError(f"{name}: expected header 0x{header:02x}, got 0x{got:02x}")

    def peek(self) -> int:
        if self.pos >= self.end:
            raise _short("a byte")
        return self.buf[self.pos]

    def int1(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise _short("int<1>")
        self.pos = pos + 1
        return self.buf[pos]

    def int_fixed(self, size: int) -> int:
        pos = self.pos
        if pos + size > self.end:
            raise _short(f"int<{size}>")
        self.pos = pos + size
        return int.from_bytes(self.buf[pos : pos + size], "little")

    def int2(self) -> int:
        return self.int_fixed(2)

    def int3(self) -> int:
        return self.int_fixed(3)

    def int4(self) -> int:
        return self.int_fixed(4)

    def int6(self) -> int:
        return self.int_fixed(6)

    def int8(self) -> int:
        return self.int_fixed(8)

    def signed(self, size: int) -> int:
        pos = self.pos
        if pos + size > self.end:
            raise _short(f"int<{size}>")
        self.pos = pos + size
        return int.from_bytes(self.buf[pos : pos + size], "little", signed=True)

    def float4(self) -> float:
        pos = self.pos
        if pos + 4 > self.end:
            raise _short("float")
        self.pos = pos + 4
        value: float = struct.unpack_from("<f", self.buf, pos)[0]
        return value

    def float8(self) -> float:
        pos = self.pos
        if pos + 8 > self.end:
            raise _short("double")
        self.pos = pos + 8
        value: float = struct.unpack_from("<d", self.buf, pos)[0]
        return value

    def int_lenenc(self) -> int:
        """A length-encoded integer; 0xFB (NULL) and 0xFF are not integers and raise."""
        first = self.int1()
        if first < _NULL:
            return first
        if first == _LENENC_2:
            return self.int_fixed(2)
        if first == _LENENC_3:
            return self.int_fixed(3)
        if first == _LENENC_8:
            return self.int_fixed(8)
        self.pos -= 1
        raise RemoteProtocolError(
            f"invalid length-encoded integer prefix 0x{first:02x}",
            error_code=ErrorCode.ER_MALFORMED_PACKET,
        )

    def bytes_fixed(self, size: int) -> bytes:
        pos = self.pos
        if size < 0 or pos + size > self.end:
            raise _short(f"string<{size}>")
        self.pos = pos + size
        return bytes(self.buf[pos : pos + size])

    def str_lenenc(self) -> bytes:
        return self.bytes_fixed(self.int_lenenc())

    def str_lenenc_or_null(self) -> bytes | None:
        """A text-row value: lenenc string, or None for the 0xFB NULL marker."""
        if self.peek() == _NULL:
            self.pos += 1
            return None
        return self.bytes_fixed(self.int_lenenc())

    def str_null(self) -> bytes:
        """A NUL-terminated string (the NUL is consumed, not returned)."""
        buf = self.buf
        pos = self.pos
        end = self.end
        if isinstance(buf, memoryview):
            nul = bytes(buf[pos:end]).find(b"\0")
            nul = -1 if nul < 0 else pos + nul
        else:
            nul = buf.find(b"\0", pos, end)
        if nul < 0:
            raise _short("NUL-terminated string")
        self.pos = nul + 1
        return bytes(buf[pos:nul])

    def str_eof(self) -> bytes:
        """The rest of the packet."""
        pos = self.pos
        self.pos = self.end
        return bytes(self.buf[pos : self.end])


def text(raw: bytes) -> str:
    """Decode protocol text (names, versions) so that any byte sequence round-trips."""
    return raw.decode("utf-8", "surrogateescape")


def raw(value: str) -> bytes:
    """Inverse of ``text``."""
    return value.encode("utf-8", "surrogateescape")


def int1(value: int) -> bytes:
    return int_fixed(value, 1)


def int2(value: int) -> bytes:
    return int_fixed(value, 2)


def int3(value: int) -> bytes:
    return int_fixed(value, 3)


def int4(value: int) -> bytes:
    return int_fixed(value, 4)


def int6(value: int) -> bytes:
    return int_fixed(value, 6)


def int8(value: int) -> bytes:
    return int_fixed(value, 8)


def int_fixed(value: int, size: int) -> bytes:
    try:
        return int(value).to_bytes(size, "little")
    except OverflowError:
        raise LocalProtocolError(f"{value} does not fit in int<{size}>") from None


def int_lenenc(value: int) -> bytes:
    if value < 0:
        raise LocalProtocolError("length-encoded integers are unsigned")
    if value < _NULL:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def str_lenenc(value: bytes) -> bytes:
    return int_lenenc(len(value)) + value


def str_null(value: bytes) -> bytes:
    if b"\0" in value:
        raise LocalProtocolError("a NUL-terminated string cannot contain NUL")
    return value + b"\0"
