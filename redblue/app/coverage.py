"""Per symbol: what a simulation covers and how far it got (symbols may start and end apart).

:class:`Steps` is what the orchestrator polls: every bar of every symbol seen by the scorer and
every team's equity known on every day one of its symbols is marked. :func:`symbol_counts` and
:func:`render_symbol_counts` report, per symbol, its span and what was replayed, forecast,
scored and traded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Any

from consumers.leaderboard import progress
from consumers.leaderboard import traded_symbols as team_symbols
from producers.replay import ReplayPlan
from redblue.core.arena import Arena
from redblue.core.calendar import TradingCalendar
from redblue.core.store import LeaderboardStore
from schemas import Fill, Forecast


class Steps:
    """The steps of a complete run, and how many of them a leaderboard shows done.

    Within a symbol's partition the forecasts targeting day D come before D's bar, so once the
    scorer has seen the last bar of every symbol, every forecast that was made has been scored.
    Counting is a binary search per symbol and team: polling costs the same however long the run.
    """

    def __init__(self, arena: Arena, plan: ReplayPlan, calendar: TradingCalendar) -> None:
        self._bars: dict[str, list[date]] = {}
        for row in plan.rows:
            self._bars.setdefault(row.symbol, []).append(row.date)
        self._equity: dict[str, list[date]] = {}
        for team in arena.teams:
            days = {
                day
                for symbol in team_symbols(arena, team)
                if symbol in plan.spans
                for day in calendar.sessions(plan.spans[symbol].first_as_of, plan.spans[symbol].last)
            }
            self._equity[team] = sorted(days)
        self.total = sum(map(len, self._bars.values())) + sum(map(len, self._equity.values()))

    def done(self, store: LeaderboardStore) -> int:
        now = progress(store)
        bars = sum(bisect_right(self._bars.get(s, []), day) for s, day in now.bars.items())
        return bars + sum(bisect_right(self._equity.get(t, []), day) for t, day in now.equity.items())


def symbol_counts(
    plan: ReplayPlan,
    forecasts: Iterable[Forecast],
    scored: Iterable[Forecast],
    fills: Iterable[Fill],
    calendar: TradingCalendar,
) -> dict[str, dict[str, Any]]:
    """Per symbol: its span, bars replayed, target days, forecasts made and scored, fills."""
    bars = Counter(row.symbol for row in plan.rows)
    made = Counter(f.symbol for f in forecasts)
    hits = Counter(f.symbol for f in scored)
    filled = Counter(f.symbol for f in fills)
    return {
        symbol: {
            "warmup_first": span.warmup_first.isoformat(),
            "first_target": span.first_target.isoformat(),
            "last_target": span.last.isoformat(),
            "target_days": len(calendar.sessions(span.first_target, span.last)),
            "bars": bars[symbol],
            "forecasts": made[symbol],
            "scored": hits[symbol],
            "fills": filled[symbol],
        }
        for symbol, span in sorted(plan.spans.items())
    }


def render_symbol_counts(counts: dict[str, dict[str, Any]]) -> str:
    """A table of :func:`symbol_counts`, one line per symbol."""
    heads = ("symbol", "targets from", "to", "days", "bars", "forecasts", "scored", "fills")
    rows = [heads] + [
        (
            s,
            c["first_target"],
            c["last_target"],
            *(f"{c[k]:,}" for k in ("target_days", "bars", "forecasts", "scored", "fills")),
        )
        for s, c in counts.items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads))]
    lines = [
        "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "Per symbol\n" + "\n".join(line.rstrip() for line in lines)
