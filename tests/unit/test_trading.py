"""The trader: forecasts and processed bars in, fills, position marks and orders out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import pytest

from consumers.simulated_broker import SimulatedBroker
from consumers.trading import Trader
from redblue.core.arena import Arena, CostSpec, ModelSpec, StrategySpec, TeamSpec
from redblue.core.broker import BrokerError, BrokerGateway, OrderRequest, Rejection, SubmitResult
from schemas import Bar, BarProcessed, Event, Fill, Forecast, Order, PositionMark
from tests import factories

RUN = "sim-1"
DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5), date(2024, 1, 8)]
D1, D2, D3, D4, D5 = DAYS
NOW = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
ARENA = Arena(
    name="unit",
    symbols=("AAPL",),
    baselines=(ModelSpec(name="persistence", kind="persistence"),),
    teams={
        "red": TeamSpec(
            models=(ModelSpec(name="other", kind="trend"), ModelSpec(name="drift", kind="drift")),
            trade_with="drift",
        ),
        "blue": TeamSpec(models=(ModelSpec(name="trend", kind="trend"),)),
    },
    strategy=StrategySpec(threshold=0.001, initial_cash=10_000.0, allocation=1_000.0),
    costs=CostSpec(slippage_bps=10.0, commission_per_order=1.0, commission_bps=0.0),
)


def clock() -> datetime:
    return NOW


def next_day(day: date) -> date:
    return DAYS[DAYS.index(day) + 1]


def forecast(
    day: date, predicted: float, last: float, *, team: str = "red", model: str = "drift", symbol: str = "AAPL"
) -> Forecast:
    return Forecast(
        run=RUN,
        team=team,
        model=model,
        model_version="1",
        symbol=symbol,
        as_of=day,
        target=next_day(day),
        predicted_close=predicted,
        last_close=last,
        produced_at=NOW,
    )


def processed(day: date, open_: float, close: float, symbol: str = "AAPL", run: str = RUN) -> BarProcessed:
    bar = factories.bar(symbol, day, close, open_=open_)
    return BarProcessed(run=run, bar=bar, forecasts=1, produced_at=NOW)


def simulated(cash: float = 10_000.0) -> dict[str, BrokerGateway]:
    return {team: SimulatedBroker(RUN, team, ARENA.costs, cash, clock) for team in ARENA.teams}


def brief(event: Event) -> tuple[object, ...]:
    """A readable summary of an event, money rounded to cents."""
    if isinstance(event, Fill):
        return ("fill", event.team, event.side, event.quantity, round(event.price, 4), event.date)
    if isinstance(event, PositionMark):
        return ("mark", event.team, event.symbol, event.as_of, event.quantity, round(event.net_cash_flow, 2))
    assert isinstance(event, Order)
    return ("order", event.team, event.side, event.quantity, event.target, event.status)


class ScriptedGateway:
    """A hand-written fake gateway: answers submits from a script and reports scripted fills."""

    def __init__(self, answers: list[SubmitResult], fills: list[Fill] | None = None) -> None:
        self.answers = answers
        self.fills = fills or []
        self.submitted: list[OrderRequest] = []

    def submit(self, order: OrderRequest) -> SubmitResult:
        self.submitted.append(order)
        return self.answers.pop(0)

    def on_day(self, bars: Sequence[Bar]) -> list[Fill]:
        due = [f for f in self.fills for bar in bars if f.symbol == bar.symbol and f.date <= bar.date]
        self.fills = [f for f in self.fills if f not in due]
        return due

    def take_rejections(self) -> list[Rejection]:
        return []

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        return []


def partial_fill(order: OrderRequest, quantity: int) -> Fill:
    return Fill(
        run=RUN,
        team=order.team,
        symbol=order.symbol,
        client_order_id=order.client_order_id,
        side=order.side,
        quantity=quantity,
        price=100.0,
        commission=1.0,
        date=order.target,
        produced_at=NOW,
    )


def scripted(red: ScriptedGateway) -> dict[str, BrokerGateway]:
    return {"red": red, "blue": ScriptedGateway([])}


def feed(trader: Trader, *items: Forecast | BarProcessed) -> list[Event]:
    out: list[Event] = []
    for item in items:
        if isinstance(item, Forecast):
            trader.on_forecast(item)
        else:
            out.extend(trader.on_bar_processed(item))
    return out


SEQUENCE: tuple[Forecast | BarProcessed, ...] = (
    forecast(D1, predicted=105.0, last=100.0),  # long: buy floor(1000 / 100) = 10
    forecast(D1, predicted=90.0, last=100.0, model="other"),  # not red's trading model
    forecast(D1, predicted=90.0, last=100.0, team="baseline", model="persistence"),  # baselines never trade
    processed(D1, open_=99.0, close=100.0),
    forecast(D2, predicted=110.0, last=102.0),  # still long: hold
    processed(D2, open_=101.0, close=102.0),  # buy fills at 101 * 1.001 = 101.101
    forecast(D3, predicted=100.0, last=104.0),  # flat: sell all 10
    processed(D3, open_=103.0, close=104.0),
    processed(D4, open_=106.0, close=105.0),  # sell fills at 106 * 0.999 = 105.894
)


def test_a_small_run_gives_the_fills_marks_and_pnl_computed_by_hand() -> None:
    gateways = simulated()
    events = feed(Trader(RUN, ARENA, gateways, clock), *SEQUENCE)
    buy_flow = -(10 * 101.101) - 1.0  # -1012.01
    sell_flow = 10 * 105.894 - 1.0  # +1057.94
    assert [brief(e) for e in events] == [
        ("mark", "blue", "AAPL", D1, 0, 0.0),
        ("mark", "red", "AAPL", D1, 0, 0.0),
        ("order", "red", "buy", 10, D2, "submitted"),
        ("mark", "blue", "AAPL", D2, 0, 0.0),
        ("fill", "red", "buy", 10, 101.101, D2),
        ("mark", "red", "AAPL", D2, 10, -1012.01),
        ("mark", "blue", "AAPL", D3, 0, 0.0),
        ("mark", "red", "AAPL", D3, 10, -1012.01),
        ("order", "red", "sell", 10, D4, "submitted"),
        ("mark", "blue", "AAPL", D4, 0, 0.0),
        ("fill", "red", "sell", 10, 105.894, D4),
        ("mark", "red", "AAPL", D4, 0, 45.93),
    ]
    marks = [e for e in events if isinstance(e, PositionMark) and e.team == "red"]
    pnl = [m.net_cash_flow + m.market_value for m in marks]
    assert pnl == pytest.approx([0.0, buy_flow + 1020.0, buy_flow + 1040.0, buy_flow + sell_flow])
    assert pnl[-1] == pytest.approx(45.93)
    red = gateways["red"]
    assert isinstance(red, SimulatedBroker)
    assert red.cash == pytest.approx(10_000.0 + 45.93)


def test_order_events_carry_the_decision_and_a_deterministic_id() -> None:
    events = feed(Trader(RUN, ARENA, simulated(), clock), *SEQUENCE[:4])
    [order] = [e for e in events if isinstance(e, Order)]
    assert (order.model, order.as_of, order.target, order.reference_price) == ("drift", D1, D2, 100.0)
    assert order.client_order_id.startswith("AAPL-20240103-b-")
    assert order.produced_at == NOW


def test_the_same_events_give_the_same_output() -> None:
    first = feed(Trader(RUN, ARENA, simulated(), clock), *SEQUENCE)
    second = feed(Trader(RUN, ARENA, simulated(), clock), *SEQUENCE)
    assert first == second


def test_the_first_forecast_of_a_key_wins() -> None:
    trader = Trader(RUN, ARENA, simulated(), clock)
    events = feed(trader, forecast(D1, 105.0, 100.0), forecast(D1, 90.0, 100.0), processed(D1, 99.0, 100.0))
    assert [brief(e) for e in events if isinstance(e, Order)] == [("order", "red", "buy", 10, D2, "submitted")]


def test_non_trading_models_and_baselines_never_order() -> None:
    trader = Trader(RUN, ARENA, simulated(), clock)
    events = feed(
        trader,
        forecast(D1, 120.0, 100.0, model="other"),
        forecast(D1, 120.0, 100.0, team="baseline", model="persistence"),
        forecast(D1, 120.0, 100.0, team="green", model="drift"),
        processed(D1, 99.0, 100.0),
    )
    assert [brief(e)[0] for e in events] == ["mark", "mark"]


TWO = ARENA.model_copy(update={"symbols": ("AAPL", "AMZN")})


def test_a_day_is_traded_once_every_symbol_s_bar_of_it_is_in() -> None:
    trader = Trader(RUN, TWO, simulated(), clock)
    trader.on_forecast(forecast(D1, 60.0, 50.0, symbol="AMZN"))
    assert trader.on_bar_processed(processed(D1, 99.0, 100.0)) == []  # AMZN's D1 bar is still to come
    events = trader.on_bar_processed(processed(D1, 49.0, 50.0, symbol="AMZN"))
    assert [brief(e) for e in events] == [
        ("mark", "blue", "AAPL", D1, 0, 0.0),
        ("mark", "blue", "AMZN", D1, 0, 0.0),
        ("mark", "red", "AAPL", D1, 0, 0.0),
        ("mark", "red", "AMZN", D1, 0, 0.0),
        ("order", "red", "buy", 20, D2, "submitted"),
    ]


def test_a_symbol_without_a_bar_on_a_day_holds_the_days_after_it_until_its_next_bar() -> None:
    trader = Trader(RUN, TWO, simulated(), clock)
    assert trader.on_bar_processed(processed(D1, 99.0, 100.0)) == []
    assert trader.on_bar_processed(processed(D2, 99.0, 100.0)) == []
    events = trader.on_bar_processed(processed(D2, 49.0, 50.0, symbol="AMZN"))  # AMZN skipped D1
    assert [(brief(e)[2], brief(e)[3]) for e in events if brief(e)[1] == "red"] == [
        ("AAPL", D1),
        ("AAPL", D2),
        ("AMZN", D2),
    ]


def test_a_redelivered_bar_and_a_late_forecast_are_ignored() -> None:
    trader = Trader(RUN, ARENA, simulated(), clock)
    assert feed(trader, processed(D1, 99.0, 100.0)) != []
    assert feed(trader, forecast(D1, 120.0, 100.0), processed(D1, 99.0, 100.0)) == []
    assert [brief(e)[0] for e in feed(trader, processed(D2, 99.0, 100.0))] == ["mark", "mark"]


def test_a_rejected_submit_is_reported_and_not_pending() -> None:
    red = ScriptedGateway([SubmitResult("rejected", "account blocked"), SubmitResult("submitted")])
    trader = Trader(RUN, ARENA, scripted(red), clock)
    events = feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    [order] = [e for e in events if isinstance(e, Order)]
    assert (order.status, order.reason) == ("rejected", "account blocked")
    feed(trader, forecast(D2, 105.0, 100.0), processed(D2, 99.0, 100.0))
    assert [o.as_of for o in red.submitted] == [D1, D2]  # nothing pending blocked the retry


def test_a_duplicate_counts_as_pending_and_is_not_doubled() -> None:
    red = ScriptedGateway([SubmitResult("duplicate")])
    trader = Trader(RUN, ARENA, scripted(red), clock)
    events = feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    assert [brief(e) for e in events if isinstance(e, Order)] == [("order", "red", "buy", 10, D2, "duplicate")]
    events = feed(trader, forecast(D2, 105.0, 100.0), processed(D2, 99.0, 100.0))
    assert len(red.submitted) == 1  # still pending: no second order
    assert [brief(e)[0] for e in events] == ["mark", "mark"]


def test_a_partial_fill_keeps_the_rest_pending() -> None:
    red = ScriptedGateway([SubmitResult("submitted")])
    trader = Trader(RUN, ARENA, scripted(red), clock)
    feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    red.fills = [partial_fill(red.submitted[0], 4)]
    events = feed(trader, forecast(D2, 90.0, 100.0), processed(D2, 99.0, 100.0))
    assert [brief(e) for e in events if isinstance(e, PositionMark) and e.team == "red"] == [
        ("mark", "red", "AAPL", D2, 4, -401.0)
    ]
    assert len(red.submitted) == 1  # flat now, but 6 shares are still on their way: no sell yet


def test_a_buy_the_account_cannot_pay_is_rejected_when_due_and_retried() -> None:
    gateways = simulated(cash=1_000.0)
    trader = Trader(RUN, ARENA, gateways, clock)
    feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))  # buy 10 at about 100
    events = feed(trader, forecast(D2, 110.0, 102.0), processed(D2, 101.0, 102.0))  # 10 x 101.101 + 1 > 1000
    red = [brief(e) for e in events if brief(e)[1] == "red"]
    assert red == [
        ("mark", "red", "AAPL", D2, 0, 0.0),
        ("order", "red", "buy", 10, D2, "rejected"),
        ("order", "red", "buy", 9, D3, "submitted"),  # floor(1000 / 102)
    ]
    rejected = next(e for e in events if isinstance(e, Order) and e.status == "rejected")
    assert rejected.reason.startswith("insufficient cash")


def test_events_of_another_run_and_missing_gateways_fail_loudly() -> None:
    trader = Trader(RUN, ARENA, simulated(), clock)
    with pytest.raises(ValueError, match="run 'sim-2'"):
        trader.on_bar_processed(processed(D1, 99.0, 100.0, run="sim-2"))
    with pytest.raises(ValueError, match="one gateway per team"):
        Trader(RUN, ARENA, {"red": ScriptedGateway([])}, clock)


def test_marks_outside_a_symbols_span_are_not_published() -> None:
    from consumers.trader import routed
    from redblue.core.spans import Span
    from schemas.topics import FILLS

    spans = {"AAPL": Span(D1, D2, D3, D4), "AMZN": Span(D1, D1, D2, D5)}

    def mark(symbol: str, day: date) -> PositionMark:
        return PositionMark(
            run=RUN, team="red", symbol=symbol, as_of=day, quantity=0, close=10.0, net_cash_flow=0.0, produced_at=NOW
        )

    marks = [mark(s, d) for d in DAYS for s in ("AAPL", "AMZN", "TSLA")]
    kept = [(o.event.symbol, o.event.as_of) for o in routed(list(marks), spans)]  # type: ignore[attr-defined]
    assert kept == [
        ("AMZN", D1), ("AAPL", D2), ("AMZN", D2), ("AAPL", D3), ("AMZN", D3), ("AAPL", D4), ("AMZN", D4), ("AMZN", D5),
    ]  # fmt: skip
    assert {o.spec for o in routed(list(marks))} == {FILLS} and len(routed(list(marks))) == len(marks)


def test_a_bar_revision_is_never_traded_on() -> None:
    from consumers.trader import handler
    from schemas import BarRevision

    trader = Trader(RUN, ARENA, simulated(), clock)
    handle = handler(trader)
    first = processed(D1, 100.0, 100.0)
    handle(forecast(D1, 110.0, 100.0))
    decided = handle(first)
    revision = BarRevision(bar=factories.bar("AAPL", D1, 90.0), previous=first.bar, produced_at=NOW)
    assert handle(revision) == []  # no new order, no new mark
    assert [brief(o.event) for o in decided if isinstance(o.event, Order)] == [
        ("order", "red", "buy", 10, D2, "submitted")
    ]


class Troubled(ScriptedGateway):
    """A gateway whose broker is in trouble: every call raises :class:`BrokerError`."""

    def __init__(self) -> None:
        super().__init__([])

    def submit(self, order: OrderRequest) -> SubmitResult:
        raise BrokerError("Alpaca unreachable after 5 attempts: HTTP 503")

    def on_day(self, bars: Sequence[Bar]) -> list[Fill]:
        raise BrokerError("Alpaca lookup: HTTP 429")

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        raise BrokerError("Alpaca unreachable")


def test_one_teams_broker_trouble_is_its_rejected_order_and_the_others_go_on() -> None:
    blue = ScriptedGateway([SubmitResult("submitted")])
    trader = Trader(RUN, ARENA, {"red": Troubled(), "blue": blue}, clock)
    events = feed(
        trader,
        forecast(D1, 105.0, 100.0),
        forecast(D1, 105.0, 100.0, team="blue", model="trend"),
        processed(D1, 99.0, 100.0),
    )
    orders = {e.team: e for e in events if isinstance(e, Order)}
    assert (orders["red"].status, orders["red"].reason) == (
        "rejected",
        "broker error: Alpaca unreachable after 5 attempts: HTTP 503",
    )
    assert orders["blue"].status == "submitted" and len(blue.submitted) == 1
    assert {e.team for e in events if isinstance(e, PositionMark)} == {"red", "blue"}  # marks go on
    assert trader.tick() == []  # a failing release is logged, not raised


class Holding(ScriptedGateway):
    """Holds every order until told to release it."""

    def __init__(self) -> None:
        super().__init__([])
        self.answer: SubmitResult | None = None

    def submit(self, order: OrderRequest) -> SubmitResult:
        self.submitted.append(order)
        return SubmitResult("held", "held until 19:01")

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        if self.answer is None:
            return []
        released, self.submitted = [(o, self.answer) for o in self.submitted], []
        return released


def test_a_held_order_is_pending_and_written_when_the_gateway_releases_it() -> None:
    red = Holding()
    trader = Trader(RUN, ARENA, {"red": red, "blue": ScriptedGateway([])}, clock)
    events = feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    assert [e for e in events if isinstance(e, Order)] == []  # nothing written while held
    assert trader.tick() == []
    red.answer = SubmitResult("submitted")
    (order,) = trader.tick()
    assert isinstance(order, Order) and (order.status, order.target, order.quantity) == ("submitted", D2, 10)
    # still long the next day: the pending order is not decided again
    assert [
        e for e in feed(trader, forecast(D2, 110.0, 102.0), processed(D2, 101.0, 102.0)) if isinstance(e, Order)
    ] == []


def test_a_held_order_that_missed_its_window_is_a_rejected_order_and_no_longer_pending() -> None:
    red = Holding()
    trader = Trader(RUN, ARENA, {"red": red, "blue": ScriptedGateway([])}, clock)
    feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    red.answer = SubmitResult("rejected", "missed the opg window for 2024-01-03's open")
    (order,) = trader.tick()
    assert isinstance(order, Order) and order.status == "rejected" and order.reason.startswith("missed")
    red.answer = None
    again = feed(trader, forecast(D2, 110.0, 102.0), processed(D2, 101.0, 102.0))
    assert [e.target for e in again if isinstance(e, Order)] == []  # held again (not pending any more)
    assert [o.target for o in red.submitted] == [D3]


def test_the_ticker_sends_what_the_gateways_release_until_stopped() -> None:
    import threading

    from consumers.trader import ticker

    red = Holding()
    trader = Trader(RUN, ARENA, {"red": red, "blue": ScriptedGateway([])}, clock)
    feed(trader, forecast(D1, 105.0, 100.0), processed(D1, 99.0, 100.0))
    red.answer = SubmitResult("submitted")
    sent: list[object] = []
    done = threading.Event()

    def send(outs: list[object]) -> None:
        sent.extend(outs)
        done.set()

    thread = threading.Thread(target=ticker, args=(trader, send, threading.Lock(), done, 0.01))
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    (out,) = sent
    assert out.spec.suffix == "orders" and out.key == "AAPL" and out.event.status == "submitted"


def test_with_spans_a_day_waits_only_for_the_symbols_taking_part_in_it() -> None:
    """AMZN's data end on D2 and SAP's start on D3: D3 and D4 complete without AMZN, and D1 waits for
    nobody but AAPL and AMZN (a day that waited for every arena symbol never came once one left)."""
    from redblue.core.spans import Span

    arena = ARENA.with_symbols(("AAPL", "AMZN", "SAP"))
    spans = {
        "AAPL": Span(D1, D1, D2, D5),
        "AMZN": Span(D1, D1, D2, D2),
        "SAP": Span(D3, D3, D4, D5),
    }
    trader = Trader(
        RUN, arena, {t: SimulatedBroker(RUN, t, arena.costs, 10_000.0, clock) for t in arena.teams}, clock, spans
    )
    marked = lambda events: sorted({(e.symbol, e.as_of) for e in events if isinstance(e, PositionMark)})  # noqa: E731
    assert marked(trader.on_bar_processed(processed(D1, 99.0, 100.0))) == []
    assert marked(trader.on_bar_processed(processed(D1, 49.0, 50.0, symbol="AMZN"))) == [("AAPL", D1), ("AMZN", D1)]
    trader.on_bar_processed(processed(D2, 100.0, 101.0))
    assert marked(trader.on_bar_processed(processed(D2, 50.0, 51.0, symbol="AMZN"))) == [("AAPL", D2), ("AMZN", D2)]
    assert marked(trader.on_bar_processed(processed(D3, 101.0, 102.0))) == []  # SAP takes part from D3
    assert marked(trader.on_bar_processed(processed(D3, 20.0, 21.0, symbol="SAP"))) == [("AAPL", D3), ("SAP", D3)]
