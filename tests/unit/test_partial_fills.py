"""Partial fills from Alpaca, end to end in memory: the real alpaca-py client against the local stand-in
(vendor-shaped order JSON), the trader, and the leaderboard's fills, trade count and commission."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from consumers.leaderboard import Scoreboard, team_trading
from consumers.trading import Trader
from redblue.adapters.alpaca.broker import AlpacaBroker
from redblue.core.arena import Arena, ModelSpec, StrategySpec, TeamSpec
from redblue.core.metrics import trading_metrics
from redblue.core.store import InMemoryStore
from schemas import BarProcessed, Event, Fill, Forecast, Order, PositionMark
from tests import factories
from tests.standins.alpaca import KEY, SECRET, AlpacaStandIn
from tests.standins.clock import ReplayClock, ny

RUN = "live-1"
D1, D2, D3, D4 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)
ARENA = Arena(
    name="partial",
    symbols=("AAPL",),
    teams={"red": TeamSpec(models=(ModelSpec(name="drift", kind="drift"),))},
    strategy=StrategySpec(threshold=0.0, initial_cash=10_000.0, allocation=1_000.0),
)


def forecast(day: date, target: date, predicted: float) -> Forecast:
    return Forecast(
        run=RUN, team="red", model="drift", model_version="1", symbol="AAPL", as_of=day, target=target,
        predicted_close=predicted, last_close=100.0, produced_at=datetime(2024, 1, 2, tzinfo=UTC),
    )  # fmt: skip


def processed(day: date) -> BarProcessed:
    bar = factories.bar("AAPL", day, 100.0, open_=100.0)
    return BarProcessed(run=RUN, bar=bar, forecasts=1, produced_at=bar.produced_at)


@pytest.fixture
def standin() -> Iterator[AlpacaStandIn]:
    with AlpacaStandIn(ReplayClock(ny(D1, 20))) as server:
        yield server


class Session:
    """The trader with red's Alpaca account, and a leaderboard fed with everything it publishes."""

    def __init__(self, standin: AlpacaStandIn) -> None:
        self.standin = standin
        clock = lambda: standin.now  # noqa: E731
        gateway = AlpacaBroker(RUN, "red", KEY, SECRET, clock=clock, url_override=standin.url)
        self.trader = Trader(RUN, ARENA, {"red": gateway}, clock)
        self.store = InMemoryStore()
        self.board = Scoreboard(self.store, ARENA)
        self.published: list[Event] = []

    def day(self, day: date, target: date, predicted: float) -> list[Event]:
        """The close of ``day``: the forecast as of it, then its bar (after the close, New York)."""
        self.standin.now = ny(day, 20, 0)
        self.trader.on_forecast(forecast(day, target, predicted))
        events = self.trader.on_bar_processed(processed(day))
        for event in events:
            self.board.handle(event)
        self.published += events
        return events

    def orders(self) -> list[tuple[str, str, int, str]]:
        return [(o.side, o.status, o.quantity, o.reason) for o in self.published if isinstance(o, Order)]


def test_an_order_filled_in_two_parts_is_two_fills_one_trade_and_one_order(standin: AlpacaStandIn) -> None:
    session = Session(standin)
    session.day(D1, D2, predicted=105.0)  # long: buy floor(1000 / 100) = 10 at D2's open
    [submitted] = [o for o in session.published if isinstance(o, Order)]
    cid = submitted.client_order_id
    standin.fill(cid, 4, 100.0)  # Alpaca: "partially_filled", filled_qty "4", filled_avg_price "100.0"
    d2 = session.day(D2, D3, predicted=105.0)
    standin.fill(cid, 10, 101.0)  # now "filled": average 101 over all ten shares
    d3 = session.day(D3, D4, predicted=105.0)

    fills = [e for e in session.published if isinstance(e, Fill)]
    assert [(f.quantity, f.execution, f.client_order_id) for f in fills] == [(4, 1, cid), (6, 2, cid)]
    assert fills[1].price == pytest.approx((10 * 101.0 - 4 * 100.0) / 6)
    assert sum(f.quantity * f.price for f in fills) == pytest.approx(10 * 101.0)  # Alpaca's average holds
    assert [m.quantity for m in d2 + d3 if isinstance(m, PositionMark)] == [4, 10]
    assert session.orders() == [("buy", "submitted", 10, "")]  # nothing re-ordered while the rest was open
    assert [(f.quantity, f.execution) for f in session.store.fills("red")] == [(4, 1), (6, 2)]  # both kept
    trading = team_trading(session.store, ARENA, "red")
    assert trading is not None and (trading.trades, trading.commission) == (1, 0.0)
    for event in session.published:  # a replay of the topics changes nothing
        session.board.handle(event)
    assert len(session.store.fills("red")) == 2


def test_a_partially_filled_order_that_is_canceled_keeps_its_shares_and_frees_the_symbol(
    standin: AlpacaStandIn,
) -> None:
    session = Session(standin)
    session.day(D1, D2, predicted=105.0)
    [submitted] = [o for o in session.published if isinstance(o, Order)]
    standin.fill(submitted.client_order_id, 4, 100.0)
    standin.cancel(submitted.client_order_id)  # the rest is canceled
    session.day(D2, D3, predicted=95.0)  # flat now: the 4 shares held are sold
    assert session.orders() == [
        ("buy", "submitted", 10, ""),
        ("buy", "rejected", 10, "Alpaca order canceled: 4 of 10 filled"),
        ("sell", "submitted", 4, ""),
    ]
    assert [m.quantity for m in session.published if isinstance(m, PositionMark)] == [0, 4]


def test_trades_count_orders_and_commissions_add_every_part() -> None:
    def part(cid: str, execution: int, quantity: int, commission: float) -> Fill:
        return Fill(
            run=RUN, team="red", symbol="AAPL", client_order_id=cid, side="buy", quantity=quantity, price=100.0,
            commission=commission, date=D2, execution=execution, produced_at=datetime(2024, 1, 3, tzinfo=UTC),
        )  # fmt: skip

    fills = [part("a", 1, 4, 0.25), part("a", 2, 6, 0.5), part("b", 1, 10, 1.0)]
    metrics = trading_metrics(10_000.0, [10_000.0], fills)
    assert (metrics.trades, metrics.commission) == (2, 1.75)
    store = InMemoryStore()
    assert [store.add_fill(f) for f in [*fills, fills[1]]] == [True, True, True, False]
