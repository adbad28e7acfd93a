"""File operations seen in an SFTP session, for the event log (sans-IO, requests only).

Theory of operation
-------------------
An allowed ``sftp`` subsystem is relayed byte for byte (it is a binary protocol: masking
would corrupt it). :class:`SftpRequestScanner` reads the client-to-server direction beside
the relay and reports the operations an auditor cares about (open with its mode, remove,
rename, mkdir, rmdir, setstat, symlink, opendir, extended renames). Packets are framed by
their ``uint32`` length (draft-ietf-secsh-filexfer-02, version 3): a packet of a recorded
type is kept until complete (at most :data:`MAX_KEPT` bytes); every other packet, notably
``SSH_FXP_WRITE`` with its data, is skipped as it streams by, so memory stays bounded
whatever is transferred. Nothing here can stop the relay: a packet that does not decode is
counted in ``malformed`` and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

MAX_KEPT = 64 * 1024


class FxpType(IntEnum):
    SSH_FXP_INIT = 1
    SSH_FXP_OPEN = 3
    SSH_FXP_WRITE = 6
    SSH_FXP_SETSTAT = 9
    SSH_FXP_OPENDIR = 11
    SSH_FXP_REMOVE = 13
    SSH_FXP_MKDIR = 14
    SSH_FXP_RMDIR = 15
    SSH_FXP_RENAME = 18
    SSH_FXP_SYMLINK = 20
    SSH_FXP_EXTENDED = 200


class OpenFlag(IntFlag):
    SSH_FXF_READ = 0x01
    SSH_FXF_WRITE = 0x02
    SSH_FXF_APPEND = 0x04
    SSH_FXF_CREAT = 0x08
    SSH_FXF_TRUNC = 0x10
    SSH_FXF_EXCL = 0x20


RECORDED: dict[int, tuple[str, int]] = {
    FxpType.SSH_FXP_OPEN: ("open", 1),
    FxpType.SSH_FXP_SETSTAT: ("setstat", 1),
    FxpType.SSH_FXP_OPENDIR: ("opendir", 1),
    FxpType.SSH_FXP_REMOVE: ("remove", 1),
    FxpType.SSH_FXP_MKDIR: ("mkdir", 1),
    FxpType.SSH_FXP_RMDIR: ("rmdir", 1),
    FxpType.SSH_FXP_RENAME: ("rename", 2),
    FxpType.SSH_FXP_SYMLINK: ("symlink", 2),
}
"""Recorded request types: (operation name, number of path strings after the request id)."""
EXTENDED_RENAMES = {b"posix-rename@openssh.com", b"hardlink@openssh.com"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SftpOperation:
    op: str
    paths: tuple[str, ...]
    mode: tuple[str, ...] = ()

    def describe(self) -> str:
        mode = f" ({','.join(self.mode)})" if self.mode else ""
        return f"{self.op} {' -> '.join(self.paths)}{mode}"


class _Malformed(Exception):
    pass


def _string(body: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(body):
        raise _Malformed
    size = int.from_bytes(body[pos : pos + 4], "big")
    end = pos + 4 + size
    if end > len(body):
        raise _Malformed
    return body[pos + 4 : end], end


def _mode(flags: int) -> tuple[str, ...]:
    names = (
        (OpenFlag.SSH_FXF_READ, "read"),
        (OpenFlag.SSH_FXF_WRITE, "write"),
        (OpenFlag.SSH_FXF_APPEND, "append"),
        (OpenFlag.SSH_FXF_CREAT, "create"),
        (OpenFlag.SSH_FXF_TRUNC, "truncate"),
        (OpenFlag.SSH_FXF_EXCL, "exclusive"),
    )
    return tuple(name for flag, name in names if flags & flag)


def decode_request(kind: int, body: bytes) -> SftpOperation | None:
    """One request packet's body (after the type byte); None for types not recorded."""
    pos = 4  # request id
    if kind == FxpType.SSH_FXP_EXTENDED:
        name, pos = _string(body, pos)
        if name not in EXTENDED_RENAMES:
            return None
        old, pos = _string(body, pos)
        new, pos = _string(body, pos)
        op = name.split(b"@")[0].decode()
        return SftpOperation(op=op, paths=(_text(old), _text(new)))
    if kind not in RECORDED:
        return None
    op, count = RECORDED[kind]
    paths = []
    for _ in range(count):
        path, pos = _string(body, pos)
        paths.append(_text(path))
    mode: tuple[str, ...] = ()
    if kind == FxpType.SSH_FXP_OPEN:
        if pos + 4 > len(body):
            raise _Malformed
        mode = _mode(int.from_bytes(body[pos : pos + 4], "big"))
    return SftpOperation(op=op, paths=tuple(paths), mode=mode)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class SftpRequestScanner:
    """Consumes the client's bytes in any chunking; returns the recorded operations."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._body = bytearray()
        self._need: int | None = None  # body bytes of the packet being kept
        self._kind = 0
        self._skip = 0
        self.write_bytes = 0
        self.packets = 0
        self.malformed = 0

    def feed(self, data: bytes) -> list[SftpOperation]:
        ops: list[SftpOperation] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
            elif self._need is None:
                take = min(5 - len(self._head), end - pos)
                self._head += data[pos : pos + take]
                pos += take
                if len(self._head) == 5:
                    self._start(int.from_bytes(self._head[:4], "big"), self._head[4])
                    self._head.clear()
            else:
                take = min(self._need - len(self._body), end - pos)
                self._body += data[pos : pos + take]
                pos += take
                if len(self._body) == self._need:
                    op = self._finish(bytes(self._body))
                    if op is not None:
                        ops.append(op)
        return ops

    def _start(self, length: int, kind: int) -> None:
        self.packets += 1
        body = max(0, length - 1)
        if length < 1:
            self.malformed += 1
        if kind == FxpType.SSH_FXP_WRITE:
            self.write_bytes += body
        recorded = kind in RECORDED or kind == FxpType.SSH_FXP_EXTENDED
        if not recorded or body > MAX_KEPT:
            self._skip = body
            return
        if body == 0:
            self.malformed += 1
            return
        self._need, self._kind = body, kind

    def _finish(self, body: bytes) -> SftpOperation | None:
        self._body.clear()
        self._need = None
        try:
            return decode_request(self._kind, body)
        except _Malformed:
            self.malformed += 1
            return None
