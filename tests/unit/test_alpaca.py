"""The Alpaca adapters, with the real alpaca-py clients pointed (``url_override``) at a local stand-in.

The stand-in (:mod:`tests.standins.alpaca`) serves only what redblue uses, with the JSON shapes
of Alpaca's API as recorded in alpaca-py's own tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from redblue.adapters.alpaca.broker import AlpacaBroker, OrderTimingError, time_in_force_for
from redblue.adapters.alpaca.market_data import AlpacaBarSource
from redblue.core.broker import BrokerError, BrokerGateway, OrderRequest, SubmitResult
from redblue.core.calendar import get_calendar
from redblue.core.sources import BarSource, Rejected, SourceError
from schemas import Bar
from tests.standins.alpaca import KEY, SECRET, AlpacaStandIn
from tests.standins.clock import ny

CAL = get_calendar()
D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


@pytest.fixture
def standin() -> Iterator[AlpacaStandIn]:
    with AlpacaStandIn() as server:
        yield server


def broker(standin: AlpacaStandIn, key: str = KEY) -> AlpacaBroker:
    """A broker whose clock is the stand-in's clock."""
    return AlpacaBroker("live-1", "red", key, SECRET, clock=lambda: standin.now, url_override=standin.url)


def order(target: date = D2, side: str = "buy", quantity: int = 10, cid: str = "") -> OrderRequest:
    as_of = CAL.offset(target, -1)
    return OrderRequest(
        run="live-1",
        team="red",
        model="drift",
        symbol="AAPL",
        side="buy" if side == "buy" else "sell",
        quantity=quantity,
        as_of=as_of,
        target=target,
        reference_price=185.64,
        client_order_id=cid or f"live-1-red-drift-AAPL-{target:%Y%m%d}-{side}",
    )


def bar(day: date, symbol: str = "AAPL") -> Bar:
    return Bar(
        symbol=symbol,
        date=day,
        open=184.22,
        high=185.88,
        low=183.43,
        close=184.25,
        volume=58414500,
        source="alpaca",
        ts_event=CAL.close_time(day),
        produced_at=CAL.close_time(day),
    )


def posts(standin: AlpacaStandIn) -> list[str]:
    return [p["time_in_force"] for p in standin.posted]


def test_the_adapters_fit_their_interfaces(standin: AlpacaStandIn) -> None:
    gateway: BrokerGateway = broker(standin)  # checked by mypy
    bars: BarSource = AlpacaBarSource(KEY, SECRET, url_override=standin.url)
    assert callable(gateway.take_rejections)  # the trader takes its rejections
    assert bars is not None and standin.requests == []  # nothing contacted at construction


# -- time in force -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "target", "expected"),
    [
        (ny(D1, 16, 1), D2, "day"),  # after the close: queued for the next session
        (ny(D1, 19, 0), D2, "day"),  # Alpaca's opg boundary itself: keep the margin
        (ny(D1, 19, 1), D2, "opg"),
        (ny(D1, 23, 30), D2, "opg"),
        (ny(D2, 2, 0), D2, "opg"),
        (ny(D2, 9, 26), D2, "opg"),
        (ny(D2, 9, 27), D2, "day"),  # pre-open, too close to 09:28 for opg
        (ny(date(2024, 1, 5), 20, 0), date(2024, 1, 8), "opg"),  # Friday evening for Monday
        (ny(date(2024, 1, 6), 12, 0), date(2024, 1, 8), "day"),  # Saturday daytime
        (ny(date(2024, 11, 29), 13, 30), date(2024, 12, 2), "day"),  # after a 13:00 half-day close
        (ny(date(2024, 7, 4), 11, 0), date(2024, 7, 5), "day"),  # Independence Day
    ],
)
def test_time_in_force_by_new_york_time(at: datetime, target: date, expected: str) -> None:
    assert time_in_force_for(at.astimezone(UTC), target, CAL) == expected


@pytest.mark.parametrize(
    ("at", "target", "why"),
    [
        (ny(D2, 9, 30), D2, "market is open"),
        (ny(D1, 15, 59), D2, "market is open"),
        (ny(D1, 17, 0), D3, "execute at 2024-01-03's open, not at 2024-01-04's"),  # too early
        (ny(D2, 17, 0), D2, "execute at 2024-01-04's open, not at 2024-01-03's"),  # too late
    ],
)
def test_orders_that_cannot_meet_their_open_are_refused(at: datetime, target: date, why: str) -> None:
    with pytest.raises(OrderTimingError, match=why):
        time_in_force_for(at, target, CAL)


# -- submitting ----------------------------------------------------------------------------


def test_after_the_close_a_day_order_is_submitted(standin: AlpacaStandIn) -> None:
    result = broker(standin).submit(order())

    assert result == SubmitResult("submitted")
    (sent,) = standin.posted
    assert sent == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "live-1-red-drift-AAPL-20240103-buy",
    }


def test_in_the_evening_an_opg_order_is_submitted(standin: AlpacaStandIn) -> None:
    standin.now = ny(D1, 21, 15)
    assert broker(standin).submit(order()).status == "submitted"
    assert posts(standin) == ["opg"]


def test_during_market_hours_nothing_is_sent(standin: AlpacaStandIn) -> None:
    standin.now = ny(D2, 10, 0)
    result = broker(standin).submit(order())
    assert result.status == "rejected" and "market is open" in result.reason
    assert standin.posted == []


def test_a_resubmission_in_the_same_process_is_a_duplicate_without_a_request(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    assert gateway.submit(order()) == SubmitResult("duplicate", "already submitted")
    assert len(standin.posted) == 1 and len(standin.orders) == 1


def test_a_reused_id_is_a_duplicate_and_is_reconciled(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order())
    restarted = broker(standin)  # a new process, e.g. after a crash

    result = restarted.submit(order())

    assert result == SubmitResult("duplicate", "already at Alpaca, status accepted")
    assert len(standin.posted) == 2 and len(standin.orders) == 1  # the 422 created nothing
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.3)
    assert [f.quantity for f in restarted.on_bar(bar(D2))] == [10]  # tracked after reconciling


def test_a_reused_id_for_a_different_order_says_so(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order(quantity=10))
    result = broker(standin).submit(order(quantity=12))
    assert result.status == "duplicate"
    assert result.reason.endswith("as buy 10 AAPL (not buy 12 AAPL)")


def test_a_late_resubmission_of_a_known_order_is_a_duplicate(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order())
    standin.now = ny(D2, 11, 0)  # market open: too late to send, but the order was sent
    assert broker(standin).submit(order()).status == "duplicate"
    assert len(standin.posted) == 1


def test_alpaca_refusals_are_rejections_with_its_message(standin: AlpacaStandIn) -> None:
    standin.refuse = (403, "insufficient buying power")
    assert broker(standin).submit(order()) == SubmitResult("rejected", "Alpaca: HTTP 403: insufficient buying power")


def test_server_errors_and_bad_connections_raise(standin: AlpacaStandIn) -> None:
    standin.refuse = (500, "internal server error")
    with pytest.raises(BrokerError, match="HTTP 500: internal server error"):
        broker(standin).submit(order())

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = AlpacaBroker("live-1", "red", KEY, SECRET, clock=lambda: standin.now, url_override=closed)
    with pytest.raises(BrokerError, match="unreachable"):
        unreachable.submit(order())


def test_orders_of_another_account_are_refused(standin: AlpacaStandIn) -> None:
    foreign = OrderRequest(**{**order().__dict__, "team": "blue"})
    assert broker(standin).submit(foreign).status == "rejected"
    assert standin.posted == []


# -- fills ---------------------------------------------------------------------------------


def test_a_fill_is_reported_once(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    assert gateway.on_bar(bar(D1)) == []  # not due before its target

    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.31)
    lookups = len(standin.requests)
    assert gateway.on_bar(bar(D2, "AMZN")) == []  # another symbol: nothing polled
    assert len(standin.requests) == lookups

    (fill,) = gateway.on_bar(bar(D2))
    assert (fill.symbol, fill.side, fill.quantity, fill.price, fill.commission, fill.date) == (
        "AAPL",
        "buy",
        10,
        184.31,
        0.0,
        D2,
    )
    assert (fill.run, fill.team, fill.client_order_id) == ("live-1", "red", order().client_order_id)
    assert gateway.on_bar(bar(D2)) == []
    assert gateway.on_bar(bar(D3)) == []
    assert len(standin.requests) == lookups + 1  # a filled order is not polled again


def test_partial_fills_are_reported_as_increments(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 4, 100.0)
    assert [(f.quantity, f.price) for f in gateway.on_bar(bar(D2))] == [(4, 100.0)]

    standin.fill(order().client_order_id, 10, 101.0)
    ((quantity, price),) = [(f.quantity, f.price) for f in gateway.on_bar(bar(D3))]
    assert quantity == 6 and price == pytest.approx((1010 - 400) / 6)
    assert gateway.take_rejections() == []


def test_an_order_that_expired_unfilled_is_handed_out_as_a_rejection_once(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    standin.now = ny(D1, 20, 0)
    gateway.submit(order())
    standin.cancel(order().client_order_id, "expired")

    assert gateway.on_bar(bar(D2)) == []
    (rejection,) = gateway.take_rejections()
    assert rejection.order == order() and rejection.date == D2
    assert rejection.reason == "Alpaca order expired: 0 of 10 filled"
    assert gateway.take_rejections() == []
    assert gateway.on_bar(bar(D3)) == [] and gateway.take_rejections() == []


# -- account -------------------------------------------------------------------------------


def test_account_and_positions(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    account = gateway.account()
    assert (account.account_number, account.status, account.cash, account.buying_power) == (
        "PA3ZQ5WFXN1T",
        "ACTIVE",
        100000.0,
        200000.0,
    )
    assert gateway.positions() == {"AAPL": 10}


def test_bad_credentials_fail_loudly(standin: AlpacaStandIn) -> None:
    with pytest.raises(BrokerError, match="HTTP 401: request is not authorized"):
        broker(standin, key="PKWRONG").account()


# -- market data ---------------------------------------------------------------------------


def raw_bar(t: str, o: float, h: float, low: float, c: float, v: int) -> dict[str, Any]:
    return {"t": t, "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1000, "vw": round((h + low) / 2, 4)}


@pytest.fixture
def with_bars(standin: AlpacaStandIn) -> AlpacaStandIn:
    standin.bars = {
        "AAPL": [
            raw_bar("2024-01-02T05:00:00Z", 187.15, 188.44, 183.89, 185.64, 82488700),
            raw_bar("2024-01-03T05:00:00Z", 184.22, 185.88, 183.43, 184.25, 58414500),
            raw_bar("2024-01-04T05:00:00Z", 182.15, 183.09, 180.88, 181.91, 71983600),
        ],
        "AMZN": [
            raw_bar("2024-01-02T05:00:00Z", 151.54, 152.38, 148.39, 149.93, 47339400),
            raw_bar("2024-01-03T05:00:00Z", 149.2, 147.0, 151.05, 148.47, 49425500),  # high < low
            raw_bar("2024-07-03T04:00:00Z", 199.94, 200.03, 196.76, 197.59, 31597900),  # summer: 04:00Z
        ],
    }
    return standin


def source(standin: AlpacaStandIn) -> AlpacaBarSource:
    return AlpacaBarSource(KEY, SECRET, url_override=standin.url, calendar=CAL)


def test_daily_bars_become_bar_events(with_bars: AlpacaStandIn) -> None:
    now = ny(D3, 12, 0)  # D3 still running: Alpaca would show a partial bar

    bars, rejected = source(with_bars).fetch(["AAPL", "AMZN", "MSFT"], D1, D3, now)

    assert [(b.symbol, b.date, b.close) for b in bars] == [
        ("AAPL", D1, 185.64),
        ("AMZN", D1, 149.93),
        ("AAPL", D2, 184.25),
    ]
    first = bars[0]
    assert (first.volume, first.adjustment, first.source) == (82488700, "split", "alpaca")
    assert first.ts_event == datetime(2024, 1, 2, 21, 0, tzinfo=UTC) and first.produced_at == now
    assert rejected[0] == Rejected("MSFT", None, "the source returned no data for MSFT")
    assert rejected[1].date == D2 and "inconsistent bar AMZN 2024-01-03" in rejected[1].reason


def test_the_request_asks_for_split_adjusted_daily_bars_and_follows_pages(with_bars: AlpacaStandIn) -> None:
    source(with_bars).fetch(["AAPL", "AMZN"], D1, D3, ny(D3, 12, 0))

    calls = [q for method, path, q in with_bars.requests if path == "/v2/stocks/bars"]
    assert len(calls) == 3  # five bars in range, two per page
    first = calls[0]
    assert (first["symbols"], first["timeframe"], first["adjustment"]) == (["AAPL,AMZN"], ["1Day"], ["split"])
    assert first["start"] == ["2024-01-02T05:00:00+00:00"]
    assert first["end"] == ["2024-01-04T16:45:00+00:00"]  # now - 15 min: the free plan's SIP embargo
    assert [q.get("page_token") for q in calls] == [None, ["2"], ["4"]]


def test_a_summer_bar_is_dated_in_new_york(with_bars: AlpacaStandIn) -> None:
    day = date(2024, 7, 3)  # 04:00Z is midnight EDT; a half day closing at 13:00
    bars, _ = source(with_bars).fetch(["AMZN"], day, day, ny(date(2024, 7, 5), 9, 0))
    assert [(b.date, b.ts_event) for b in bars] == [(day, datetime(2024, 7, 3, 17, 0, tzinfo=UTC))]


def test_data_api_errors_raise_source_errors(with_bars: AlpacaStandIn) -> None:
    wrong = AlpacaBarSource("PKWRONG", SECRET, url_override=with_bars.url, calendar=CAL)
    with pytest.raises(SourceError, match="HTTP 401: request is not authorized"):
        wrong.fetch(["AAPL"], D1, D3, ny(D3, 20, 0))
