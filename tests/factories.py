"""Small builders for events in tests (fixed clock, valid defaults)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from redblue.core.arena import REPO_ROOT
from schemas import Bar

T0 = datetime(2024, 1, 2, 22, 0, tzinfo=UTC)


def bar(symbol: str, day: date, close: float, *, open_: float | None = None, volume: int = 1000) -> Bar:
    o = close if open_ is None else open_
    return Bar(
        symbol=symbol,
        date=day,
        open=o,
        high=max(o, close) * 1.01,
        low=min(o, close) * 0.99,
        close=close,
        volume=volume,
        source="test",
        ts_event=datetime(day.year, day.month, day.day, 21, 0, tzinfo=UTC),
        produced_at=T0,
    )


def days(first: date, n: int) -> list[date]:
    """``n`` weekdays from ``first`` (tests that do not involve the calendar)."""
    out: list[date] = []
    d = first
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


BASELINES = REPO_ROOT / "arenas" / "baselines.yaml"  # the reference symbols, baseline models only
