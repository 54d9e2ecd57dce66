"""A market as vendors show it over wall time, from final daily rows (the "truth", e.g. data/bars).

For each (symbol, session) at a moment ``now``, a vendor shows:

- before the session's open: nothing;
- during the session: a **partial** row (the true open, the last price half-way to the close,
  half the volume) — what Yahoo's last daily row is during the day;
- from the close for ``auction_lag``: the row **without the closing auction** (close 0.3 % off,
  volume 90 %), what a producer that trusts "the session has closed" would publish;
- afterwards the final row, unless a **first print** was scripted: then those values until the
  revision time, and the final row after it (a late revision);
- a **skipped** session is absent until its ``until`` (or for ever).

The calendar (holidays, early closes, DST) decides opens and closes, as for the real thing.
:attr:`Timeline.shown` counts what was shown, by kind (``partial``, ``before auction``, ``first
print``, ``final``, ``withheld``: a skipped session asked for), and :attr:`Timeline.last_shown`
says at which (vendor) time each kind was last shown.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar


@dataclass(frozen=True)
class FirstPrint:
    """The values a vendor shows first, until ``until``; the final row after that."""

    row: Row
    until: datetime


class Timeline:
    """What a vendor shows for every (symbol, session) of ``rows`` at any moment."""

    def __init__(
        self, rows: Iterable[Row], calendar: TradingCalendar, auction_lag: timedelta = timedelta(minutes=10)
    ) -> None:
        self.calendar = calendar
        self.auction_lag = auction_lag
        self._final: dict[tuple[str, date], Row] = {(r.symbol, r.date): r for r in rows}
        self._first: dict[tuple[str, date], FirstPrint] = {}
        self._skipped: dict[tuple[str, date], datetime | None] = {}
        self.shown: Counter[str] = Counter()
        self.last_shown: dict[str, datetime] = {}
        self._lock = threading.Lock()

    # -- scripting the vendor's faults ---------------------------------------------------------

    def first_print(self, symbol: str, day: date, until: datetime, close_factor: float = 1.01) -> Row:
        """Show ``day``'s close off by ``close_factor`` until ``until`` (a late revision); return that row."""
        final = self.final(symbol, day)
        close = round(final.close * close_factor, 4)
        row = replace(final, close=close, high=max(final.high, close), low=min(final.low, close))
        self._first[(symbol, day)] = FirstPrint(row, until)
        return row

    def skip(self, symbol: str, day: date, until: datetime | None = None) -> None:
        """Leave ``day`` out of every answer until ``until`` (None: for ever)."""
        self.final(symbol, day)
        self._skipped[(symbol, day)] = until

    # -- what the vendor shows -----------------------------------------------------------------

    def final(self, symbol: str, day: date) -> Row:
        try:
            return self._final[(symbol, day)]
        except KeyError:
            raise KeyError(f"the timeline has no row for {symbol} {day}") from None

    def revisions(self) -> dict[tuple[str, date], FirstPrint]:
        """The scripted first prints (each revised to the final row at its ``until``)."""
        return dict(self._first)

    def at(self, symbol: str, day: date, now: datetime) -> Row | None:
        """The row of ``symbol``'s session ``day`` a vendor shows at ``now`` (None: none)."""
        kind, row = self._showing(symbol, day, now)
        if kind is not None:
            with self._lock:
                self.shown[kind] += 1
                self.last_shown[kind] = max(now, self.last_shown.get(kind, now))
        return row

    def _showing(self, symbol: str, day: date, now: datetime) -> tuple[str | None, Row | None]:
        final = self._final.get((symbol, day))
        if final is None or now < self.calendar.open_time(day):
            return None, None
        if self.hidden(symbol, day, now):
            return "withheld", None
        close = self.calendar.close_time(day)
        if now < close:
            return "partial", _partial(final)
        if now < close + self.auction_lag:
            return "before auction", _before_auction(final)
        first = self._first.get((symbol, day))
        return ("first print", first.row) if first is not None and now < first.until else ("final", final)

    def rows(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> list[Row]:
        """Every row of ``symbols`` from ``start`` to ``end`` as shown at ``now``, by (symbol, date)."""
        found = []
        for symbol in symbols:
            for day in self.calendar.sessions(start, end):
                row = self.at(symbol, day, now)
                if row is not None:
                    found.append(row)
        return found

    def hidden(self, symbol: str, day: date, now: datetime) -> bool:
        """Whether a skipped session is still left out at ``now``."""
        if (symbol, day) not in self._skipped:
            return False
        until = self._skipped[(symbol, day)]
        return until is None or now < until


def _partial(final: Row) -> Row:
    last = round((final.open + final.close) / 2, 4)
    return replace(
        final, high=max(final.open, last), low=min(final.open, last), close=last, volume=float(final.volume // 2)
    )


def _before_auction(final: Row) -> Row:
    close = round(final.close * 1.003, 4)
    return replace(
        final, close=close, high=max(final.high, close), low=min(final.low, close), volume=float(final.volume * 9 // 10)
    )
