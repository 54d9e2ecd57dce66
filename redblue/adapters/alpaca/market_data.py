"""Daily bars from Alpaca's market data API through alpaca-py (the only module importing its data client).

``GET /v2/stocks/bars?symbols=...&timeframe=1Day&adjustment=split`` answers
``{"bars": {"AAPL": [{"t": "2022-02-01T05:00:00Z", "o": .., "h": .., "l": .., "c": .., "v": ..,
"n": .., "vw": ..}, ...]}, "next_page_token": null}``; alpaca-py follows the page tokens and
``BarSet.df`` is indexed by ``(symbol, timestamp)`` with columns ``open, high, low, close,
volume, trade_count, vwap``. A daily bar's ``t`` is midnight New York time of its trading day
(05:00Z in winter, 04:00Z in summer), so the day is read in ``America/New_York``, not UTC.

``adjustment=split`` matches Yahoo's "Close" (split-adjusted, not dividend-adjusted). The feed
is left to Alpaca (the best one the subscription allows).

**When a bar is final.** The free plan refuses SIP data from the last 15 minutes, so the
request's ``end`` never comes closer than :data:`RECENT_SIP_EMBARGO` to ``now``: what Alpaca
shows at ``now`` is the market as of ``now`` - 15 min. A session's bar is therefore taken only
:data:`SETTLE` = 15 min (the embargo) + 15 min (margin for the closing auction's prints and
late trade reports) after the calendar's close, 16:30 New York on a normal day and 13:30 on a
half day. Later changes (e.g. volume from late reports) reach the producer as revisions.

429/5xx answers, timeouts and connection errors are retried with backoff
(:mod:`redblue.adapters.alpaca.http`) and then raised as
:class:`~redblue.core.sources.SourceUnreachable`; other refusals (401, 403, ...) as
:class:`~redblue.core.sources.SourceError`. The key and secret never appear in either.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from pydantic import SecretStr, ValidationError

from redblue.adapters.alpaca.http import DEFAULT_TIMEOUT, Secrets, call, describe, is_transient, plain, tune
from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.retry import PATIENT, Backoff
from redblue.core.sources import Rejected, SourceError, SourceUnreachable, collect, missing_symbols, within
from schemas import Bar

SOURCE = "alpaca"
NEW_YORK = ZoneInfo("America/New_York")
COLUMNS = ("open", "high", "low", "close", "volume")
RECENT_SIP_EMBARGO = timedelta(minutes=15)
SETTLE = RECENT_SIP_EMBARGO + timedelta(minutes=15)


def parse_bars(
    frame: pd.DataFrame, symbols: Sequence[str], calendar: TradingCalendar, now: datetime, source: str = SOURCE
) -> tuple[list[Bar], list[Rejected]]:
    """Bars and rejections from a ``BarSet.df`` frame (index ``(symbol, timestamp)``).

    Rows of sessions not final at ``now`` (close + :data:`SETTLE`; Alpaca shows the running
    day as a partial bar) are dropped; rows on non-trading days or failing the :class:`~schemas.Bar`
    contract are rejected with a reason; a requested symbol without rows gets one rejection.
    """
    if frame.empty:
        return [], missing_symbols(symbols, [])
    if list(frame.index.names) != ["symbol", "timestamp"] or not set(COLUMNS) <= set(frame.columns):
        raise SourceError(f"unexpected Alpaca bars frame: index {frame.index.names}, columns {list(frame.columns)}")
    wanted = set(symbols)
    rows = [row for row in _rows(frame) if row.symbol in wanted]
    bars, rejected = collect(rows, calendar, now, source, SETTLE)
    return bars, missing_symbols(symbols, {row.symbol for row in rows}) + rejected


class AlpacaBarSource:
    """A :class:`~redblue.core.sources.BarSource` on Alpaca's historical stock bars.

    ``url_override`` points the client elsewhere (a local stand-in in tests). Nothing is
    contacted before :meth:`fetch`.
    """

    name = SOURCE
    settle = SETTLE

    def __init__(
        self,
        key: str | SecretStr,
        secret: str | SecretStr,
        url_override: str | None = None,
        calendar: TradingCalendar | None = None,
        *,
        backoff: Backoff = PATIENT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._client = StockHistoricalDataClient(
            api_key=plain(key), secret_key=plain(secret), url_override=url_override
        )
        tune(self._client, timeout)
        self._secrets = Secrets([plain(key), plain(secret)])
        self._calendar = calendar or get_calendar()
        self._backoff = backoff

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        """Bars of ``symbols`` for the sessions ``start`` to ``end`` that are final at ``now``."""
        first = _midnight(start)
        last = min(_midnight(end + timedelta(days=1)), now - RECENT_SIP_EMBARGO)
        if last <= first:
            return [], []
        request = StockBarsRequest(
            symbol_or_symbols=list(symbols),
            timeframe=TimeFrame(1, TimeFrameUnit.Day),
            start=first,
            end=last,
            adjustment=Adjustment.SPLIT,
        )
        bars, rejected = parse_bars(self._get(request, symbols), symbols, self._calendar, now)
        return within(bars, start, end), rejected

    def _get(self, request: StockBarsRequest, symbols: Sequence[str]) -> pd.DataFrame:
        what = f"Alpaca daily bars of {', '.join(symbols)}"
        try:
            barset = call(lambda: self._client.get_stock_bars(request), self._backoff, what, self._secrets)
        except (APIError, requests.RequestException) as err:
            if is_transient(err):
                text = f"Alpaca unreachable: {what}: {describe(err)} (after {self._backoff.attempts} attempts)"
                raise SourceUnreachable(self._secrets.scrub(text)) from None
            raise SourceError(self._secrets.scrub(f"{what}: {describe(err)}")) from None
        except (ValidationError, ValueError) as err:
            raise SourceError(self._secrets.scrub(f"{what}: {type(err).__name__}: {err}")) from None
        if not isinstance(barset, BarSet):
            raise SourceError(f"{what}: expected a BarSet, got {type(barset).__name__}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas deprecations inside alpaca-py, not ours to fix
            return barset.df


def _rows(frame: pd.DataFrame) -> list[Row]:
    values = zip(frame.index, *(frame[c] for c in COLUMNS), strict=True)
    return [
        Row(str(symbol), _session_day(stamp), float(o), float(h), float(lo), float(c), float(v))
        for (symbol, stamp), o, h, lo, c, v in values
    ]


def _session_day(stamp: Any) -> date:
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    day: date = ts.tz_convert(NEW_YORK).date()
    return day


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=NEW_YORK)
