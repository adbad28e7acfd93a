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
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._widths = [len(name) for name in self._column_names]

    def on_mount(self) -> None:
        for name in self._column_names:
            self.add_column(name, key=name)

    @property
    def selected_key(self) -> str | None:
        if not self._keys or self.cursor_row < 0 or self.cursor_row >= len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def sync(self, given: Sequence[Row]) -> None:
        # Cells are data (SQL text, subjects from tokens), never markup: "[x]" stays "[x]".
        rows = [(key, tuple(_plain(c) for c in cells)) for key, cells in given]
        keys = [key for key, _ in rows]
        if keys == self._keys:
            widened = False
            for key, cells in rows:
                old = self._cells[key]
                if cells == old:
                    continue
                for i, (name, before, after) in enumerate(
                    zip(self._column_names, old, cells, strict=True)
                ):
                    if before != after:
                        wider = _width(after) > self._widths[i]
                        self.update_cell(key, name, after, update_width=wider)
                        widened |= wider
                self._cells[key] = cells
            if widened:
                self._measure(rows)
            return
        if self._keys and keys[: len(self._keys)] == self._keys:
            # Only new rows at the end (a tail growing): add them, keep everything else.
            added = rows[len(self._keys) :]
            for key, cells in added:
                self.add_row(*cells, key=key)
                self._cells[key] = cells
            self._keys = keys
            self._measure(added, grow_only=True)
            return
        selected = self.selected_key
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        self._keys = keys
        self._cells = dict(rows)
        if selected in self._cells:
            self.move_cursor(row=keys.index(selected), animate=False)
        self._measure(rows)

    def _measure(
        self, rows: Sequence[tuple[str, tuple[Text, ...]]], *, grow_only: bool = False
    ) -> None:
        """Track column widths; repaint only when they change (re-layout is not free)."""
        widths = list(self._widths) if grow_only else [len(n) for n in self._column_names]
        for _, cells in rows:
            for i, cell in enumerate(cells):
                widths[i] = max(widths[i], _width(cell))
        if widths != self._widths:
            self._widths = widths
            self._wake()

    def _wake(self) -> None:
        # DataTable measures new rows lazily (on Idle) and, in Textual 8.2, a table that is
        # not focused can keep painting header-wide columns from its caches afterwards.
        # Once the measuring is done, drop the caches so the next paint uses the widths.
        self.call_after_refresh(self._settle)

    def _settle(self) -> None:
        if self._require_update_dimensions or self._updated_cells:
            self.call_after_refresh(self._settle)
            return
        self.call_later(self._repaint)

    def _repaint(self) -> None:
        # A plain refresh is not enough on a real terminal (seen under tmux): only a layout
        # refresh makes the compositor paint the re-measured columns.
        self._clear_caches()
        self.refresh(layout=True)


def _width(cell: Text) -> int:
    return cell.cell_len


def _plain(cell: Cell) -> Text:
    return Text(cell) if isinstance(cell, str) else cell
