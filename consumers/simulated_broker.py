"""The simulated broker: one team's account in a replay, filling market orders at the next open.

An order decided from the bar of day D targets D+1 and is filled when the bars of D+1 (or a later
day, if D+1's bar never came) are in, at its bar's open plus slippage, never at D's close. The
orders of one day execute in a defined order (:meth:`SimulatedBroker.on_day`).
Commission is ``commission_per_order + notional * commission_bps / 1e4``. A buy the account
cannot pay for at fill time is not executed: it is recorded as a :class:`Rejection`, which the
trader takes with :meth:`SimulatedBroker.take_rejections` and publishes as a rejected order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from redblue.core.arena import CostSpec
from redblue.core.broker import OrderRequest, Rejection, SubmitResult, TeamHistory
from schemas import Bar, Fill


class SimulatedBroker:
    """A :class:`~redblue.core.broker.BrokerGateway` for one team, with cash and positions in memory."""

    def __init__(
        self, run: str, team: str, costs: CostSpec, initial_cash: float, clock: Callable[[], datetime]
    ) -> None:
        self._run = run
        self._team = team
        self._costs = costs
        self._cash = initial_cash
        self._clock = clock
        self._positions: dict[str, int] = {}
        self._queue: list[OrderRequest] = []
        self._known_ids: set[str] = set()
        self._rejections: list[Rejection] = []
        self._taken = 0

    @property
    def cash(self) -> float:
        """Cash in the account, after every fill's price and commission."""
        return self._cash

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        """Every order rejected at fill time so far, oldest first."""
        return tuple(self._rejections)

    def position(self, symbol: str) -> int:
        """Shares of ``symbol`` held (queued orders not included)."""
        return self._positions.get(symbol, 0)

    def resume(self, history: TeamHistory) -> str:
        """Take the account back as the trader's topics tell it (this broker has no memory of its own):
        cash and positions from the fills, the queue from the orders still pending. Always agrees."""
        self._cash += sum(f.cash_flow for f in history.fills)
        self._positions = dict(history.positions)
        self._queue = list(history.pending.values())
        self._known_ids = set(history.known_ids)
        return ""

    def take_rejections(self) -> list[Rejection]:
        """The fill-time rejections not taken before (each one is returned once)."""
        new = self._rejections[self._taken :]
        self._taken = len(self._rejections)
        return new

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        """Nothing is ever held: a simulated order is queued for its open when submitted."""
        return []

    def submit(self, order: OrderRequest) -> SubmitResult:
        """Queue ``order`` for its target day's open; a known ``client_order_id`` changes nothing."""
        if order.client_order_id in self._known_ids:
            return SubmitResult("duplicate")
        reason = self._check(order)
        if reason:
            return SubmitResult("rejected", reason)
        self._known_ids.add(order.client_order_id)
        self._queue.append(order)
        return SubmitResult("submitted")

    def on_day(self, bars: Sequence[Bar]) -> list[Fill]:
        """Fill, at its bar's open, every queued order of the bars' symbols due on or before that bar's day.

        The orders execute in one defined order, whatever order the bars (or the orders) came in:
        first the sells the position held at the open covers (they free cash), then the rest by
        symbol and ``client_order_id`` (a symbol's buy before its sell). So when cash runs short,
        which buy is rejected depends on the orders and the account alone.
        """
        at = {bar.symbol: bar for bar in bars}
        due = [o for o in self._queue if o.symbol in at and o.target <= at[o.symbol].date]
        self._queue = [o for o in self._queue if o not in due]
        covered = {o.client_order_id for o in due if o.side == "sell" and o.quantity <= self.position(o.symbol)}
        due.sort(key=lambda o: (o.client_order_id not in covered, o.symbol, o.client_order_id))
        fills = [self._execute(order, at[order.symbol]) for order in due]
        return [fill for fill in fills if fill is not None]

    def _check(self, order: OrderRequest) -> str:
        if (order.run, order.team) != (self._run, self._team):
            return f"order of {order.run}/{order.team} sent to the account of {self._run}/{self._team}"
        if order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.side == "sell" and order.quantity > self._sellable(order.symbol):
            return (
                f"sell of {order.quantity} {order.symbol} exceeds the position: {self.position(order.symbol)} held, "
                f"{self._queued(order.symbol, 'buy')} being bought, {self._queued(order.symbol, 'sell')} being sold"
            )
        return ""

    def _sellable(self, symbol: str) -> int:
        return self.position(symbol) + self._queued(symbol, "buy") - self._queued(symbol, "sell")

    def _queued(self, symbol: str, side: str) -> int:
        return sum(o.quantity for o in self._queue if o.symbol == symbol and o.side == side)

    def _execute(self, order: OrderRequest, bar: Bar) -> Fill | None:
        price = self._fill_price(order, bar.open)
        commission = self._commission(order.quantity * price)
        reason = self._cannot_fill(order, price, commission)
        if reason:
            self._rejections.append(Rejection(order, bar.date, reason))
            return None
        fill = Fill(
            run=self._run,
            team=self._team,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            side=order.side,
            quantity=order.quantity,
            price=price,
            commission=commission,
            date=bar.date,
            produced_at=self._clock(),
        )
        self._apply(fill)
        return fill

    def _fill_price(self, order: OrderRequest, open_price: float) -> float:
        slip = self._costs.slippage_bps / 1e4
        return open_price * (1 + slip) if order.side == "buy" else open_price * (1 - slip)

    def _commission(self, notional: float) -> float:
        return self._costs.commission_per_order + notional * self._costs.commission_bps / 1e4

    def _cannot_fill(self, order: OrderRequest, price: float, commission: float) -> str:
        if order.side == "buy":
            cost = order.quantity * price + commission
            if cost > self._cash:
                return f"insufficient cash: {order.quantity} {order.symbol} cost {cost:.2f}, cash is {self._cash:.2f}"
        elif order.quantity > (held := self.position(order.symbol)):
            return f"insufficient position: selling {order.quantity} {order.symbol}, {held} held"
        return ""

    def _apply(self, fill: Fill) -> None:
        self._cash += fill.cash_flow
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        self._positions[fill.symbol] = self.position(fill.symbol) + signed
