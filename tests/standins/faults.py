"""A live season's vendor trouble, scripted by session, and what that trouble may change.

One plan serves the in-process season (``tests/unit/test_live_season.py``) and the rehearsal
through the real services (``scripts/rehearse.py --vendor-faults``). For a season of ``n``
sessions (placed at the same fractions of the season as in the 63-session test):

- **late revisions**: three sessions (one per symbol) are first printed with the close 1 % off and
  fixed at 08:00 New York the next day (:attr:`FaultPlan.revised`);
- **a late session** (``late``): the vendor skips it until 08:00 the next day, so it is published
  the next morning, still before the next open's order window closes;
- **a missed session** (``missed``): skipped until 17:00 the next day, after that day's close:
  the symbol pauses (no two-day return), the session is backfilled before the next day's bar, and
  that day's orders (of every symbol: the trader decides a day's orders once every symbol's bar
  of it is in) miss their open (rejected "missed the opg window");
- **the data API**: a burst of a 429 and a secret-echoing 500 on every 7th day (the 4th, 11th,
  ...), a slow answer (a client timeout) every 11th (the 6th, 17th, ...), and a lasting outage
  (503 on every attempt of one poll; the next poll recovers) on one day;
- **one team's trading API** (``troubled``): on the burst days 503, 429 and a secret-echoing 500
  on its order POSTs; on the slow days a POST whose answer comes too late (the order is taken,
  confirmed on the retry) and a 503, an echo and a 429 on its order lookups (a day's trouble waits
  for the team's next request of its kind, and replaces what is left of an earlier day's). Partial intraday bars
  and bars without the closing auction are what the market stand-in shows at those times anyway
  (:class:`~tests.standins.market.Timeline`).

Every burst is shorter than the clients' retries (4 data attempts, 5 trading attempts), so nothing
is lost: what the faults may change is only

- the forecasts made *from* a first print (as of a revised session): they saw the 1 % off close;
- the orders of a symbol from a revised session on (of every symbol from the missed session on),
  for each team, until both runs hold the same position in it again (:meth:`FaultPlan.disrupted`):
  a first print can change a forecast's direction or an order's size (whole shares at the decision
  close), and the missed session's orders are rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from redblue.core.bars import Row
from redblue.core.calendar import TradingCalendar
from schemas import Bar, BarRevision, Event, Forecast, Order, PositionMark
from tests.standins.alpaca import AlpacaStandIn, Answer
from tests.standins.clock import ny
from tests.standins.market import Timeline

SEASON_SCALE = 63  # the places below are given for a season of this many sessions
REVISED_AT = (10, 30, 47)  # a revision each, of the symbols in turn (first, last, middle)
LATE_AT, MISSED_AT, OUTAGE_AT = 17, 38, 25
FIXED_AT = 8  # o'clock New York the next day: a revision is fixed, a late session served
MISSED_UNTIL = 17  # o'clock the next day, after its close: a missed session is served


def credentials(who: str) -> tuple[str, str]:
    """A stand-in account's key and secret (``who``: ``data`` or a team), distinct for each."""
    return (f"PK{who.upper()}" + "0" * 10)[:9] + "1", (f"{who}-secret-" + "0" * 16)[:15] + "1"


@dataclass(frozen=True)
class FaultPlan:
    """Which sessions of a season misbehave, and how (see the module's text)."""

    season: tuple[date, ...]
    revised: frozenset[tuple[str, date]]
    late: tuple[str, date]
    missed: tuple[str, date]
    outage: int  # the day (index into the season) of the data API's lasting outage
    troubled: str  # the team whose trading API misbehaves

    @classmethod
    def spread(cls, season: Sequence[date], symbols: Sequence[str], troubled: str) -> FaultPlan:
        """The plan for ``season`` (at least 6 sessions), its faults at the same fractions of any length."""
        n = len(season)
        if n < 6:
            raise ValueError(f"a faulty season needs at least 6 sessions, got {n}")

        def at(k: int) -> date:
            return season[n * k // SEASON_SCALE]

        first, middle, last = symbols[0], symbols[len(symbols) // 2], symbols[-1]
        revised = frozenset(zip((first, last, middle), map(at, REVISED_AT), strict=True))
        late, missed = (last, at(LATE_AT)), (middle, at(MISSED_AT))
        return cls(tuple(season), revised, late, missed, n * OUTAGE_AT // SEASON_SCALE, troubled)

    # -- serving the trouble ----------------------------------------------------------------

    def script(self, market: Timeline, calendar: TradingCalendar) -> None:
        """The market's first prints and skipped sessions."""
        for symbol, day in self.revised:
            market.first_print(symbol, day, until=ny(calendar.offset(day, 1), FIXED_AT))
        market.skip(*self.late, until=ny(calendar.offset(self.late[1], 1), FIXED_AT))
        market.skip(*self.missed, until=ny(calendar.offset(self.missed[1], 1), MISSED_UNTIL))

    def trouble(self, n: int, data: AlpacaStandIn, team: AlpacaStandIn, since: datetime | None = None) -> None:
        """Script day ``n``'s trouble (taken by the next requests of each route at or after ``since``; a team
        without orders that day meets its order trouble on a later day)."""
        trouble: dict[tuple[AlpacaStandIn, str], list[Answer]] = {}
        if n % 7 == 3:
            trouble[(data, "bars")] = [429, "echo"]  # a burst, ridden out by the retries
            trouble[(team, "orders")] = [503, 429, "echo"]  # the echo carries the key and secret in its body
        if n % 11 == 5:
            trouble[(data, "bars")] = [*trouble.get((data, "bars"), []), "slow"]
            trouble[(team, "orders")] = [*trouble.get((team, "orders"), []), "slow"]  # taken, the answer lost
            trouble[(team, "order")] = [503, "echo", 429]
        if n == self.outage:
            trouble[(data, "bars")] = [*trouble.get((data, "bars"), []), *[503] * 4]  # one poll fails, the next not
        for (standin, route), answers in trouble.items():  # a day's trouble replaces what is left of an earlier one
            standin.faults.pop(route, None)
            standin.fail(route, *answers, since=since)

    # -- what the trouble may change -------------------------------------------------------------

    def from_first_print(self, forecast: Forecast) -> bool:
        """Made from a revised session's first print."""
        return (forecast.symbol, forecast.as_of) in self.revised

    def disrupted(
        self, ours: dict[tuple[str, str, date], int], theirs: dict[tuple[str, str, date], int], teams: Iterable[str]
    ) -> set[tuple[str, str, date]]:
        """The (team, symbol, as-of day)s whose decisions the faults may change: from a revised session
        (of its symbol) or the missed session (of every symbol: the trader decides a day's orders once
        every symbol's bar of it is in) until both runs (their :func:`holdings`) hold the same position again."""
        days: set[tuple[str, str, date]] = set()
        symbols = {symbol for _, symbol, _ in ours}
        for symbol, start in sorted(self.revised | {(s, self.missed[1]) for s in symbols}):
            for team in teams:
                for day in (d for d in self.season if d >= start):
                    if day > start and ours.get((team, symbol, day)) == theirs.get((team, symbol, day)):
                        break
                    days.add((team, symbol, day))
        return days

    def same_forecasts(self, made: Iterable[Forecast], expected: Iterable[Forecast]) -> bool:
        """The same forecasts (each counted once) apart from those made from a first print, which
        exist in both (one per model and revised session) and differ."""
        ours, theirs = {forecast_key(f): f for f in made}, {forecast_key(f): f for f in expected}
        kept = {k for k, f in ours.items() if not self.from_first_print(f)}
        their_kept = {k for k, f in theirs.items() if not self.from_first_print(f)}
        firsts = {(f.team, f.model, f.symbol, f.as_of) for f in ours.values() if self.from_first_print(f)}
        their_firsts = {(f.team, f.model, f.symbol, f.as_of) for f in theirs.values() if self.from_first_print(f)}
        return kept == their_kept and firsts == their_firsts

    def same_orders(
        self,
        ours: Sequence[Event],
        theirs: Sequence[Event],
        teams: Iterable[str],
    ) -> tuple[bool, set[tuple[str, str, date]]]:
        """The same orders (with their status) and positions outside :meth:`disrupted`; and those."""
        changed = self.disrupted(holdings(ours), holdings(theirs), teams)

        def kept(events: Sequence[Event]) -> list[tuple[Any, ...]]:
            orders = (o for o in events if isinstance(o, Order))
            return sorted(order_key(o) for o in orders if (o.team, o.symbol, o.as_of) not in changed)

        held, their_held = holdings(ours), holdings(theirs)
        same_held = {k: v for k, v in held.items() if k not in changed} == {
            k: v for k, v in their_held.items() if k not in changed
        }
        return kept(ours) == kept(theirs) and same_held, changed


def forecast_key(f: Forecast) -> tuple[Any, ...]:
    return (f.team, f.model, f.symbol, f.as_of, f.target, f.predicted_close, f.last_close)


def order_key(o: Order) -> tuple[Any, ...]:
    return (o.team, o.symbol, o.side, o.quantity, o.as_of, o.target, o.status)


def holdings(events: Iterable[Event]) -> dict[tuple[str, str, date], int]:
    """Each (team, symbol, day)'s position from the marks among ``events``."""
    return {(m.team, m.symbol, m.as_of): m.quantity for m in events if isinstance(m, PositionMark)}


def values(bar: Bar | Row) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, float(bar.volume))


def effective(published: Iterable[Bar | BarRevision]) -> dict[tuple[str, date], tuple[float, ...]]:
    """Each session's values after every revision."""
    newest: dict[tuple[str, date], tuple[float, ...]] = {}
    for event in published:
        bar = event.bar if isinstance(event, BarRevision) else event
        newest[(bar.symbol, bar.date)] = values(bar)
    return newest
