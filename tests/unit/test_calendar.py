"""The calendar's session times: opens and closes (early closes, DST) and the last final session."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from redblue.core.calendar import CalendarError, get_calendar
from tests.standins.clock import ny

CAL = get_calendar()


def test_opens_and_closes_come_from_the_calendar_in_utc() -> None:
    assert CAL.open_time(date(2024, 3, 8)) == datetime(2024, 3, 8, 14, 30, tzinfo=UTC)  # EST
    assert CAL.open_time(date(2024, 3, 11)) == datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # EDT
    assert CAL.close_time(date(2024, 11, 29)) == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 half day
    with pytest.raises(CalendarError, match="not a XNYS trading day"):
        CAL.open_time(date(2024, 7, 4))


def test_previous_session_skips_weekends_and_holidays() -> None:
    assert CAL.previous_session(date(2024, 1, 2)) == date(2023, 12, 29)  # over New Year's Day
    assert CAL.previous_session(date(2024, 7, 5)) == date(2024, 7, 3)
    assert CAL.previous_session(date(2024, 1, 6)) == date(2024, 1, 5)  # a Saturday


@pytest.mark.parametrize(
    ("moment", "delay", "expected"),
    [
        (ny(date(2024, 1, 2), 15, 59), timedelta(0), date(2023, 12, 29)),
        (ny(date(2024, 1, 2), 16, 0), timedelta(0), date(2024, 1, 2)),
        (ny(date(2024, 1, 2), 16, 29), timedelta(minutes=30), date(2023, 12, 29)),
        (ny(date(2024, 1, 2), 16, 30), timedelta(minutes=30), date(2024, 1, 2)),
        (ny(date(2024, 11, 29), 14, 59), timedelta(hours=2), date(2024, 11, 27)),  # half day: 13:00 + 2 h
        (ny(date(2024, 11, 29), 15, 0), timedelta(hours=2), date(2024, 11, 29)),
        (ny(date(2024, 1, 7), 12, 0), timedelta(hours=2), date(2024, 1, 5)),  # a Sunday
    ],
)
def test_closed_by_is_the_newest_session_final_at_a_moment(moment: datetime, delay: timedelta, expected: date) -> None:
    assert CAL.closed_by(moment, delay) == expected
