"""The simulated broker: fills at the next bar's open with slippage and commission, idempotent ids."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from consumers.simulated_broker import SimulatedBroker
from redblue.core.arena import CostSpec
from redblue.core.broker import OrderRequest, Side, SubmitResult
from schemas import Bar
from tests import factories

D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)
NOW = datetime(2024, 1, 5, 12, 0, tzinfo=UTC)
COSTS = CostSpec(slippage_bps=10.0, commission_per_order=1.0, commission_bps=2.0)


def clock() -> datetime:
    return NOW


def bar(day: date, open_: float, close: float, symbol: str = "AAPL") -> Bar:
    return factories.bar(symbol, day, close, open_=open_)


def order(
    side: Side, quantity: int, *, as_of: date = D1, target: date = D2, symbol: str = "AAPL", oid: str = ""
) -> OrderRequest:
    return OrderRequest(
        run="sim-1",
        team="red",
        model="drift",
        symbol=symbol,
        side=side,
        quantity=quantity,
        as_of=as_of,
        target=target,
        reference_price=100.0,
        client_order_id=oid or f"{symbol}-{target:%Y%m%d}-{side}",
    )


def broker(cash: float = 10_000.0, costs: CostSpec = COSTS) -> SimulatedBroker:
    return SimulatedBroker("sim-1", "red", costs, cash, clock)


def test_buy_fills_at_the_next_bars_open_with_slippage_and_commission() -> None:
    b = broker()
    assert b.submit(order("buy", 10)) == SubmitResult("submitted")
    assert b.on_day([bar(D1, open_=99.0, close=100.0)]) == []  # the decision day: never at its close
    [fill] = b.on_day([bar(D2, open_=102.0, close=110.0)])
    price = 102.0 * 1.001
    commission = 1.0 + 10 * price * 2.0 / 1e4
    assert (fill.side, fill.quantity, fill.date, fill.client_order_id) == ("buy", 10, D2, "AAPL-20240103-buy")
    assert fill.price == pytest.approx(price)
    assert fill.commission == pytest.approx(commission)
    assert fill.produced_at == NOW
    assert b.cash == pytest.approx(10_000.0 - 10 * price - commission)
    assert b.position("AAPL") == 10


def test_sell_fills_below_the_open() -> None:
    b = broker(costs=CostSpec(slippage_bps=10.0, commission_per_order=1.0, commission_bps=0.0))
    b.submit(order("buy", 10, target=D2))
    b.on_day([bar(D2, 100.0, 100.0)])
    b.submit(order("sell", 10, as_of=D2, target=D3))
    [fill] = b.on_day([bar(D3, open_=105.0, close=90.0)])
    assert fill.price == pytest.approx(105.0 * 0.999)
    assert fill.cash_flow == pytest.approx(10 * 105.0 * 0.999 - 1.0)
    assert b.position("AAPL") == 0
    assert b.cash == pytest.approx(10_000.0 - (1000.0 * 1.001 + 1.0) + (1050.0 * 0.999 - 1.0))


def test_a_reused_client_order_id_is_a_duplicate_and_changes_nothing() -> None:
    b = broker()
    assert b.submit(order("buy", 10)).status == "submitted"
    assert b.submit(order("buy", 10)) == SubmitResult("duplicate")
    assert b.submit(order("buy", 3)).status == "duplicate"  # same id, whatever it says
    assert len(b.on_day([bar(D2, 100.0, 100.0)])) == 1
    assert b.position("AAPL") == 10
    assert b.submit(order("buy", 10)).status == "duplicate"  # still known after the fill
    assert b.on_day([bar(D3, 100.0, 100.0)]) == []


def test_orders_wait_for_their_target_day_and_their_own_symbol() -> None:
    b = broker()
    b.submit(order("buy", 1, as_of=D2, target=D3))
    b.submit(order("buy", 1, symbol="AMZN"))
    assert b.on_day([bar(D2, 100.0, 100.0)]) == []
    assert [f.symbol for f in b.on_day([bar(D2, 50.0, 50.0, symbol="AMZN")])] == ["AMZN"]
    assert [f.date for f in b.on_day([bar(D3, 100.0, 100.0)])] == [D3]


def test_an_order_whose_target_bar_was_missed_fills_at_the_next_bar() -> None:
    b = broker()
    b.submit(order("buy", 1, target=D2))
    [fill] = b.on_day([bar(D3, 100.0, 100.0)])
    assert fill.date == D3


def test_a_sell_beyond_held_and_pending_buys_is_rejected() -> None:
    b = broker()
    b.submit(order("buy", 5))
    assert b.submit(order("sell", 5, oid="s1")).status == "submitted"  # covered by the pending buy
    result = b.submit(order("sell", 1, oid="s2"))
    assert result.status == "rejected"
    assert "exceeds the position" in result.reason
    assert b.submit(order("sell", 1, symbol="AMZN")).status == "rejected"


def test_a_rejected_submit_does_not_reserve_its_id() -> None:
    b = broker()
    assert b.submit(order("sell", 1)).status == "rejected"
    assert b.submit(order("sell", 1)).status == "rejected"  # not "duplicate": it was never accepted


def test_an_order_for_another_account_or_without_shares_is_rejected() -> None:
    b = SimulatedBroker("sim-1", "blue", COSTS, 10_000.0, clock)
    assert "account of sim-1/blue" in b.submit(order("buy", 1)).reason
    assert "quantity" in broker().submit(order("buy", 0)).reason


def test_a_buy_beyond_cash_is_rejected_at_fill_time_not_silently() -> None:
    b = broker(cash=1_000.0)
    assert b.submit(order("buy", 10)).status == "submitted"  # 10 x 99 looked affordable
    assert b.on_day([bar(D2, open_=101.0, close=101.0)]) == []
    [rejection] = b.take_rejections()
    assert (rejection.order.client_order_id, rejection.date) == ("AAPL-20240103-buy", D2)
    assert rejection.reason.startswith("insufficient cash")
    assert b.take_rejections() == []  # taken once
    assert b.rejections == (rejection,)  # still on record
    assert (b.cash, b.position("AAPL")) == (1_000.0, 0)


def test_a_sell_whose_covering_buy_failed_is_rejected_at_fill_time() -> None:
    b = broker(cash=100.0)
    b.submit(order("buy", 5))
    b.submit(order("sell", 5))
    assert b.on_day([bar(D2, 100.0, 100.0)]) == []
    assert [r.reason.split(":")[0] for r in b.take_rejections()] == ["insufficient cash", "insufficient position"]
