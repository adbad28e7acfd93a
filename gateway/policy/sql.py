"""SQL classifier: statement kinds and tables touched, for every statement in a text.

Theory of operation
-------------------
The text is tokenized exactly as the server lexes it (:mod:`gateway.policy.sql_tokens`);
whitespace, comments and the markers of executable comments are dropped (their content stays,
because the server runs it), and the rest is split on ``;`` into statements. Each statement is
classified from its leading keywords; anything not recognized is ``UNKNOWN``, and everything
that hides its real text (``PREPARE``, ``EXECUTE``, ``CALL``, ``HANDLER``, ``DO``, compound
blocks) is ``DYNAMIC``. A statement may carry extra *facets* when part of it is more dangerous
than its head says (``INSERT ... SELECT LOAD_FILE(...)`` is also ``LOAD_OUTFILE``); the policy
engine decides every facet. Tables are found by scanning every token for ``FROM``, ``JOIN``,
``INTO`` and the statement-specific positions, at any nesting depth, so subqueries are covered.

We split more eagerly than the server (compound bodies are cut at their inner ``;``): each piece
is classified on its own and a policy takes the most restrictive decision, so over-splitting can
only make a decision stricter. A statement that changes ``sql_mode`` makes the statements after
it in the same text ``UNKNOWN``, because the server lexes them under the new mode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from gateway.policy.sql_tokens import (
    DEFAULT_SQL_MODE,
    SqlMode,
    SqlTokenError,
    Tok,
    raw_shape,
    scan,
    scan_readings,
    scan_significant,
)


class StatementKind(StrEnum):
    SELECT = "SELECT"
    INSERT = "INSERT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    REPLACE = "REPLACE"
    DDL = "DDL"
    GRANT = "GRANT"
    ADMIN = "ADMIN"
    TRANSACTION = "TRANSACTION"
    SESSION = "SESSION"
    SHOW = "SHOW"
    DYNAMIC = "DYNAMIC"
    LOAD_OUTFILE = "LOAD_OUTFILE"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRef:
    """A table as written: ``database`` is None when unqualified; ``name`` may be ``*``."""

    database: str | None
    name: str

    def qualified(self, default_database: str | None) -> str | None:
        db = self.database if self.database is not None else default_database
        return None if db is None else f"{db}.{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Facet:
    kind: StatementKind
    subkind: str = ""

    def label(self) -> str:
        return f"{self.kind}:{self.subkind}" if self.subkind else str(self.kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlStatement:
    """One statement: its kind (and extra facets), tables touched, and its text."""

    kind: StatementKind
    subkind: str = ""
    extra_facets: tuple[Facet, ...] = ()
    tables: tuple[TableRef, ...] = ()
    text: str = ""
    reason: str = ""  # why it is UNKNOWN or DYNAMIC, for the audit trail
    sets_sql_mode: bool = False

    def facets(self) -> tuple[Facet, ...]:
        return (Facet(kind=self.kind, subkind=self.subkind), *self.extra_facets)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlClassification:
    statements: tuple[SqlStatement, ...]

    @property
    def understood(self) -> bool:
        return all(s.kind is not StatementKind.UNKNOWN for s in self.statements)


# A significant token: (kind, key, text); see scan_significant.
_Sig = tuple[Tok, str, str]


# Words that can follow a table name without being its alias, and words that are never tables.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Enum member access costs a class attribute lookup each time; the hot loops use these.
_WORD = Tok.WORD
_VARIABLE = Tok.VARIABLE
_QIDENT = Tok.QUOTED_IDENT
_SEMI = Tok.SEMICOLON
_SQL_WS = " \t\n\r\x0b\x0c"
_SEMI_TOKEN = (Tok.SEMICOLON, ";", ";")

_CLAUSE_END = _words(
    "WHERE GROUP ORDER HAVING LIMIT UNION EXCEPT INTERSECT FOR LOCK INTO SET VALUES VALUE "
    "SELECT WINDOW RETURNING PROCEDURE WITH LATERAL MINUS OFFSET FETCH DUPLICATE"
)
_NOT_TABLE = _words(
    "SELECT WITH VALUES VALUE DUAL LATERAL IF OUTFILE DUMPFILE TABLE TABLES SET WHERE "
    "JOIN ON USING INNER LEFT RIGHT CROSS NATURAL STRAIGHT_JOIN TEMPORARY ONLY IGNORE "
    "LOW_PRIORITY QUICK DELAYED HIGH_PRIORITY"
)
# Inside these function calls FROM is part of the syntax, not a table list.
_FROM_FUNCS = frozenset({"EXTRACT", "TRIM", "SUBSTRING", "SUBSTR", "POSITION", "OVERLAY", "MID"})

_ADMIN_HEADS = _words(
    "SHUTDOWN KILL FLUSH INSTALL UNINSTALL RESET PURGE CHANGE STOP BINLOG CACHE OPTIMIZE "
    "REPAIR CHECK CHECKSUM LOCK UNLOCK BACKUP RESTART CLONE"
)
_COMPOUND_HEADS = frozenset({"IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"})
_SHOW_HEADS = frozenset({"SHOW", "DESCRIBE", "DESC", "EXPLAIN", "HELP"})
_DML_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "TABLE", "VALUES"})


def _split(
    text: str, mode: SqlMode, tokens: list[_Sig], starts: list[int] | None
) -> list[tuple[list[_Sig], str]]:
    """Statements of one reading, each with its original text."""
    if _SEMI_TOKEN not in tokens:  # one statement, the common case
        return [(tokens, text.strip(_SQL_WS))] if tokens else []
    if starts is None:  # the fast path kept no offsets: the positional scan has the same tokens
        starts = [start for _, _, start in scan(text, mode, skip_trivia=True)]
    out: list[tuple[list[_Sig], str]] = []
    current: list[_Sig] = []
    first = last = 0
    for tok, start in zip(tokens, starts, strict=True):
        if tok[0] is _SEMI:
            if current:
                out.append((current, text[first:last]))
            current = []
            continue
        if not current:
            first = start
        current.append(tok)
        last = start + len(tok[2])
    if current:
        out.append((current, text[first:last]))
    return out


def _ident(tok: _Sig) -> str | None:
    kind, key, text = tok
    if kind is _WORD:
        return None if key in _NOT_TABLE else text
    if kind is _QIDENT:
        q = text[0]
        return text[1:-1].replace(q + q, q)
    return None


def _table_ref(sig: list[_Sig], i: int, *, star: bool = False) -> tuple[TableRef | None, int]:
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


def _close_paren(sig: list[_Sig], i: int) -> int:
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


def _table_list(
    sig: list[_Sig], i: int, out: list[TableRef], *, func_ok: bool = True, rename: bool = False
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
        ref, j = _table_ref(sig, i)
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
                    ref, i = _table_ref(sig, i + 1)
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
                    ref, k = _table_ref(sig, j)
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


def _syntax_from_positions(sig: list[_Sig]) -> set[int]:
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


def _scan_tables(sig: list[_Sig], head: str) -> tuple[list[TableRef], tuple[Facet, ...]]:
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
            _table_list(sig, i + 1, out, func_ok=False)
        elif key in ("TABLE", "VIEW"):
            _table_list(sig, i + 1, out, rename=head == "RENAME")
        elif key == "INTO":
            nxt = _word_at(sig, i + 1)
            if nxt in ("OUTFILE", "DUMPFILE"):
                extra.append(Facet(kind=StatementKind.LOAD_OUTFILE, subkind=nxt))
                continue
            j = i + 2 if nxt == "TABLE" else i + 1
            ref, _ = _table_ref(sig, j)
            if ref is not None:
                out.append(ref)
        elif key == "LOAD_FILE":
            if i + 1 < n and sig[i + 1][2] == "(":
                extra.append(Facet(kind=StatementKind.LOAD_OUTFILE, subkind="LOAD_FILE"))
        elif key in ("NEXTVAL", "SETVAL", "LASTVAL"):  # sequences: NEXTVAL/SETVAL write them
            if i + 1 < n and sig[i + 1][2] == "(":
                ref, _ = _table_ref(sig, i + 2)
                if ref is not None:
                    out.append(ref)
                if key != "LASTVAL":
                    extra.append(Facet(kind=StatementKind.UPDATE, subkind="SEQUENCE"))
        elif key == "VALUE":  # NEXT VALUE FOR seq, PREVIOUS VALUE FOR seq
            if i > 0 and sig[i - 1][1] in ("NEXT", "PREVIOUS") and _word_at(sig, i + 1) == "FOR":
                ref, _ = _table_ref(sig, i + 2)
                if ref is not None:
                    out.append(ref)
                if sig[i - 1][1] == "NEXT":
                    extra.append(Facet(kind=StatementKind.UPDATE, subkind="SEQUENCE"))
        elif key == "USING":
            if head == "DELETE" and not (i + 1 < n and sig[i + 1][2] == "("):
                _table_list(sig, i + 1, out)  # not JOIN ... USING (column)
        elif key == "TABLES":
            if head in ("LOCK", "UNLOCK"):
                _table_list(sig, i + 1, out)
        elif head in ("CREATE", "ALTER"):  # REFERENCES parent, LIKE template
            ref, _ = _table_ref(sig, i + 1)
            if ref is not None:
                out.append(ref)
    return out, tuple(dict.fromkeys(extra))


def _word_at(sig: list[_Sig], i: int) -> str:
    return sig[i][1] if i < len(sig) and sig[i][0] is _WORD else ""


def _skip_modifiers(sig: list[_Sig], i: int, words: frozenset[str]) -> int:
    while i < len(sig) and sig[i][0] is _WORD and sig[i][1] in words:
        i += 1
    return i


_INSERT_MODS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"})
_TABLE_LIST_MODS = frozenset({"LOW_PRIORITY", "IGNORE", "TABLE"})
_EXPLAINABLE = _DML_VERBS | {"ANALYZE", "FORMAT", "EXTENDED", "PARTITIONS", "WITH"}
_CREATE_MODS = _words(
    "OR REPLACE TEMPORARY ONLINE OFFLINE UNIQUE FULLTEXT SPATIAL AGGREGATE SQL SECURITY "
    "DEFINER INVOKER UNDEFINED MERGE TEMPTABLE ALGORITHM IF NOT EXISTS"
)


def _object_word(sig: list[_Sig], i: int) -> str:
    """The object type after CREATE/ALTER/DROP, skipping OR REPLACE, DEFINER = x, ..."""
    n = len(sig)
    while i < n:
        kind, key, text = sig[i]
        if text == "=" or (kind is _WORD and key in _CREATE_MODS):
            i += 1
            continue
        if i > 0 and sig[i - 1][2] == "=":  # the value of DEFINER = / ALGORITHM =
            i += 1
            while i < n and (sig[i][2] in ("@", ".") or sig[i][0] is _VARIABLE):
                i += 1
                if i < n and sig[i - 1][2] in ("@", "."):
                    i += 1
            continue
        return key if kind is _WORD else ""
    return ""


# Heads whose kind needs no further look (the common statements: one dictionary lookup).
_PLAIN_HEADS: dict[str, tuple[StatementKind, str, str]] = {
    "SELECT": (StatementKind.SELECT, "", ""),
    "VALUES": (StatementKind.SELECT, "", ""),
    "TABLE": (StatementKind.SELECT, "", ""),
    "INSERT": (StatementKind.INSERT, "", ""),
    "UPDATE": (StatementKind.UPDATE, "", ""),
    "DELETE": (StatementKind.DELETE, "", ""),
    "REPLACE": (StatementKind.REPLACE, "", ""),
    "COMMIT": (StatementKind.TRANSACTION, "COMMIT", ""),
    "ROLLBACK": (StatementKind.TRANSACTION, "ROLLBACK", ""),
    "USE": (StatementKind.SESSION, "USE", ""),
    "SHOW": (StatementKind.SHOW, "SHOW", ""),
}


def _classify_verb(sig: list[_Sig], i: int) -> tuple[StatementKind, str, str]:
    """(kind, subkind, reason) for the statement whose first keyword is at ``i``."""
    n = len(sig)
    head = _word_at(sig, i)
    nxt = _word_at(sig, i + 1)
    K = StatementKind
    if not head:
        return K.UNKNOWN, "", "statement does not start with a keyword"
    if i + 1 < n and sig[i + 1][2] == ":" and head not in _DML_VERBS:
        return K.DYNAMIC, "COMPOUND", "labelled compound statement"
    plain = _PLAIN_HEADS.get(head)
    if plain is not None:
        return plain
    if head == "WITH":
        m = _main_verb(sig, i)
        if m == i:
            return K.UNKNOWN, "", "WITH without a main statement"
        return _classify_verb(sig, m)
    if head in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        return K(head), "", ""
    if head in ("CREATE", "ALTER", "DROP", "RENAME"):
        obj = _object_word(sig, i + 1)
        if obj in ("USER", "ROLE"):
            return K.GRANT, obj, ""
        if head == "DROP" and obj == "PREPARE":
            return K.DYNAMIC, "DEALLOCATE", "prepared statement"
        return K.DDL, head, ""
    if head == "TRUNCATE":
        return K.DDL, "TRUNCATE", ""
    if head in ("GRANT", "REVOKE"):
        return K.GRANT, head, ""
    if head == "SET":
        return _classify_set(sig, i)
    if head == "USE":
        return K.SESSION, "USE", ""
    if head in _SHOW_HEADS:
        if head == "EXPLAIN" and nxt == "ANALYZE":  # EXPLAIN ANALYZE executes the statement
            return _classify_inner(sig, i + 2)
        return K.SHOW, "DESCRIBE" if head == "DESC" else head, ""
    if head == "ANALYZE":
        if nxt in ("TABLE", "TABLES", "NO_WRITE_TO_BINLOG", "LOCAL"):
            return K.ADMIN, "ANALYZE", ""
        return _classify_inner(sig, i + 1)  # MariaDB ANALYZE <stmt> runs <stmt>
    if head in ("BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA"):
        return _classify_transaction(sig, i, head, nxt)
    if head == "LOAD":
        if nxt in ("DATA", "XML"):
            return K.LOAD_OUTFILE, f"LOAD_{nxt}", ""
        return K.ADMIN, "LOAD_INDEX", ""
    if head in _ADMIN_HEADS:
        return K.ADMIN, head, ""
    if head in ("PREPARE", "EXECUTE", "DEALLOCATE", "CALL", "HANDLER", "DO"):
        return K.DYNAMIC, head, "statement text is not visible to the gateway"
    if head in _COMPOUND_HEADS:
        return K.DYNAMIC, "COMPOUND", "compound statement"
    if head == "DELIMITER":
        return K.UNKNOWN, "", "DELIMITER is a client command, not SQL"
    return K.UNKNOWN, "", f"unrecognized statement {head[:40]}"


def _main_verb(sig: list[_Sig], i: int) -> int:
    """Index of the statement verb after ``WITH`` and its common table expressions."""
    depth = 0
    for j in range(i + 1, len(sig)):
        kind, key, text = sig[j]
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and kind is _WORD and key in _DML_VERBS:
            return j
    return i


def _classify_inner(sig: list[_Sig], i: int) -> tuple[StatementKind, str, str]:
    n = len(sig)
    if _word_at(sig, i) == "FORMAT":
        i += 3  # FORMAT = JSON
    while i < n and sig[i][2] == "(":
        i += 1
    return _classify_verb(sig, i)


def _classify_transaction(
    sig: list[_Sig], i: int, head: str, nxt: str
) -> tuple[StatementKind, str, str]:
    K = StatementKind
    if head == "BEGIN":
        if len(sig) == i + 1 or (nxt == "WORK" and len(sig) == i + 2):
            return K.TRANSACTION, "BEGIN", ""
        return K.DYNAMIC, "COMPOUND", "BEGIN ... END block"
    if head == "START":
        if nxt == "TRANSACTION":
            return K.TRANSACTION, "BEGIN", ""
        return K.ADMIN, "START", ""  # START SLAVE / REPLICA / ALL SLAVES
    if head == "RELEASE" and nxt != "SAVEPOINT":
        return K.UNKNOWN, "", "RELEASE without SAVEPOINT"
    return K.TRANSACTION, head, ""


def _classify_set(sig: list[_Sig], i: int) -> tuple[StatementKind, str, str]:
    K = StatementKind
    nxt = _word_at(sig, i + 1)
    if nxt == "PASSWORD":
        return K.GRANT, "PASSWORD", ""
    if nxt == "DEFAULT" and _word_at(sig, i + 2) == "ROLE":
        return K.GRANT, "ROLE", ""
    if nxt == "TRANSACTION":
        return K.TRANSACTION, "SET_TRANSACTION", ""
    depth = 0
    for kind, key, _text in sig[i + 1 :]:
        if key == "(":
            depth += 1
        elif key == ")":
            depth -= 1
        elif (depth == 0 and kind is _WORD and key in ("GLOBAL", "PERSIST", "PERSIST_ONLY")) or (
            kind is _VARIABLE and key.upper().startswith(("@@GLOBAL", "@@PERSIST"))
        ):
            return K.ADMIN, "SET_GLOBAL", ""
    if nxt == "ROLE":
        return K.SESSION, "ROLE", ""
    return K.SESSION, "SET", ""


def _mentions_sql_mode(sig: list[_Sig]) -> bool:
    for kind, key, _ in sig:
        if kind is _WORD and key == "SQL_MODE":
            return True
        if kind is _VARIABLE and key.upper().replace("`", "").endswith("SQL_MODE"):
            return True
    return False


def _classify_statement(sig: list[_Sig], text: str) -> SqlStatement:
    i = 0
    n = len(sig)
    while i < n and sig[i][2] == "(":
        i += 1
    head = _word_at(sig, i)
    if head == "SET" and _word_at(sig, i + 1) == "STATEMENT":
        # MariaDB SET STATEMENT var=value[, ...] FOR <statement>: the inner statement runs.
        depth = 0
        for j in range(i + 2, n):
            if sig[j][2] == "(":
                depth += 1
            elif sig[j][2] == ")":
                depth -= 1
            elif depth == 0 and sig[j][1] == "FOR" and sig[j][0] is _WORD:
                inner = _classify_statement(sig[j + 1 :], text)
                return SqlStatement(
                    kind=inner.kind,
                    subkind=inner.subkind,
                    extra_facets=inner.extra_facets,
                    tables=inner.tables,
                    text=text,
                    reason=inner.reason,
                    sets_sql_mode=inner.sets_sql_mode,
                )
        return SqlStatement(
            kind=StatementKind.UNKNOWN, text=text, reason="SET STATEMENT without FOR"
        )
    kind, subkind, reason = _classify_verb(sig, i)
    if head == "WITH":
        i = _main_verb(sig, i)
        head = _word_at(sig, i)
    tables, extra = _scan_tables(sig, head)
    if head in ("UPDATE", "HANDLER", "TRUNCATE"):
        _table_list(sig, _skip_modifiers(sig, i + 1, _TABLE_LIST_MODS), tables)
    elif head in ("DESCRIBE", "DESC", "EXPLAIN") and _word_at(sig, i + 1) not in _EXPLAINABLE:
        _table_list(sig, i + 1, tables)
    elif head in ("INSERT", "REPLACE"):
        ref, _ = _table_ref(sig, _skip_modifiers(sig, i + 1, _INSERT_MODS))
        if ref is not None:
            tables.append(ref)
    elif head in ("GRANT", "REVOKE") or (head in ("CREATE", "DROP") and kind is StatementKind.DDL):
        for j in range(i + 1, n):
            if sig[j][1] == "ON" and sig[j][0] is _WORD:
                k = j + 1
                if _word_at(sig, k) in ("TABLE", "FUNCTION", "PROCEDURE", "PACKAGE"):
                    k += 1
                ref, _ = _table_ref(sig, k, star=True)
                if ref is not None:
                    tables.append(ref)
                break
    if head in ("CREATE", "DROP", "ALTER") and _object_word(sig, i + 1) in ("DATABASE", "SCHEMA"):
        j = i + 1
        while j < n and _word_at(sig, j) not in ("DATABASE", "SCHEMA"):
            j += 1
        j = _skip_modifiers(sig, j + 1, frozenset({"IF", "NOT", "EXISTS"}))
        ref, _ = _table_ref(sig, j)
        if ref is not None:
            tables.append(TableRef(database=ref.name, name="*"))
    return SqlStatement(
        kind=kind,
        subkind=subkind,
        extra_facets=extra,
        tables=tuple(dict.fromkeys(tables)),
        text=text,
        reason=reason,
        sets_sql_mode=head == "SET" and _mentions_sql_mode(sig),
    )


_CACHE_MAX_TEXT = 512


def classify_sql(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> SqlClassification:
    """Classify every statement of a (possibly multi-statement) query text.

    Never raises for any input: what cannot be read becomes an ``UNKNOWN`` statement.
    Results of short texts are cached: the function is pure and its results frozen, and
    real traffic repeats the same texts (BEGIN, COMMIT, health checks, prepared shapes).
    """
    if len(text) <= _CACHE_MAX_TEXT:
        return _classify_cached(text, mode)
    return classify_sql_uncached(text, mode)


# One-statement texts without comment markers are looked up by their raw shape first (see
# raw_shape): the common statement costs a findall, a short loop and a dictionary lookup.
_RAW_SHAPES: dict[tuple[bool, bool, tuple[str, ...]], SqlStatement] = {}


def classify_sql_uncached(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> SqlClassification:
    """:func:`classify_sql` without the per-text cache (benchmarks measure this one)."""
    shape = raw_shape(text, mode)
    if shape is None:
        return _classify_full(text, mode)
    key = (mode.ansi_quotes, mode.no_backslash_escapes, shape)
    known = _RAW_SHAPES.get(key)
    if known is None:
        result = _classify_full(text, mode)
        if len(result.statements) == 1:
            if len(_RAW_SHAPES) >= _SHAPES_MAX:
                _RAW_SHAPES.clear()
            _RAW_SHAPES[key] = result.statements[0]
        return result
    stmt = SqlStatement(
        kind=known.kind,
        subkind=known.subkind,
        extra_facets=known.extra_facets,
        tables=known.tables,
        text=text.strip(_SQL_WS),
        reason=known.reason,
        sets_sql_mode=known.sets_sql_mode,
    )
    return SqlClassification(statements=(stmt,))


def _classify_full(text: str, mode: SqlMode) -> SqlClassification:
    try:
        readings = [_split(text, mode, toks, starts) for toks, starts in scan_readings(text, mode)]
    except SqlTokenError as exc:
        return SqlClassification(
            statements=(SqlStatement(kind=StatementKind.UNKNOWN, text=text, reason=str(exc)),)
        )
    out = _classify_reading(readings[0])
    seen = set(out)
    for pieces in readings[1:]:  # other readings add what the first does not already have
        for stmt in _classify_reading(pieces):
            if stmt not in seen:
                seen.add(stmt)
                out.append(stmt)
    if not out:
        out.append(
            SqlStatement(kind=StatementKind.UNKNOWN, text=text.strip(_SQL_WS), reason="empty")
        )
    return SqlClassification(statements=tuple(out))


def _classify_reading(pieces: list[tuple[list[_Sig], str]]) -> list[SqlStatement]:
    out: list[SqlStatement] = []
    mode_changed = False
    for sig, stmt_text in pieces:
        if mode_changed:
            out.append(
                SqlStatement(
                    kind=StatementKind.UNKNOWN,
                    text=stmt_text,
                    reason="sql_mode was changed earlier in the same text",
                )
            )
            continue
        stmt = _classify_shaped(sig, stmt_text)
        mode_changed = stmt.sets_sql_mode
        out.append(stmt)
    return out


# Classification depends on the statement's shape only (its tokens with literals as "?"), so
# results are kept per shape: real traffic repeats a few shapes with different literals.
_SHAPES: dict[tuple[str, ...], SqlStatement] = {}
_SHAPES_MAX = 4096
_LITERALS = frozenset({Tok.STRING, Tok.NUMBER, Tok.PLACEHOLDER})


def _shape(sig: list[_Sig]) -> tuple[str, ...]:
    """Keys with literals replaced by ``?``: also the words of :func:`normalize_sql`."""
    literals = _LITERALS
    return tuple([t[1] if t[0] not in literals else "?" for t in sig])


def _classify_shaped(sig: list[_Sig], text: str) -> SqlStatement:
    shape = _shape(sig)
    known = _SHAPES.get(shape)
    if known is None:
        known = _classify_statement(sig, "")
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()  # crude bound; a miss only costs a classification
        _SHAPES[shape] = known
    return SqlStatement(
        kind=known.kind,
        subkind=known.subkind,
        extra_facets=known.extra_facets,
        tables=known.tables,
        text=text,
        reason=known.reason,
        sets_sql_mode=known.sets_sql_mode,
    )


_classify_cached = functools.lru_cache(maxsize=4096)(classify_sql_uncached)


def normalize_sql(text: str, mode: SqlMode = DEFAULT_SQL_MODE) -> str:
    """Canonical form for matching identical statements: literals become ``?``, keywords
    upper case, comments dropped (executable comment content kept), single spaces.

    Raises :class:`SqlTokenError` when the text cannot be tokenized.
    """
    return " ".join(_shape(scan_significant(text, mode)))
