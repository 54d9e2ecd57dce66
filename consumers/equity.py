"""A team's equity at each close, from the position marks of the symbols it trades.

Each symbol's marks arrive in date order (one partition), but symbols interleave arbitrarily, so
a day's equity is known once every symbol that takes part that day is marked. With spans (a
simulation whose symbols start or end at different dates) a symbol takes part from its first
as-of day; after its last day it counts with its last mark. Without spans (live) every traded
symbol is expected every day. The cost of a mark does not depend on the history before it.
"""

from __future__ import annotations

import heapq
from datetime import date

from redblue.core.metrics import equity
from redblue.core.spans import Spans
from schemas import PositionMark


class EquityBook:
    """Turns one team's marks into its equity curve, one completed day at a time, in date order."""

    def __init__(self, initial_cash: float, symbols: tuple[str, ...], spans: Spans | None = None) -> None:
        self._cash = initial_cash
        self._symbols = frozenset(symbols)
        self._spans = spans
        self._open: dict[date, dict[str, float]] = {}  # day -> symbol -> net cash flow + market value
        self._days: list[date] = []  # a heap of the open days
        self._final: dict[str, float] = {}  # a symbol's contribution at its last day (it has left)
        self.last: date | None = None  # the last day whose equity is known

    def add(self, mark: PositionMark) -> list[tuple[date, float]]:
        """Record ``mark``; return the days (with their equity) it completed, oldest first."""
        day, symbol = mark.as_of, mark.symbol
        if symbol not in self._symbols or (self.last is not None and day <= self.last):
            return []
        value = mark.net_cash_flow + mark.market_value
        span = self._spans.get(symbol) if self._spans is not None else None
        if span is not None and day == span.last:
            self._final[symbol] = value
        if day not in self._open:
            self._open[day] = {}
            heapq.heappush(self._days, day)
        self._open[day][symbol] = value
        return self._complete()

    def _complete(self) -> list[tuple[date, float]]:
        """Close the oldest open days while they are complete (a later day never completes first)."""
        done: list[tuple[date, float]] = []
        while self._days:
            day = self._days[0]
            contributions = self._contributions(day)
            if contributions is None:
                break
            heapq.heappop(self._days)
            del self._open[day]
            self.last = day
            done.append((day, equity(self._cash, contributions)))
        return done

    def _contributions(self, day: date) -> dict[str, float] | None:
        """Every taking-part symbol's contribution at ``day``, or ``None`` while one is missing."""
        marked = self._open[day]
        found: dict[str, float] = {}
        for symbol in self._symbols:
            span = self._spans.get(symbol) if self._spans is not None else None
            if span is not None and day < span.first_as_of:
                continue  # not in the run yet
            source = self._final if span is not None and day > span.last else marked
            if symbol not in source:
                return None
            found[symbol] = source[symbol]
        return found
