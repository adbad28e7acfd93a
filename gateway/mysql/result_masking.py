"""Masking MySQL result rows on their way to the client (text and binary protocol).

A :class:`ResultMasker` is the relay's row rewriter for one command: it builds a
``RowMasker`` from the tracker's column definitions when a result set starts, decodes each
row, masks it, and re-encodes it only when something changed (``None`` otherwise, so the
relay forwards the original bytes). Column lengths in the metadata are left as they are:
clients read a value's length from the row, not from the column definition, so a masked
value longer than the declared column length parses fine.

In strict mode (the default) a row that cannot be masked aborts the result with an ERR
packet to the client: nothing unmasked leaks.

Building a ``RowMasker`` costs far more than masking a typical row (its engine compiles the
profile's detectors: about 0.4 ms), while applications send the same few result shapes again
and again. Row maskers are therefore pooled per (profile, columns): a result takes one, and
gives it back, counts emptied, when it ends; concurrent results of one shape get their own.
"""

from __future__ import annotations

from gateway.masking import ColumnInfo, MaskingError, MaskingProfile, RowMasker
from gateway.mysql.constants import ColumnType, ErrorCode
from gateway.mysql.errors import MySQLProtocolError
from gateway.mysql.packets import ColumnDefinition41
from gateway.mysql.relay import RelayAbort
from gateway.mysql.rows import (
    decode_binary_row,
    decode_text_row,
    encode_binary_row,
    encode_text_row,
)
from gateway.mysql.tracker import ResponseTracker

BINARY_CHARSET = 63
TEXT_TYPES = frozenset(
    {
        ColumnType.MYSQL_TYPE_VARCHAR,
        ColumnType.MYSQL_TYPE_VAR_STRING,
        ColumnType.MYSQL_TYPE_STRING,
        ColumnType.MYSQL_TYPE_TINY_BLOB,
        ColumnType.MYSQL_TYPE_MEDIUM_BLOB,
        ColumnType.MYSQL_TYPE_LONG_BLOB,
        ColumnType.MYSQL_TYPE_BLOB,
        ColumnType.MYSQL_TYPE_JSON,
        ColumnType.MYSQL_TYPE_ENUM,
        ColumnType.MYSQL_TYPE_SET,
    }
)


def column_info(column: ColumnDefinition41) -> ColumnInfo:
    text = column.column_type in TEXT_TYPES and (
        column.character_set != BINARY_CHARSET or column.column_type == ColumnType.MYSQL_TYPE_JSON
    )
    return ColumnInfo(
        schema=column.schema.decode(errors="replace"),
        table=column.table.decode(errors="replace"),
        org_table=column.org_table.decode(errors="replace"),
        name=column.name.decode(errors="replace"),
        org_name=column.org_name.decode(errors="replace"),
        is_text=text,
    )


class RowMaskerPool:
    """Idle row maskers by (profile, column shape); bounded, least recently used dropped."""

    def __init__(self, *, shapes: int = 256, per_shape: int = 16) -> None:
        self.shapes = shapes
        self.per_shape = per_shape
        self._idle: dict[tuple[int, tuple[ColumnInfo, ...]], list[RowMasker]] = {}
        self._profiles: dict[int, MaskingProfile] = {}  # keeps ids from being reused

    def take(self, profile: MaskingProfile, columns: tuple[ColumnInfo, ...]) -> RowMasker:
        key = (id(profile), columns)
        idle = self._idle.pop(key, None)
        if idle:
            masker = idle.pop()
            self._idle[key] = idle  # most recently used last
            return masker
        if idle is not None:
            self._idle[key] = idle
        return RowMasker(profile, columns)

    def give_back(
        self, profile: MaskingProfile, columns: tuple[ColumnInfo, ...], masker: RowMasker
    ) -> None:
        masker.counts.clear()
        masker.column_counts.clear()
        key = (id(profile), columns)
        self._profiles[id(profile)] = profile
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.per_shape:
            idle.append(masker)
        while len(self._idle) > self.shapes:
            del self._idle[next(iter(self._idle))]
        if len(self._profiles) > self.shapes:
            live = {k[0] for k in self._idle}
            self._profiles = {i: p for i, p in self._profiles.items() if i in live}


POOL = RowMaskerPool()


class ResultMasker:
    def __init__(self, profile: MaskingProfile, pool: RowMaskerPool = POOL) -> None:
        self.pool = pool
        self._columns: tuple[ColumnInfo, ...] = ()
        self.profile = profile
        self.counts: dict[str, int] = {}
        self._masker: RowMasker | None = None
        self._width = 0
        self._key: tuple[int, int] = (-1, -1)

    def _row_masker(self, tracker: ResponseTracker) -> RowMasker:
        key = (tracker.result_sets, id(tracker.columns))
        if self._masker is None or key != self._key:
            self._release()
            columns = tracker.columns
            if columns:
                infos = [column_info(c) for c in columns]
            else:  # COM_STMT_FETCH: only the types are known
                infos = [
                    ColumnInfo(
                        schema="",
                        table="",
                        org_table="",
                        name="",
                        org_name="",
                        is_text=ctype in TEXT_TYPES,
                    )
                    for ctype, _ in tracker.binary_row_columns()
                ]
            self._columns = tuple(infos)
            self._masker = self.pool.take(self.profile, self._columns)
            self._width = len(infos)
            self._key = key
        return self._masker

    def _flush_counts(self) -> None:
        masker = self._masker
        if masker is None:
            return
        for kind, n in masker.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        for column, n in masker.column_counts.items():
            key = f"column:{column}"
            self.counts[key] = self.counts.get(key, 0) + n
        masker.counts.clear()
        masker.column_counts.clear()

    def _release(self) -> None:
        """Count the current result's masked values and give its masker back."""
        self._flush_counts()
        if self._masker is not None:
            self.pool.give_back(self.profile, self._columns, self._masker)
            self._masker = None

    def totals(self) -> dict[str, int]:
        """The counts of the whole response; ends the use of this masker's row maskers."""
        self._release()
        return dict(self.counts)

    def __call__(self, tracker: ResponseTracker, payload: bytes) -> bytes | None:
        masker = self._row_masker(tracker)
        try:
            if tracker.binary:
                columns = tracker.binary_row_columns()
                values = decode_binary_row(payload, columns)
                # Non-string values stand in as b"" so that column rules see them (detectors
                # never scan non-text columns); a rule turns them into NULL.
                texts: list[bytes | None] = [
                    v if isinstance(v, bytes) else (None if v is None else b"") for v in values
                ]
                masked = masker.mask_row(texts)
                if masked is None:
                    return None
                merged = [
                    m if isinstance(v, bytes) else (None if m is None else v)
                    for v, m in zip(values, masked, strict=True)
                ]
                return encode_binary_row(merged, columns)
            row = decode_text_row(payload, self._width)
            masked_text = masker.mask_row(row)
            return None if masked_text is None else encode_text_row(masked_text)
        except (MaskingError, MySQLProtocolError, ValueError) as exc:
            if not self.profile.strict and isinstance(exc, MaskingError):
                return None
            raise RelayAbort(
                f"wardgate: a result row could not be masked ({type(exc).__name__}); "
                "the result was stopped so that nothing unmasked leaks",
                ErrorCode.ER_QUERY_INTERRUPTED,
            ) from None
