"""Yahoo as ``yf.download`` shows it: frames of exactly its shape, served from a :class:`Timeline`.

``download_frame`` rebuilds what ``yfinance.multi.download`` does with the per-ticker
``Ticker.history`` frames (reindex onto the union of dates, concat with keys named
``Ticker``/``Price``, swap and sort the levels for ``group_by="column"``);
``tests/unit/test_yfinance_source.py::test_hand_built_frames_match_a_real_download`` checks that
against the real ``yf.download``. :class:`ScriptedYahoo` is a ``download`` for
:class:`~redblue.adapters.yfinance.YFinanceSource` that answers from a timeline at the replayed
clock's time, and can be unreachable for a while (as ``fetch_daily`` reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from redblue.core.bars import Row
from redblue.core.clock import Clock
from redblue.core.sources import SourceUnreachable
from tests.standins.market import Timeline

HISTORY_COLUMNS = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]
Values = tuple[float, float, float, float, float, int]  # open, high, low, close, adj close, volume


def history(rows: dict[date, Values]) -> pd.DataFrame:
    """One ticker's daily frame as ``download`` holds it: tz-naive ``Date`` index, int64 volume."""
    index = pd.DatetimeIndex([pd.Timestamp(d) for d in rows], name="Date")
    frame = pd.DataFrame(list(rows.values()), index=index, columns=HISTORY_COLUMNS)
    return frame.astype({c: "float64" for c in HISTORY_COLUMNS[:-1]} | {"Volume": "int64"})


def download_frame(tickers: dict[str, pd.DataFrame], group_by: str = "column") -> pd.DataFrame:
    """What ``yf.download(list(tickers), group_by=group_by)`` returns for these histories."""
    union = None
    for frame in tickers.values():
        union = frame.index if union is None else union.union(frame.index)
    aligned = {t: f.reindex(union) for t, f in tickers.items()}
    data = pd.concat(aligned.values(), axis=1, sort=True, keys=aligned.keys(), names=["Ticker", "Price"])
    if group_by == "column":
        data.columns = data.columns.swaplevel(0, 1)
        data = data.sort_index(level=0, axis=1)
    return data


def frame_of(rows: Sequence[Row], symbols: Sequence[str]) -> pd.DataFrame:
    """The ``yf.download`` frame of these rows (a requested symbol without rows: Yahoo's empty frame)."""
    by_symbol: dict[str, dict[date, Values]] = {s: {} for s in symbols}
    for r in rows:
        by_symbol[r.symbol][r.date] = (r.open, r.high, r.low, r.close, r.close, int(r.volume))
    if not any(by_symbol.values()):
        return pd.DataFrame()
    return download_frame({s: history(v) for s, v in by_symbol.items()})


class ScriptedYahoo:
    """A ``download(symbols, start, end)`` answering from ``timeline`` at ``clock()``.

    ``unreachable(n)`` makes the next ``n`` calls fail as :func:`redblue.adapters.yfinance.fetch_daily`
    does when Yahoo cannot be reached.
    """

    def __init__(self, timeline: Timeline, clock: Clock) -> None:
        self.timeline, self.clock = timeline, clock
        self.calls: list[tuple[tuple[str, ...], date, date]] = []
        self._failures = 0

    def unreachable(self, calls: int) -> None:
        self._failures = calls

    def __call__(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        self.calls.append((tuple(symbols), start, end))
        if self._failures > 0:
            self._failures -= 1
            raise SourceUnreachable("yfinance unreachable: DNSError: Could not resolve host: query2.finance.yahoo.com")
        return frame_of(self.timeline.rows(symbols, start, end, self.clock()), symbols)
