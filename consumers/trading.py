"""The trader: turns one run's forecasts into orders, and broker fills into marked positions.

It is driven by the forecasts topic in partition order: the forecasts made from bar D of a
symbol arrive before that bar's ``bar_processed`` marker. The symbols' partitions interleave as
Kafka delivers them, so the trader works day by day, not marker by marker: day D is done once
every arena symbol's marker of D (or of a later day) has arrived. Then, for each team in name
order, it (1) collects the fills that happened at D's open for every symbol at once (the broker
applies them in its own defined order: which buy a short account rejects cannot depend on
delivery), (2) marks the team's position in each symbol at D's close, (3) decides from the
team's forecasts as of D and submits the orders that will execute at D+1's open, symbol by
symbol. Same events in, in any interleaving of the partitions, same events out per partition;
wall time only comes from ``clock``. A symbol whose bar never comes holds the days after it back
until its next bar arrives. The markers of a day not complete yet are kept in memory only: a
restarted trader re-reads the forecasts from the start (:mod:`consumers.recovery`), and the
newest mark is the last day it completed.

A gateway may *hold* an order until its broker accepts it (Alpaca: from 19:01 New York); the
order event is written when :meth:`Trader.tick` finds it sent (or missed). One team's broker
trouble (a :class:`~redblue.core.broker.BrokerError`) is logged and written as that team's
rejected order; it never stops the other teams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from consumers.recovery import TraderHistory
from consumers.strategy import client_order_id, decide
from redblue.core.arena import Arena
from redblue.core.broker import BrokerError, BrokerGateway, OrderRequest, Rejection, Side, SubmitResult
from redblue.core.spans import Spans
from schemas import Bar, BarProcessed, Event, Fill, Forecast, Order, PositionMark, TeamState

log = logging.getLogger(__name__)


@dataclass
class _Book:
    """One team's position in one symbol, built from its fills."""

    quantity: int = 0
    net_cash_flow: float = 0.0
    pending: dict[str, int] = field(default_factory=dict)  # client_order_id -> shares not yet filled


class Trader:
    """The trading logic of one run for every team of the arena (baselines never trade).

    ``spans`` (a replay whose symbols start or end at different dates): a day is complete once
    every symbol taking part in it (from its warm-up's first bar to its last) has its bar;
    without them every symbol of the arena takes part in every day.
    """

    def __init__(
        self,
        run: str,
        arena: Arena,
        gateways: dict[str, BrokerGateway],
        clock: Callable[[], datetime],
        spans: Spans | None = None,
    ) -> None:
        if set(gateways) != set(arena.teams):
            raise ValueError(f"need one gateway per team {sorted(arena.teams)}, got {sorted(gateways)}")
        self._run = run
        self._arena = arena
        self._gateways = gateways
        self._spans = spans
        self._clock = clock
        self._forecasts: dict[tuple[str, str, date], Forecast] = {}
        self._books: dict[tuple[str, str], _Book] = {}
        self._last_bar: dict[str, date] = {}
        self._waiting: dict[date, dict[str, Bar]] = {}  # bars whose day is not complete yet
        self.halted: dict[str, str] = {}  # team -> why it is not traded (a failed reconciliation)
        self._told: dict[str, str] = {}  # team -> the halt last written to the orders topic
        self._resumed: dict[str, date] = {}  # the last bar per symbol before a restart
        self._ordered: set[str] = set()  # client_order_ids with an order event before a restart
        self._redecided: set[tuple[str, str, date]] = set()

    def resume(self, history: TraderHistory) -> None:
        """Continue from the trader's own topics (see :mod:`consumers.recovery`), before any event.

        Each team's gateway restores or reconciles its account; a team whose broker disagrees,
        or whose gateway cannot check, is not traded from now on (fail closed; see ``halted``).
        """
        self._last_bar = dict(history.last_bar)
        self._resumed, self._ordered = dict(history.last_bar), set(history.ordered)
        self._told = dict(history.halted)
        for team in sorted(self._gateways):
            past = history.teams.get(team)
            if past is None:
                continue
            for symbol in {*past.positions, *past.cash_flow, *(o.symbol for o in past.pending.values())}:
                self._books[(team, symbol)] = _Book(
                    past.positions.get(symbol, 0),
                    past.cash_flow.get(symbol, 0.0),
                    {c: n for c, n in past.unfilled.items() if past.pending[c].symbol == symbol},
                )
            resume = getattr(self._gateways[team], "resume", None)
            why = resume(past) if resume is not None else "its broker gateway cannot reconcile a restart"
            if why:
                self.halted[team] = why
                log.error("team %s is not traded any more: %s", team, why)

    def states(self) -> list[TeamState]:
        """A ``team_state`` per team whose state differs from the last one written (for the board and
        ``season status``): why it is not traded now, or "" once it trades again."""
        changed = [t for t in sorted(self._gateways) if self.halted.get(t, "") != self._told.get(t, "")]
        return [
            TeamState(run=self._run, team=t, halted=self.halted.get(t, ""), produced_at=self._clock()) for t in changed
        ]

    def on_forecast(self, f: Forecast) -> list[Event]:
        """Keep ``f`` if it is from a team's trading model and its bar is still to come.

        The first forecast per (team, symbol, as_of) wins; later ones are ignored, as are
        forecasts whose bar was already processed (they can no longer act at the next open) —
        except after a restart, for the last bar processed before it: an order decided then may
        have been *held* by its gateway (in memory only, no order event yet) and lost with the
        process. It is decided again, from the same rebuilt position, unless its order event
        exists; the order event (if sent at once) is returned.
        """
        self._check_run(f.run)
        team = self._arena.teams.get(f.team)
        if team is None or f.model != team.trading_model:
            return []
        if self._seen(f.symbol, f.as_of):
            again = (f.team, f.symbol, f.as_of)
            if f.as_of != self._resumed.get(f.symbol) or again in self._redecided or f.team in self.halted:
                return []
            self._redecided.add(again)
            order = self._decided(f.team, f, skip=self._ordered)
            return [order] if order is not None else []
        self._forecasts.setdefault((f.team, f.symbol, f.as_of), f)
        return []

    def on_bar_processed(self, bp: BarProcessed) -> list[Event]:
        """The events of every day this marker completes (none while a symbol's bar of the day is missing).

        Per completed day, per team in name order: for each symbol in order, its fills and its
        mark; then the orders the broker rejected when they came due; then the orders decided
        from the day's bars, symbol by symbol. A bar not newer than the last one seen for its
        symbol (a redelivery) yields nothing.
        """
        self._check_run(bp.run)
        bar = bp.bar
        if self._seen(bar.symbol, bar.date):
            return []
        self._last_bar[bar.symbol] = bar.date
        self._waiting.setdefault(bar.date, {})[bar.symbol] = bar
        teams = [team for team in sorted(self._gateways) if team not in self.halted]
        events: list[Event] = []
        for day in sorted(self._waiting):
            if not self._complete(day):
                break
            bars = self._waiting.pop(day)
            day_bars = [bars[symbol] for symbol in sorted(bars)]
            events += [event for team in teams for event in self._day(team, day_bars)]
        return events

    def _complete(self, day: date) -> bool:
        """Whether every symbol taking part in ``day`` has its bar of it (or a later one)."""
        for symbol in self._arena.symbols:
            span = None if self._spans is None else self._spans.get(symbol)
            if self._spans is not None and (span is None or not span.warmup_first <= day <= span.last):
                continue
            if self._last_bar.get(symbol, date.min) < day:
                return False
        return True

    def tick(self) -> list[Event]:
        """The order events of held orders the gateways sent (or gave up on) since the last tick."""
        events: list[Event] = []
        for team in sorted(set(self._gateways) - set(self.halted)):
            try:
                released = self._gateways[team].release()
            except BrokerError as err:
                log.error("team %s: releasing held orders failed: %s", team, err)
                continue
            for request, result in released:
                if result.status == "rejected":
                    self._book(team, request.symbol).pending.pop(request.client_order_id, None)
                events.append(self._order_event(request, result))
        return events

    def _day(self, team: str, bars: list[Bar]) -> list[Event]:
        gateway = self._gateways[team]
        try:
            fills = gateway.on_day(bars)
        except BrokerError as err:  # fills not known now: asked again at the symbols' next bars
            days = ", ".join(f"{b.symbol} {b.date}" for b in bars)
            log.error("team %s: fills of %s not known: %s", team, days, err)
            fills = []
        for fill in fills:
            self._apply(team, fill)
        events: list[Event] = []
        for bar in bars:
            events += [f for f in fills if f.symbol == bar.symbol] + [self._mark(team, bar)]
        events += [self._rejected(team, r) for r in gateway.take_rejections()]
        return events + [order for bar in bars if (order := self._order(team, bar)) is not None]

    def _apply(self, team: str, fill: Fill) -> None:
        book = self._book(team, fill.symbol)
        book.quantity += fill.quantity if fill.side == "buy" else -fill.quantity
        book.net_cash_flow += fill.cash_flow
        left = book.pending.pop(fill.client_order_id, 0) - fill.quantity
        if left > 0:  # a partial fill: the rest is still pending
            book.pending[fill.client_order_id] = left

    def _rejected(self, team: str, rejection: Rejection) -> Order:
        order = rejection.order
        self._book(team, order.symbol).pending.pop(order.client_order_id, None)
        return self._order_event(order, SubmitResult("rejected", rejection.reason))

    def _mark(self, team: str, bar: Bar) -> PositionMark:
        book = self._book(team, bar.symbol)
        return PositionMark(
            run=self._run,
            team=team,
            symbol=bar.symbol,
            as_of=bar.date,
            quantity=book.quantity,
            close=bar.close,
            net_cash_flow=book.net_cash_flow,
            produced_at=self._clock(),
        )

    def _order(self, team: str, bar: Bar) -> Order | None:
        forecast = self._forecasts.pop((team, bar.symbol, bar.date), None)
        return None if forecast is None else self._decided(team, forecast)

    def _decided(self, team: str, forecast: Forecast, skip: set[str] | None = None) -> Order | None:
        """Decide from ``forecast`` and submit (unless the order's id is in ``skip``); its order event."""
        book = self._book(team, forecast.symbol)
        decision = decide(forecast, book.quantity, bool(book.pending), self._arena.strategy)
        if decision.side is None:
            return None
        request = self._request(forecast, decision.side, decision.quantity)
        if skip is not None and request.client_order_id in skip:
            return None
        try:
            result = self._gateways[team].submit(request)
        except BrokerError as err:
            result = SubmitResult("rejected", f"broker error: {err}")
        if result.status != "rejected":  # "duplicate": sent before; "held": to be sent; pending all the same
            book.pending[request.client_order_id] = request.quantity
        if result.status == "held":  # its order event is written when it is sent (tick)
            log.info("team %s: %s %s", team, request.client_order_id, result.reason)
            return None
        return self._order_event(request, result)

    def _request(self, forecast: Forecast, side: Side, quantity: int) -> OrderRequest:
        return OrderRequest(
            run=self._run,
            team=forecast.team,
            model=forecast.model,
            symbol=forecast.symbol,
            side=side,
            quantity=quantity,
            as_of=forecast.as_of,
            target=forecast.target,
            reference_price=forecast.last_close,
            client_order_id=client_order_id(
                self._run, forecast.team, forecast.model, forecast.symbol, forecast.target, side
            ),
        )

    def _order_event(self, order: OrderRequest, result: SubmitResult) -> Order:
        """The ``Order`` event of a request: every request field, plus the broker's answer."""
        return Order(**asdict(order), status=result.status, reason=result.reason, produced_at=self._clock())

    def _book(self, team: str, symbol: str) -> _Book:
        return self._books.setdefault((team, symbol), _Book())

    def _seen(self, symbol: str, day: date) -> bool:
        last = self._last_bar.get(symbol)
        return last is not None and day <= last

    def _check_run(self, run: str) -> None:
        if run != self._run:
            raise ValueError(f"event of run {run!r} reached the trader of run {self._run!r}")
