"""The Alpaca adapters, with the real alpaca-py clients pointed (``url_override``) at a local stand-in.

The stand-in (:mod:`tests.standins.alpaca`) serves only what redblue uses, with the JSON shapes
of Alpaca's API as recorded in alpaca-py's own tests.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from redblue.adapters.alpaca.broker import BROKER_BACKOFF, AlpacaBroker, RealMoneyRefused
from redblue.adapters.alpaca.market_data import AlpacaBarSource
from redblue.adapters.alpaca.timing import opg_window
from redblue.core.broker import BrokerError, BrokerGateway, OrderRequest, SubmitResult
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.retry import NO_WAIT
from redblue.core.sources import BarSource, Rejected, SourceError, SourceUnreachable
from schemas import Bar
from tests.standins.alpaca import KEY, SECRET, AlpacaStandIn
from tests.standins.clock import ReplayClock, ny

CAL = get_calendar()
D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)
FAST = replace(BROKER_BACKOFF, sleep=lambda _: None)  # the broker's 5 attempts, without waiting


@pytest.fixture
def standin() -> Iterator[AlpacaStandIn]:
    """The stand-in at 20:00 New York on D1: inside the opg window for D2's open."""
    with AlpacaStandIn(ReplayClock(ny(D1, 20))) as server:
        yield server


def broker(standin: AlpacaStandIn, key: str = KEY, **options: Any) -> AlpacaBroker:
    """A broker whose clock is the stand-in's clock; retries do not wait."""
    return AlpacaBroker(
        "live-1", "red", key, SECRET, clock=lambda: standin.now, url_override=standin.url, backoff=FAST,
        timeout=0.25, **options,
    )  # fmt: skip


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


# -- the order rule: opg, inside Alpaca's window ---------------------------------------------


@pytest.mark.parametrize(
    ("at", "target", "expected"),
    [
        (ny(D1, 16, 30), D2, "hold"),  # bars are final from 16:30: decided before the window opens
        (ny(D1, 19, 0), D2, "hold"),  # Alpaca's own boundary: one minute of margin
        (ny(D1, 19, 1), D2, "send"),
        (ny(D1, 23, 30), D2, "send"),
        (ny(D2, 2, 0), D2, "send"),
        (ny(D2, 9, 26), D2, "send"),
        (ny(D2, 9, 27), D2, "missed"),  # open 09:30 (calendar) - 2 min (Alpaca) - 1 min margin
        (ny(D2, 9, 28), D2, "missed"),
        (ny(D2, 15, 0), D2, "missed"),  # the pipeline ran a day late
        (ny(D1, 20, 0), D3, "hold"),  # too early: D3's window opens on D2 at 19:01
        # weekends and holidays: the window spans them, their daytime is Alpaca's refusal span too
        (ny(date(2024, 1, 5), 19, 1), date(2024, 1, 8), "send"),  # Friday evening for Monday
        (ny(date(2024, 1, 6), 12, 0), date(2024, 1, 8), "hold"),  # Saturday daytime
        (ny(date(2024, 1, 6), 20, 0), date(2024, 1, 8), "send"),
        (ny(date(2024, 7, 4), 11, 0), date(2024, 7, 5), "hold"),  # Independence Day
        (ny(date(2024, 7, 4), 19, 30), date(2024, 7, 5), "send"),
        # early closes do not move the window: 19:00 is Alpaca's time, not the exchange's
        (ny(date(2024, 7, 3), 13, 30), date(2024, 7, 5), "hold"),  # after the 13:00 close of July 3
        (ny(date(2024, 11, 29), 14, 0), date(2024, 12, 2), "hold"),  # after Black Friday's 13:00 close
        (ny(date(2024, 11, 29), 19, 1), date(2024, 12, 2), "send"),
        (ny(date(2024, 11, 28), 12, 0), date(2024, 11, 29), "hold"),  # Thanksgiving, for the half day
        (ny(date(2024, 11, 29), 9, 26), date(2024, 11, 29), "send"),  # a half day opens at 09:30
    ],
)
def test_the_opg_window_by_new_york_time(at: datetime, target: date, expected: str) -> None:
    assert opg_window(target, CAL).verdict(at.astimezone(UTC)) == expected


@pytest.mark.parametrize(
    ("target", "first", "last"),
    [
        # spring forward (Sunday 2024-03-10): Friday 19:01 EST, Monday 09:27 EDT
        (date(2024, 3, 11), datetime(2024, 3, 9, 0, 1, tzinfo=UTC), datetime(2024, 3, 11, 13, 27, tzinfo=UTC)),
        # fall back (Sunday 2024-11-03): Friday 19:01 EDT, Monday 09:27 EST
        (date(2024, 11, 4), datetime(2024, 11, 1, 23, 1, tzinfo=UTC), datetime(2024, 11, 4, 14, 27, tzinfo=UTC)),
    ],
)
def test_the_window_follows_daylight_saving_time(target: date, first: datetime, last: datetime) -> None:
    window = opg_window(target, CAL)
    assert (window.first, window.last) == (first, last)
    assert window.verdict(last - timedelta(seconds=1)) == "send" and window.verdict(last) == "missed"


class LateOpen(TradingCalendar):
    """XNYS, but D2 opens at 10:30 (as after an exchange outage)."""

    def open_time(self, day: date) -> datetime:
        opens = super().open_time(day)
        return opens + timedelta(hours=1) if day == D2 else opens


def test_the_window_closes_before_the_calendars_open_never_a_fixed_0930() -> None:
    window = opg_window(D2, LateOpen())
    assert window.last == ny(D2, 10, 27)
    assert window.verdict(ny(D2, 9, 45)) == "send"


def test_a_held_order_gets_its_next_chance_at_1901() -> None:
    window = opg_window(date(2024, 1, 8), CAL)
    assert window.next_chance(ny(date(2024, 1, 5), 16, 30)) == ny(date(2024, 1, 5), 19, 1)
    assert window.next_chance(ny(date(2024, 1, 6), 12, 0)) == ny(date(2024, 1, 6), 19, 1)
    assert window.next_chance(ny(date(2024, 1, 8), 9, 27)) is None


# -- submitting ----------------------------------------------------------------------------


def test_an_order_decided_after_the_close_is_held_then_sent_as_opg_at_1901(standin: AlpacaStandIn) -> None:
    standin.now = ny(D1, 16, 31)
    gateway = broker(standin)
    held = gateway.submit(order())
    assert held.status == "held" and held.reason.startswith("held until 2024-01-02 19:01 New York")
    assert standin.posted == [] and gateway.release() == []

    standin.now = ny(D1, 19, 1)
    ((released, result),) = gateway.release()
    assert (released, result) == (order(), SubmitResult("submitted"))
    (sent,) = standin.posted
    assert sent == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "buy",
        "type": "market",
        "time_in_force": "opg",
        "client_order_id": "live-1-red-drift-AAPL-20240103-buy",
    }
    assert gateway.release() == [] and gateway.submit(order()).status == "duplicate"


def test_in_the_window_an_opg_order_is_sent_at_once(standin: AlpacaStandIn) -> None:
    standin.now = ny(D1, 21, 15)
    assert broker(standin).submit(order()).status == "submitted"
    assert posts(standin) == ["opg"]


def test_a_late_pipeline_misses_the_window_and_nothing_is_sent(standin: AlpacaStandIn) -> None:
    standin.now = ny(D2, 9, 40)
    result = broker(standin).submit(order())
    assert result.status == "rejected"
    assert result.reason.startswith("missed the opg window for 2024-01-03's open (it closed at 2024-01-03 09:27")
    assert standin.posted == []


def test_a_held_order_whose_window_passed_is_missed_not_sent_otherwise(standin: AlpacaStandIn) -> None:
    standin.now = ny(D1, 17)
    gateway = broker(standin)
    gateway.submit(order())
    standin.now = ny(D2, 10)  # the trader service was stopped overnight
    ((_, result),) = gateway.release()
    assert result.status == "rejected" and result.reason.startswith("missed the opg window")
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
    assert [f.quantity for f in restarted.on_day([bar(D2)])] == [10]  # tracked after reconciling


def test_a_reused_id_for_a_different_order_says_so(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order(quantity=10))
    result = broker(standin).submit(order(quantity=12))
    assert result.status == "duplicate"
    assert result.reason.endswith("as buy 10 AAPL (not buy 12 AAPL)")


def test_a_late_resubmission_of_a_known_order_is_a_duplicate(standin: AlpacaStandIn) -> None:
    broker(standin).submit(order())
    standin.now = ny(D2, 11, 0)  # too late to send, but the order was sent
    assert broker(standin).submit(order()).status == "duplicate"
    assert len(standin.posted) == 1


# -- faults: retried, then an answer (never an exception for the trader) -------------------------


def test_alpaca_refusals_are_rejections_with_its_message(standin: AlpacaStandIn) -> None:
    standin.refuse = (403, "insufficient buying power")
    assert broker(standin).submit(order()) == SubmitResult("rejected", "Alpaca: HTTP 403: insufficient buying power")
    assert len(standin.posted) == 1  # a refusal is not retried


def test_bursts_of_429_and_503_are_retried(standin: AlpacaStandIn) -> None:
    standin.fail("orders", 429, 503, 503)
    standin.fail("order", 503, 429)
    gateway = broker(standin)
    assert gateway.submit(order()) == SubmitResult("submitted")
    assert len(standin.orders) == 1
    standin.now = ny(D2, 9, 31)
    standin.fill(order().client_order_id, 10, 184.3)
    assert [f.quantity for f in gateway.on_day([bar(D2)])] == [10]


def test_a_post_whose_answer_is_lost_is_confirmed_on_the_retry(standin: AlpacaStandIn) -> None:
    standin.fail("orders", "slow")  # Alpaca takes the order, the client times out before the answer
    result = broker(standin).submit(order())
    assert result == SubmitResult("submitted", "confirmed on a retry (the first answer was lost)")
    assert len(standin.posted) == 2 and len(standin.orders) == 1


def test_lasting_server_errors_are_a_rejection_that_is_still_followed(standin: AlpacaStandIn) -> None:
    standin.fail("orders", *[503] * 5)
    gateway = broker(standin)
    result = gateway.submit(order())
    assert result.status == "rejected"
    assert result.reason.startswith("not confirmed: Alpaca unreachable after 5 attempts (HTTP 503: scripted HTTP 503)")
    standin.now = ny(D2, 16, 30)
    assert gateway.on_day([bar(D2)]) == []  # Alpaca never got it (404): nothing to follow, no error


def test_an_unreachable_alpaca_is_a_rejection_with_the_cause(standin: AlpacaStandIn) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = AlpacaBroker(
        "live-1", "red", KEY, SECRET, clock=lambda: standin.now, url_override=closed, backoff=FAST
    )
    result = unreachable.submit(order())
    assert result.status == "rejected" and "Alpaca unreachable after 5 attempts (ConnectionError" in result.reason
    with pytest.raises(BrokerError, match="unreachable"):
        unreachable.account()


def test_secrets_echoed_by_a_vendor_never_reach_a_reason_or_an_error(standin: AlpacaStandIn) -> None:
    standin.fail("orders", *["echo"] * 5)
    standin.fail("account", *["echo"] * 5)
    result = broker(standin).submit(order())
    assert "request headers" in result.reason and "***" in result.reason
    with pytest.raises(BrokerError) as caught:
        broker(standin).account()
    for text in (result.reason, str(caught.value)):
        assert KEY not in text and SECRET not in text


# -- real money ----------------------------------------------------------------------------


def test_a_real_money_account_needs_the_explicit_opt_in(
    standin: AlpacaStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RealMoneyRefused, match="real-money"):
        broker(standin, paper=False)
    with caplog.at_level(logging.WARNING):
        broker(standin, paper=False, allow_real_money=True)
    assert "REAL MONEY: team red trades on a live Alpaca account" in caplog.text


def test_orders_of_another_account_are_refused(standin: AlpacaStandIn) -> None:
    foreign = OrderRequest(**{**order().__dict__, "team": "blue"})
    assert broker(standin).submit(foreign).status == "rejected"
    assert standin.posted == []


# -- fills ---------------------------------------------------------------------------------


def test_a_fill_is_reported_once(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    assert gateway.on_day([bar(D1)]) == []  # not due before its target

    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.31)
    lookups = len(standin.requests)
    assert gateway.on_day([bar(D2, "AMZN")]) == []  # another symbol: nothing polled
    assert len(standin.requests) == lookups

    (fill,) = gateway.on_day([bar(D2)])
    assert (fill.symbol, fill.side, fill.quantity, fill.price, fill.commission, fill.date) == (
        "AAPL",
        "buy",
        10,
        184.31,
        0.0,
        D2,
    )
    assert (fill.run, fill.team, fill.client_order_id) == ("live-1", "red", order().client_order_id)
    assert gateway.on_day([bar(D2)]) == []
    assert gateway.on_day([bar(D3)]) == []
    assert len(standin.requests) == lookups + 1  # a filled order is not polled again


def test_partial_fills_are_reported_as_increments(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 4, 100.0)
    assert [(f.quantity, f.price) for f in gateway.on_day([bar(D2)])] == [(4, 100.0)]

    standin.fill(order().client_order_id, 10, 101.0)
    ((quantity, price),) = [(f.quantity, f.price) for f in gateway.on_day([bar(D3)])]
    assert quantity == 6 and price == pytest.approx((1010 - 400) / 6)
    assert gateway.take_rejections() == []


def test_an_order_that_expired_unfilled_is_handed_out_as_a_rejection_once(standin: AlpacaStandIn) -> None:
    gateway = broker(standin)
    standin.now = ny(D1, 20, 0)
    gateway.submit(order())
    standin.cancel(order().client_order_id, "expired")

    assert gateway.on_day([bar(D2)]) == []
    (rejection,) = gateway.take_rejections()
    assert rejection.order == order() and rejection.date == D2
    assert rejection.reason == "Alpaca order expired: 0 of 10 filled"
    assert gateway.take_rejections() == []
    assert gateway.on_day([bar(D3)]) == [] and gateway.take_rejections() == []


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


def test_data_api_bursts_are_retried_and_an_outage_is_unreachable(with_bars: AlpacaStandIn) -> None:
    data = AlpacaBarSource(KEY, SECRET, url_override=with_bars.url, calendar=CAL, backoff=NO_WAIT, timeout=0.25)
    with_bars.fail("bars", 429, 503, "slow")
    bars, _ = data.fetch(["AAPL"], D1, D3, ny(D3, 20, 0))
    assert [b.date for b in bars] == [D1, D2, D3]

    with_bars.fail("bars", *[503] * 4)
    with pytest.raises(SourceUnreachable, match=r"^Alpaca unreachable: .*HTTP 503.*\(after 4 attempts\)$"):
        data.fetch(["AAPL"], D1, D3, ny(D3, 20, 0))
    with_bars.fail("bars", *["echo"] * 4)
    with pytest.raises(SourceUnreachable) as caught:
        data.fetch(["AAPL"], D1, D3, ny(D3, 20, 0))
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)
