"""What an SSH session records: masked output chunks, typed input, reconstructed lines.

Theory of operation
-------------------
Pure and synchronous: the relay pumps call these taps for every chunk they move, so no
event store, trio or asyncio here; events leave through an ``emit`` callback.

* :class:`ChunkRecorder` batches one stream's bytes into recording chunks (one
  ``OutputRecorded`` each): a chunk is emitted when it reaches ``max_bytes`` (64 KiB) or
  when its first byte is ``max_age`` (250 ms) old, so a bulk transfer costs one event per
  64 KiB and an idle terminal shows up within a quarter second. Bytes are decoded with an
  incremental UTF-8 decoder (a character split between chunks stays whole). Past
  ``limit`` bytes per stream only counts are kept: the session's ``ResponseRecorded``
  says ``truncated``.
* :class:`MaskingTap` (output) masks with a ``StreamMasker`` and records what the client
  was sent: the recording is exactly the masked stream, never the original.
* :class:`TypedInputTap` (PTY input) records keystrokes through its own masker, leaves out
  what is typed while the terminal echo is presumably off, and reconstructs command lines.
  Echo-off detection is a heuristic: input is hidden from the moment the output seen so far
  ends with a prompt that asks for a secret (``password:``, ``passphrase``, ``PIN:``,
  ``[sudo] password for ...:``, ``token:``) until the next Enter.
* :class:`LineEditor` replays editing keys (backspace, ^U, ^W, ^C) to reconstruct lines;
  lines edited with cursor keys, history or tab completion are marked approximate, since
  what the shell made of them is not visible in the input.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.masking import MaskingProfile, StreamMasker, mask_text
from gateway.ssh.sftp import SftpOperation, SftpRequestScanner

Emit = Callable[[str, int, str, dict[str, int]], None]
"""(stream, offset_ms, text, masked counts) of one recording chunk."""

MAX_CHUNK = 64 * 1024
MAX_AGE = 0.25
MASK_IDLE = 0.03
"""A masker holding a possible value prefix releases it after this long without output."""
DEFAULT_LIMIT = 8 * 1024 * 1024


class ChunkRecorder:
    def __init__(
        self,
        stream: str,
        *,
        started: float,
        emit: Emit,
        limit: int = DEFAULT_LIMIT,
        max_bytes: int = MAX_CHUNK,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.started = started
        self.limit = limit
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._emit = emit
        self._clock = clock
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[bytes] = []
        self._size = 0
        self._first = 0.0
        self._masked: dict[str, int] = {}
        self.recorded = 0
        self.seen = 0

    @property
    def truncated(self) -> bool:
        return self.seen > self.recorded

    @property
    def pending(self) -> bool:
        return self._size > 0 or bool(self._masked)

    def add(self, data: bytes, masked: dict[str, int] | None = None) -> None:
        self.seen += len(data)
        if masked:
            for kind, n in masked.items():
                self._masked[kind] = self._masked.get(kind, 0) + n
        room = self.limit - self.recorded - self._size
        if room <= 0 or not data:
            if self._masked and not self._size:
                self.flush()
            return
        if not self._size:
            self._first = self._clock()
        data = data[:room]
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self.max_bytes or self._clock() - self._first >= self.max_age:
            self.flush()

    def due(self) -> bool:
        return self.pending and self._clock() - self._first >= self.max_age

    def flush(self) -> None:
        if not self.pending:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        self.recorded += self._size
        self._size = 0
        final = self.recorded >= self.limit
        text = self._decoder.decode(data, final=final)
        masked, self._masked = self._masked, {}
        offset = int((self._first - self.started) * 1000) if data else 0
        if text or masked:
            self._emit(self.stream, max(0, offset), text, masked)

    def close(self) -> None:
        self.flush()
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._emit(self.stream, int((self._clock() - self.started) * 1000), tail, {})


def _count_delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


class MaskingTap:
    """An output stream: masked for the client, and that masked text recorded."""

    def __init__(self, masker: StreamMasker, recorder: ChunkRecorder) -> None:
        self.masker = masker
        self.recorder = recorder
        self.tail = b""
        self._counted: dict[str, int] = {}

    def _record(self, out: bytes) -> None:
        counts = self.masker.counts
        delta = _count_delta(counts, self._counted) if counts != self._counted else None
        if delta:
            self._counted = dict(counts)
        self.recorder.add(out, delta)
        if out:
            self.tail = (self.tail + out[-256:])[-256:]

    def feed(self, data: bytes) -> bytes:
        out = self.masker.feed(data)
        self._record(out)
        return out

    def idle(self) -> bytes:
        out = self.masker.flush() if self.masker.held else b""
        self._record(out)
        if out or self.recorder.due() or not self.masker.held:
            self.recorder.flush()
        return out

    def idle_delay(self) -> float | None:
        if self.masker.held:
            return MASK_IDLE
        return MAX_AGE if self.recorder.pending else None

    def close(self) -> bytes:
        out = self.masker.flush()
        self._record(out)
        self.recorder.close()
        return out


_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_SECRET_PROMPT = re.compile(
    rb"(?i)(?:pass(?:word|phrase|code)|\bpin\b|\btoken\b|\bsecret\b|\bverification code\b)"
    rb"[^\n]{0,80}[:?]\s*\Z"
)


def asks_for_secret(output_tail: bytes) -> bool:
    """Whether the terminal output so far ends with a prompt for a secret."""
    line = _ANSI.sub(b"", output_tail).rsplit(b"\n", 1)[-1]
    return bool(_SECRET_PROMPT.search(line))


@dataclass(frozen=True, slots=True, kw_only=True)
class TypedLine:
    text: str
    approximate: bool


class LineEditor:
    """Rebuilds command lines from keystrokes (best effort, see the module docstring)."""

    def __init__(self) -> None:
        self._line: list[str] = []
        self._approximate = False
        self._escape = ""  # "" outside an escape sequence, else what came after ESC

    def _in_escape(self, char: str) -> bool:
        """Swallows an escape sequence (cursor keys, function keys) one character at a time."""
        if not self._escape:
            return False
        self._escape += char
        lead = self._escape[1]
        if lead == "[":  # CSI: parameters, then a final byte @..~
            done = len(self._escape) > 2 and "@" <= char <= "~"
        elif lead == "O":  # SS3: one more character
            done = len(self._escape) > 2
        else:  # ESC + one character (Alt-key)
            done = True
        if done or len(self._escape) > 16:
            self._escape = ""
        return True

    def feed(self, data: bytes) -> list[TypedLine]:
        lines: list[TypedLine] = []
        for byte in data.decode("utf-8", "replace"):
            if self._in_escape(byte):
                continue
            if byte == "\x1b":
                self._escape = byte
                self._approximate = True
            elif byte in "\r\n":
                text = "".join(self._line).strip()
                if text:
                    lines.append(TypedLine(text=text, approximate=self._approximate))
                self._line, self._approximate = [], False
            elif byte in "\x7f\x08":
                if self._line:
                    self._line.pop()
            elif byte == "\x15":  # ^U
                self._line.clear()
            elif byte == "\x17":  # ^W
                while self._line and self._line[-1] == " ":
                    self._line.pop()
                while self._line and self._line[-1] != " ":
                    self._line.pop()
            elif byte in "\x03\x04":  # ^C drops the line; ^D on an empty line exits
                self._line, self._approximate = [], False
            elif byte == "\t":
                self._approximate = True
                self._line.append(" ")
            elif byte >= " ":
                self._line.append(byte)
            else:
                self._approximate = True  # other control keys (^R, ^A, ...)
        return lines


class TypedInputTap:
    """Keystrokes of a PTY session: recorded (masked, secrets left out), lines rebuilt."""

    def __init__(
        self,
        *,
        profile: MaskingProfile,
        recorder: ChunkRecorder,
        output_tail: Callable[[], bytes],
        on_line: Callable[[TypedLine], None],
    ) -> None:
        self.masker = StreamMasker(profile)
        self.profile = profile
        self.recorder = recorder
        self.editor = LineEditor()
        self._output_tail = output_tail
        self._on_line = on_line
        self._hidden = False
        self._answered = b""  # the output tail when the last hidden line ended
        self.hidden_bytes = 0

    def feed(self, data: bytes) -> None:
        while data:
            if not self._hidden:
                tail = self._output_tail()
                self._hidden = tail != self._answered and asks_for_secret(tail)
            if self._hidden:
                end = min((i for i in (data.find(b"\r"), data.find(b"\n")) if i >= 0), default=-1)
                secret = data if end < 0 else data[:end]
                self.hidden_bytes += len(secret)
                if end < 0:
                    return
                self.recorder.add(self.masker.feed(b"[hidden input]"))
                self._hidden = False
                self._record(data[end : end + 1])
                data = data[end + 1 :]
                # the answered prompt stays in the output tail until new output arrives
                self._answered = self._output_tail()
                continue
            self._record(data)
            return

    def _record(self, data: bytes) -> None:
        self.recorder.add(self.masker.feed(data))
        for line in self.editor.feed(data):
            text = mask_text(self.profile, line.text.encode()).decode("utf-8", "replace")
            self._on_line(TypedLine(text=text, approximate=line.approximate))

    def idle(self) -> None:
        if self.masker.held:
            self.recorder.add(self.masker.flush())
        self.recorder.flush()

    def idle_delay(self) -> float | None:
        return MAX_AGE if self.recorder.pending or self.masker.held else None

    def close(self) -> None:
        self.recorder.add(self.masker.flush())
        self.recorder.close()


class PassThroughTap:
    """An output stream relayed unchanged and not recorded: a binary protocol (sftp) that
    masking would corrupt. Used only where policy allowed it; the bytes are counted."""

    def feed(self, data: bytes) -> bytes:
        return data

    def idle(self) -> bytes:
        return b""

    def idle_delay(self) -> float | None:
        return None


class SftpInputTap:
    """The client side of an sftp session: file operations reported as they pass."""

    def __init__(self, on_operation: Callable[[SftpOperation], None]) -> None:
        self.scanner = SftpRequestScanner()
        self._on_operation = on_operation

    def feed(self, data: bytes) -> None:
        for op in self.scanner.feed(data):
            self._on_operation(op)

    def idle(self) -> None:
        return None

    def idle_delay(self) -> float | None:
        return None
