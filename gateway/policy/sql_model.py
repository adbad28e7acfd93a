"""What the SQL classifier reports: statement kinds, facets, tables, statements."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

    def __str__(self) -> str:
        return self.name if self.database is None else f"{self.database}.{self.name}"

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
