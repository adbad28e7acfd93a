"""Masking a byte stream (SSH output) that arrives in arbitrary chunks.

Theory of operation
-------------------
The promise: ``feed(a) + feed(b) + ... + flush()`` equals masking ``a + b + ...`` at once,
wherever the chunk boundaries fall. Two facts make that work with a bounded buffer.

1. The next finding at a position is a pure function of the text (see ``engine``); so if we
   stop at a position where no value starts, or at the end of a value, and resume there later,
   we get the same answer as a single pass, provided the bytes before the stop that decided
   anything are still visible (``_CONTEXT`` bytes of look-behind are kept).
2. A finding is final once the bytes after its start cannot change it. No value spans a line
   break (except PEM bodies, below), and :data:`_PARTIAL_PARTS` / :data:`_PARTIAL_JWT`
   recognise every suffix of the buffer that could still be the beginning of a value (a loose
   over-approximation: digits and separators, a word, ``local@dom``, ``eyJ...``,
   ``DE89 3704``, ``-----BEG``, a keyword with its value so far). Everything before the
   earliest such suffix is final; only that suffix is held back. Output that ends with a
   newline, a prompt or any other byte that no value can start with is emitted at once. Each
   suffix pattern has a look-behind no stronger than those of the values it stands for, so
   it is tried only where a value could start: a long line without breaks stays cheap.

So at most :data:`MAX_HOLD` bytes (8 KiB + a little, the longest JWT) are ever held, and only
while they could still be a value. A longer JWT is not recognised.

PEM private keys have no length bound. Once a BEGIN line is final, its replacement is emitted
and the masker enters a *suppressing* state: body bytes are dropped as they arrive (keeping the
last :data:`PEM_END_MAX` bytes, in case an END line is split) until the END line, or the first
byte that cannot belong to a PEM body, which ends the block. Suppression survives ``flush()``,
so an idle flush in the middle of a key never lets the rest of the key through.
"""

from __future__ import annotations

import re

from gateway.masking.detectors import MAX_TOKEN, PEM_BODY_CHARS, PEM_END_MAX, PEM_END_RX, Views
from gateway.masking.engine import Engine
from gateway.masking.errors import MaskingError
from gateway.masking.profile import MaskingProfile
from gateway.masking.strategies import redacted, render_stream

MAX_HOLD = MAX_TOKEN + 64
_CONTEXT = 64

# Suffixes that may still grow into a value, each with the bytes it can consist of. Each
# pattern carries a look-behind no stronger than the look-behinds of the values it stands for,
# so a long run of letters, digits or dashes is tried only where a value could start. A suffix
# lies inside the trailing run of its own bytes, so each pattern is searched only from where
# that run starts (one translate and rfind find it): a regex search costs 100-250 ns per start
# position, and trying every position of the last few hundred bytes on every feed was the
# largest per-feed cost. Quantifiers are possessive: a suffix must reach the end of the buffer,
# so giving back bytes can never help, and backtracking over a long run is avoided.
_ALNUM = rb"A-Za-z0-9"
_PARTIAL_PARTS: tuple[tuple[bytes, bytes], ...] = (
    (  # card, SSN, phone
        rb"0-9 ().+\-",
        rb"(?<![0-9A-Za-z_])(?:[+(]?+[0-9][0-9 ().\-]{0,60}+|[+(])",
    ),
    (  # e-mail
        _ALNUM + rb"._%+\-@",
        rb"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,72}+(?:@[A-Za-z0-9.\-]{0,260}+)?",
    ),
    (  # keys, keywords, IBAN country codes
        _ALNUM + rb"_\-",
        rb"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9_\-]{0,269}+",
    ),
    (  # IBAN
        rb"A-Z0-9 ",
        rb"(?<![0-9A-Za-z_])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{0,44}+",
    ),
    (  # SSN after a keyword
        _ALNUM + rb" \t:#=\-\"'_.",
        rb"(?<![0-9A-Za-z])(?i:ssn|ss\#|social(?:[ _][a-z.]{0,8}){0,2})"
        rb"[ \t:#=\-\"'a-zA-Z]{0,12}[0-9 \-]{0,12}",
    ),
    (  # AWS secret after a keyword
        _ALNUM + rb"_\"' \t:=/+",
        rb"(?<![0-9A-Za-z])(?i:(?:aws_?)?secret_?access_?key|aws_?secret(?:_?key)?)"
        rb"[\"']?[ \t]*+[:=]?[ \t]*+[\"']?[A-Za-z0-9/+]{0,41}+",
    ),
    (  # -----BEGIN ... PRIVATE KEY-----
        rb"A-Z0-9 \-",
        rb"-{1,5}(?:B[A-Z0-9 ]{0,120}-{0,5})?",
    ),
)
# Every pattern above matches at most this many bytes: it is searched only there.
_PARTIAL_SPAN = 340
# A JWT may be 8 KiB.
_JWT_BYTES = _ALNUM + rb"_\-."
_PARTIAL_JWT = re.compile(
    rb"eyJ(?<![A-Za-z0-9_\-.]eyJ)[A-Za-z0-9_\-.]{0," + str(MAX_TOKEN).encode() + rb"}+\Z"
)
_PEM_FOREIGN_RX = re.compile(rb"[^" + PEM_BODY_CHARS + rb"]")


def _run_table(members: bytes) -> bytes:
    """A translation: bytes of the class ``[members]`` -> "r", all others -> "n"."""
    rx = re.compile(rb"[" + members + rb"]")
    return bytes(ord("r") if rx.match(bytes([i])) else ord("n") for i in range(256))


_PARTIALS: tuple[tuple[bytes, re.Pattern[bytes]], ...] = tuple(
    (_run_table(members), re.compile(rb"(?:" + pattern + rb")\Z"))
    for members, pattern in _PARTIAL_PARTS
)
_JWT_TABLE = _run_table(_JWT_BYTES)
# A buffer that ends with none of these bytes (a newline, NUL, "}", ",", ...) holds nothing back.
_PARTIAL_LAST = frozenset(
    i for i in range(256) if any(table[i] == ord("r") for table, _ in _PARTIALS)
)


class StreamMasker:
    """Masks one direction of a byte stream; see the module docstring for the guarantees.

    ``counts`` holds the number of values masked per detector kind (never the values).
    """

    def __init__(self, profile: MaskingProfile) -> None:
        self._engine = Engine(profile)
        self._strict = profile.strict
        # Custom patterns match within a line and at most max_length bytes: that many
        # trailing bytes of the line are held back.
        self._custom_max = max((p.max_length for p in profile.custom_patterns), default=0)
        self._buf = b""  # look-behind context, then bytes not yet emitted
        self._pos = 0  # where the bytes not yet emitted begin in _buf
        self._suppressing = False
        self.counts: dict[str, int] = {}

    @property
    def held(self) -> int:
        """Bytes received but not yet released (never more than :data:`MAX_HOLD`)."""
        return len(self._buf) - self._pos

    def feed(self, chunk: bytes) -> bytes:
        """Mask the next chunk; returns what can be released now (possibly empty)."""
        return self._guarded(chunk, final=False)

    def flush(self) -> bytes:
        """End of stream (or an idle pause): release everything still held back."""
        return self._guarded(b"", final=True)

    def _guarded(self, chunk: bytes, *, final: bool) -> bytes:
        try:
            return self._step(chunk, final=final)
        except Exception as exc:
            # Drop whatever was held: it is neither released nor kept to poison later chunks.
            self._buf, self._pos = b"", 0
            if self._strict:
                raise MaskingError(f"stream masking failed: {exc.__class__.__name__}") from exc
            self.counts["error"] = self.counts.get("error", 0) + 1
            return b"[REDACTED:error]"

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _suppress(self, buf: bytes, pos: int, final: bool) -> int:
        """Skip PEM body bytes from ``pos``; returns where normal text resumes, or -1 if the
        block continues past this buffer (then the caller keeps only the END-line tail)."""
        end = PEM_END_RX.search(buf, pos)
        foreign = _PEM_FOREIGN_RX.search(buf, pos)
        if end is not None and (foreign is None or end.start() < foreign.start()):
            self._suppressing = False
            return end.end()
        if foreign is not None:
            self._suppressing = False
            return foreign.start()
        if final:
            return len(buf)  # stays suppressing: an idle flush must not release the key
        return -1

    def _hold_point(self, buf: bytes, pos: int) -> int:
        """Where the suffix that could still become a value begins (``len(buf)``: none)."""
        size = len(buf)
        line = max(buf.rfind(b"\n", pos), buf.rfind(b"\r", pos)) + 1
        start = max(pos, line)
        if start >= size:
            return size
        held = max(start, size - self._custom_max) if self._custom_max else size
        if buf[-1] not in _PARTIAL_LAST:
            return held  # JWT bytes are a subset of the partial bytes
        low = max(start, size - _PARTIAL_SPAN)
        tail = buf[low:]
        for table, partial in _PARTIALS:
            run = low + tail.translate(table).rfind(b"n") + 1
            if run < held:
                m = partial.search(buf, run)
                if m is not None and m.start() < held:
                    held = m.start()
        low = max(start, size - MAX_HOLD)
        run = low + buf[low:].translate(_JWT_TABLE).rfind(b"n") + 1
        if run < held:
            m = _PARTIAL_JWT.search(buf, run)
            if m is not None and m.start() < held:
                held = m.start()
        return held

    def _step(self, chunk: bytes, *, final: bool) -> bytes:
        buf = self._buf + chunk if chunk else self._buf
        pos = self._pos
        out: list[bytes] = []
        if self._suppressing:
            resume = self._suppress(buf, pos, final)
            if resume < 0:
                keep = max(pos, len(buf) - PEM_END_MAX)
                self._keep(buf, keep)
                return b""
            pos = resume
        limit = len(buf) if final else self._hold_point(buf, pos)
        engine = self._engine
        # Cursors search lazily, one pass per literal at most: no separate gate pass here.
        cursors = engine.cursors(Views(buf))
        while True:
            found = engine.next_finding(cursors, pos)
            if found is None or found.start >= limit:
                break
            kind = found.kind
            spec = engine.spec(kind)
            self._count(kind)
            if found.block:
                out += (buf[pos : found.start], redacted(spec, kind))
                self._suppressing = True
                resume = self._suppress(buf, found.end, final)
                if resume < 0:
                    self._keep(buf, max(found.end, len(buf) - PEM_END_MAX))
                    return b"".join(out)
                pos = resume
                continue
            value = buf[found.value_start : found.value_end]
            replacement = render_stream(spec, kind, value, engine.profile.hash_key)
            out += (buf[pos : found.value_start], replacement, buf[found.value_end : found.end])
            pos = found.end
        cut = max(pos, limit)
        out.append(buf[pos:cut])
        self._keep(buf, cut)
        return b"".join(out)

    def _keep(self, buf: bytes, cut: int) -> None:
        base = max(0, cut - _CONTEXT)
        self._buf = buf[base:]
        self._pos = cut - base
