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

**When a bar is final.** During the session Yahoo's last daily row is the running day's partial
bar, and Yahoo may still revise a close until the next open and a volume until the second-next
open (see ``docs/market-time.md``). A session's bar is therefore taken only :data:`SETTLE` after
the calendar's close: two hours, which lets the closing auction and the first corrections
arrive while staying before 19:00 New York, when the next open's orders may be sent (so the
wait costs the trading nothing); what Yahoo still changes later reaches the producer as a
revision (``BarRevision``), never as a silently different bar.

**Unreachable is not bad data.** ``yf.download`` swallows per-ticker failures: it logs them on
the ``yfinance`` logger and leaves the ticker's columns empty. :func:`fetch_daily` reads those
log records while it downloads; when a ticker came back empty and a record shows a network
failure (DNS, connection, timeout, rate limit), it raises
:class:`~redblue.core.sources.SourceUnreachable` ("yfinance unreachable: ...") instead of
returning a frame that would look like "no data".
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import yfinance as yf

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.retry import PATIENT, Backoff, retrying
from redblue.core.sources import Rejected, SourceError, SourceUnreachable, collect, missing_symbols, within
from schemas import Bar

log = logging.getLogger(__name__)

SOURCE = "yfinance"
COLUMNS = ("Open", "High", "Low", "Close", "Volume")
SETTLE = timedelta(hours=2)
# What yfinance's log records say when Yahoo could not be reached (curl_cffi's and requests'
# exception names and texts, yfinance's rate-limit error).
NETWORK_FAILURE = re.compile(
    r"curl: \(\d+\)|DNSError|ConnectionError|Timeout|timed out|Could not resolve|Connection refused"
    r"|YFRateLimitError|Too Many Requests|Rate limited",
    re.IGNORECASE,
)

Download = Callable[[Sequence[str], date, date], pd.DataFrame]


def fetch_daily(symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
    """Yahoo's daily rows for ``start`` to ``end`` inclusive, as ``yf.download`` returns them.

    Raises :class:`SourceUnreachable` when a ticker came back empty because Yahoo could not be
    reached; an empty ticker without a network failure is left to :func:`parse_download`
    (a "no data" rejection).
    """
    with _failures_logged() as failures:
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
                threads=False,
            )
        except Exception as err:  # yfinance raises a variety of its own and its HTTP client's errors
            kind = SourceUnreachable if isinstance(err, OSError) else SourceError
            raise kind(f"yfinance unreachable: {type(err).__name__}: {err}") from err
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()
    empty = [s for s in symbols if not _has_data(frame, s, single=len(symbols) == 1)]
    network = [text for text in failures if NETWORK_FAILURE.search(text)]
    if empty and network:
        raise SourceUnreachable(f"yfinance unreachable: {_short(network[-1])} (no data for {', '.join(empty)})")
    return frame


@contextmanager
def _failures_logged() -> Iterator[list[str]]:
    """The messages yfinance logs at ERROR meanwhile (kept from the console: we report them)."""
    failures: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                failures.append(record.getMessage().strip())

    logger = logging.getLogger("yfinance")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas deprecations inside yfinance, not ours to fix
            yield failures
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _short(text: str, limit: int = 200) -> str:
    one_line = " ".join(re.sub(r"See https?://\S+ first for more details\.?", "", text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


def _has_data(frame: pd.DataFrame, symbol: str, single: bool) -> bool:
    if frame.empty:
        return False
    try:
        part = _columns_of(frame, symbol, single)
    except SourceError:
        return False
    return part is not None and not part.isna().all(axis=None)


def parse_download(
    frame: pd.DataFrame, symbols: Sequence[str], calendar: TradingCalendar, now: datetime, source: str = SOURCE
) -> tuple[list[Bar], list[Rejected]]:
    """Bars and rejections from a ``yf.download`` frame (any of its column layouts).

    Rows of sessions not final at ``now`` (close + :data:`SETTLE`) are dropped; rows with some NaN
    values, on non-trading days or failing the :class:`~schemas.Bar` contract are rejected with a
    reason; a date where a ticker is all NaN is one it has no row for (yfinance reindexes every
    ticker onto the union of dates): absent, not rejected — the producer treats it as a missing
    session. A symbol with no usable column or only NaN gets one rejection with ``date`` None.
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
    bars, bad = collect(rows, calendar, now, source, SETTLE)
    return bars, missing_symbols(symbols, present) + rejected + bad


class YFinanceSource:
    """A :class:`~redblue.core.sources.BarSource` backed by :func:`fetch_daily` (injectable for tests).

    An unreachable Yahoo is asked again with ``backoff`` before :class:`SourceUnreachable` is raised.
    """

    name = SOURCE
    settle = SETTLE

    def __init__(
        self, calendar: TradingCalendar | None = None, download: Download = fetch_daily, backoff: Backoff = PATIENT
    ) -> None:
        self._calendar = calendar or get_calendar()
        self._download = download
        self._backoff = backoff

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        """Bars of ``symbols`` for the sessions ``start`` to ``end`` that are final at ``now``."""
        try:
            frame = retrying(
                lambda: self._download(symbols, start, end),
                lambda err: isinstance(err, SourceUnreachable),
                self._backoff,
                lambda err, n: log.info("%s; trying again (%d of %d)", err, n + 1, self._backoff.attempts),
            )
        except SourceUnreachable as err:
            raise SourceUnreachable(f"{err} (after {self._backoff.attempts} attempts)") from err
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
    """The ticker's rows; an all-NaN row is the reindex filling a date the ticker has no row for: skipped."""
    values = zip(part.index, *(part[c] for c in COLUMNS), strict=True)
    for stamp, *raw in values:
        numbers = [_num(v) for v in raw]
        if not all(math.isnan(v) for v in numbers):
            yield Row(symbol, _day(stamp), *numbers)


def _day(stamp: Any) -> date:
    """The trading day of an index label: its own calendar date (tz-naive or exchange-local)."""
    day: date = pd.Timestamp(stamp).date()
    return day


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
