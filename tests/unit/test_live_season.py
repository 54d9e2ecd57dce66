"""A live season of 63 trading days through misbehaving vendors ends as the clean replay of those days.

Everything runs in this process on a replayed clock: the live producer polls Alpaca's data API
(stand-in: partial intraday bars, bars without the closing auction, late revisions, missing
sessions, 429/503 bursts, a lasting outage, slow answers), the processor's pure step serves the
baselines arena, and the trader sends each team's orders to its own Alpaca account (stand-ins;
red's answers 429/503 bursts, slow and secret-echoing errors, blue's is clean). The clean replay
feeds the bundled bars at the same times, to fault-free accounts.

The fault plan and what the faults are allowed to change (and nothing else) are shared with the
rehearsal through the real services: :mod:`tests.standins.faults`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from consumers.trading import Trader
from processors.book import ModelBook
from processors.forecasting import Horizon, revise, step
from producers.live import LiveProducer, Poll
from producers.published import Published
from redblue.adapters.alpaca.broker import BROKER_BACKOFF, AlpacaBroker
from redblue.adapters.alpaca.market_data import AlpacaBarSource
from redblue.adapters.yfinance import YFinanceSource
from redblue.core.arena import load_arena
from redblue.core.bars import DATA_DIR, Row, read_rows, to_bar_fields
from redblue.core.broker import BrokerGateway
from redblue.core.calendar import get_calendar
from redblue.core.retry import NO_WAIT
from schemas import Bar, BarProcessed, BarRevision, Event, Fill, Forecast, Order, encode
from tests.factories import BASELINES
from tests.standins.alpaca import AlpacaStandIn
from tests.standins.bus import Sink
from tests.standins.clock import ReplayClock, ny
from tests.standins.faults import FaultPlan, credentials, effective, holdings, values
from tests.standins.market import Timeline
from tests.standins.yahoo import ScriptedYahoo

CAL = get_calendar()
ARENA = load_arena(BASELINES)  # AAPL, AMZN, SAP; red: drift, blue: trend, baseline: persistence
RUN = "season"
SEASON = CAL.sessions(date(2024, 1, 2), date(2024, 4, 2))  # 63 sessions
WARMUP = CAL.sessions(CAL.offset(SEASON[0], -ARENA.window), CAL.offset(SEASON[0], -1))
FAST = replace(BROKER_BACKOFF, sleep=lambda _: None)
DATA_KEY, DATA_SECRET = credentials("data")
RED_KEY, RED_SECRET = credentials("red")
BLUE_KEY, BLUE_SECRET = credentials("blue")

PLAN = FaultPlan.spread(SEASON, ARENA.symbols, troubled="red")
REVISED = PLAN.revised  # AAPL, SAP, AMZN: first print 1 % off, fixed overnight
LATE = PLAN.late  # SAP: the vendor skips it until 08:00 the next day: published at 09:00, still in time
MISSED = PLAN.missed  # AMZN: skipped until 17:00 the next day, after that day's bar: a gap, and a missed open


def rows() -> list[Row]:
    first, last = WARMUP[0], CAL.offset(SEASON[-1], 1)
    return [r for s in ARENA.symbols for r in read_rows(DATA_DIR, s) if first <= r.date <= last]


def replayed(row: Row) -> Bar:
    return Bar.model_validate({**to_bar_fields(row, CAL, "replay"), "produced_at": CAL.close_time(row.date)})


def times(day: date) -> list[datetime]:
    """When things happen on a session day: polls (morning, midday, around the close), the order window."""
    close = CAL.close_time(day)
    moments = [ny(day, 9), ny(day, 12), *(close + timedelta(minutes=m) for m in (5, 20, 35)), ny(day, 18, 30)]
    return [*moments, ny(day, 19, 5)]


@dataclass
class Pipeline:
    """The processor's step and the trader, fed in bars-topic order, at the clock's time."""

    clock: ReplayClock
    gateways: dict[str, BrokerGateway]
    windows: dict[str, list[Bar]] = field(default_factory=dict)
    forecasts: list[Forecast] = field(default_factory=list)
    trading: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.models = ModelBook(ARENA).models
        self.trader = Trader(RUN, ARENA, self.gateways, self.clock)

    def take(self, event: Bar | BarRevision) -> None:
        if isinstance(event, BarRevision):
            symbol = event.bar.symbol
            self.windows[symbol] = revise(self.windows[symbol], event)  # the trader ignores revisions
            return
        window = self.windows.get(event.symbol, [])
        done = step(
            RUN, window, event, self.models, size=ARENA.window, calendar=CAL, horizon=Horizon(), now=self.clock()
        )
        assert done.verdict == "ok", (event.symbol, event.date, done.verdict)
        self.windows[event.symbol] = done.window
        for out in done.events:
            if isinstance(out, Forecast):
                self.forecasts.append(out)
                self.trader.on_forecast(out)
            elif isinstance(out, BarProcessed) and event.date >= SEASON[0]:
                self.trading.extend(self.trader.on_bar_processed(out))

    def tick(self) -> None:
        self.trading.extend(self.trader.tick())


@dataclass
class Season:
    pipeline: Pipeline
    published: list[Bar | BarRevision] = field(default_factory=list)
    polls: list[tuple[datetime, Poll]] = field(default_factory=list)


@contextmanager
def accounts(clock: ReplayClock, market: Timeline) -> Iterator[tuple[AlpacaStandIn, AlpacaStandIn]]:
    """Red's and blue's Alpaca accounts (one stand-in each, their own keys)."""
    red = AlpacaStandIn(clock, key=RED_KEY, secret=RED_SECRET, timeline=market, slow_seconds=0.4)
    blue = AlpacaStandIn(clock, key=BLUE_KEY, secret=BLUE_SECRET, timeline=market)
    with red, blue:
        yield red, blue


def gateways(clock: ReplayClock, red: AlpacaStandIn, blue: AlpacaStandIn) -> dict[str, BrokerGateway]:
    def account(team: str, standin: AlpacaStandIn) -> AlpacaBroker:
        return AlpacaBroker(
            RUN, team, standin.key, standin.secret, clock=clock, calendar=CAL, url_override=standin.url,
            backoff=FAST, timeout=0.2,
        )  # fmt: skip

    return {"red": account("red", red), "blue": account("blue", blue)}


def primed(pipeline: Pipeline, truth: list[Row]) -> None:
    for row in sorted((r for r in truth if r.date in WARMUP), key=lambda r: (r.date, r.symbol)):
        pipeline.take(replayed(row))


def clean_season(truth: list[Row]) -> Season:
    """The replay: the final bars, fed at 16:35 each day, to fault-free accounts."""
    clock = ReplayClock(ny(WARMUP[-1], 20))
    market = Timeline(truth, CAL)
    with accounts(clock, market) as (red, blue):
        pipeline = Pipeline(clock, gateways(clock, red, blue))
        primed(pipeline, truth)
        by_day = {d: [replayed(r) for r in truth if r.date == d] for d in SEASON}
        for day in SEASON:
            for moment in times(day):
                clock.set(moment)
                if moment == CAL.close_time(day) + timedelta(minutes=35):
                    for bar in sorted(by_day[day], key=lambda b: b.symbol):
                        pipeline.take(bar)
                pipeline.tick()
    return Season(pipeline)


def live_season(truth: list[Row]) -> Season:
    """The live run: the producer through the misbehaving data API, red's account misbehaving too."""
    clock = ReplayClock(ny(WARMUP[-1], 20))
    market = Timeline(truth, CAL)
    PLAN.script(market, CAL)
    with AlpacaStandIn(clock, key=DATA_KEY, secret=DATA_SECRET, timeline=market, slow_seconds=0.4) as data:
        data.page_size = 1000
        with accounts(clock, market) as (red, blue):
            pipeline = Pipeline(clock, gateways(clock, red, blue))
            primed(pipeline, truth)
            published = Published()
            for row in truth:
                if row.date in WARMUP:
                    published.add(replayed(row))
            sink = Sink()
            source = AlpacaBarSource(DATA_KEY, DATA_SECRET, url_override=data.url, calendar=CAL, timeout=0.2,
                                     backoff=replace(FAST, attempts=4))  # fmt: skip
            producer = LiveProducer(source, sink, ARENA.symbols, CAL, clock, published)
            season = Season(pipeline)
            for n, day in enumerate(SEASON):
                PLAN.trouble(n, data, red)
                for moment in times(day):
                    clock.set(moment)
                    seen = len(sink.sent)
                    season.polls.append((moment, producer.poll()))
                    for out in sink.sent[seen:]:
                        assert isinstance(out.event, Bar | BarRevision), out.event  # nothing dead-lettered
                        season.published.append(out.event)
                        pipeline.take(out.event)
                    pipeline.tick()
    return season


# -- the checks -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seasons() -> Iterator[tuple[Season, Season, list[str]]]:
    truth = rows()
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler, root = Keep(level=logging.DEBUG), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        clean, live = clean_season(truth), live_season(truth)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    yield clean, live, records


def test_the_live_producer_publishes_the_replays_bars_each_once_in_order(seasons: Any) -> None:
    _, live, _ = seasons
    truth = {(r.symbol, r.date): (r.open, r.high, r.low, r.close, float(r.volume)) for r in rows()}
    bars = [e for e in live.published if isinstance(e, Bar)]
    assert len(SEASON) >= 60
    for symbol in ARENA.symbols:
        assert [b.date for b in bars if b.symbol == symbol] == SEASON  # each session once, in order: no gaps
    assert effective(live.published) == {k: v for k, v in truth.items() if k[1] in SEASON}
    assert all(b.ts_event == CAL.close_time(b.date) for b in bars)
    # apart from the revised sessions, the first publication already had the final values
    assert {(b.symbol, b.date) for b in bars if values(b) != truth[(b.symbol, b.date)]} == REVISED


def test_revisions_are_explicit_events_with_the_first_print_as_previous(seasons: Any) -> None:
    _, live, _ = seasons
    revisions = [e for e in live.published if isinstance(e, BarRevision)]
    assert {(r.bar.symbol, r.bar.date) for r in revisions} == REVISED and len(revisions) == len(REVISED)
    for r in revisions:
        assert "close" in r.changed and r.previous.close == pytest.approx(r.bar.close * 1.01, rel=1e-4)
        assert r.produced_at == ny(CAL.offset(r.bar.date, 1), 9)  # the first poll after the fix


def test_gaps_and_outages_were_reported_not_papered_over(seasons: Any) -> None:
    _, live, _ = seasons
    paused = {(m, s) for m, p in live.polls for s in p.paused}
    assert (CAL.close_time(LATE[1]) + timedelta(hours=2, minutes=30), "SAP") in {(m, s) for m, s in paused}
    assert any(s == "AMZN" and m.date() == CAL.offset(MISSED[1], 1) for m, s in paused)
    errors = [(m, p.error) for m, p in live.polls if p.error]
    assert len(errors) == 1 and errors[0][1].startswith("Alpaca unreachable: Alpaca daily bars of AAPL, AMZN, SAP")
    assert all(p.rejected == [] for _, p in live.polls)  # missing data is never dead-lettered


def test_the_same_forecasts_except_those_made_from_a_first_print(seasons: Any) -> None:
    clean, live, _ = seasons
    made, expected = live.pipeline.forecasts, clean.pipeline.forecasts
    assert PLAN.same_forecasts(made, expected)
    assert len([f for f in made if PLAN.from_first_print(f)]) == 3 * len(REVISED)  # every model, each revised day
    assert len(made) == len(expected)


def test_the_same_orders_fills_and_positions_apart_from_what_revisions_and_the_missed_open_change(
    seasons: Any,
) -> None:
    clean, live, _ = seasons
    live_orders = [o for o in live.pipeline.trading if isinstance(o, Order)]
    clean_orders = [o for o in clean.pipeline.trading if isinstance(o, Order)]
    same, changed = PLAN.same_orders(live.pipeline.trading, clean.pipeline.trading, ARENA.teams)
    assert same  # red's 429/503/slow/echo trouble changed none
    assert len([o for o in clean_orders if (o.team, o.symbol, o.as_of) not in changed]) > 0.8 * len(clean_orders)
    assert all(o.status == "submitted" for o in clean_orders)
    (late,) = [o for o in live_orders if (o.symbol, o.as_of) == LATE]  # decided at 09:00, sent at once
    assert (late.status, late.produced_at) == ("submitted", ny(CAL.offset(LATE[1], 1), 9))
    missed = [o for o in live_orders if (o.symbol, o.as_of) == MISSED]
    assert missed and all(o.status == "rejected" and o.reason.startswith("missed the opg window") for o in missed)
    assert holdings(live.pipeline.trading).keys() == holdings(clean.pipeline.trading).keys()
    fills = {e.client_order_id: (e.price, e.date) for e in live.pipeline.trading if isinstance(e, Fill)}
    clean_fills = {e.client_order_id: (e.price, e.date) for e in clean.pipeline.trading if isinstance(e, Fill)}
    both = fills.keys() & clean_fills.keys()
    assert len(both) > 0.8 * len(clean_fills)
    assert {k: fills[k] for k in both} == {k: clean_fills[k] for k in both}


def test_no_key_or_secret_in_any_log_line_or_event(seasons: Any) -> None:
    _, live, records = seasons
    events = [*live.published, *live.pipeline.forecasts, *live.pipeline.trading]
    texts = [*records, *(encode(e).decode() for e in events), *(p.error or "" for _, p in live.polls)]
    for secret in (DATA_KEY, DATA_SECRET, RED_KEY, RED_SECRET, BLUE_KEY, BLUE_SECRET):
        assert not [t for t in texts if secret in t], secret
    assert any("Apca-Api-Key-Id: ***" in t for t in records)  # the echoing errors were logged, scrubbed


def test_a_yahoo_season_publishes_the_replays_bars_too() -> None:
    """The same season's bars through the scripted Yahoo (settle 2 h, an outage of one poll)."""
    truth = rows()
    clock = ReplayClock(ny(WARMUP[-1], 20))
    market = Timeline(truth, CAL)
    for symbol, day in REVISED:
        market.first_print(symbol, day, until=ny(CAL.offset(day, 1), 8))
    market.skip(*MISSED, until=ny(CAL.offset(MISSED[1], 1), 19))  # after the next day's 18:00 settle
    yahoo = ScriptedYahoo(market, clock)
    published = Published()
    for row in truth:
        if row.date in WARMUP:
            published.add(replayed(row))
    sink = Sink()
    producer = LiveProducer(YFinanceSource(CAL, yahoo, backoff=NO_WAIT), sink, ARENA.symbols, CAL, clock, published)
    polls = []
    for n, day in enumerate(SEASON):
        if n == 25:
            yahoo.unreachable(4)
        for moment in (ny(day, 12), ny(day, 16, 5), CAL.close_time(day) + timedelta(hours=2)):  # partial, settling
            clock.set(moment)
            polls.append(producer.poll())
    events = [o.event for o in sink.sent]
    assert all(isinstance(e, Bar | BarRevision) for e in events)  # nothing dead-lettered
    bars = [e for e in events if isinstance(e, Bar)]
    for symbol in ARENA.symbols:
        assert [b.date for b in bars if b.symbol == symbol] == SEASON
    truth_values = {(r.symbol, r.date): (r.open, r.high, r.low, r.close, float(r.volume)) for r in truth}
    assert effective(events) == {k: v for k, v in truth_values.items() if k[1] in SEASON}
    assert {(e.bar.symbol, e.bar.date) for e in events if isinstance(e, BarRevision)} == REVISED
    assert [p.error[:22] for p in polls if p.error] == ["yfinance unreachable: "]
    assert any("AMZN" in p.paused for p in polls)
