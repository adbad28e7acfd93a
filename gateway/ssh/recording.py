"""What an SSH session records: masked output, typed input, reconstructed lines.

Theory of operation
-------------------
Pure and synchronous: the relay pumps call these taps for every chunk they move, so no
event store, trio or asyncio here. What is recorded goes to the session's recorder (the
shared ``gateway.recording.SessionRecorder``, seen here only through :class:`RecordSink`),
which cuts chunks, indexes them and keeps screen keyframes for terminal streams: one
recorder for both protocols.

* :class:`ChannelStream` is one stream of one channel (``pty`` for a terminal channel,
  else ``stdout``/``stderr``; ``input`` for typed keys). It records through a budget of
  ``limit`` bytes that refills at ``rate`` bytes/s: bulk output (``cat`` of a big file)
  is recorded up to the budget, then only counted, and recording resumes once a second's
  refill is back, so what a shell shows after a bulk transfer is recorded again (with a
  budget that never refills, 8 MiB of output would end the recording of an interactive
  session for good: an easy way to hide what follows). When the stream closes with its
  end unrecorded, its last ``TAIL`` bytes (from a line break) are recorded: the last
  screen of a bulk command. The channel's ``ResponseRecorded`` says ``truncated`` and how
  many bytes went unrecorded.
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

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.masking import MaskingProfile, StreamMasker, mask_text
from gateway.ssh.sftp import SftpOperation, SftpRequestScanner

MASK_IDLE = 0.03
"""A masker holding a possible value prefix releases it after this long without output."""
DEFAULT_LIMIT = 8 * 1024 * 1024
DEFAULT_RATE = 256 * 1024
"""Bytes per second the recording budget of a stream refills (0: never)."""
TAIL = 8 * 1024
"""At most this much of the output left unrecorded at the end of a stream is recorded when
it closes, from a line break: the last screen of a bulk command (and what was echoed right
after it, within the second the budget takes to resume) is what an auditor looks for."""


class RecordSink(Protocol):
    """The session's recorder, as the taps see it."""

    def record(
        self, stream: str, data: bytes, *, masked: Mapping[str, int] | None = None
    ) -> None: ...
    def resize(self, columns: int, lines: int) -> None: ...


class ChannelStream:
    """One stream of one channel into the session's recording, through a budget of ``limit``
    bytes refilled at ``rate`` bytes/s (see the module docstring). Once the budget ran out,
    recording resumes when it holds a second's refill again (or all of ``limit``, if less):
    what is recorded stays in pieces of whole reads, not a byte here and there."""

    def __init__(
        self,
        sink: RecordSink,
        stream: str,
        *,
        limit: int = DEFAULT_LIMIT,
        rate: int = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.stream = stream
        self.limit = limit
        self.rate = rate
        self.clock = clock
        self.recorded = 0
        self.seen = 0
        self.gaps = 0
        """How many times recording stopped for want of budget."""
        self._budget = float(limit)
        self._at = clock()
        self._paused = False
        self._resume = min(limit, max(rate, 1))
        self._skipped = b""  # the end of what went unrecorded since the last recorded piece
        self.tail = 0
        """Bytes recorded by ``finish`` from the unrecorded end of the stream."""

    @property
    def truncated(self) -> bool:
        return self.seen > self.recorded

    @property
    def unrecorded(self) -> int:
        return self.seen - self.recorded

    def add(self, data: bytes, masked: dict[str, int] | None = None) -> None:
        self.seen += len(data)
        if not data:
            return
        if self.rate:
            now = self.clock()
            self._budget = min(self.limit, self._budget + (now - self._at) * self.rate)
            self._at = now
        if self._paused:
            if self._budget < self._resume:
                self._skip(data)
                return
            self._paused = False
        room = int(self._budget)
        rest = b""
        if len(data) > room:
            data, rest = data[:room], data[room:]
            self._paused = True
            self.gaps += 1
        if data:
            self._skipped = b""
            self._budget -= len(data)
            self.recorded += len(data)
            self.sink.record(self.stream, data, masked=masked)
        if rest:
            self._skip(rest)

    def _skip(self, data: bytes) -> None:
        if not self.limit:  # record_limit = 0 records nothing, not even a tail
            return
        if len(data) >= TAIL:
            self._skipped = data[-TAIL:]
        else:
            self._skipped = (self._skipped + data)[-TAIL:]

    def finish(self) -> None:
        """The stream ends: if its end went unrecorded, record the last ``TAIL`` bytes of
        it from the first line break in them (a gap before them stays a gap: replay shows
        the last lines the agent saw, as if scrolled there)."""
        tail, self._skipped = self._skipped, b""
        if len(tail) == TAIL and b"\n" in tail:
            # From the line break on (CR LF on a terminal): replay goes on from wherever the
            # recording before the gap left the cursor, so the tail starts a line of its own.
            cut = tail.index(b"\n")
            tail = tail[cut - 1 if tail[cut - 1 : cut] == b"\r" else cut :]
        if tail:
            self.recorded += len(tail)
            self.tail = len(tail)
            self.sink.record(self.stream, tail)


def _count_delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


class MaskingTap:
    """An output stream: masked for the client, and that masked text recorded."""

    def __init__(self, masker: StreamMasker, recording: ChannelStream) -> None:
        self.masker = masker
        self.recording = recording
        self.tail = b""
        self._counted: dict[str, int] = {}

    def _record(self, out: bytes) -> None:
        counts = self.masker.counts
        delta = _count_delta(counts, self._counted) if counts != self._counted else None
        if delta:
            self._counted = dict(counts)
        self.recording.add(out, delta)
        if out:
            self.tail = (self.tail + out[-256:])[-256:]

    def feed(self, data: bytes) -> bytes:
        out = self.masker.feed(data)
        self._record(out)
        return out

    def idle(self) -> bytes:
        out = self.masker.flush() if self.masker.held else b""
        if out:
            self._record(out)
        return out

    def idle_delay(self) -> float | None:
        return MASK_IDLE if self.masker.held else None

    def close(self) -> bytes:
        out = self.masker.flush()
        self._record(out)
        self.recording.finish()
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
        recording: ChannelStream,
        output_tail: Callable[[], bytes],
        on_line: Callable[[TypedLine], None],
    ) -> None:
        self.masker = StreamMasker(profile)
        self.profile = profile
        self.recording = recording
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
                self.recording.add(self.masker.feed(b"[hidden input]"))
                self._hidden = False
                self._record(data[end : end + 1])
                data = data[end + 1 :]
                # the answered prompt stays in the output tail until new output arrives
                self._answered = self._output_tail()
                continue
            self._record(data)
            return

    def _record(self, data: bytes) -> None:
        self.recording.add(self.masker.feed(data))
        for line in self.editor.feed(data):
            text = mask_text(self.profile, line.text.encode()).decode("utf-8", "replace")
            self._on_line(TypedLine(text=text, approximate=line.approximate))

    def idle(self) -> None:
        if self.masker.held:
            self.recording.add(self.masker.flush())

    def idle_delay(self) -> float | None:
        return MASK_IDLE if self.masker.held else None

    def resized(self, columns: int, lines: int) -> None:
        self.recording.sink.resize(columns, lines)

    def close(self) -> None:
        self.recording.add(self.masker.flush())


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

    def resized(self, columns: int, lines: int) -> None:
        return None
