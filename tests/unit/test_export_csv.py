"""CSV cells: any text survives a round trip through Python's csv module, and none can run."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from events.export import RowWriter, csv_cell, csv_value, iso
from events.export.stream import _csv_field


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_text_round_trips_and_never_starts_a_formula(values: list[str]) -> None:
    out = io.StringIO(newline="")
    writer = RowWriter(out, "csv", [f"c{i}" for i in range(len(values))])
    writer.write([{f"c{i}": v for i, v in enumerate(values)}])
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert len(rows) == 2
    assert [csv_value(cell) for cell in rows[1]] == values
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in rows[1])


def test_cells_of_other_types() -> None:
    assert csv_cell(None) == ""
    assert (csv_cell(True), csv_cell(False)) == ("true", "false")
    assert (csv_cell(3), csv_cell(-3), csv_cell(0.25)) == ("3", "-3", "0.25")
    assert csv_cell(["a", "b"]) == '["a","b"]'
    assert csv_cell({"email": 2}) == '{"email":2}'
    assert csv_cell("=1+1") == "'=1+1" and csv_value("'=1+1") == "=1+1"
    assert csv_cell("'x") == "''x" and csv_value("''x") == "'x"


def test_iso_times_are_utc_with_microseconds() -> None:
    assert iso(0.0) == "1970-01-01T00:00:00.000000Z"
    assert iso(1767225600.5) == "2026-01-01T00:00:00.500000Z"


@given(st.text())
def test_the_fast_path_quotes_cells_as_the_csv_module_does(value: str) -> None:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerow(["x", csv_cell(value)])
    assert out.getvalue() == f"x,{_csv_field(csv_cell(value))}\r\n"
