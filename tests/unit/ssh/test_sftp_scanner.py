"""The sftp request scanner: golden packets, any chunking, bounded memory, garbage."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from gateway.ssh.sftp import MAX_KEPT, FxpType, SftpOperation, SftpRequestScanner


def string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def packet(kind: int, body: bytes, request_id: int = 7) -> bytes:
    payload = bytes([kind]) + struct.pack(">I", request_id) + body
    return struct.pack(">I", len(payload)) + payload


OPEN_WRITE = packet(
    FxpType.SSH_FXP_OPEN, string(b"/srv/a.txt") + struct.pack(">I", 0x1A) + b"\0" * 4
)
WRITE = packet(FxpType.SSH_FXP_WRITE, string(b"h1") + struct.pack(">Q", 0) + string(b"x" * 5000))
RENAME = packet(FxpType.SSH_FXP_RENAME, string(b"/srv/a.txt") + string(b"/srv/b.txt"))
REMOVE = packet(FxpType.SSH_FXP_REMOVE, string(b"/srv/b.txt"))
STAT = packet(17, string(b"/srv"))
POSIX_RENAME = packet(
    FxpType.SSH_FXP_EXTENDED, string(b"posix-rename@openssh.com") + string(b"/x") + string(b"/y")
)
INIT = struct.pack(">I", 5) + bytes([FxpType.SSH_FXP_INIT]) + struct.pack(">I", 3)
SESSION = INIT + OPEN_WRITE + WRITE + STAT + RENAME + REMOVE + POSIX_RENAME
EXPECTED = [
    SftpOperation(op="open", paths=("/srv/a.txt",), mode=("write", "create", "truncate")),
    SftpOperation(op="rename", paths=("/srv/a.txt", "/srv/b.txt")),
    SftpOperation(op="remove", paths=("/srv/b.txt",)),
    SftpOperation(op="posix-rename", paths=("/x", "/y")),
]


def test_golden_session() -> None:
    scanner = SftpRequestScanner()
    assert scanner.feed(SESSION) == EXPECTED
    assert scanner.packets == 7 and scanner.malformed == 0
    assert scanner.write_bytes == len(WRITE) - 5
    assert EXPECTED[0].describe() == "open /srv/a.txt (write,create,truncate)"
    assert EXPECTED[1].describe() == "rename /srv/a.txt -> /srv/b.txt"


def test_byte_at_a_time() -> None:
    scanner = SftpRequestScanner()
    ops = [op for i in range(len(SESSION)) for op in scanner.feed(SESSION[i : i + 1])]
    assert ops == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(SESSION)), max_size=12))
def test_any_chunking_gives_the_same_operations(cuts: list[int]) -> None:
    scanner = SftpRequestScanner()
    bounds = [0, *sorted(cuts), len(SESSION)]
    ops = [op for a, b in itertools.pairwise(bounds) for op in scanner.feed(SESSION[a:b])]
    assert ops == EXPECTED


def test_large_packets_are_skipped_not_kept() -> None:
    scanner = SftpRequestScanner()
    huge = packet(FxpType.SSH_FXP_WRITE, b"\0" * (4 * MAX_KEPT))
    for i in range(0, len(huge), 1000):
        scanner.feed(huge[i : i + 1000])
        assert len(scanner._body) == 0  # data is never buffered
    assert scanner.feed(REMOVE) == [EXPECTED[2]]


def test_a_truncated_path_is_counted_as_malformed() -> None:
    bad = packet(FxpType.SSH_FXP_REMOVE, struct.pack(">I", 99) + b"/short")
    scanner = SftpRequestScanner()
    assert scanner.feed(bad + REMOVE) == [EXPECTED[2]]
    assert scanner.malformed == 1


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    scanner = SftpRequestScanner()
    for op in scanner.feed(data):
        assert isinstance(op, SftpOperation)
