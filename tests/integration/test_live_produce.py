"""The live producer against the real Kafka: a brand-new run, then a restart that resumes from the topics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from producers.live import LiveProducer
from producers.published import Published
from redblue.adapters.kafka import EventProducer, read_topic
from redblue.adapters.yfinance import YFinanceSource
from redblue.app.provision import prepare_run, reset_run
from redblue.core.bars import DATA_DIR, read_rows
from redblue.core.calendar import get_calendar
from redblue.core.retry import NO_WAIT
from redblue.core.settings import Settings
from schemas import Bar, BarRevision, DeadLetter
from schemas.topics import BARS, DEADLETTER
from tests.standins.clock import ReplayClock, ny
from tests.standins.market import Timeline
from tests.standins.yahoo import ScriptedYahoo

pytestmark = pytest.mark.integration
CAL = get_calendar()
SYMBOLS = ("AAPL", "SAP")
D1, D2 = date(2024, 3, 4), date(2024, 3, 5)


@pytest.fixture
def run(settings: Settings, run_id: str) -> Iterator[str]:
    yield run_id
    reset_run(settings, run_id)


def test_a_new_run_is_read_back_empty_and_a_restart_resumes_from_its_topics(settings: Settings, run: str) -> None:
    prepare_run(settings, run)  # the admin's part; everything below runs as the producer, like `produce`
    settings = settings.for_service("producer")
    # A topic created a moment ago may have no partition leader yet: reading it must wait, not fail.
    assert read_topic(settings, run, BARS) == [] and read_topic(settings, run, DEADLETTER) == []

    market = Timeline([r for s in SYMBOLS for r in read_rows(DATA_DIR, s) if date(2024, 2, 20) <= r.date <= D2], CAL)
    market.first_print("AAPL", D1, until=ny(D2, 8))
    clock = ReplayClock(ny(D1, 18))
    source = YFinanceSource(CAL, ScriptedYahoo(market, clock), backoff=NO_WAIT)
    first = LiveProducer(source, EventProducer(settings, run), SYMBOLS, CAL, clock, backfill=3)
    days = [date(2024, 2, 29), date(2024, 3, 1), D1]  # the 3 sessions of the backfill, each symbol in order
    assert [(b.symbol, b.date) for b in first.poll().sent] == [(s, d) for s in SYMBOLS for d in days]

    clock.set(ny(D2, 18))
    published = Published.read_back(read_topic(settings, run, BARS), read_topic(settings, run, DEADLETTER))
    restarted = LiveProducer(source, EventProducer(settings, run), SYMBOLS, CAL, clock, published)
    poll = restarted.poll()
    assert [(b.symbol, b.date) for b in poll.sent] == [("AAPL", D2), ("SAP", D2)]
    assert [(r.bar.symbol, r.bar.date) for r in poll.revised] == [("AAPL", D1)]

    events = read_topic(settings, run, BARS)
    assert sum(isinstance(e, Bar) for e in events) == 8 and sum(isinstance(e, BarRevision) for e in events) == 1
    assert not [e for e in read_topic(settings, run, DEADLETTER) if isinstance(e, DeadLetter)]
