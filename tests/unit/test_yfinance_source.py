"""The Yahoo adapter on frames shaped exactly like ``yf.download`` output (yfinance 1.x).

``download_frame`` (:mod:`tests.standins.yahoo`) rebuilds what ``yfinance.multi.download`` does
with the per-ticker ``Ticker.history`` frames, and ``test_hand_built_frames_match_a_real_download``
checks that against the real ``yf.download`` with only the network call (``Ticker.history``) replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import yfinance as yf

from redblue.adapters.yfinance import SETTLE, YFinanceSource, fetch_daily, parse_download
from redblue.core.calendar import get_calendar
from redblue.core.retry import NO_WAIT
from redblue.core.sources import Rejected, SourceUnreachable
from schemas import Bar
from tests.standins.yahoo import HISTORY_COLUMNS, download_frame, history

NY = ZoneInfo("America/New_York")
CAL = get_calendar()
D1, D2, D3, D4 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)
LATER = datetime(2024, 1, 8, 12, 0, tzinfo=UTC)  # every session above has closed

# (open, high, low, close, adj close, volume) per day, as Ticker.history(auto_adjust=False) gives them
AAPL = {
    D1: (187.15, 188.44, 183.89, 185.64, 184.73, 82488700),
    D2: (184.22, 185.88, 183.43, 184.25, 183.35, 58414500),
    D3: (182.15, 183.09, 180.88, 181.91, 181.02, 71983600),
    D4: (181.99, 182.76, 180.17, 181.18, 180.29, 62303300),
}
AMZN = {
    D1: (151.54, 152.38, 148.39, 149.93, 149.93, 47339400),
    D3: (145.59, 147.38, 144.05, 144.57, 144.57, 56039800),
    D4: (144.69, 146.59, 144.53, 145.24, 145.24, 45124800),
}


def both() -> pd.DataFrame:
    return download_frame({"AAPL": history(AAPL), "AMZN": history(AMZN)})


def at_ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


def closes(bars: Sequence[Bar]) -> dict[tuple[str, date], float]:
    return {(b.symbol, b.date): b.close for b in bars}


# -- the frame layouts ---------------------------------------------------------------------


def test_multi_ticker_column_layout_gives_split_adjusted_bars_at_the_close() -> None:
    frame = both()
    assert frame.columns.names == ["Price", "Ticker"]
    assert frame[("Volume", "AMZN")].dtype == np.float64  # NaN on D2 after the reindex

    bars, rejected = parse_download(frame, ["AAPL", "AMZN"], CAL, LATER)

    assert [(b.date, b.symbol) for b in bars][:3] == [(D1, "AAPL"), (D1, "AMZN"), (D2, "AAPL")]
    first = bars[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (187.15, 188.44, 183.89, 185.64, 82488700)
    assert first.close != AAPL[D1][4]  # "Close", not "Adj Close"
    assert first.adjustment == "split" and first.source == "yfinance"
    assert first.ts_event == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # 16:00 New York
    assert first.produced_at == LATER
    assert len(bars) == 7
    assert ("AMZN", D2) not in closes(bars)
    assert rejected == []  # AMZN's all-NaN D2 is the reindex: a session Yahoo has no row for, not bad data


def test_ticker_layout_gives_the_same_bars() -> None:
    by_column = parse_download(both(), ["AAPL", "AMZN"], CAL, LATER)
    frame = download_frame({"AAPL": history(AAPL), "AMZN": history(AMZN)}, group_by="ticker")
    assert frame.columns.names == ["Ticker", "Price"]

    assert parse_download(frame, ["AAPL", "AMZN"], CAL, LATER) == by_column


def test_single_ticker_multiindex_and_flat_layouts() -> None:
    multi = download_frame({"AAPL": history(AAPL)})
    flat = multi.droplevel(1, axis=1).rename_axis(None, axis=1)  # multi_level_index=False
    assert list(multi.columns[:2]) == [("Adj Close", "AAPL"), ("Close", "AAPL")]

    expected = {("AAPL", d): v[3] for d, v in AAPL.items()}
    for frame in (multi, flat):
        bars, rejected = parse_download(frame, ["AAPL"], CAL, LATER)
        assert closes(bars) == expected and rejected == []


def test_level_names_are_not_needed() -> None:
    frame = both()
    frame.columns = frame.columns.set_names([None, None])
    bars, _ = parse_download(frame, ["AAPL", "AMZN"], CAL, LATER)
    assert len(bars) == 7


# -- market time ---------------------------------------------------------------------------


def test_a_session_is_taken_only_once_settled_never_as_a_partial_bar() -> None:
    assert timedelta(hours=2) == SETTLE
    for moment in (at_ny(D4, 15, 59), at_ny(D4, 16, 0), at_ny(D4, 17, 59)):  # running, then settling
        bars, rejected = parse_download(both(), ["AAPL", "AMZN"], CAL, moment)
        assert max(b.date for b in bars) == D3
        assert all(r.date != D4 for r in rejected)

    settled, _ = parse_download(both(), ["AAPL", "AMZN"], CAL, at_ny(D4, 18, 0))
    assert max(b.date for b in settled) == D4
    assert settled[-1].ts_event == datetime(2024, 1, 5, 21, 0, tzinfo=UTC)  # the close, not the settle time


def test_half_day_bars_settle_from_the_early_close() -> None:
    black_friday = date(2024, 11, 29)  # NYSE closes at 13:00
    frame = download_frame({"AAPL": history({black_friday: (237.0, 237.8, 234.0, 237.3, 236.0, 28481400)})})
    assert parse_download(frame, ["AAPL"], CAL, at_ny(black_friday, 14, 59))[0] == []
    bars, _ = parse_download(frame, ["AAPL"], CAL, at_ny(black_friday, 15, 0))
    assert bars[0].ts_event == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_download(both(), ["AAPL"], CAL, datetime(2024, 1, 8, 12, 0))


# -- bad data becomes rejections -----------------------------------------------------------


def test_inconsistent_and_impossible_rows_are_rejected_with_reasons() -> None:
    rows = dict(AAPL)
    rows[D2] = (184.22, 183.0, 185.5, 184.25, 183.35, 58414500)  # high below low
    rows[D3] = (0.0, 183.09, 180.88, 181.91, 181.02, 71983600)  # zero open
    bars, rejected = parse_download(download_frame({"AAPL": history(rows)}), ["AAPL"], CAL, LATER)

    assert [b.date for b in bars] == [D1, D4]
    reasons = {r.date: r.reason for r in rejected}
    assert "inconsistent bar AAPL 2024-01-03" in reasons[D2]
    assert "open: Input should be greater than 0" in reasons[D3]


def test_a_partly_missing_row_names_the_missing_values() -> None:
    frame = download_frame({"AAPL": history(AAPL)})
    frame.loc[pd.Timestamp(D3), ("Close", "AAPL")] = np.nan
    _, rejected = parse_download(frame, ["AAPL"], CAL, LATER)
    assert rejected == [Rejected("AAPL", D3, "missing close (NaN) for AAPL 2024-01-04")]


def test_rows_on_non_trading_days_are_rejected() -> None:
    new_year = date(2024, 1, 1)
    frame = download_frame({"AAPL": history({new_year: (1.0, 1.0, 1.0, 1.0, 1.0, 1), D1: AAPL[D1]})})
    bars, rejected = parse_download(frame, ["AAPL"], CAL, LATER)
    assert [b.date for b in bars] == [D1]
    assert rejected == [Rejected("AAPL", new_year, "2024-01-01 is not a XNYS trading day")]


def test_a_failed_or_absent_ticker_is_one_rejection() -> None:
    failed = pd.DataFrame(np.nan, index=history(AAPL).index, columns=HISTORY_COLUMNS)  # yfinance's empty_df
    frame = download_frame({"AAPL": history(AAPL), "XYZ": failed})

    bars, rejected = parse_download(frame, ["AAPL", "XYZ", "MSFT"], CAL, LATER)

    assert {b.symbol for b in bars} == {"AAPL"}
    assert rejected == [
        Rejected("XYZ", None, "the source returned no data for XYZ"),
        Rejected("MSFT", None, "the source returned no data for MSFT"),
    ]


def test_an_empty_download_rejects_every_symbol() -> None:
    bars, rejected = parse_download(pd.DataFrame(), ["AAPL"], CAL, LATER)
    assert bars == [] and [r.symbol for r in rejected] == ["AAPL"]


# -- the source and the real yf.download ---------------------------------------------------


def test_source_keeps_the_requested_sessions() -> None:
    calls: list[tuple[Sequence[str], date, date]] = []

    def download(symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        calls.append((symbols, start, end))
        return both()

    bars, _ = YFinanceSource(CAL, download).fetch(["AAPL", "AMZN"], D2, D3, LATER)

    assert calls == [(["AAPL", "AMZN"], D2, D3)]
    assert sorted({b.date for b in bars}) == [D2, D3]


@pytest.fixture
def offline_history(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace only ``Ticker.history`` (the network call); ``yf.download`` itself runs for real."""
    calls: list[dict[str, Any]] = []
    data = {"AAPL": AAPL, "AMZN": AMZN}

    def fake(self: yf.Ticker, **kwargs: Any) -> pd.DataFrame:
        calls.append({"ticker": self.ticker, **kwargs})
        frame = history(data[self.ticker])
        frame.index = frame.index.tz_localize("America/New_York")  # history is exchange-local
        return frame

    monkeypatch.setattr(yf.Ticker, "history", fake)
    return calls


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_hand_built_frames_match_a_real_download(offline_history: list[dict[str, Any]]) -> None:
    real = yf.download(["AAPL", "AMZN"], start="2024-01-02", end="2024-01-06", auto_adjust=False, progress=False)
    hand = both()

    assert real.columns.equals(hand.columns)
    assert real.dtypes.equals(hand.dtypes)
    assert real.index.name == "Date" and real.index.tz is None
    assert real.index.equals(hand.index)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_fetch_daily_asks_for_unadjusted_prices_and_an_inclusive_end(offline_history: list[dict[str, Any]]) -> None:
    frame = fetch_daily(["AAPL", "AMZN"], D1, D4)

    assert {c["ticker"] for c in offline_history} == {"AAPL", "AMZN"}
    for call in offline_history:
        assert call["auto_adjust"] is False and call["actions"] is False
        assert (call["start"], call["end"], call["interval"]) == ("2024-01-02", "2024-01-06", "1d")
    bars, _ = parse_download(frame, ["AAPL", "AMZN"], CAL, LATER)
    assert closes(bars)[("AMZN", D4)] == 145.24


# -- an unreachable Yahoo is not bad data ---------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``Ticker.history`` fails as it does without network (curl_cffi's DNSError); ``yf.download`` runs for real."""
    from curl_cffi.requests.exceptions import DNSError

    calls: list[str] = []

    def fail(self: yf.Ticker, **_: Any) -> pd.DataFrame:
        calls.append(self.ticker)
        raise DNSError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com")

    monkeypatch.setattr(yf.Ticker, "history", fail)
    return calls


def test_an_unreachable_yahoo_is_reported_as_such(no_network: list[str]) -> None:
    with pytest.raises(SourceUnreachable, match=r"^yfinance unreachable: .*Could not resolve host") as caught:
        fetch_daily(["AAPL", "AMZN"], D1, D4)
    assert "no data for AAPL, AMZN" in str(caught.value)
    assert sorted(no_network) == ["AAPL", "AMZN"]


def test_the_source_retries_an_unreachable_yahoo_then_gives_up(no_network: list[str]) -> None:
    with pytest.raises(SourceUnreachable, match=r"yfinance unreachable: .*\(after 4 attempts\)$"):
        YFinanceSource(CAL, backoff=NO_WAIT).fetch(["AAPL"], D1, D4, LATER)
    assert no_network == ["AAPL"] * 4


def test_a_ticker_yahoo_has_no_data_for_is_not_an_outage(offline_history: list[dict[str, Any]]) -> None:
    frame = fetch_daily(["AAPL", "NOPE"], D1, D4)  # NOPE: history raises KeyError, logged as a failure
    _, rejected = parse_download(frame, ["AAPL", "NOPE"], CAL, LATER)
    assert rejected == [Rejected("NOPE", None, "the source returned no data for NOPE")]
