"""The SQL tokenizer: reads statement text the way the MariaDB/MySQL server lexer does.

Theory of operation
-------------------
One compiled master expression is tried at each position; its named group says what the
token is. Only the places where the server's lexer has state are handled by hand:

* Executable comments ``/*! ... */``, ``/*!50001 ... */``, ``/*M! ... */``: the server strips
  the markers and lexes the content as SQL, so we emit an ``EXEC_OPEN`` token, tokenize the
  content normally, and emit ``EXEC_CLOSE`` at the ``*/`` that ends it. A *versioned* comment
  may instead be skipped by the server (version too new, or MariaDB ignoring MySQL 5.7+
  versions); skipped content is scanned raw to the first ``*/`` (one nested ``/* */`` level
  allowed). We do not know the server version, so we require both readings to end at the same
  place and raise :class:`SqlTokenError` when they do not: the text would mean different things
  to different servers.
* ``--`` starts a comment only when followed by whitespace, a control character or the end of
  the text (``--1`` is minus minus one).
* ``"..."`` is a string, or a quoted identifier under ``ANSI_QUOTES``; backslash escapes apply
  to strings unless ``NO_BACKSLASH_ESCAPES``; doubled quotes escape in both.

Whitespace is exactly the server's ASCII set (space, TAB, LF, VT, FF, CR): any other code point
(NO-BREAK SPACE, lookalike letters) is part of an identifier, as it is on the server. Tokens are
lossless: the concatenation of all token texts is the input. Unterminated strings, quoted
identifiers and comments raise :class:`SqlTokenError`; nothing else is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class SqlTokenError(ValueError):
    """The text cannot be tokenized the way every server would (unterminated, ambiguous)."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(f"{message} at offset {position}")
        self.position = position


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlMode:
    """The ``sql_mode`` flags that change how text is lexed."""

    ansi_quotes: bool = False
    no_backslash_escapes: bool = False


DEFAULT_SQL_MODE = SqlMode()


class Tok(IntEnum):
    WS = 1
    COMMENT = 2  # -- , # and /* */ comments: ignored by the server
    EXEC_OPEN = 3  # /*!, /*!50001, /*M!, /*M!100100: the content runs
    EXEC_CLOSE = 4  # the */ that closes an executable comment
    WORD = 5  # bare identifier or keyword
    QUOTED_IDENT = 6  # `...`, or "..." under ANSI_QUOTES
    STRING = 7
    NUMBER = 8
    VARIABLE = 9  # @user_var, @@system.var, @'quoted'
    PLACEHOLDER = 10  # ?
    SEMICOLON = 11
    OPERATOR = 12  # punctuation and operators, including ( ) , .


TRIVIA = frozenset({Tok.WS, Tok.COMMENT, Tok.EXEC_OPEN, Tok.EXEC_CLOSE})


class Token(NamedTuple):
    kind: Tok
    text: str
    start: int


_IDENT_CHARS = "0-9A-Za-z_$\u0080-\U0010ffff"
_WS = " \t\n\r\x0b\x0c"

# Alternatives are ordered by frequency in real traffic (words and spaces first): Python's re
# tries them in order. A bare word may start with a digit (1abc is an identifier on the
# server) but a number comes first when it is not followed by an identifier character.
_HEAD = rf"(?P<WS>[{_WS}]+)|(?P<WORD>[A-Za-z_$\u0080-\U0010ffff][{_IDENT_CHARS}]*)"
_TAIL = (
    rf"|(?P<NUM>(?:0[xX][0-9a-fA-F]+|0[bB][01]+"
    rf"|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![{_IDENT_CHARS}]))"
    rf"|(?P<DWORD>\d[{_IDENT_CHARS}]*)"
    r"|(?P<LINE>--(?=[\x00-\x20\x7f]|\Z)[^\n]*|\#[^\n]*)"
    r"|(?P<EXEC>/\*M?!(?P<VER>\d{5}\d?)?)"
    r"|(?P<BLOCK>/\*.*?\*/)"
    r"|(?P<CLOSE>\*/)"
    r"|(?P<BTICK>{btick})"
    rf"|(?P<VAR>@@?(?:[{_IDENT_CHARS}.]+|{{btick}}|{{single}}|{{double}})?)"
    r"|(?P<PH>\?)"
    r"|(?P<SEMI>;)"
    r"|(?P<OP><=>|->>|<<|>>|<=|>=|<>|!=|:=|\|\||&&|->|.)"
)
# Quoted text. Every repetition is possessive (*+, ++): when a quote is never closed the match
# fails at once instead of trying every way to split the text (catastrophic backtracking would
# let one crafted query stall the gateway). Possessive is also what the server does: its lexer
# never reconsiders a doubled quote or an escape.
_BTICK = r"`(?:[^`]++|``)*+`"
_SQ_ESC = r"'(?:[^'\\]++|\\.|'')*+'"
_SQ_RAW = r"'(?:[^']++|'')*+'"
_DQ_ESC = r'"(?:[^"\\]++|\\.|"")*+"'
_DQ_RAW = r'"(?:[^"]++|"")*+"'


def _compile(single: str, double: str) -> re.Pattern[str]:
    # An unterminated quote fails its own alternative and falls through to OP's "." where
    # the scanner reports it, rather than becoming punctuation.
    tail = _TAIL.replace("{btick}", _BTICK).replace("{single}", single)
    tail = tail.replace("{double}", double)
    return re.compile(f"{_HEAD}|(?P<SQ>{single})|(?P<DQ>{double}){tail}", re.DOTALL)


# Under ANSI_QUOTES a "..." is an identifier: backslash is not an escape there even when
# backslash escapes are on, so the raw pattern applies.
_PATTERNS: dict[tuple[bool, bool], re.Pattern[str]] = {
    (ansi, nbe): _compile(_SQ_RAW if nbe else _SQ_ESC, _DQ_RAW if (nbe or ansi) else _DQ_ESC)
    for ansi in (False, True)
    for nbe in (False, True)
}

_KINDS: dict[str | None, Tok] = {
    "WS": Tok.WS,
    "WORD": Tok.WORD,
    "DWORD": Tok.WORD,
    "NUM": Tok.NUMBER,
    "SQ": Tok.STRING,
    "DQ": Tok.STRING,
    "LINE": Tok.COMMENT,
    "BLOCK": Tok.COMMENT,
    "BTICK": Tok.QUOTED_IDENT,
    "VAR": Tok.VARIABLE,
    "PH": Tok.PLACEHOLDER,
    "SEMI": Tok.SEMICOLON,
    "OP": Tok.OPERATOR,
}

_UNTERMINATED = {"'": "string", '"': "quoted text", "`": "quoted identifier"}


def _raw_comment_end(text: str, pos: int) -> int:
    """Where a server that skips a versioned comment resumes: the index after its ``*/``.

    Mirrors the server's raw scan: strings are not recognized and one nested ``/* */`` is
    allowed. Returns -1 when the comment never ends.
    """
    depth = 0
    n = len(text)
    while pos < n:
        if text.startswith("/*", pos) and depth == 0:
            depth = 1
            pos += 2
            continue
        if text.startswith("*/", pos):
            pos += 2
            if depth == 0:
                return pos
            depth = 0
            continue
        pos += 1
    return -1


def tokenize(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> list[Token]:
    """Split ``text`` into lossless tokens as the server's lexer would.

    Raises :class:`SqlTokenError` for unterminated strings, identifiers and comments, nested
    executable comments and versioned comments whose end depends on the server version.
    """
    return [Token(*t) for t in scan(text, mode)]


def scan(
    text: str, mode: SqlMode = DEFAULT_SQL_MODE, *, skip_trivia: bool = False
) -> list[tuple[Tok, str, int]]:
    """:func:`tokenize` as plain ``(kind, text, start)`` tuples, for the hot path.

    With ``skip_trivia`` whitespace, comments and executable comment markers are left out
    (the content of executable comments stays: the server runs it).
    """
    key = (mode.ansi_quotes, mode.no_backslash_escapes)
    dq_kind = Tok.QUOTED_IDENT if mode.ansi_quotes else Tok.STRING
    if "/*" in text or "*/" in text:
        full = _scan_stateful(text, _PATTERNS[key], dq_kind)
        return [t for t in full if t[0] not in TRIVIA] if skip_trivia else full
    # No comment or executable comment can start or end: the lexer has no state, and
    # findall (no match objects) with a first-character dispatch is much faster.
    out: list[tuple[Tok, str, int]] = []
    append = out.append
    first_kind = _FIRST_KIND
    # Enum member access is a class attribute lookup each time: bind them once.
    word, operator, comment, ws, number, string, qident = (
        Tok.WORD,
        Tok.OPERATOR,
        Tok.COMMENT,
        Tok.WS,
        Tok.NUMBER,
        Tok.STRING,
        Tok.QUOTED_IDENT,
    )
    pos = 0
    for value in _FLAT_PATTERNS[key].findall(text):
        kind = first_kind.get(value[0], word)  # non-ASCII starts a word
        if kind is word:
            pass
        elif kind is operator:
            if value[0] == "-" and value.startswith("--"):
                kind = comment
                if skip_trivia:
                    pos += len(value)
                    continue
        elif kind is ws or kind is comment:
            if skip_trivia:
                pos += len(value)
                continue
        elif kind is number:
            if value == ".":
                kind = operator
            elif _NUMBER.fullmatch(value) is None:
                kind = word
        elif kind is string or kind is qident:
            if len(value) == 1:
                raise SqlTokenError(f"unterminated {_UNTERMINATED[value]}", position=pos)
            if value[0] == '"':
                kind = dq_kind
        append((kind, value, pos))
        pos += len(value)
    return out


def scan_significant(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> list[tuple[Tok, str, str]]:
    """The tokens that matter to a classifier, as ``(kind, key, text)``: the hot path.

    Whitespace, comments and executable comment markers are left out (the content of
    executable comments stays). ``key`` is the ASCII upper case of a bare word, because the
    server matches keywords ASCII case-insensitively only: Python upper-cases a long s
    (U+017F) followed by "elect" to "SELECT", the server does not. Other tokens keep their
    text as key.
    Whitespace is consumed by the expression, so the Python loop only sees these tokens;
    on an error the positional scan runs again to report where.
    """
    word = Tok.WORD
    if "/*" in text or "*/" in text:
        return _significant(scan(text, mode), skip_conditional=False)[0]
    key = (mode.ansi_quotes, mode.no_backslash_escapes)
    dq_kind = Tok.QUOTED_IDENT if mode.ansi_quotes else Tok.STRING
    first_kind = _FIRST_KIND
    operator, comment, number, string, qident = (
        Tok.OPERATOR,
        Tok.COMMENT,
        Tok.NUMBER,
        Tok.STRING,
        Tok.QUOTED_IDENT,
    )
    out: list[tuple[Tok, str, str]] = []
    append = out.append
    ascii_text = text.isascii()
    for value in _SIGNIFICANT_PATTERNS[key].findall(text.strip(_WS)):
        kind = first_kind.get(value[0], word)
        if kind is word:
            append((word, value.upper() if ascii_text or value.isascii() else value, value))
            continue
        if kind is operator:
            if value[0] == "-" and value.startswith("--"):
                continue
        elif kind is comment:
            continue
        elif kind is number:
            if value == ".":
                kind = operator
            elif _NUMBER.fullmatch(value) is None:
                append((word, value.upper() if value.isascii() else value, value))
                continue
        elif kind is string or kind is qident:
            if len(value) == 1:
                _raise_positioned(text, mode)
            if value[0] == '"':
                kind = dq_kind
        append((kind, value, value))
    return out


SigToken = tuple[Tok, str, str]


def _significant(
    tokens: list[tuple[Tok, str, int]], *, skip_conditional: bool
) -> tuple[list[SigToken], list[int]]:
    """Significant tokens and their offsets; optionally without conditional comment content."""
    out: list[SigToken] = []
    starts: list[int] = []
    word = Tok.WORD
    inside_skipped = False
    for k, v, start in tokens:
        if k is Tok.EXEC_OPEN:
            inside_skipped = skip_conditional and v != "/*!"
            continue
        if k is Tok.EXEC_CLOSE:
            inside_skipped = False
            continue
        if k in TRIVIA or inside_skipped:
            continue
        out.append((k, (v.upper() if v.isascii() else v) if k is word else v, v))
        starts.append(start)
    return out, starts


def scan_readings(
    text: str, mode: SqlMode = DEFAULT_SQL_MODE
) -> list[tuple[list[SigToken], list[int] | None]]:
    """Every way a server may read ``text``: significant tokens, with offsets when known.

    Conditional comments (``/*!50700 ...*/``, ``/*M! ...*/``) run or not depending on the
    server's flavour and version, so their text has two readings: with their content and
    without it. Everything else has one. Offsets are None on the fast path (no comments).
    """
    if "/*" not in text and "*/" not in text:
        return [(scan_significant(text, mode), None)]
    full = scan(text, mode)
    readings: list[tuple[list[SigToken], list[int] | None]] = [
        _significant(full, skip_conditional=False)
    ]
    if any(k is Tok.EXEC_OPEN and v != "/*!" for k, v, _ in full):
        readings.append(_significant(full, skip_conditional=True))
    return readings


_LITERAL_START = frozenset("'\"0123456789.?;`")


def raw_shape(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> tuple[str, ...] | None:
    """The exact tokens of a one-statement, comment-marker-free text with literals as ``?``.

    Two texts with the same raw shape differ only in literal values, so they classify the
    same. None when the text is not that simple (``/*``, ``*/``, ``;``, an unterminated
    quote): the caller takes the full path. Tokens are kept as written (case, comments), so
    the shape is exact; it costs one ``findall`` and a short loop.
    """
    if "/*" in text or "*/" in text:
        return None
    ansi = mode.ansi_quotes
    special = _LITERAL_START
    out: list[str] = []
    append = out.append
    for value in _SIGNIFICANT_PATTERNS[(ansi, mode.no_backslash_escapes)].findall(text.strip(_WS)):
        c = value[0]
        if c not in special:
            append(value)
        elif len(value) == 1 and c in "'\"`;":
            return None  # unterminated quote, or a statement separator
        elif c == "'" or (c == '"' and not ansi) or c == "?":
            append("?")
        elif c in '`"':
            append(value)
        elif value.isdigit() or (value != "." and _NUMBER.fullmatch(value) is not None):
            append("?")
        else:
            append(value)
    return tuple(out)


def _raise_positioned(text: str, mode: SqlMode) -> None:
    scan(text, mode)  # raises with the exact position
    raise SqlTokenError("unterminated quote", position=0)  # not reached: scan agrees


_FLAT_PATTERNS = {
    k: re.compile(re.sub(r"\(\?P<\w+>", "(?:", p.pattern), re.DOTALL) for k, p in _PATTERNS.items()
}
# Leading whitespace folded into each match; the text is stripped first so that every match
# ends in a token. Stripping is safe: "--" at the very end is a comment as "-- " is.
_SIGNIFICANT_PATTERNS = {
    k: re.compile(f"[{_WS}]*+({p.pattern})", re.DOTALL) for k, p in _FLAT_PATTERNS.items()
}
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_FIRST_KIND: dict[str, Tok] = {chr(c): Tok.OPERATOR for c in range(128)}
_FIRST_KIND.update({c: Tok.WS for c in _WS})
_FIRST_KIND.update({c: Tok.WORD for c in "_$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"})
_FIRST_KIND.update({c: Tok.NUMBER for c in "0123456789."})  # "." alone is punctuation
_FIRST_KIND.update({"'": Tok.STRING, '"': Tok.STRING, "`": Tok.QUOTED_IDENT, "@": Tok.VARIABLE})
_FIRST_KIND.update({"?": Tok.PLACEHOLDER, ";": Tok.SEMICOLON, "#": Tok.COMMENT})


def _scan_stateful(text: str, pattern: re.Pattern[str], dq_kind: Tok) -> list[tuple[Tok, str, int]]:
    match = pattern.match
    out: list[tuple[Tok, str, int]] = []
    append = out.append
    pos = 0
    n = len(text)
    exec_open_at = -1  # start of the open executable comment, -1 when outside
    exec_raw_end = -1  # where a server skipping that (versioned) comment would resume
    while pos < n:
        m = match(text, pos)
        assert m is not None  # the OP alternative matches any single character
        group = m.lastgroup
        end = m.end()
        value = m.group()
        if group == "EXEC":
            if exec_open_at >= 0:
                raise SqlTokenError("executable comment inside another", position=pos)
            exec_open_at = pos
            exec_raw_end = _raw_comment_end(text, end) if m.group("VER") else -1
            kind = Tok.EXEC_OPEN
        elif group == "CLOSE":
            if exec_open_at < 0:
                # Outside an executable comment "*/" is "*" then whatever "/" starts.
                end = pos + 1
                value = "*"
                kind = Tok.OPERATOR
            else:
                if exec_raw_end >= 0 and exec_raw_end != end:
                    raise SqlTokenError(
                        "versioned comment ends differently when the server skips it",
                        position=exec_open_at,
                    )
                exec_open_at = -1
                kind = Tok.EXEC_CLOSE
        else:
            kind = _KINDS[group]
            if kind is Tok.OPERATOR:
                if value in _UNTERMINATED:
                    raise SqlTokenError(f"unterminated {_UNTERMINATED[value]}", position=pos)
                if value == "/" and text.startswith("/*", pos):
                    raise SqlTokenError("unterminated comment", position=pos)
            elif group == "DQ":
                kind = dq_kind
        append((kind, value, pos))
        pos = end
    if exec_open_at >= 0:
        raise SqlTokenError("unterminated executable comment", position=exec_open_at)
    return out
