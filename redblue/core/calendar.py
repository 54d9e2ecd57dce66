"""Trading days from an exchange calendar (``exchange_calendars``; the only module importing it).

Importing ``exchange_calendars`` (and pandas with it) and building a calendar costs about a
second of CPU in every process that needs trading days. So the sessions and their close times
can be kept in a small file (see :func:`use_cache`, set up by the command line in the stack's
home): a process then reads that file and never imports ``exchange_calendars``. The file is
rebuilt when it is older than :data:`CACHE_DAYS` days (the exchange's calendar reaches a year
ahead and learns new holidays) or was written by another ``exchange_calendars`` version.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from redblue.core.errors import RedblueError

CACHE_DAYS = 7
_cache: dict[str, Path] = {}  # "dir": where calendars are kept (see use_cache)


class CalendarError(RedblueError, ValueError):
    """A date outside the calendar, or a day that is not a trading session."""


def use_cache(directory: Path | None) -> None:
    """Keep calendars in ``directory`` (``None``: build them in every process)."""
    _cache.pop("dir", None)
    if directory is not None:
        _cache["dir"] = directory
    get_calendar.cache_clear()


@dataclass(frozen=True)
class Sessions:
    """An exchange's sessions (ascending) with the moment each opens and closes (UTC)."""

    days: list[date]
    opens: list[datetime]
    closes: list[datetime]


class TradingCalendar:
    """Sessions, their order and open and close times for one exchange (holidays and half days included)."""

    def __init__(self, name: str = "XNYS", table: Sessions | None = None) -> None:
        """The calendar ``name``, from ``table`` if given, else built from ``exchange_calendars``."""
        table = table or _build(name)
        self.name = name
        self._sessions = table.days
        self._index = {d: i for i, d in enumerate(table.days)}
        self._opens = table.opens
        self._closes = table.closes

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
        return self._sessions[bisect_left(self._sessions, day)]

    def sessions(self, first: date, last: date) -> list[date]:
        """Every session from ``first`` to ``last`` inclusive."""
        lo = self._index[self.first_on_or_after(first)]
        hi = bisect_left(self._sessions, last + timedelta(days=1))
        return self._sessions[lo:hi]

    def previous_session(self, day: date) -> date:
        """The last session strictly before ``day`` (``day`` need not be a session)."""
        if day in self._index:
            return self.offset(day, -1)
        first, last = self.span
        if not first < day <= last:
            raise self._outside(day)
        return self._sessions[bisect_left(self._sessions, day) - 1]

    def open_time(self, day: date) -> datetime:
        """When the session ``day`` opens (UTC), late opens included: never a fixed 09:30."""
        return self._opens[self._position(day)]

    def close_time(self, day: date) -> datetime:
        """When the session ``day`` closes (UTC), early closes (13:00 New York) included."""
        return self._closes[self._position(day)]

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


def _build(name: str) -> Sessions:
    """Every session since 1960 and its open and close, from ``exchange_calendars``."""
    import exchange_calendars as xc

    try:
        calendar = xc.get_calendar(name, start="1960-01-01")
    except xc.errors.InvalidCalendarName as err:
        raise CalendarError(f"unknown exchange calendar {name!r}") from err
    return Sessions(
        days=[ts.date() for ts in calendar.sessions],
        opens=[ts.to_pydatetime().astimezone(UTC) for ts in calendar.opens],
        closes=[ts.to_pydatetime().astimezone(UTC) for ts in calendar.closes],
    )


def _cached(name: str, directory: Path) -> TradingCalendar:
    """The calendar from its file in ``directory``, (re)built and written when stale or missing."""
    stamp = version("exchange_calendars")
    path = directory / f"{name}.json"
    try:
        saved = json.loads(path.read_text())
        built = date.fromisoformat(saved["built"])
        if saved["exchange_calendars"] == stamp and date.today() - built < timedelta(days=CACHE_DAYS):
            table = Sessions(
                days=[date.fromisoformat(d) for d in saved["sessions"]],
                opens=[datetime.fromtimestamp(t, UTC) for t in saved["opens"]],
                closes=[datetime.fromtimestamp(t, UTC) for t in saved["closes"]],
            )
            return TradingCalendar(name, table)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, unreadable, stale or of an older layout: build it again
    table = _build(name)
    record = {
        "name": name,
        "built": date.today().isoformat(),
        "exchange_calendars": stamp,
        "sessions": [d.isoformat() for d in table.days],
        "opens": [int(t.timestamp()) for t in table.opens],
        "closes": [int(t.timestamp()) for t in table.closes],
    }
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(record))
    partial.replace(path)  # atomic: a concurrent reader sees the old file or the new one
    return TradingCalendar(name, table)


@lru_cache(maxsize=4)
def get_calendar(name: str = "XNYS") -> TradingCalendar:
    """The calendar ``name`` (from the cache file when :func:`use_cache` set a directory)."""
    directory = _cache.get("dir")
    return _cached(name, directory) if directory is not None else TradingCalendar(name)
