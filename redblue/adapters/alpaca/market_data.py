"""Daily bars from Alpaca's market data API through alpaca-py (the only module importing its data client).

``GET /v2/stocks/bars?symbols=...&timeframe=1Day&adjustment=split`` answers
``{"bars": {"AAPL": [{"t": "2022-02-01T05:00:00Z", "o": .., "h": .., "l": .., "c": .., "v": ..,
"n": .., "vw": ..}, ...]}, "next_page_token": null}``; alpaca-py follows the page tokens and
``BarSet.df`` is indexed by ``(symbol, timestamp)`` with columns ``open, high, low, close,
volume, trade_count, vwap``. A daily bar's ``t`` is midnight New York time of its trading day
(05:00Z in winter, 04:00Z in summer), so the day is read in ``America/New_York``, not UTC.

``adjustment=split`` matches Yahoo's "Close" (split-adjusted, not dividend-adjusted). The feed
is left to Alpaca (the best one the subscription allows); because the free plan refuses SIP
data from the last 15 minutes, the request's ``end`` never comes closer than that to ``now``.
"""

from __future__ import annotations

import json
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

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.sources import Rejected, SourceError, collect, missing_symbols, within
from schemas import Bar

SOURCE = "alpaca"
NEW_YORK = ZoneInfo("America/New_York")
COLUMNS = ("open", "high", "low", "close", "volume")
RECENT_SIP_EMBARGO = timedelta(minutes=15)


def parse_bars(
    frame: pd.DataFrame, symbols: Sequence[str], calendar: TradingCalendar, now: datetime, source: str = SOURCE
) -> tuple[list[Bar], list[Rejected]]:
    """Bars and rejections from a ``BarSet.df`` frame (index ``(symbol, timestamp)``).

    Rows of sessions that have not closed at ``now`` (Alpaca shows the running day as a
    partial bar) are dropped; rows on non-trading days or failing the :class:`~schemas.Bar`
    contract are rejected with a reason; a requested symbol without rows gets one rejection.
    """
    if frame.empty:
        return [], missing_symbols(symbols, [])
    if list(frame.index.names) != ["symbol", "timestamp"] or not set(COLUMNS) <= set(frame.columns):
        raise SourceError(f"unexpected Alpaca bars frame: index {frame.index.names}, columns {list(frame.columns)}")
    wanted = set(symbols)
    rows = [row for row in _rows(frame) if row.symbol in wanted]
    bars, rejected = collect(rows, calendar, now, source)
    return bars, missing_symbols(symbols, {row.symbol for row in rows}) + rejected


class AlpacaBarSource:
    """A :class:`~redblue.core.sources.BarSource` on Alpaca's historical stock bars.

    ``url_override`` points the client elsewhere (a local stand-in in tests). Nothing is
    contacted before :meth:`fetch`.
    """

    def __init__(
        self,
        key: str | SecretStr,
        secret: str | SecretStr,
        url_override: str | None = None,
        calendar: TradingCalendar | None = None,
    ) -> None:
        self._client = StockHistoricalDataClient(
            api_key=_plain(key), secret_key=_plain(secret), url_override=url_override
        )
        self._calendar = calendar or get_calendar()

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        """Bars of ``symbols`` for the sessions ``start`` to ``end`` that closed by ``now``."""
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
            barset = self._client.get_stock_bars(request)
        except APIError as err:
            raise SourceError(f"{what}: {_describe(err)}") from err
        except (requests.RequestException, ValidationError, ValueError) as err:
            raise SourceError(f"{what}: {type(err).__name__}: {err}") from err
        if not isinstance(barset, BarSet):
            raise SourceError(f"{what}: expected a BarSet, got {type(barset).__name__}")
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


def _plain(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _describe(err: APIError) -> str:
    """``HTTP 403: forbidden`` from an alpaca-py APIError (its body may not be JSON)."""
    status = err.status_code
    text = str(err)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    message = body.get("message", text) if isinstance(body, dict) else text
    return f"HTTP {status}: {message}" if status is not None else str(message)
