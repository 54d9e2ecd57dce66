"""Where live daily bars come from: one adapter per vendor behind the one-method :class:`BarSource`.

``redblue.adapters.yfinance`` (Yahoo) and ``redblue.adapters.alpaca.market_data`` each import
their vendor library and nothing else does. Both turn the vendor's frame into :class:`Row`
values and hand them to :func:`collect`, which applies the market-time rules in one place: a
session's bar exists only once it is *final* at that vendor, i.e. from the calendar's close
(early closes included) plus the vendor's ``settle`` delay; rows with missing values or
inconsistent prices become :class:`Rejected` with a reason, and nothing raises on bad data.

Two kinds of trouble are kept apart: bad data (a :class:`Rejected` row, dead-lettered once by
the producer) and a vendor that cannot be reached (:class:`SourceUnreachable`, raised after
retries: nothing is known, so nothing is dead-lettered and the next poll asks again).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar
from redblue.core.errors import RedblueError
from schemas import Bar


class SourceError(RedblueError, RuntimeError):
    """The vendor answered something other than bars (or could not be reached, see below)."""


class SourceUnreachable(SourceError):
    """The vendor could not be reached (network, timeout, rate limit or 5xx after retries)."""


@dataclass(frozen=True)
class Rejected:
    """A row (or a whole symbol, ``date`` None) that did not become a bar, and why."""

    symbol: str
    date: date | None
    reason: str


class BarSource(Protocol):
    """Daily bars of ``symbols`` for the sessions ``start`` to ``end`` (both inclusive).

    Only sessions whose bar is final at ``now`` (timezone-aware), i.e. whose close plus
    ``settle`` is at or before ``now``, yield bars; their ``produced_at`` is ``now`` and
    ``ts_event`` the session close. Raises :class:`SourceUnreachable` when the vendor cannot
    be reached.
    """

    name: str
    settle: timedelta  # how long after a session's close this vendor's bar counts as final

    def fetch(
        self, symbols: Sequence[str], start: date, end: date, now: datetime
    ) -> tuple[list[Bar], list[Rejected]]: ...


def collect(
    rows: Iterable[Row], calendar: TradingCalendar, now: datetime, source: str, settle: timedelta
) -> tuple[list[Bar], list[Rejected]]:
    """Turn vendor rows into bars sorted by (date, symbol); rows of sessions not final yet are dropped.

    A row whose session's close plus ``settle`` is after ``now`` is not data yet (a vendor
    shows the running session as a partial bar, and settles it some time after the close),
    so it is left out without a rejection.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    bars: list[Bar] = []
    rejected: list[Rejected] = []
    for row in rows:
        if not calendar.is_session(row.date):
            rejected.append(Rejected(row.symbol, row.date, f"{row.date} is not a {calendar.name} trading day"))
            continue
        close = calendar.close_time(row.date)
        if close + settle > now:
            continue
        outcome = _to_bar(row, close, now, source)
        if isinstance(outcome, Bar):
            bars.append(outcome)
        else:
            rejected.append(outcome)
    bars.sort(key=lambda b: (b.date, b.symbol))
    return bars, rejected


def _to_bar(row: Row, close: datetime, now: datetime, source: str) -> Bar | Rejected:
    missing = [name for name in ("open", "high", "low", "close", "volume") if math.isnan(getattr(row, name))]
    if missing:
        return Rejected(row.symbol, row.date, f"missing {', '.join(missing)} (NaN) for {row.symbol} {row.date}")
    try:
        return Bar(
            symbol=row.symbol,
            date=row.date,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=_volume(row.volume),
            adjustment="split",
            source=source,
            ts_event=close,
            produced_at=now,
        )
    except (ValidationError, ValueError) as err:
        return Rejected(row.symbol, row.date, f"{row.symbol} {row.date}: {_reason(err)}")


def _volume(value: float) -> int:
    # Split adjustment can make a volume fractional (reverse splits); a share more or less is noise.
    if math.isinf(value):
        raise ValueError(f"volume {value} is not finite")
    return round(value)


def _reason(err: ValueError) -> str:
    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'bar'}: {e['msg']}" for e in err.errors())
    return str(err)


def missing_symbols(symbols: Sequence[str], present: Iterable[str]) -> list[Rejected]:
    """One rejection per requested symbol the vendor returned no rows for."""
    seen = set(present)
    return [Rejected(s, None, f"the source returned no data for {s}") for s in symbols if s not in seen]


def within(bars: list[Bar], start: date, end: date) -> list[Bar]:
    """The bars dated ``start`` to ``end`` inclusive (vendors' range edges differ)."""
    return [b for b in bars if start <= b.date <= end]
