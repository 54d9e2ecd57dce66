"""Daily bars from CSV files (the bundled ``data/bars`` or any directory in the same format).

Format: one ``SYMBOL.csv`` per symbol, header ``date,open,high,low,close,adj_close,volume``,
ISO dates ascending. Prices are split-adjusted, not dividend-adjusted (Yahoo's "Close"); the
``adj_close`` column is read but not used.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path

from redblue.core.calendar import TradingCalendar
from redblue.core.errors import RedblueError

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "bars"
COLUMNS = ("date", "open", "high", "low", "close", "adj_close", "volume")


class DataError(RedblueError, ValueError):
    """A bar file is missing, malformed, or does not cover what a run needs."""


@dataclass(frozen=True)
class Row:
    """One daily row of a symbol (from a CSV or a vendor), not yet an event.

    Events get their timestamps when emitted. Vendor rows may hold NaN until validated.
    """

    symbol: str
    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float


def bar_file(data_dir: Path, symbol: str) -> Path:
    path = data_dir / f"{symbol}.csv"
    if not path.is_file():
        available = sorted(p.stem for p in data_dir.glob("*.csv")) if data_dir.is_dir() else []
        raise DataError(
            f"no bar file for {symbol}: {path} does not exist (available: {', '.join(available) or 'none'})"
        )
    return path


def read_rows(data_dir: Path, symbol: str) -> list[Row]:
    """All rows of one symbol, validated: dates ascending and unique, prices sane."""
    path = bar_file(data_dir, symbol)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
            raise DataError(f"{path}: header must contain {','.join(COLUMNS)} (found {reader.fieldnames})")
        rows = [_parse(path, n, raw, symbol) for n, raw in enumerate(reader, start=2)]
    for n, (a, b) in enumerate(pairwise(rows), start=3):
        if b.date <= a.date:
            raise DataError(f"{path}:{n}: date {b.date} is not after the previous row's {a.date}")
    return rows


def _parse(path: Path, line: int, raw: dict[str, str], symbol: str) -> Row:
    try:
        row = Row(
            symbol=symbol,
            date=date.fromisoformat(raw["date"]),
            open=float(raw["open"]),
            high=float(raw["high"]),
            low=float(raw["low"]),
            close=float(raw["close"]),
            volume=int(float(raw["volume"])),
        )
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}:{line}: cannot parse row {raw}: {err}") from err
    prices = (row.open, row.high, row.low, row.close)
    if not all(p > 0 for p in prices) or row.high < max(prices) or row.low > min(prices) or row.volume < 0:
        raise DataError(f"{path}:{line}: inconsistent prices or volume {raw}")
    return row


def window_rows(rows: list[Row], first: date, last: date, calendar: TradingCalendar) -> list[Row]:
    """The rows from ``first`` to ``last``; every trading session in between must be present."""
    chosen = [r for r in rows if first <= r.date <= last]
    have = {r.date for r in chosen}
    missing = [d for d in calendar.sessions(first, last) if d not in have]
    if missing:
        shown = ", ".join(str(d) for d in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise DataError(
            f"{symbol_of(rows)}: {len(missing)} trading day(s) between {first} and {last} have no bar ({shown}); "
            f"the data covers {rows[0].date if rows else '-'} to {rows[-1].date if rows else '-'}"
        )
    extra = [r.date for r in chosen if not calendar.is_session(r.date)]
    if extra:
        raise DataError(f"{symbol_of(rows)}: rows on days that are not {calendar.name} sessions: {extra[:5]}")
    return chosen


def coverage(data_dir: Path, symbols: tuple[str, ...]) -> str:
    """Which dates the data of ``symbols`` cover, for error messages."""
    spans = []
    for symbol in symbols:
        rows = read_rows(data_dir, symbol)
        spans.append(f"{symbol} {rows[0].date} to {rows[-1].date}" if rows else f"{symbol} no rows")
    return "the data cover " + ", ".join(spans)


def symbol_of(rows: list[Row]) -> str:
    return rows[0].symbol if rows else "?"


def to_bar_fields(row: Row, calendar: TradingCalendar, source: str) -> dict[str, object]:
    """The fields of a :class:`schemas.Bar` for this row, apart from ``produced_at``."""
    return {
        "symbol": row.symbol,
        "date": row.date,
        "open": row.open,
        "high": row.high,
        "low": row.low,
        "close": row.close,
        "volume": int(row.volume),
        "adjustment": "split",
        "source": source,
        "ts_event": calendar.close_time(row.date),
    }


def data_fingerprint(data_dir: Path, symbols: tuple[str, ...]) -> str:
    """A short hash of the bar files a run reads (part of the default run id)."""
    digest = hashlib.sha256()
    for symbol in sorted(symbols):
        digest.update(symbol.encode())
        digest.update(bar_file(data_dir, symbol).read_bytes())
    return digest.hexdigest()[:12]
