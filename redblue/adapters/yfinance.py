"""Daily bars from Yahoo Finance through ``yfinance`` (the only module importing it).

Prices are Yahoo's split-adjusted, not dividend-adjusted OHLC: ``auto_adjust=False`` is passed
explicitly because yfinance (since 0.2.51, and in 1.x) defaults to ``auto_adjust=True``, which
would replace Open/High/Low/Close by split-and-dividend-adjusted prices. The ``Adj Close``
column that ``auto_adjust=False`` adds is ignored.

``yf.download`` returns, for daily bars, a tz-naive ``DatetimeIndex`` named ``Date`` and
MultiIndex columns: ``(Price, Ticker)`` with ``group_by="column"`` (the default) or
``(Ticker, Price)`` with ``group_by="ticker"``; even one ticker gets a MultiIndex unless
``multi_level_index=False``, which gives flat ``Open, High, ...`` columns. Tickers are reindexed
onto the union of all dates, so a ticker without a row on a date shows NaN there (and its
``Volume`` becomes float). :func:`parse_download` accepts every one of those layouts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import yfinance as yf

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.sources import Rejected, SourceError, collect, missing_symbols, within
from schemas import Bar

SOURCE = "yfinance"
COLUMNS = ("Open", "High", "Low", "Close", "Volume")

Download = Callable[[Sequence[str], date, date], pd.DataFrame]


def fetch_daily(symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
    """Yahoo's daily rows for ``start`` to ``end`` inclusive, as ``yf.download`` returns them.

    yfinance logs and swallows per-ticker failures (that ticker's columns are all NaN), so a
    failure shows up as a "no data" rejection in :func:`parse_download`, not as an exception.
    """
    try:
        frame = yf.download(
            list(symbols),
            start=start.isoformat(),
            end=(end + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
            interval="1d",
            auto_adjust=False,
            actions=False,
            group_by="column",
            progress=False,
        )
    except Exception as err:  # yfinance raises a variety of its own and requests' errors
        raise SourceError(f"yfinance download of {', '.join(symbols)} failed: {err}") from err
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()


def parse_download(
    frame: pd.DataFrame, symbols: Sequence[str], calendar: TradingCalendar, now: datetime, source: str = SOURCE
) -> tuple[list[Bar], list[Rejected]]:
    """Bars and rejections from a ``yf.download`` frame (any of its column layouts).

    Rows of sessions that have not closed at ``now`` are dropped; rows with NaN values, on
    non-trading days or failing the :class:`~schemas.Bar` contract are rejected with a reason;
    a symbol with no usable column or only NaN gets one rejection with ``date`` None.
    """
    rows: list[Row] = []
    present: list[str] = []
    rejected: list[Rejected] = []
    for symbol in symbols:
        part = _columns_of(frame, symbol, single=len(symbols) == 1)
        if part is None or part.isna().all(axis=None):
            continue
        absent = [c for c in COLUMNS if c not in part.columns]
        present.append(symbol)
        if absent:
            rejected.append(Rejected(symbol, None, f"yfinance frame has no {', '.join(absent)} column for {symbol}"))
        else:
            rows.extend(_rows(part, symbol))
    bars, bad = collect(rows, calendar, now, source)
    return bars, missing_symbols(symbols, present) + rejected + bad


class YFinanceSource:
    """A :class:`~redblue.core.sources.BarSource` backed by :func:`fetch_daily` (injectable for tests)."""

    def __init__(self, calendar: TradingCalendar | None = None, download: Download = fetch_daily) -> None:
        self._calendar = calendar or get_calendar()
        self._download = download

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        """Bars of ``symbols`` for the sessions ``start`` to ``end`` that closed by ``now``."""
        frame = self._download(symbols, start, end)
        bars, rejected = parse_download(frame, symbols, self._calendar, now)
        return within(bars, start, end), rejected


def _columns_of(frame: pd.DataFrame, symbol: str, single: bool) -> pd.DataFrame | None:
    """The (Open, High, ...) columns of ``symbol``, or None when the frame has none for it."""
    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex):
        if single:
            return frame
        raise SourceError("a yfinance frame for several tickers must have MultiIndex columns (Price, Ticker)")
    level = _ticker_level(columns)
    if symbol not in columns.get_level_values(level):
        return None
    part = frame.xs(symbol, axis=1, level=level)
    return part if isinstance(part, pd.DataFrame) else None


def _ticker_level(columns: pd.MultiIndex) -> int:
    if "Ticker" in columns.names:
        return list(columns.names).index("Ticker")
    return 1 if "Close" in columns.get_level_values(0) else 0


def _rows(part: pd.DataFrame, symbol: str) -> Iterator[Row]:
    values = zip(part.index, *(part[c] for c in COLUMNS), strict=True)
    for stamp, open_, high, low, close, volume in values:
        yield Row(symbol, _day(stamp), _num(open_), _num(high), _num(low), _num(close), _num(volume))


def _day(stamp: Any) -> date:
    """The trading day of an index label: its own calendar date (tz-naive or exchange-local)."""
    day: date = pd.Timestamp(stamp).date()
    return day


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
