"""Detectors: what a sensitive value looks like, grouped into families that share a pre-filter.

Theory of operation
-------------------
Running every detector's regular expression at every byte is far too slow in Python (a card
pattern alone scans terminal text at about 50 MB/s). So detectors are grouped into *families*.
Each family has a cheap *hit finder* that runs at C speed (regexes that begin with a literal,
found by ``re``'s prefix scan, which on CPython 3.11 beats ``bytes.find`` for short needles on
terminal text; long literals by ``bytes.find``, whose skip search wins where their bytes are
frequent), and the guarantee that every value the family can detect contains a hit at most
``back`` bytes after the value's start. Only around hits do the exact patterns run.

* digits (card, SSN, phone): the buffer is translated (digits -> ``d``, separators -> ``s``,
  ``.`` -> ``p``, ``+`` -> ``P``, capitals -> ``U``, other word bytes -> ``a``); every card,
  dashed SSN and phone number contains ``ddddddddd``, ``dsdddd``, ``dddpdddd`` or ``Pd`` (a
  "+" starting a number), while dates, times, IPs, versions and most sizes contain none.
* iban: ``UUdd`` in the translated buffer, not preceded by a word byte.
* context (SSN as nine bare digits, AWS secret keys): a keyword in the lower-cased buffer,
  looked for only when the buffer holds a digit, ":" or "=" (every such value does).
* email: ``@`` between a local-part byte and a domain byte; the value starts where the run
  of local-part bytes before it starts.
* keys (AWS, GCP, GitHub, Slack), JWT, PEM: their fixed prefixes, with the value's own
  look-behind (so ``eyJeyJeyJ...`` or ``AKIAAKIA...`` is one hit, not one per repetition).
* custom patterns from the policy: their own regex.

Hit finders of families whose values start at the hit (``back == 0``) carry the values'
look-behind, so every hit is a real candidate. Families whose values start before the hit
(digits, context) are searched by *regions*: the exact patterns run at C speed over
``[hit - back, hit + span)``, and where hits are dense (a long run of digits) the region
doubles, so a run costs one regex pass instead of one Python step per byte. ``span`` bounds
how far any pattern of the family looks from a value's start (look-ahead included): starts up
to ``region end - span`` are decided exactly whatever lies beyond the region. A number lies
inside the run of number bytes (``token``) around its hit, so its region ends there. A value
that starts after the region's first hit counts only if a hit lies within ``back`` bytes of
its start: the same rule as a window per hit, so the answer never depends on where a region
happened to begin.

A family answers one question: the first *valid* value (pattern matched and checks passed)
starting at or after a position. That answer depends only on the buffer and the position, which
is what lets the stream masker cut a stream anywhere and still produce the same output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from gateway.masking.validators import (
    IBAN_LENGTHS,
    card_ok,
    digit_count,
    iban_ok,
    jwt_header_ok,
    ssn_ok,
)

CARD = "card"
SSN = "ssn"
PHONE = "phone"
EMAIL = "email"
IBAN = "iban"
AWS_ACCESS_KEY = "aws_access_key"
AWS_SECRET_KEY = "aws_secret_key"  # noqa: S105 (a detector name)
GCP_API_KEY = "gcp_api_key"
GITHUB_TOKEN = "github_token"  # noqa: S105
SLACK_TOKEN = "slack_token"  # noqa: S105
JWT = "jwt"
PRIVATE_KEY = "private_key"

BUILTIN_KINDS: tuple[str, ...] = (
    CARD,
    SSN,
    PHONE,
    EMAIL,
    IBAN,
    AWS_ACCESS_KEY,
    AWS_SECRET_KEY,
    GCP_API_KEY,
    GITHUB_TOKEN,
    SLACK_TOKEN,
    JWT,
    PRIVATE_KEY,
)

# Longest value a non-PEM detector can match (a JWT); the stream masker never holds more.
MAX_TOKEN = 8192

# Translation used by the digit and IBAN pre-filters; positions are preserved.
_TRANSLATE_FROM = b"0123456789 -()+.@ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_TRANSLATE_TO = b"dddddddddd" + b"ssss" + b"Pp@" + b"U" * 26 + b"a" * 27
_TRANSLATION = bytes(
    _TRANSLATE_TO[_TRANSLATE_FROM.index(i)] if i in _TRANSLATE_FROM else ord("x")
    for i in range(256)
)


class Finding(NamedTuple):
    """A detected value: ``[start, end)`` is consumed, ``[value_start, value_end)`` is masked.

    They differ only for context detectors (``SSN: 123456789`` keeps its keyword) and PEM
    blocks, whose ``end`` is first the end of the BEGIN line (``block`` is True) until the
    masker extends it over the body. A NamedTuple rather than a frozen dataclass: it never
    leaves the package, and it is created on the hot path, where a tuple is several times
    cheaper to build.
    """

    start: int
    end: int
    kind: str
    value_start: int
    value_end: int
    block: bool = False


DIGITS = b"0123456789"


class Views:
    """A buffer and the derived views the pre-filters search (``t``: translated, ``low``).

    The derived views are made when first asked for: each costs a pass over the buffer
    (about 1.4 and 0.8 ms per MB), and a buffer whose gates shut every family that needs
    one (no digit: no translated view) never pays for it."""

    __slots__ = ("_low", "_present", "_t", "buf")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self._t: bytes | None = None
        self._low: bytes | None = None
        self._present: dict[int, bool] = {}

    @property
    def t(self) -> bytes:
        if self._t is None:
            self._t = self.buf.translate(_TRANSLATION)
        return self._t

    @property
    def low(self) -> bytes:
        if self._low is None:
            self._low = self.buf.lower()
        return self._low

    def holds(self, members: bytes) -> bool:
        """Whether any byte of ``members`` occurs in the buffer: one memchr per byte, each
        answer kept, since several families ask about the same bytes (digits, "-") and an
        absent byte costs a scan of the whole buffer (about 2.5 us per 128 KiB)."""
        present = self._present
        buf = self.buf
        for byte in members:
            known = present.get(byte)
            if known is None:
                known = present[byte] = byte in buf
            if known:
                return True
        return False


Validator = Callable[[bytes, "re.Match[bytes]"], Finding | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternative:
    kind: str
    pattern: re.Pattern[bytes]
    validate: Validator


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """Detectors sharing one hit finder.

    ``literals`` (regexes that begin with a literal) are searched in ``view``; alternatively ``finder`` is a regex (searched in
    ``view``) whose match
    start is the hit. Every detectable value starts at most ``back`` bytes before a hit, and
    no pattern of the family looks at more than ``span`` bytes from a value's start (its
    look-ahead included).
    """

    name: str
    alternatives: tuple[Alternative, ...]
    view: str = "buf"
    # The view the exact patterns run on (positions are the same in every view).
    match_view: str = "buf"
    literals: tuple[bytes, ...] = ()
    finder: re.Pattern[bytes] | None = None
    back: int = 0
    span: int = 64
    # Per literal, a byte of the raw buffer it implies (b"" for none): a one-byte search
    # (memchr) that saves a slower multi-byte search when that byte is absent.
    pre: tuple[bytes, ...] = ()
    # The literals as regexes: a regex with a literal prefix finds a short needle faster
    # than bytes.find does on CPython 3.11 (measured 2-4x on terminal text); literals of six
    # bytes or more are searched with bytes.find instead (see searchers).
    literal_rx: tuple[re.Pattern[bytes], ...] = field(default=(), init=False, compare=False)
    # ``run`` as a translation: run bytes -> "r", others -> "n" (then one rfind finds the start).
    run_table: bytes = field(default=b"", init=False, compare=False)
    # ``token`` as a translation of the view: token bytes -> "r", others -> "n".
    token_table: bytes = field(default=b"", init=False, compare=False)
    # How each hit regex is searched: (regex, literal, confirm). With a literal, bytes.find
    # looks for it (a skip search: 3-5x faster than the regex engine's prefix scan where the
    # literal's bytes are frequent, as in translated base64) and, if ``confirm``, the regex
    # must match there.
    searchers: tuple[tuple[re.Pattern[bytes], bytes, bool], ...] = field(
        default=(), init=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple(re.compile(literal) for literal in self.literals)
        object.__setattr__(self, "literal_rx", compiled)
        searchers: tuple[tuple[re.Pattern[bytes], bytes, bool], ...]
        if self.finder is not None:
            searchers = ((self.finder, self.plain, True),)
        else:
            searchers = tuple(
                (rx, lit if len(lit) >= 6 and re.escape(lit) == lit else b"", False)
                for lit, rx in zip(self.literals, compiled, strict=True)
            )
        object.__setattr__(self, "searchers", searchers)
        if self.run:
            table = bytes(ord("r") if i in self.run else ord("n") for i in range(256))
            object.__setattr__(self, "run_table", table)
        if self.token:
            table = bytes(ord("r") if i in self.token else ord("n") for i in range(256))
            object.__setattr__(self, "token_table", table)

    # When set, a value can only start where the run of these bytes that ends at the hit
    # starts (an e-mail's local part): one candidate start instead of a window search.
    run: bytes = b""
    # When set, every value consists of these bytes of ``view`` (digits, separators, "+"):
    # a region search stops at the end of the run of them around the hit.
    token: bytes = b""
    # A literal every ``finder`` match begins with, searched with bytes.find (see searchers).
    plain: bytes = b""
    # Byte classes of the raw buffer that every value of the family meets: the bytes a
    # finding consumes (``[start, end)``, keywords included) hold at least one byte of every
    # class, so a buffer lacking all bytes of one class has no value at all, which a memchr
    # per byte finds out before any view is made or pattern runs. (Most gates are met by
    # the hit itself; the context family's is met by its values only.) Most terminal output
    # lacks one class of each family (no "@", no digit, no "_", no capital J), so it passes
    # at memchr speed instead of one prefix scan per family.
    gate: tuple[bytes, ...] = ()


def _whole(kind: str) -> Validator:
    def validate(buf: bytes, m: re.Match[bytes]) -> Finding | None:
        start, end = m.span()
        return Finding(start, end, kind, start, end)

    return validate


def _value_group(kind: str, check: Callable[[re.Match[bytes]], bool]) -> Validator:
    def validate(buf: bytes, m: re.Match[bytes]) -> Finding | None:
        if not check(m):
            return None
        return Finding(
            start=m.start(), end=m.end(), kind=kind, value_start=m.start("v"), value_end=m.end("v")
        )

    return validate


# --- digits: card, SSN, phone ------------------------------------------------------------

_CARD_RX = re.compile(rb"(?<![0-9A-Za-z_+\-])[0-9](?:[ \-]?[0-9]){12,18}(?![0-9A-Za-z_])")
_SSN_RX = re.compile(rb"(?<![0-9A-Za-z_\-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![0-9A-Za-z_]|-[0-9])")
_NANP_RX = re.compile(
    rb"(?<![0-9A-Za-z_+\-.])(?:\([2-9][0-9]{2}\) ?[0-9]{3}[\-. ]|[2-9][0-9]{2}([\-.])[0-9]{3}\1)"
    rb"[0-9]{4}(?![0-9A-Za-z_]|[\-.][0-9])"
)
# The literal "+" first (look-behind after it) lets the regex engine skip to each "+" at C speed.
_E164_RX = re.compile(
    rb"\+(?<![0-9A-Za-z_+]\+)[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}"
    rb"(?![0-9A-Za-z_]|[\-.][0-9])"
)


def _validate_card(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    # The pattern is greedy: "4111 1111 1111 1111 12/27" matches one group too far, so try
    # every cut at a separator, longest first.
    text = m.group()
    if text[0] in b"01789":  # no card range starts so: rejects "0000 0000 ..." (hex dumps) at once
        return None
    start = m.start()
    space, dash = b" " in text, b"-" in text
    if not (space or dash):
        if card_ok(text):
            return Finding(
                start=start, end=m.end(), kind=CARD, value_start=start, value_end=m.end()
            )
        return None
    sep = b" " if space and (not dash or text.find(b" ") < text.find(b"-")) else b"-"
    if space and dash:
        # "2221-0000-0000-0009 12": the number ends where the other separator begins.
        text = text[: text.find(b"-" if sep == b" " else b" ")]
    groups = text.split(sep)
    if len(groups[0]) != 4:
        # "4111111111111111 12/27": a compact number followed by another number.
        first = groups[0]
        if 13 <= len(first) <= 19 and card_ok(first):
            end = start + len(first)
            return Finding(start=start, end=end, kind=CARD, value_start=start, value_end=end)
        return None
    # A 19-digit number in the standard 4-4-4-4-3 layout is one number: never cut it.
    sizes = [len(g) for g in groups]
    shortest = len(groups) if sizes == [4, 4, 4, 4, 3] else 2
    digits = len(text) - len(groups) + 1
    for n in range(len(groups), shortest - 1, -1):
        if digits < 13:
            return None  # fewer groups only have fewer digits
        digits -= sizes[n - 1]
        inner_ok = min(sizes[: n - 1]) >= 3 and max(sizes[: n - 1]) <= 6
        if not inner_ok or not 1 <= sizes[n - 1] <= 6:
            continue
        if card_ok(b"".join(groups[:n])):
            end = start + sum(sizes[:n]) + n - 1
            return Finding(start=start, end=end, kind=CARD, value_start=start, value_end=end)
    return None


def _validate_ssn(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    if not ssn_ok(m.group(1), m.group(2), m.group(3)):
        return None
    return Finding(start=m.start(), end=m.end(), kind=SSN, value_start=m.start(), value_end=m.end())


def _validate_e164(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    text = m.group()
    end = len(text)
    digits = digit_count(text)
    # The pattern takes every digit group that follows; when that is more than a number
    # can have ("+1 201 100 0000 00000"), the number is the longest run of whole groups
    # that fits: masking it is safe, rejecting the whole match would leak it.
    while digits > 15:
        cut = max(text.rfind(b" ", 0, end), text.rfind(b".", 0, end), text.rfind(b"-", 0, end))
        if cut <= 0:
            return None
        end = cut
        digits = digit_count(text[:end])
    if digits < 8:
        return None
    return Finding(
        start=m.start(),
        end=m.start() + end,
        kind=PHONE,
        value_start=m.start(),
        value_end=m.start() + end,
    )


_DIGITS = Family(
    name="digits",
    alternatives=(
        Alternative(kind=CARD, pattern=_CARD_RX, validate=_validate_card),
        Alternative(kind=SSN, pattern=_SSN_RX, validate=_validate_ssn),
        Alternative(kind=PHONE, pattern=_NANP_RX, validate=_whole(PHONE)),
        Alternative(kind=PHONE, pattern=_E164_RX, validate=_validate_e164),
    ),
    view="t",
    # "+digit" carries the E.164 look-behind: "+" inside base64 is no hit.
    literals=(b"ddddddddd", b"dsdddd", b"dddpdddd", rb"Pd(?<![dUaP]Pd)"),
    pre=(b"", b"", b"", b"+"),
    token=b"dspP",
    gate=(DIGITS,),  # every literal holds a digit
    back=48,
    span=56,  # E.164: 5 + 6 * 7 + look-ahead 2 = 49; cards 37 + 1
)

# --- IBAN --------------------------------------------------------------------------------

_IBAN_RX = re.compile(rb"(?<![0-9A-Za-z_])[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){10,30}(?![0-9A-Za-z_])")


def _validate_iban(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    text = m.group()
    want = IBAN_LENGTHS.get(text[:2])
    if want is None:
        return None
    start = m.start()
    if b" " not in text:
        if iban_ok(text):
            return Finding(
                start=start, end=m.end(), kind=IBAN, value_start=start, value_end=m.end()
            )
        return None
    # Printed form: groups of four separated by single spaces; the greedy pattern may have
    # swallowed a following word ("... 0130 00 EUR"), so stop at the country's length.
    compact = b""
    end = start - 1
    for group in text.split(b" "):
        if len(compact) >= want or (compact and len(compact) % 4):
            break
        compact += group
        end += len(group) + 1
    if len(compact) != want or not iban_ok(compact):
        return None
    return Finding(start=start, end=end, kind=IBAN, value_start=start, value_end=end)


_IBAN = Family(
    name="iban",
    alternatives=(Alternative(kind=IBAN, pattern=_IBAN_RX, validate=_validate_iban),),
    view="t",
    finder=re.compile(rb"UUdd(?<![dUa]UUdd)"),  # the value's look-behind, translated
    plain=b"UUdd",
    gate=(DIGITS,),  # "UUdd": a digit (capitals: 26 memchrs, more than the finder costs)
    back=0,
    span=66,
)

# --- context: SSN as bare digits after a keyword, AWS secret keys -------------------------

# These run on the lower-cased view (same positions): keywords are then plain literals, and a
# pattern that begins with one lets the regex engine skip to it at C speed (the look-behind
# follows the first byte). Case-insensitive keywords made a region search cost ~150 ns a byte.
_SSN_CONTEXT_RX = re.compile(
    rb"s(?<![0-9a-z]s)(?:sn|s\#|ocial[ _]security(?:[ _](?:number|num|no\.?))?)"
    rb"(?![a-z])[ \t]{0,64}(?:[:#=\-]|is)?[ \t]{0,64}[\"']?"
    rb"(?P<v>([0-9]{3})[ \-]?([0-9]{2})[ \-]?([0-9]{4}))(?![0-9a-z_])"
)
_AWS_SECRET_VALUE = rb"[\"']?[ \t]{0,64}[:=][ \t]{0,64}[\"']?(?P<v>[a-z0-9/+]{40})(?![a-z0-9/+=])"
_AWS_SECRET_RX = re.compile(
    rb"a(?<![0-9a-z]a)(?:ws_?secret_?access_?key|ws_?secret(?:_?key)?)" + _AWS_SECRET_VALUE
)
_AWS_SECRET_BARE_RX = re.compile(rb"s(?<![0-9a-z]s)ecret_?access_?key" + _AWS_SECRET_VALUE)

_CONTEXT = Family(
    name="context",
    alternatives=(
        Alternative(
            kind=SSN,
            pattern=_SSN_CONTEXT_RX,
            validate=_value_group(SSN, lambda m: ssn_ok(m.group(2), m.group(3), m.group(4))),
        ),
        Alternative(
            kind=AWS_SECRET_KEY,
            pattern=_AWS_SECRET_RX,
            validate=_value_group(AWS_SECRET_KEY, lambda m: True),
        ),
        Alternative(
            kind=AWS_SECRET_KEY,
            pattern=_AWS_SECRET_BARE_RX,
            validate=_value_group(AWS_SECRET_KEY, lambda m: True),
        ),
    ),
    view="low",
    match_view="low",
    finder=re.compile(rb"s(?:sn|s\#|ocial|ecret)"),
    # Not the keyword's bytes (the hit is case-insensitive, and "s" is everywhere): the
    # values'. An SSN has digits, an AWS secret a ":" or "=" before it; a buffer with
    # neither (prose, most text without numbers) is spared the lower-cased copy and the scan.
    gate=(DIGITS + b":=",),
    back=4,
    span=200,  # the AWS form: 21 + 1 + 64 + 1 + 64 + 1 + 40 + 1 = 193
)

# --- e-mail --------------------------------------------------------------------------------

# Domain labels: letters, digits and inner hyphens; the top-level domain is letters only.
# Leading dots before the local part ("see...john@example.com") are skipped, not masked.
_EMAIL_RX = re.compile(
    rb"(?<![A-Za-z0-9._%+\-])\.{0,8}(?P<local>[A-Za-z0-9_%+\-][A-Za-z0-9._%+\-]{0,63})@"
    rb"(?P<domain>(?:[A-Za-z0-9][A-Za-z0-9\-]{0,62}\.){1,8}(?P<tld>[A-Za-z]{2,24}))"
    rb"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
)
_FILE_TLDS = frozenset({b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"bmp", b"ico"})


def _validate_email(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    # The pattern takes the whole run of domain labels (its look-ahead), so the last label
    # is the top-level domain, 2-24 letters. Shape rules kept out of the pattern, where
    # nested optional groups backtrack: the local part does not end with a dot, labels do
    # not end with a hyphen, the top-level domain is not an image extension ("icon@2x.png"
    # is an asset). This runs for every e-mail of a result set: few operations.
    local, domain, tld = m.group(1, 2, 3)
    if local[-1] == 0x2E or b"-." in domain or tld.lower() in _FILE_TLDS:
        return None
    start = m.start(1)
    if b".." in local:
        # "see...john@example.com": the address begins after the last run of dots.
        start += local.rfind(b"..") + 2
        while buf[start : start + 1] == b".":
            start += 1
    end = m.end()
    return Finding(m.start(), end, EMAIL, start, end)  # positional: the hot path


_EMAIL = Family(
    name="email",
    alternatives=(Alternative(kind=EMAIL, pattern=_EMAIL_RX, validate=_validate_email),),
    # An "@" with a local-part byte before it and a domain byte after it ("@.@." is no hit).
    finder=re.compile(rb"@(?<=[A-Za-z0-9._%+\-]@)(?=[A-Za-z0-9])"),
    run=b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-",
    gate=(b"@",),
    back=72,  # up to 8 leading dots and a 64-byte local part
    span=660,  # 8 + 64 + 1 + 63 + 8 * 64 + look-ahead 2 = 650
)

# --- keys, tokens, JWT, PEM: fixed prefixes ------------------------------------------------

_AWS_KEY_RX = re.compile(
    rb"(?<![A-Za-z0-9])A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16}(?![A-Za-z0-9])"
)
_GCP_KEY_RX = re.compile(rb"(?<![A-Za-z0-9_\-])AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])")
_GITHUB_RX = re.compile(
    rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])"
)
_SLACK_RX = re.compile(rb"(?<![A-Za-z0-9_\-])xox[abposre]-[A-Za-z0-9\-]{10,250}(?![A-Za-z0-9\-])")
_JWT_RX = re.compile(
    rb"(?<![A-Za-z0-9_\-.])(?P<h>eyJ[A-Za-z0-9_\-]{2,1021})\.[A-Za-z0-9_\-]{2,6144}"
    rb"\.[A-Za-z0-9_\-]{0,1020}(?![A-Za-z0-9_\-.])"
)
PEM_BEGIN_RX = re.compile(rb"-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
# Body of a PEM block: everything up to the first END line, or up to the first byte that
# cannot be part of a PEM body (so `grep BEGIN` output does not swallow the rest of a stream).
PEM_BODY_CHARS = rb"A-Za-z0-9+/=\s:,\-"
PEM_END_RX = re.compile(rb"-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
PEM_END_MAX = 128
PEM_BODY_RX = re.compile(
    rb"[" + PEM_BODY_CHARS + rb"]*?" + PEM_END_RX.pattern + rb"|[" + PEM_BODY_CHARS + rb"]*"
)


def _validate_jwt(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    if not jwt_header_ok(m.group("h")):
        return None
    return Finding(start=m.start(), end=m.end(), kind=JWT, value_start=m.start(), value_end=m.end())


def _validate_pem(buf: bytes, m: re.Match[bytes]) -> Finding | None:
    return Finding(
        start=m.start(),
        end=m.end(),
        kind=PRIVATE_KEY,
        value_start=m.start(),
        value_end=m.end(),
        block=True,
    )


_PEM = Family(
    name="pem",
    alternatives=(Alternative(kind=PRIVATE_KEY, pattern=PEM_BEGIN_RX, validate=_validate_pem),),
    finder=PEM_BEGIN_RX,  # a literal prefix: as fast as searching "-----BEGIN "
    gate=(b"K", b"Y", b"V", b"-"),  # of "-----BEGIN ... PRIVATE KEY"
    span=120,
)
_JWT = Family(
    name="jwt",
    alternatives=(Alternative(kind=JWT, pattern=_JWT_RX, validate=_validate_jwt),),
    finder=re.compile(rb"eyJ(?<![A-Za-z0-9_\-.]eyJ)"),
    gate=(b"J", b"y"),
    span=MAX_TOKEN + 8,
)
_CLOUD = Family(
    name="cloud",
    alternatives=(
        Alternative(kind=AWS_ACCESS_KEY, pattern=_AWS_KEY_RX, validate=_whole(AWS_ACCESS_KEY)),
        Alternative(kind=GCP_API_KEY, pattern=_GCP_KEY_RX, validate=_whole(GCP_API_KEY)),
    ),
    finder=re.compile(rb"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA|Iza)(?<![A-Za-z0-9]A...)"),
    gate=(b"A",),
    span=48,
)
_GITHUB = Family(
    name="github",
    alternatives=(
        Alternative(kind=GITHUB_TOKEN, pattern=_GITHUB_RX, validate=_whole(GITHUB_TOKEN)),
    ),
    finder=re.compile(
        rb"g(?:h[pousr]_(?<![A-Za-z0-9_]gh._)|ithub_pat_(?<![A-Za-z0-9_]github_pat_))"
    ),
    gate=(b"_", b"h"),
    span=264,
)
_SLACK = Family(
    name="slack",
    alternatives=(Alternative(kind=SLACK_TOKEN, pattern=_SLACK_RX, validate=_whole(SLACK_TOKEN)),),
    finder=re.compile(rb"xox[abposre]-(?<![A-Za-z0-9_\-]xox.-)"),
    gate=(b"-", b"x"),
    span=264,
)

# Order breaks ties between values that start at the same byte.
BUILTIN_FAMILIES: tuple[Family, ...] = (
    _PEM,
    _JWT,
    _CLOUD,
    _GITHUB,
    _SLACK,
    _CONTEXT,
    _IBAN,
    _DIGITS,
    _EMAIL,
)


def custom_family(kind: str, pattern: re.Pattern[bytes], max_length: int) -> Family:
    """A policy-defined pattern: it is its own hit finder."""
    return Family(
        name=f"custom:{kind}",
        alternatives=(Alternative(kind=kind, pattern=pattern, validate=_whole(kind)),),
        finder=pattern,
        span=max_length + 8,
    )


def select_families(kinds: frozenset[str]) -> list[Family]:
    """The built-in families restricted to the enabled detector kinds."""
    chosen: list[Family] = []
    for family in BUILTIN_FAMILIES:
        alts = tuple(a for a in family.alternatives if a.kind in kinds)
        if not alts:
            continue
        chosen.append(
            Family(
                name=family.name,
                alternatives=alts,
                view=family.view,
                match_view=family.match_view,
                literals=family.literals,
                finder=family.finder,
                back=family.back,
                span=family.span,
                pre=family.pre,
                run=family.run,
                token=family.token,
                plain=family.plain,
                gate=family.gate,
            )
        )
    return chosen
