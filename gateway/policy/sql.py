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
engine decides every facet. Tables come from :mod:`gateway.policy.sql_tables`.
Results are cached per text and per statement shape (tokens with literals as ``?``): the
classification never depends on a literal's value.

We split more eagerly than the server (compound bodies are cut at their inner ``;``): each piece
is classified on its own and a policy takes the most restrictive decision, so over-splitting can
only make a decision stricter. A statement that changes ``sql_mode`` makes the statements after
it in the same text ``UNKNOWN``, because the server lexes them under the new mode.
"""

from __future__ import annotations

import functools

from gateway.policy.sql_model import (
    SqlClassification,
    SqlStatement,
    StatementKind,
    TableRef,
)
from gateway.policy.sql_tables import Sig as _Sig
from gateway.policy.sql_tables import keywords as _words
from gateway.policy.sql_tables import scan_tables as _scan_tables
from gateway.policy.sql_tables import table_list as _table_list
from gateway.policy.sql_tables import table_ref as _table_ref
from gateway.policy.sql_tables import word_at as _word_at
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

# Enum member access costs a class attribute lookup each time; the hot loops use these.
_WORD = Tok.WORD
_VARIABLE = Tok.VARIABLE
_QIDENT = Tok.QUOTED_IDENT
_SEMI = Tok.SEMICOLON
_SQL_WS = " \t\n\r\x0b\x0c"
_SEMI_TOKEN = (Tok.SEMICOLON, ";", ";")

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
