"""Result columns and the rules that mask a whole column by its name."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from gateway.masking.strategies import StrategySpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnInfo:
    """What masking needs from a MySQL column definition (ColumnDefinition41).

    ``table``/``name`` are the aliases the query used, ``org_table``/``org_name`` the real
    ones; a rule matches either, so ``SELECT ssn AS x FROM customers c`` is still caught.
    ``is_text`` is False for numbers, dates and binary strings: detectors skip them.
    """

    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    is_text: bool

    @property
    def label(self) -> str:
        return f"{self.org_table or self.table}.{self.org_name or self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnRule:
    """``pattern`` is ``column``, ``table.column`` or ``schema.table.column``; each part is a
    case-insensitive glob (``*.card_number``, ``payments.*``)."""

    pattern: str
    strategy: StrategySpec
    kind: str = "column"

    def matches(self, column: ColumnInfo) -> bool:
        parts = self.pattern.lower().split(".")
        if len(parts) > 3 or not all(parts):
            return False
        names = {n.lower() for n in (column.name, column.org_name) if n}
        if not any(fnmatchcase(n, parts[-1]) for n in names):
            return False
        if len(parts) >= 2:
            tables = {t.lower() for t in (column.table, column.org_table) if t}
            if not any(fnmatchcase(t, parts[-2]) for t in tables):
                return False
        if len(parts) == 3:
            return fnmatchcase(column.schema.lower(), parts[0])
        return True
