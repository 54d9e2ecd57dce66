"""A restarted trader's Alpaca gateway reconciles with the account before anything is decided."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from redblue.core.broker import TeamHistory
from tests.standins.alpaca import AlpacaStandIn
from tests.standins.clock import ReplayClock, ny
from tests.unit.test_alpaca import D1, D2, bar, broker, order


@pytest.fixture
def standin() -> Iterator[AlpacaStandIn]:
    with AlpacaStandIn(ReplayClock(ny(D1, 20))) as server:
        yield server


def pending(cid: str = "") -> TeamHistory:
    sent = order(cid=cid)
    return TeamHistory(pending={sent.client_order_id: sent}, unfilled={sent.client_order_id: sent.quantity},
                       known_ids={sent.client_order_id})  # fmt: skip


def test_an_order_filled_while_the_trader_was_down_agrees_and_is_reported_once(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order())  # the process that died
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.31)  # Alpaca holds 10 AAPL (the stand-in's position)

    restarted = broker(standin)
    assert restarted.resume(pending()) == ""
    assert [(f.quantity, f.price) for f in restarted.on_day([bar(D2)])] == [(10, 184.31)]
    assert restarted.on_day([bar(D2)]) == []
    assert restarted.submit(order()).status == "duplicate"  # never sent twice


def test_positions_that_disagree_fail_closed(standin: AlpacaStandIn) -> None:
    why = broker(standin).resume(TeamHistory())  # the topics say flat, Alpaca holds 10 AAPL
    assert why.startswith("positions disagree") and "'AAPL': 10" in why


def test_a_pending_order_alpaca_does_not_know_fails_closed(standin: AlpacaStandIn) -> None:
    assert broker(standin).resume(pending("never-sent")) == "pending order never-sent is unknown to Alpaca"


def test_an_account_that_does_not_answer_fails_closed(standin: AlpacaStandIn) -> None:
    standin.fail("positions", *[503] * 10)
    assert broker(standin).resume(TeamHistory(positions={"AAPL": 10})).startswith("cannot reconcile with Alpaca")
