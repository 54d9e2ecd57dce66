"""The calendar kept in a file: the same sessions and closes, rebuilt when stale, unreadable or from another version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from redblue.core import calendar
from redblue.core.calendar import TradingCalendar, get_calendar


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    calendar.use_cache(tmp_path)
    yield tmp_path
    calendar.use_cache(None)


def test_a_cached_calendar_is_the_built_one(cache: Path) -> None:
    built = TradingCalendar("XNYS")
    first = get_calendar("XNYS")  # builds and writes the file
    get_calendar.cache_clear()
    read = get_calendar("XNYS")  # reads the file
    assert (cache / "XNYS.json").is_file()
    for cal in (first, read):
        assert cal.span == built.span
        assert cal.sessions(date(1999, 1, 1), date(2026, 1, 1)) == built.sessions(date(1999, 1, 1), date(2026, 1, 1))
        assert cal.close_time(date(2024, 11, 29)) == built.close_time(date(2024, 11, 29))  # a half day
        assert cal.first_on_or_after(date(2024, 12, 25)) == date(2024, 12, 26)


@pytest.mark.parametrize("spoil", ["stale", "version", "garbage"])
def test_a_stale_or_broken_file_is_built_again(cache: Path, spoil: str) -> None:
    get_calendar("XNYS")
    path = cache / "XNYS.json"
    saved = json.loads(path.read_text())
    if spoil == "stale":
        saved["built"] = (date.today() - timedelta(days=calendar.CACHE_DAYS)).isoformat()
        saved["sessions"] = saved["sessions"][:10]  # would show if it were used
    elif spoil == "version":
        saved["exchange_calendars"] = "0.0"
        saved["sessions"] = saved["sessions"][:10]
    path.write_text("{not json" if spoil == "garbage" else json.dumps(saved))
    get_calendar.cache_clear()
    assert get_calendar("XNYS").span == TradingCalendar("XNYS").span
    assert json.loads(path.read_text())["built"] == date.today().isoformat()
