"""The strategy: deterministic order ids, the long/flat signal and whole-share sizing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from consumers.strategy import HOLD, Decision, client_order_id, decide
from redblue.core.arena import StrategySpec
from redblue.core.broker import Side
from schemas import Forecast

AS_OF = date(2024, 1, 2)
TARGET = date(2024, 1, 3)
NOW = datetime(2024, 1, 2, 22, 0, tzinfo=UTC)
STRATEGY = StrategySpec(threshold=0.01, allocation=1_000.0)


def forecast(predicted: float, last: float = 100.0, symbol: str = "AAPL") -> Forecast:
    return Forecast(
        run="sim-1",
        team="red",
        model="drift",
        model_version="1",
        symbol=symbol,
        as_of=AS_OF,
        target=TARGET,
        predicted_close=predicted,
        last_close=last,
        produced_at=NOW,
    )


def oid(
    *,
    run: str = "sim-1",
    team: str = "red",
    model: str = "drift",
    symbol: str = "AAPL",
    target: date = TARGET,
    side: Side = "buy",
) -> str:
    return client_order_id(run, team, model, symbol, target, side)


def test_client_order_id_is_deterministic_and_readable() -> None:
    assert oid() == oid()
    assert oid().startswith("AAPL-20240103-b-")
    assert len(oid()) <= 48


def test_client_order_id_fits_48_characters_for_the_longest_names() -> None:
    assert len(oid(run="r" * 64, team="t" * 48, model="m" * 48, symbol="ABCDEFGHIJ", side="sell")) <= 48


@pytest.mark.parametrize(
    "change",
    [
        {"run": "sim-2"},
        {"team": "blue"},
        {"model": "trend"},
        {"symbol": "AMZN"},
        {"target": date(2024, 1, 4)},
        {"side": "sell"},
    ],
)
def test_client_order_id_changes_with_every_input(change: dict[str, Any]) -> None:
    assert oid(**change) != oid()


def test_threshold_boundary_is_flat_and_just_above_is_long() -> None:
    at_threshold = forecast(predicted=101.0)  # 100 * (1 + 0.01): not strictly above
    assert decide(at_threshold, held_qty=0, pending=False, strategy=STRATEGY) == HOLD
    above = forecast(predicted=101.01)
    assert decide(above, held_qty=0, pending=False, strategy=STRATEGY) == Decision("buy", 10)


def test_new_position_is_whole_shares_of_the_allocation_at_the_decision_close() -> None:
    decision = decide(forecast(predicted=200.0, last=150.0), held_qty=0, pending=False, strategy=STRATEGY)
    assert decision == Decision("buy", 6)  # floor(1000 / 150) = 6


def test_per_symbol_allocation_overrides_the_default() -> None:
    strategy = StrategySpec(threshold=0.0, allocation=1_000.0, allocations={"SAP": 5_000.0})
    assert decide(forecast(130.0, symbol="SAP"), 0, False, strategy) == Decision("buy", 50)


def test_allocation_below_one_share_orders_nothing() -> None:
    assert decide(forecast(predicted=2_000.0, last=1_500.0), 0, False, STRATEGY) == HOLD


def test_flat_signal_sells_everything_held() -> None:
    assert decide(forecast(predicted=99.0), held_qty=7, pending=False, strategy=STRATEGY) == Decision("sell", 7)


def test_flat_signal_without_a_position_does_nothing() -> None:
    assert decide(forecast(predicted=99.0), held_qty=0, pending=False, strategy=STRATEGY) == HOLD


def test_long_signal_holds_a_position_unchanged() -> None:
    assert decide(forecast(predicted=120.0, last=50.0), held_qty=3, pending=False, strategy=STRATEGY) == HOLD


def test_resize_moves_a_held_position_to_the_allocation() -> None:
    resize = STRATEGY.model_copy(update={"resize": True})
    assert decide(forecast(predicted=120.0, last=50.0), 3, False, resize) == Decision("buy", 17)
    assert decide(forecast(predicted=300.0, last=250.0), 10, False, resize) == Decision("sell", 6)
    assert decide(forecast(predicted=120.0, last=100.0), 10, False, resize) == HOLD


def test_nothing_is_ordered_while_an_order_is_pending() -> None:
    assert decide(forecast(predicted=120.0), held_qty=0, pending=True, strategy=STRATEGY) == HOLD
    assert decide(forecast(predicted=90.0), held_qty=5, pending=True, strategy=STRATEGY) == HOLD
