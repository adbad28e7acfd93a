"""A DataTable that is re-synced from snapshots with as little work as possible.

Rebuilding a DataTable costs about 0.1 ms per row and loses the cursor; most refreshes only
change a few cells (a counter, a time left). ``sync`` updates those cells in place when the
set and order of rows is unchanged, and otherwise rebuilds and puts the cursor back on the
row it was on (by key), so live updates never yank the operator's selection away.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, tuple[Cell, ...]]


class LiveTable(DataTable[Cell]):
    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._column_names = tuple(columns)
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Cell, ...]] = {}

    def on_mount(self) -> None:
        for name in self._column_names:
            self.add_column(name, key=name)

    @property
    def selected_key(self) -> str | None:
        if not self._keys or self.cursor_row < 0 or self.cursor_row >= len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def sync(self, rows: Sequence[Row]) -> None:
        keys = [key for key, _ in rows]
        if keys == self._keys:
            for key, cells in rows:
                old = self._cells[key]
                if cells == old:
                    continue
                for name, before, after in zip(self._column_names, old, cells, strict=True):
                    if before != after:
                        self.update_cell(key, name, after, update_width=True)
                self._cells[key] = cells
            return
        if self._keys and keys[: len(self._keys)] == self._keys:
            # Only new rows at the end (a tail growing): add them, keep everything else.
            for key, cells in rows[len(self._keys) :]:
                self.add_row(*cells, key=key)
                self._cells[key] = cells
            self._keys = keys
            return
        selected = self.selected_key
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
        self._cells = dict(rows)
        if selected in self._cells:
            self.move_cursor(row=keys.index(selected), animate=False)
