"""Shell command-line lexer: POSIX quoting and expansions, as ``sh -c`` reads them.

Theory of operation
-------------------
A command line becomes a list of :class:`ShellWord` and :class:`ShellOp`. A word carries its
text after quote removal, and what the shell would still do to it at run time: parameter
expansion (``$X``, ``${X}``), globbing (unquoted ``* ? [``, braces, a leading ``~``), and the
inner text of every command substitution (``$(...)``, backticks, ``<(...)``), which the
classifier parses recursively because those commands run too. Nothing is expanded here: the
classifier decides what an unexpanded word means (a variable as a program name is not
understood). Here-documents are attached to their redirection operator. Unbalanced quotes,
substitutions and here-documents raise :class:`ShellSyntaxError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ShellSyntaxError(ValueError):
    """The command line is not complete shell syntax."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellWord:
    text: str  # after quote removal; expansions left as written
    raw: str
    has_expansion: bool = False  # $X, ${X}, ~, $'..' with unknown escapes
    has_glob: bool = False  # unquoted * ? [ or {a,b}
    has_arithmetic: bool = False
    substitutions: tuple[str, ...] = ()  # inner texts of $(...), `...`, <(...), >(...)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShellOp:
    op: str  # | || && & ; ( ) and redirections such as > >> 2> < << <<- <<< &> >& <&
    heredoc: str | None = None  # the body, for << and <<-
    heredoc_expands: bool = False  # unquoted delimiter: $ and ` in the body are live


ShellToken = ShellWord | ShellOp

_OPERATORS = (
    "<<<", "<<-", "&>>", "&&", "||", ";;", "|&", ">>", "<<", "&>", ">&", "<&", "<>", ">|",
    "|", "&", ";", "(", ")", "<", ">",
)  # fmt: skip
_OP_START = frozenset("|&;()<>")
_BREAK = frozenset(" \t\n|&;()<>")
_DQ_ESCAPABLE = frozenset('$`"\\\n')
_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a",
           "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v", "?": "?"}  # fmt: skip


def _matching_paren(text: str, i: int) -> int:
    """Index of the ``)`` closing the ``(`` just before ``i``, honouring quotes."""
    depth = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                break
            i = j + 1
            continue
        if c == '"':
            i = _end_of_double_quotes(text, i + 1)
            continue
        if c == "`":
            i = _end_of_backticks(text, i + 1) + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError("unbalanced parenthesis")


def _end_of_double_quotes(text: str, i: int) -> int:
    """Index just after the closing ``"`` of a double-quoted part starting at ``i``."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif text.startswith("$(", i):
            i = _matching_paren(text, i + 2) + 1
        elif c == "`":
            i = _end_of_backticks(text, i + 1) + 1
        else:
            i += 1
    raise ShellSyntaxError("unterminated double quote")


def _end_of_backticks(text: str, i: int) -> int:
    """Index of the backtick closing the one just before ``i``."""
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text[i] == "`":
            return i
        else:
            i += 1
    raise ShellSyntaxError("unterminated backtick")


@dataclass(slots=True)
class _WordBuilder:
    out: list[str] = field(default_factory=list)
    subs: list[str] = field(default_factory=list)
    expansion: bool = False
    glob: bool = False
    arithmetic: bool = False

    def dollar(self, text: str, i: int) -> int:
        """Read a ``$`` expansion at ``i``; returns the index after it."""
        nxt = text[i + 1 : i + 2]
        if text.startswith("$((", i):
            # Arithmetic may hide substitutions and array tricks: kept, flagged, not read.
            end = _matching_paren(text, i + 2)
            self.arithmetic = True
            self.out.append(text[i : end + 1])
            return end + 1
        if nxt == "(":
            end = _matching_paren(text, i + 2)
            self.subs.append(text[i + 2 : end])
            self.out.append(text[i : end + 1])
            self.expansion = True
            return end + 1
        if nxt == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise ShellSyntaxError("unterminated ${")
            inner = text[i + 2 : end]
            if "$(" in inner or "`" in inner:
                self.arithmetic = True  # nested substitution in a parameter: not read
            self.out.append(text[i : end + 1])
            self.expansion = True
            return end + 1
        if nxt and (nxt.isalnum() or nxt in "_@*#?$!-"):
            j = i + 2
            if nxt.isalpha() or nxt == "_":
                while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                    j += 1
            self.out.append(text[i:j])
            self.expansion = True
            return j
        self.out.append("$")
        return i + 1

    def backtick(self, text: str, i: int) -> int:
        end = _end_of_backticks(text, i + 1)
        inner = text[i + 1 : end]
        for a, b in (("\\`", "`"), ("\\$", "$"), ("\\\\", "\\")):
            inner = inner.replace(a, b)
        self.subs.append(inner)
        self.out.append(text[i : end + 1])
        self.expansion = True
        return end + 1

    def double_quoted(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\" and i + 1 < n and text[i + 1] in _DQ_ESCAPABLE:
                if text[i + 1] != "\n":
                    self.out.append(text[i + 1])
                i += 2
            elif c == "$":
                i = self.dollar(text, i)
            elif c == "`":
                i = self.backtick(text, i)
            else:
                self.out.append(c)
                i += 1
        raise ShellSyntaxError("unterminated double quote")

    def ansi_c(self, text: str, i: int) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            if c == "'":
                return i + 1
            if c == "\\" and i + 1 < n:
                e = text[i + 1]
                if e in _ANSI_C:
                    self.out.append(_ANSI_C[e])
                    i += 2
                elif e == "x":
                    j = i + 2
                    while j < n and j < i + 4 and text[j] in "0123456789abcdefABCDEF":
                        j += 1
                    self.out.append(chr(int(text[i + 2 : j] or "0", 16)))
                    i = j
                elif e in "01234567":
                    j = i + 1
                    while j < n and j < i + 4 and text[j] in "01234567":
                        j += 1
                    self.out.append(chr(int(text[i + 1 : j], 8)))
                    i = j
                else:  # \u, \c and friends: not decoded, so the word is not understood
                    self.expansion = True
                    self.out.append(text[i : i + 2])
                    i += 2
            else:
                self.out.append(c)
                i += 1
        raise ShellSyntaxError("unterminated $'...'")


def _read_word(text: str, i: int) -> tuple[ShellWord, int]:
    start = i
    n = len(text)
    b = _WordBuilder()
    if text[i] == "~":
        b.expansion = True
    while i < n:
        c = text[i]
        if c in _BREAK:
            break
        if c == "\\":
            if i + 1 < n and text[i + 1] != "\n":
                b.out.append(text[i + 1])
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ShellSyntaxError("unterminated single quote")
            b.out.append(text[i + 1 : j])
            i = j + 1
        elif c == '"':
            i = b.double_quoted(text, i + 1)
        elif c == "$" and text.startswith("$'", i):
            i = b.ansi_c(text, i + 2)
        elif c == "$":
            i = b.dollar(text, i)
        elif c == "`":
            i = b.backtick(text, i)
        else:
            if c in "*?[{":
                b.glob = True
            b.out.append(c)
            i += 1
    word = ShellWord(
        text="".join(b.out),
        raw=text[start:i],
        has_expansion=b.expansion,
        has_glob=b.glob,
        has_arithmetic=b.arithmetic,
        substitutions=tuple(b.subs),
    )
    return word, i


def _read_heredoc(text: str, i: int, delimiter: str, strip_tabs: bool) -> tuple[str, int]:
    """Body lines from ``i`` up to the delimiter line; returns the body and the index after."""
    lines: list[str] = []
    n = len(text)
    while i <= n:
        j = text.find("\n", i)
        line = text[i:] if j < 0 else text[i:j]
        i = n + 1 if j < 0 else j + 1
        check = line.lstrip("\t") if strip_tabs else line
        if check == delimiter:
            return "\n".join(lines), i
        lines.append(line)
    raise ShellSyntaxError(f"here-document without its {delimiter!r} line")


def tokenize_shell(text: str) -> list[ShellToken]:
    """Split a command line into words and operators; raises :class:`ShellSyntaxError`."""
    out: list[ShellToken] = []
    pending: list[tuple[int, str, bool, bool]] = []  # (index in out, delimiter, -, expands)
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c == "\\" and text.startswith("\\\n", i):
            i += 2
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()<>"):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "\n":
            out.append(ShellOp(op=";"))
            i += 1
            for index, delim, strip, expands in pending:
                body, i = _read_heredoc(text, i, delim, strip)
                out[index] = ShellOp(op=out[index].op, heredoc=body, heredoc_expands=expands)  # type: ignore[union-attr]
            pending.clear()
        elif c in "<>" and text.startswith("(", i + 1):
            end = _matching_paren(text, i + 2)
            inner = text[i + 2 : end]
            out.append(
                ShellWord(
                    text=text[i : end + 1],
                    raw=text[i : end + 1],
                    has_expansion=True,
                    substitutions=(inner,),
                )
            )
            i = end + 1
        elif c in _OP_START:
            op = next(o for o in _OPERATORS if text.startswith(o, i))
            i += len(op)
            if op in ("<<", "<<-"):
                while i < n and text[i] in " \t":
                    i += 1
                if i >= n or text[i] in _BREAK:
                    raise ShellSyntaxError("here-document without a delimiter")
                delim_word, i = _read_word(text, i)
                expands = delim_word.raw == delim_word.text
                pending.append((len(out), delim_word.text, op == "<<-", expands))
            out.append(ShellOp(op=op))
        else:
            word, i = _read_word(text, i)
            if word.raw.isdigit() and i < n and text[i] in "<>":
                continue  # a file descriptor number belongs to the redirection that follows
            out.append(word)
    if pending:
        raise ShellSyntaxError("here-document without a body")
    return out
