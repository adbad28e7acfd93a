"""Masking MySQL result rows.

A row arrives as a list of column values (bytes in the connection charset, or None for NULL).
Values are scanned as bytes, so invalid UTF-8 can never break masking; all patterns are ASCII.

The common case is a row with nothing to mask, and it must cost almost nothing: the text
values are joined and run through the detectors' pre-filters once (C-speed searches); only
when one of them hits are the individual values scanned. ``mask_row`` then returns None and
the relay forwards the original packet bytes untouched.

Column rules mask a whole value whatever it contains. For columns that are not text (numbers,
dates, binary strings) every strategy yields NULL: a ``[REDACTED:...]`` or ``hash:...`` string
in an INT column would break clients that parse it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.masking.columns import ColumnInfo, ColumnRule
from gateway.masking.engine import Engine
from gateway.masking.errors import MaskingError
from gateway.masking.profile import MaskingProfile
from gateway.masking.strategies import render

_ERROR = b"[REDACTED:error]"


class RowMasker:
    """Masks the rows of one result set.

    ``counts`` counts masked values per detector kind (column rules count under their
    ``kind``), ``column_counts`` per column (``table.column``, the real names); never values.
    """

    def __init__(self, profile: MaskingProfile, columns: Sequence[ColumnInfo]) -> None:
        self._engine = Engine(profile)
        self._profile = profile
        self._columns = tuple(columns)
        self._rules: list[tuple[int, ColumnRule]] = []
        self._scan: list[int] = []
        for i, column in enumerate(self._columns):
            rule = next((r for r in profile.column_rules if r.matches(column)), None)
            if rule is not None:
                self._rules.append((i, rule))
            elif column.is_text:
                self._scan.append(i)
        self.counts: dict[str, int] = {}
        self.column_counts: dict[str, int] = {}

    def mask_row(self, values: list[bytes | None]) -> list[bytes | None] | None:
        """The masked row, or None when nothing in it had to change.

        Raises :class:`MaskingError` in strict mode if masking fails; in best-effort mode
        every value of that row is replaced instead (text by ``[REDACTED:error]``, others by
        NULL). Never returns an unmasked detected value.
        """
        if len(values) != len(self._columns):
            raise MaskingError(f"row has {len(values)} values for {len(self._columns)} columns")
        try:
            return self._mask(values)
        except Exception as exc:
            if self._profile.strict:
                raise MaskingError(f"row masking failed: {exc.__class__.__name__}") from exc
            self._bump(self.counts, "error")
            return [
                None if v is None or not c.is_text else _ERROR
                for v, c in zip(values, self._columns, strict=True)
            ]

    @staticmethod
    def _bump(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1

    def _mask(self, values: list[bytes | None]) -> list[bytes | None] | None:
        out: list[bytes | None] | None = None
        key = self._profile.hash_key
        for i, rule in self._rules:
            value = values[i]
            if value is None:
                continue
            if out is None:
                out = list(values)
            column = self._columns[i]
            out[i] = render(rule.strategy, rule.kind, value, key) if column.is_text else None
            self._bump(self.counts, rule.kind)
            self._bump(self.column_counts, column.label)
        engine = self._engine
        texts = [v for i in self._scan if (v := values[i]) is not None]
        if not texts or not engine.has_candidate(b"\n".join(texts)):
            return out
        for i in self._scan:
            value = values[i]
            if value is None:
                continue
            masked = engine.mask(value)
            if masked is None:
                continue
            new, kinds, nulled = masked
            if out is None:
                out = list(values)
            out[i] = None if nulled else new
            for kind in kinds:
                self._bump(self.counts, kind)
            self._bump(self.column_counts, self._columns[i].label)
        return out
