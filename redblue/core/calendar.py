"""Trading days from an exchange calendar (``exchange_calendars``; the only module importing it)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import exchange_calendars as xc
import pandas as pd

from redblue.core.errors import RedblueError


class CalendarError(RedblueError, ValueError):
    """A date outside the calendar, or a day that is not a trading session."""


class TradingCalendar:
    """Sessions, their order and close times for one exchange (holidays and half days included)."""

    def __init__(self, name: str = "XNYS") -> None:
        try:
            self._cal = xc.get_calendar(name, start="1960-01-01")
        except xc.errors.InvalidCalendarName as err:
            raise CalendarError(f"unknown exchange calendar {name!r}") from err
        self.name = name
        self._sessions: list[date] = [ts.date() for ts in self._cal.sessions]
        self._index = {d: i for i, d in enumerate(self._sessions)}

    @property
    def span(self) -> tuple[date, date]:
        """The first and the last session the calendar knows."""
        return self._sessions[0], self._sessions[-1]

    def _outside(self, day: date) -> CalendarError:
        first, last = self.span
        return CalendarError(f"{day} lies outside the {self.name} calendar, which covers {first} to {last}")

    def is_session(self, day: date) -> bool:
        return day in self._index

    def _position(self, day: date) -> int:
        try:
            return self._index[day]
        except KeyError:
            raise CalendarError(f"{day} is not a {self.name} trading day") from None

    def offset(self, day: date, n: int) -> date:
        """The session ``n`` sessions after (``n`` < 0: before) the session ``day``."""
        i = self._position(day) + n
        if not 0 <= i < len(self._sessions):
            first, last = self.span
            raise CalendarError(
                f"{day} {n:+d} sessions lies outside the {self.name} calendar, which covers {first} to {last}"
            )
        return self._sessions[i]

    def next_session(self, day: date) -> date:
        """The first session strictly after ``day`` (``day`` need not be a session)."""
        if day in self._index:
            return self.offset(day, 1)
        return self.first_on_or_after(day)

    def first_on_or_after(self, day: date) -> date:
        first, last = self.span
        if not first <= day <= last:
            raise self._outside(day)
        ts = pd.Timestamp(day)
        session: date = self._cal.date_to_session(ts, direction="next").date()
        return session

    def sessions(self, first: date, last: date) -> list[date]:
        """Every session from ``first`` to ``last`` inclusive."""
        lo = self.first_on_or_after(first)
        return [d for d in self._sessions[self._index[lo] :] if d <= last]

    def previous_session(self, day: date) -> date:
        """The last session strictly before ``day`` (``day`` need not be a session)."""
        if day in self._index:
            return self.offset(day, -1)
        first, last = self.span
        if not first < day <= last:
            raise self._outside(day)
        session: date = self._cal.date_to_session(pd.Timestamp(day), direction="previous").date()
        return session

    def open_time(self, day: date) -> datetime:
        """When the session ``day`` opens (UTC), late opens included: never a fixed 09:30."""
        self._position(day)
        opens: datetime = self._cal.session_open(pd.Timestamp(day)).to_pydatetime()
        return opens.astimezone(UTC)

    def close_time(self, day: date) -> datetime:
        """When the session ``day`` closes (UTC), early closes (13:00 New York) included."""
        self._position(day)
        close: datetime = self._cal.session_close(pd.Timestamp(day)).to_pydatetime()
        return close.astimezone(UTC)

    def closed_by(self, moment: datetime, delay: timedelta = timedelta(0)) -> date | None:
        """The newest session whose close plus ``delay`` is at or before ``moment`` (None: none known)."""
        if moment.tzinfo is None:
            raise ValueError(f"moment must be timezone-aware, got {moment!r}")
        first, last = self.span
        day = min(moment.astimezone(UTC).date() + timedelta(days=1), last)
        while day >= first:
            if day in self._index and self.close_time(day) + delay <= moment:
                return day
            day -= timedelta(days=1)
        return None


@lru_cache(maxsize=4)
def get_calendar(name: str = "XNYS") -> TradingCalendar:
    return TradingCalendar(name)
