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
# Values of a row are scanned as one buffer joined by NUL, which no built-in pattern matches
# (custom patterns might, so profiles with custom patterns scan value by value).
_SEPARATOR = b"\x00"


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
        rules = profile.column_rules
        for i, column in enumerate(self._columns):
            rule = next((r for r in rules if r.matches(column)), None) if rules else None
            if rule is not None:
                self._rules.append((i, rule))
            elif column.is_text:
                self._scan.append(i)
        self._per_value = bool(profile.custom_patterns)
        self._labels = [column.label for column in self._columns]
        self.counts: dict[str, int] = {}
        self.column_counts: dict[str, int] = {}

    def mask_row(self, values: list[bytes | None]) -> list[bytes | None] | None:
        """The masked row, or None when nothing in it had to change.

        Raises :class:`MaskingError` in strict mode if masking fails; in best-effort mode
        every value of that row is replaced instead (text by ``[REDACTED:error]``, others by
        NULL). Never returns an unmasked detected value.
        """
        return self.mask_rows([values])[0]

    def mask_rows(self, rows: Sequence[list[bytes | None]]) -> list[list[bytes | None] | None]:
        """:meth:`mask_row` for several rows at once (for example all complete rows of one
        read): the same results, at a fraction of the per-row cost, because the pre-filters
        and scanners run once over all rows. In best-effort mode a failure replaces every
        row of the batch."""
        width = len(self._columns)
        for values in rows:
            if len(values) != width:
                raise MaskingError(f"row has {len(values)} values for {width} columns")
        try:
            return self._mask(rows)
        except Exception as exc:
            if self._profile.strict:
                raise MaskingError(f"row masking failed: {exc.__class__.__name__}") from exc
            self._bump(self.counts, "error")
            return [
                [
                    None if v is None or not c.is_text else _ERROR
                    for v, c in zip(values, self._columns, strict=True)
                ]
                for values in rows
            ]

    @staticmethod
    def _bump(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1

    def _mask(self, rows: Sequence[list[bytes | None]]) -> list[list[bytes | None] | None]:
        results: list[list[bytes | None] | None] = [None] * len(rows)
        if self._rules:
            for r, values in enumerate(rows):
                results[r] = self._apply_rules(values)
        scan = self._scan
        if not scan or not rows:
            return results
        # NULLs join as empty values; they never hold a finding.
        texts = [values[i] or b"" for values in rows for i in scan]
        joined = _SEPARATOR.join(texts)
        if self._per_value or joined.count(_SEPARATOR) != len(texts) - 1:
            for r, values in enumerate(rows):
                results[r] = self._mask_each(values, results[r])
            return results
        found = self._engine.findings(joined)
        if not found:
            return results
        # Per finding this loop is most of the cost of a result set: few Python operations,
        # locals instead of attribute look-ups.
        engine, counts, column_counts, labels = (
            self._engine,
            self.counts,
            self.column_counts,
            self._labels,
        )
        width, size, total = len(scan), len(joined), len(found)
        index = 0  # which joined value the current finding is in
        counted_to = 0
        k = 0
        while k < total:
            start = found[k].start
            index += joined.count(_SEPARATOR, counted_to, start)
            counted_to = start
            lo = joined.rfind(_SEPARATOR, 0, start) + 1
            hi = joined.find(_SEPARATOR, start)
            if hi < 0:
                hi = size
            j = k + 1
            while j < total and found[j].start < hi:
                j += 1
            if found[j - 1].end > hi:  # only a custom pattern could; none run here
                raise MaskingError("a finding crosses a value boundary")
            new, kinds, nulled = engine.apply(joined, found[k:j], lo, hi)
            k = j
            r, c = divmod(index, width)
            out = results[r]
            if out is None:
                out = results[r] = list(rows[r])
            column = scan[c]
            out[column] = None if nulled else new
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
            label = labels[column]
            column_counts[label] = column_counts.get(label, 0) + 1
        return results

    def _apply_rules(self, values: list[bytes | None]) -> list[bytes | None] | None:
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
            self._bump(self.column_counts, self._labels[i])
        return out

    def _mask_each(
        self, values: list[bytes | None], out: list[bytes | None] | None
    ) -> list[bytes | None] | None:
        for i in self._scan:
            value = values[i]
            if value is None:
                continue
            masked = self._engine.mask(value)
            if masked is not None:
                out = self._store(values, out, i, masked)
        return out

    def _store(
        self,
        values: list[bytes | None],
        out: list[bytes | None] | None,
        i: int,
        masked: tuple[bytes, list[str], bool],
    ) -> list[bytes | None]:
        new, kinds, nulled = masked
        if out is None:
            out = list(values)
        out[i] = None if nulled else new
        for kind in kinds:
            self._bump(self.counts, kind)
        self._bump(self.column_counts, self._labels[i])
        return out
