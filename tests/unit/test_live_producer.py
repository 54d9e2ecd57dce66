"""The live producer publishes final bars only, each session once and in order, through vendor faults.

The vendors are stand-ins (:mod:`tests.standins`) serving a timeline built from the bundled bars:
a partial row during the session, a row without the closing auction right after the close, late
revisions, missing sessions; time is a replayed clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta

import pytest

from producers.live import LiveProducer, Poll
from producers.published import Published
from redblue.adapters.alpaca.market_data import AlpacaBarSource
from redblue.adapters.yfinance import YFinanceSource
from redblue.app.commands import poll_text
from redblue.core.bars import DATA_DIR, read_rows, to_bar_fields
from redblue.core.calendar import get_calendar
from redblue.core.retry import NO_WAIT
from redblue.core.sources import Rejected
from schemas import Bar, BarRevision, DeadLetter
from tests.standins.alpaca import KEY, SECRET, AlpacaStandIn
from tests.standins.bus import Sink
from tests.standins.clock import ReplayClock, ny
from tests.standins.market import Timeline
from tests.standins.yahoo import ScriptedYahoo

CAL = get_calendar()
SYMBOLS = ("AAPL", "SAP")
D1, D2, D3, D4 = CAL.sessions(date(2024, 3, 4), date(2024, 3, 7))


def timeline(first: date = date(2024, 2, 1), last: date = date(2024, 3, 29)) -> Timeline:
    rows = [r for s in SYMBOLS for r in read_rows(DATA_DIR, s) if first <= r.date <= last]
    return Timeline(rows, CAL)


def published_until(market: Timeline, day: date) -> Published:
    """What the topic holds when every symbol's bar of ``day`` (and only that) was published."""
    published = Published()
    for symbol in SYMBOLS:
        fields = to_bar_fields(market.final(symbol, day), CAL, "yfinance")
        published.add(Bar.model_validate({**fields, "produced_at": CAL.close_time(day) + timedelta(hours=2)}))
    return published


class Setup:
    def __init__(
        self, published: Published | None = None, start: datetime | None = None, market: Timeline | None = None
    ) -> None:
        start = start or ny(D1, 9)
        self.clock = ReplayClock(start)
        self.market = market or timeline()
        if published is None:
            published = published_until(self.market, CAL.previous_session(start.date()))
        self.yahoo = ScriptedYahoo(self.market, self.clock)
        self.sink = Sink()
        self.published = published
        source = YFinanceSource(CAL, self.yahoo, backoff=NO_WAIT)
        self.live = LiveProducer(source, self.sink, SYMBOLS, CAL, self.clock, published)

    def poll_at(self, moment: datetime) -> Poll:
        self.clock.set(moment)
        return self.live.poll()


def dated(bars: Sequence[object]) -> list[tuple[str, date]]:
    return [(b.symbol, b.date) for b in bars if isinstance(b, Bar)]


def final(market: Timeline, symbol: str, day: date) -> tuple[float, ...]:
    r = market.final(symbol, day)
    return (r.open, r.high, r.low, r.close, float(r.volume))


def values(bar: Bar) -> tuple[float, ...]:
    return (bar.open, bar.high, bar.low, bar.close, float(bar.volume))


# -- final bars only -----------------------------------------------------------------------


def test_yahoo_bars_are_published_once_settled_never_partial_or_before_the_auction() -> None:
    s = Setup()
    for moment in (ny(D1, 12), ny(D1, 16, 5), ny(D1, 17, 59)):  # partial, without the auction, settling
        assert s.poll_at(moment).sent == []
    assert s.yahoo.calls  # it did ask: the vendor's partial rows were there and were not taken

    sent = s.poll_at(ny(D1, 18)).sent
    assert dated(sent) == [("AAPL", D1), ("SAP", D1)]
    assert [values(b) for b in sent] == [final(s.market, sym, D1) for sym in SYMBOLS]
    assert s.poll_at(ny(D1, 18, 15)).sent == []  # polling again publishes nothing twice
    assert dated(s.sink.events()) == [("AAPL", D1), ("SAP", D1)]


def test_half_day_bars_are_published_from_the_early_close_plus_the_settle_delay() -> None:
    black_friday = date(2023, 11, 24)  # the NYSE closes at 13:00
    s = Setup(start=ny(black_friday, 9), market=timeline(date(2023, 11, 1), date(2023, 11, 30)))
    assert s.poll_at(ny(black_friday, 14, 59)).sent == []
    assert dated(s.poll_at(ny(black_friday, 15)).sent) == [("AAPL", black_friday), ("SAP", black_friday)]


@pytest.fixture
def alpaca_data() -> Iterator[tuple[AlpacaStandIn, ReplayClock, Timeline]]:
    clock = ReplayClock(ny(D1, 9))
    market = timeline()
    with AlpacaStandIn(clock, timeline=market) as standin:
        yield standin, clock, market


def test_alpaca_bars_wait_for_the_delayed_feed_to_pass_the_close(
    alpaca_data: tuple[AlpacaStandIn, ReplayClock, Timeline],
) -> None:
    standin, clock, market = alpaca_data
    source = AlpacaBarSource(KEY, SECRET, url_override=standin.url, calendar=CAL, backoff=NO_WAIT)
    live = LiveProducer(source, Sink(), SYMBOLS, CAL, clock, published_until(market, CAL.previous_session(D1)))
    for moment in (ny(D1, 16, 5), ny(D1, 16, 14), ny(D1, 16, 29)):  # the free feed still shows 15:50-16:14
        clock.set(moment)
        assert live.poll().sent == []
    clock.set(ny(D1, 16, 30))
    sent = live.poll().sent
    assert [values(b) for b in sent] == [final(market, sym, D1) for sym in SYMBOLS]
    assert all(b.source == "alpaca" for b in sent)


# -- restart, dead letters -----------------------------------------------------------------


def test_a_restarted_producer_resumes_from_the_topic() -> None:
    first = Setup()
    first.poll_at(ny(D2, 18))
    published = Published.read_back(first.sink.events())
    again = Setup(published, start=ny(D3, 18))
    assert published.last("AAPL") == D2
    assert dated(again.live.poll().sent) == [("AAPL", D3), ("SAP", D3)]
    assert min(start for _, start, _ in again.yahoo.calls) == D1  # the watched sessions, for revisions


class BadRowSource:
    name, settle = "test", timedelta(0)

    def __init__(self, inner: YFinanceSource) -> None:
        self.inner = inner

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        bars, rejected = self.inner.fetch(symbols, start, end, now)
        return bars, [*rejected, Rejected("SAP", D1, "inconsistent bar SAP 2024-03-04")]


def test_a_bad_row_is_dead_lettered_once_also_across_a_restart() -> None:
    s = Setup()
    s.live = LiveProducer(BadRowSource(YFinanceSource(CAL, s.yahoo)), s.sink, SYMBOLS, CAL, s.clock, s.published)
    polls = [s.poll_at(ny(D1, 18, m)) for m in (0, 15, 30)]
    assert [len(p.rejected) for p in polls] == [1, 0, 0]
    (letter,) = s.sink.events(DeadLetter)
    assert isinstance(letter, DeadLetter) and letter.reason == "inconsistent bar SAP 2024-03-04"

    published = Published.read_back(s.sink.events(), s.sink.events(DeadLetter))
    restarted = LiveProducer(BadRowSource(YFinanceSource(CAL, s.yahoo)), s.sink, SYMBOLS, CAL, s.clock, published)
    assert restarted.poll().rejected == []
    assert len(s.sink.events(DeadLetter)) == 1


# -- gaps ------------------------------------------------------------------------------------


def test_a_missing_session_is_asked_again_and_pauses_the_symbol_until_it_comes() -> None:
    s = Setup()
    s.poll_at(ny(D1, 18))
    s.market.skip("AAPL", D2, until=ny(D4, 8))

    poll = s.poll_at(ny(D3, 18))
    assert dated(poll.sent) == [("SAP", D2), ("SAP", D3)]  # AAPL D3 is there, but D2 is not
    assert poll.paused["AAPL"].startswith(f"AAPL paused at {D2}: the source has no bar for AAPL {D2} (asked 1x)")
    assert f"nothing after {D1} is published" in poll.paused["AAPL"]
    assert ((("AAPL",), D2, D2)) in s.yahoo.calls  # re-requested at once
    assert s.sink.events(DeadLetter) == []  # missing is not bad data

    assert "(asked 2x)" in s.poll_at(ny(D3, 18, 15)).paused["AAPL"]
    resumed = s.poll_at(ny(D4, 9))
    assert dated(resumed.sent) == [("AAPL", D2), ("AAPL", D3)] and resumed.paused == {}
    aapl = [d for sym, d in dated(s.sink.events()) if sym == "AAPL"]
    assert aapl == [D1, D2, D3]  # never a bar after a gap: no two-day return


def test_a_rejected_session_pauses_its_symbol_with_the_reason() -> None:
    s = Setup()
    s.live = LiveProducer(BadRowSource(YFinanceSource(CAL, s.yahoo)), s.sink, SYMBOLS, CAL, s.clock, s.published)
    s.market.skip("SAP", D1)  # the vendor's row for SAP D1 is unusable (BadRowSource) and then absent
    poll = s.poll_at(ny(D2, 18))
    assert ("SAP", D2) not in dated(poll.sent)
    assert "SAP paused at 2024-03-04: inconsistent bar SAP 2024-03-04" in poll.paused["SAP"]


# -- revisions -------------------------------------------------------------------------------


def test_a_late_revision_is_published_as_a_bar_revision() -> None:
    s = Setup()
    first = s.market.first_print("AAPL", D1, until=ny(D2, 8))
    (aapl, _) = s.poll_at(ny(D1, 18)).sent
    assert aapl.close == first.close

    poll = s.poll_at(ny(D2, 9))
    (revision,) = poll.revised
    assert revision.previous == aapl
    assert values(revision.bar) == final(s.market, "AAPL", D1)
    assert "close" in revision.changed
    assert s.sink.sent[-1].event == revision and s.sink.sent[-1].key == "AAPL"
    assert s.poll_at(ny(D2, 9, 15)).revised == []  # once
    assert poll_text(poll) == f"sent nothing new\n  revised AAPL {D1}: {', '.join(revision.changed)}"


def test_only_the_watched_sessions_are_read_again() -> None:
    s = Setup()
    for day in (D1, D2, D3):
        s.poll_at(ny(day, 18))
    s.poll_at(ny(D3, 18, 15))
    assert s.yahoo.calls[-1][1:] == (D2, D3)  # the 2 newest published sessions, for revisions
    assert s.sink.events(BarRevision) == []


# -- an unreachable vendor -------------------------------------------------------------------


def test_an_unreachable_vendor_is_reported_not_dead_lettered() -> None:
    s = Setup()
    s.yahoo.unreachable(4)  # all 4 attempts of one poll
    poll = s.poll_at(ny(D1, 18))
    assert poll.error is not None and poll.error.startswith("yfinance unreachable: DNSError")
    assert poll.error.endswith("(after 4 attempts)")
    assert s.sink.sent == []
    assert poll_text(poll) == f"nothing sent: {poll.error}"
    assert dated(s.poll_at(ny(D1, 18, 15)).sent) == [("AAPL", D1), ("SAP", D1)]  # the next poll asks again


def test_a_short_outage_is_ridden_out_by_the_retries() -> None:
    s = Setup()
    s.yahoo.unreachable(3)
    assert dated(s.poll_at(ny(D1, 18)).sent) == [("AAPL", D1), ("SAP", D1)]
