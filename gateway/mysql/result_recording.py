"""Recording the rows of a result as the client saw them (after masking), capped.

Theory of operation
-------------------
:class:`ResultRecorder` is the relay's row rewriter when recording is on: it hands each
complete row to the masker first (when the statement is masked) and keeps the first
``limit`` rows of the first result set, decoded from the bytes that go to the client, so a
recording can only ever hold masked values. Past the cap the transcript says ``truncated``
with the response's row count, and when nothing is masked the relay stops calling the
recorder and streams the rest as it would without recording (``done``). Each value is kept up to ``VALUE_CHARS`` characters (longer
ones end in ``...``), so one statement's event stays small whatever the result; binary
protocol values are rendered as text (numbers stay numbers).

The transcript is the shape replay and the asciicast export understand:
``{"columns": [...], "rows": [[...], ...], "limit": N}``.
"""

from __future__ import annotations

from gateway.mysql.errors import MySQLProtocolError
from gateway.mysql.relay import RowRewriter
from gateway.mysql.rows import decode_binary_row, decode_text_row
from gateway.mysql.tracker import ResponseTracker

VALUE_CHARS = 256

Cell = str | int | float | None


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "replace")
    else:
        text = str(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "..."


class ResultRecorder:
    """A row rewriter that records: ``masker`` (or nothing) decides what the client gets."""

    __slots__ = ("columns", "limit", "masker", "result_set", "rows", "seen", "unreadable")

    def __init__(self, limit: int, masker: RowRewriter | None) -> None:
        self.limit = limit
        self.masker = masker
        self.rows: list[list[Cell]] = []
        self.columns: list[str] = []
        self.result_set = -1
        self.seen = 0
        self.unreadable = False

    def __call__(self, tracker: ResponseTracker, payload: bytes) -> bytes | None:
        out = self.masker(tracker, payload) if self.masker is not None else None
        if self.result_set < 0:
            self.result_set = tracker.result_sets
            self.columns = _names(tracker)
        if tracker.result_sets != self.result_set:
            return out  # later result sets: not recorded (the first one is)
        self.seen += 1
        if self.seen <= self.limit and not self.unreadable:
            sent = out if out is not None else payload
            try:
                if tracker.binary:
                    values: list[object] = list(
                        decode_binary_row(sent, tracker.binary_row_columns())
                    )
                else:
                    values = list(decode_text_row(sent, len(self.columns)))
            except (MySQLProtocolError, ValueError):
                self.unreadable = True  # forwarded all the same; the transcript says so
            else:
                self.rows.append([_cell(v) for v in values])
        return out

    @property
    def done(self) -> bool:
        """Nothing more to record and nothing to mask: the relay can stop calling."""
        return self.masker is None and (self.seen > self.limit or self.unreadable)

    @property
    def truncated(self) -> bool:
        return self.seen > self.limit or self.unreadable

    def transcript(self, rows_total: int) -> dict[str, object] | None:
        """The recorded result; ``rows_total`` (the rows of the whole response, which the
        tracker counts) is added when the result was longer than the cap."""
        if self.result_set < 0:
            return None
        out: dict[str, object] = {"columns": self.columns, "rows": self.rows, "limit": self.limit}
        if self.seen > self.limit:
            out["rows_total"] = rows_total
        if self.unreadable:
            out["unreadable"] = True
        return out


def _names(tracker: ResponseTracker) -> list[str]:
    try:
        names = tracker.column_names()
    except MySQLProtocolError:
        names = []
    if names:
        return names
    return [f"column {i + 1}" for i in range(len(tracker.binary_row_columns()))]
