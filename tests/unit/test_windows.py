"""The processor's windows: in memory, written to the table once per batch, re-read when it moved elsewhere."""

from __future__ import annotations

from datetime import date
from typing import Any

from processors.windows import Windows
from schemas import Bar
from tests.factories import bar, days

D = days(date(2024, 1, 2), 5)


class CountingTable(dict[str, list[Any]]):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: list[Any]) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_windows_are_written_once_per_batch_and_read_back_only_when_they_changed_elsewhere() -> None:
    table = CountingTable()
    windows = Windows(table)
    current = windows.load({"AAPL", "SAP"})
    assert current == {"AAPL": [], "SAP": []}
    for i in range(3):  # a batch of three days of AAPL
        current["AAPL"] = [*current["AAPL"], bar("AAPL", D[i], 100.0 + i)]
    windows.update(current)
    windows.save()
    assert table.writes == 1 and [Bar.model_validate_json(b).date for b in table["AAPL"]] == D[:3]
    assert "SAP" not in table  # nothing moved

    again = windows.load({"AAPL"})
    assert again["AAPL"] is current["AAPL"]  # from memory, not validated again from the table

    moved = bar("AAPL", D[3], 104.0)
    table["AAPL"] = [*table["AAPL"], moved.model_dump_json()]  # another worker moved it
    assert [b.date for b in windows.load({"AAPL"})["AAPL"]] == D[:4]


def test_windows_stored_as_dicts_by_an_earlier_version_are_read() -> None:
    table = CountingTable()
    table["AAPL"] = [bar("AAPL", D[0], 100.0).model_dump(mode="json")]
    assert Windows(table).load({"AAPL"})["AAPL"] == [bar("AAPL", D[0], 100.0)]


def test_a_restarted_worker_starts_from_the_table() -> None:
    table = CountingTable()
    first = Windows(table)
    first.update({"AAPL": [bar("AAPL", D[0], 100.0), bar("AAPL", D[1], 101.0)]})
    first.save()
    assert Windows(table).load({"AAPL"})["AAPL"] == [bar("AAPL", D[0], 100.0), bar("AAPL", D[1], 101.0)]


def test_a_window_moved_but_not_saved_yet_is_not_read_back_from_the_table() -> None:
    """Two stretches of one batch: the second must see the first's bars, not the older table."""
    table = CountingTable()
    windows = Windows(table)
    current = windows.load({"AAPL"})
    current["AAPL"] = [bar("AAPL", D[0], 100.0)]
    windows.update(current)
    assert windows.load({"AAPL"})["AAPL"] == [bar("AAPL", D[0], 100.0)]
    assert table.writes == 0
