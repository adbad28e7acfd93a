"""Which tables a statement touches: table references and lists, anywhere in the text.

Theory of operation
-------------------
Every position that names tables is a *trigger* (``FROM``, ``INTO``, ``TABLE``, ``USING`` in
DELETE, ``REFERENCES``, sequence functions, ...), found in one pass at any nesting depth, so
subqueries are covered by their own ``FROM``. A list reader takes ``name`` or ``db.name`` items
separated by commas, steps over aliases, hints, partitions, join conditions and derived tables
(``(SELECT ...)``, whose own ``FROM`` is a trigger of its own), and reads the table after each
``JOIN`` itself. Each token is walked by at most one list per nesting level: the cost stays
linear in the text, whatever an attacker sends.
"""

from __future__ import annotations

from gateway.policy.sql_model import Facet, StatementKind, TableRef
from gateway.policy.sql_tokens import Tok

# A significant token: (kind, key, text); see sql_tokens.scan_significant.
Sig = tuple[Tok, str, str]

# Enum member access costs a class attribute lookup each time; the hot loops use these.
_WORD = Tok.WORD
_QIDENT = Tok.QUOTED_IDENT


def keywords(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that end a table list, and words that are never tables.
_CLAUSE_END = keywords(
    "WHERE GROUP ORDER HAVING LIMIT UNION EXCEPT INTERSECT FOR LOCK INTO SET VALUES VALUE "
    "SELECT WINDOW RETURNING PROCEDURE WITH LATERAL MINUS OFFSET FETCH DUPLICATE"
)
_NOT_TABLE = keywords(
    "SELECT WITH VALUES VALUE DUAL LATERAL IF OUTFILE DUMPFILE TABLE TABLES SET WHERE "
    "JOIN ON USING INNER LEFT RIGHT CROSS NATURAL STRAIGHT_JOIN TEMPORARY ONLY IGNORE "
    "LOW_PRIORITY QUICK DELAYED HIGH_PRIORITY"
)
# Inside these function calls FROM is part of the syntax, not a table list.
_FROM_FUNCS = frozenset({"EXTRACT", "TRIM", "SUBSTRING", "SUBSTR", "POSITION", "OVERLAY", "MID"})


def _ident(tok: Sig) -> str | None:
    kind, key, text = tok
    if kind is _WORD:
        return None if key in _NOT_TABLE else text
    if kind is _QIDENT:
        q = text[0]
        return text[1:-1].replace(q + q, q)
    return None


def table_ref(sig: list[Sig], i: int, *, star: bool = False) -> tuple[TableRef | None, int]:
    """Read ``name`` or ``db.name`` at ``i``; returns the ref (or None) and the next index."""
    n = len(sig)
    if i >= n:
        return None, i
    first = "*" if star and sig[i][2] == "*" else _ident(sig[i])
    if first is None:
        return None, i
    if i + 2 < n and sig[i + 1][2] == ".":
        second = "*" if sig[i + 2][2] == "*" else _ident(sig[i + 2])
        if second is None and sig[i + 2][0] is _WORD:
            second = sig[i + 2][2]  # after a dot any word is a name, reserved or not
        if second is not None:
            return TableRef(database=first, name=second), i + 3
    return TableRef(database=None, name=first), i + 1


def _close_paren(sig: list[Sig], i: int) -> int:
    """Index of the ``)`` matching the ``(`` at ``i`` (the last index when unbalanced)."""
    depth = 0
    for j in range(i, len(sig)):
        text = sig[j][2]
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(sig) - 1


def table_list(
    sig: list[Sig], i: int, out: list[TableRef], *, func_ok: bool = True, rename: bool = False
) -> None:
    """Collect a comma-separated list of table references starting at ``i``.

    Joins do not end the list (``FROM a JOIN b ON x, c`` names c too); derived tables are
    stepped over (their own FROMs are found by the caller's scan). ``func_ok=False`` (FROM,
    JOIN) skips ``name(`` as a table function such as JSON_TABLE.
    """
    n = len(sig)
    opened = 0  # parentheses opened around list items: FROM (a, b)
    while i < n:
        if sig[i][2] == "{" and i + 1 < n and sig[i + 1][1] == "OJ":
            i += 2  # ODBC outer join escape: FROM { OJ a LEFT JOIN b ON ... }
        while i < n and sig[i][2] == "(":
            if i + 1 < n and sig[i + 1][1] in _SUBQUERY_START:
                i = _close_paren(sig, i)
                break
            opened += 1
            i += 1
        while i < n and sig[i][1] in ("IF", "NOT", "EXISTS"):
            i += 1
        ref, j = table_ref(sig, i)
        if ref is not None and not (not func_ok and j < n and sig[j][2] == "("):
            out.append(ref)
        i = j if j > i else i + 1
        depth = 0
        while i < n:  # skip alias, hints, partitions, join conditions up to the next item
            kind, key, text = sig[i]
            if text == "(":
                depth += 1
            elif text == ")":
                depth -= 1
                if depth < 0:
                    if opened == 0:
                        return
                    opened -= 1
                    depth = 0
            elif depth == 0:
                if text == ",":
                    i += 1
                    break
                if rename and kind is _WORD and key == "TO":  # RENAME TABLE a TO b
                    ref, i = table_ref(sig, i + 1)
                    if ref is not None:
                        out.append(ref)
                    continue
                if kind is _WORD and key in _JOINS:
                    # The list walks through its joins itself (no separate walk per JOIN,
                    # which would cost quadratic time on many joins).
                    j = i + 1
                    while (
                        j < n
                        and sig[j][2] == "("
                        and sig[j + 1 : j + 2]
                        and (sig[j + 1][1] not in _SUBQUERY_START)
                    ):
                        j += 1
                        opened += 1
                    ref, k = table_ref(sig, j)
                    if ref is not None and not (k < n and sig[k][2] == "("):
                        out.append(ref)
                    i = max(k, j)
                    continue
                if kind is _WORD and key in _CLAUSE_END:
                    return
            i += 1
        else:
            return


_SUBQUERY_START = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_JOINS = frozenset({"JOIN", "STRAIGHT_JOIN"})
_TRIGGERS = frozenset(
    {"FROM", "USING", "TABLES", "TABLE", "VIEW", "INTO", "REFERENCES"}
    | {"LIKE", "LOAD_FILE", "NEXTVAL", "SETVAL", "LASTVAL", "VALUE"}
    | _FROM_FUNCS
)


def _syntax_from_positions(sig: list[Sig]) -> set[int]:
    """Positions of FROM that belong to EXTRACT(... FROM ...), TRIM(... FROM ...) and the like.

    One pass with a stack of open calls, so many FROMs cost no more than one.
    """
    inside: list[bool] = []  # per open parenthesis: is it such a call?
    found: set[int] = set()
    for i, (_, key, text) in enumerate(sig):
        if text == "(":
            inside.append(i > 0 and sig[i - 1][1] in _FROM_FUNCS)
        elif text == ")":
            if inside:
                inside.pop()
        elif key == "FROM" and inside and inside[-1]:
            found.add(i)
    return found


def scan_tables(sig: list[Sig], head: str) -> tuple[list[TableRef], tuple[Facet, ...]]:
    """Tables named anywhere in the statement (subqueries included), and the extra facets
    of the parts more dangerous than the head says (file reads and writes)."""
    out: list[TableRef] = []
    extra: list[Facet] = []
    n = len(sig)
    triggers = _TRIGGERS
    positions = [i for i, t in enumerate(sig) if t[1] in triggers]
    syntax_from: set[int] = set()
    if any(sig[i][1] in _FROM_FUNCS for i in positions):
        syntax_from = _syntax_from_positions(sig)
    for i in positions:
        kind, key, _ = sig[i]
        if kind is not _WORD or key in _FROM_FUNCS:
            continue
        if key == "FROM":
            if i in syntax_from:
                continue
            table_list(sig, i + 1, out, func_ok=False)
        elif key in ("TABLE", "VIEW"):
            table_list(sig, i + 1, out, rename=head == "RENAME")
        elif key == "INTO":
            nxt = word_at(sig, i + 1)
            if nxt in ("OUTFILE", "DUMPFILE"):
                extra.append(Facet(kind=StatementKind.LOAD_OUTFILE, subkind=nxt))
                continue
            j = i + 2 if nxt == "TABLE" else i + 1
            ref, _ = table_ref(sig, j)
            if ref is not None:
                out.append(ref)
        elif key == "LOAD_FILE":
            if i + 1 < n and sig[i + 1][2] == "(":
                extra.append(Facet(kind=StatementKind.LOAD_OUTFILE, subkind="LOAD_FILE"))
        elif key in ("NEXTVAL", "SETVAL", "LASTVAL"):  # sequences: NEXTVAL/SETVAL write them
            if i + 1 < n and sig[i + 1][2] == "(":
                ref, _ = table_ref(sig, i + 2)
                if ref is not None:
                    out.append(ref)
                if key != "LASTVAL":
                    extra.append(Facet(kind=StatementKind.UPDATE, subkind="SEQUENCE"))
        elif key == "VALUE":  # NEXT VALUE FOR seq, PREVIOUS VALUE FOR seq
            if i > 0 and sig[i - 1][1] in ("NEXT", "PREVIOUS") and word_at(sig, i + 1) == "FOR":
                ref, _ = table_ref(sig, i + 2)
                if ref is not None:
                    out.append(ref)
                if sig[i - 1][1] == "NEXT":
                    extra.append(Facet(kind=StatementKind.UPDATE, subkind="SEQUENCE"))
        elif key == "USING":
            if head == "DELETE" and not (i + 1 < n and sig[i + 1][2] == "("):
                table_list(sig, i + 1, out)  # not JOIN ... USING (column)
        elif key == "TABLES":
            if head in ("LOCK", "UNLOCK"):
                table_list(sig, i + 1, out)
        elif head in ("CREATE", "ALTER"):  # REFERENCES parent, LIKE template
            ref, _ = table_ref(sig, i + 1)
            if ref is not None:
                out.append(ref)
    return out, tuple(dict.fromkeys(extra))


def word_at(sig: list[Sig], i: int) -> str:
    return sig[i][1] if i < len(sig) and sig[i][0] is _WORD else ""
