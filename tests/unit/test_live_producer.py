"""The live producer emits each closed session's bar once and dead-letters what the source rejected."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from producers.live import LiveProducer, last_dates
from redblue.adapters.kafka import Outgoing
from redblue.core.calendar import get_calendar
from redblue.core.sources import Rejected
from schemas import Bar, DeadLetter
from tests.factories import bar

CAL = get_calendar()


class FakeSource:
    """Serves fixed bars, only those of sessions closed by ``now`` (as the real sources do)."""

    def __init__(self, bars: list[Bar], rejected: list[Rejected] | None = None) -> None:
        self.bars, self.rejected = bars, rejected or []
        self.asked: list[tuple[date, date]] = []

    def fetch(self, symbols: Sequence[str], start: date, end: date, now: datetime) -> tuple[list[Bar], list[Rejected]]:
        self.asked.append((start, end))
        closed = [b for b in self.bars if start <= b.date <= end and CAL.close_time(b.date) <= now]
        return closed, self.rejected


class Sink:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, out: Outgoing) -> None:
        self.sent.append(out)

    def flush(self, timeout: float = 30.0) -> None:
        pass


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


BARS = [bar(s, d, 100.0) for d in (date(2024, 3, 4), date(2024, 3, 5)) for s in ("AAPL", "SAP")]


def test_each_bar_once_and_only_after_its_close() -> None:
    sink, clock = Sink(), [at("2024-03-04T20:30:00")]  # 15:30 in New York: March 4 not closed
    live = LiveProducer(FakeSource(BARS), sink, ["AAPL", "SAP"], CAL, lambda: clock[0], {})
    assert live.poll().sent == []
    clock[0] = at("2024-03-04T21:05:00")
    assert [(b.symbol, b.date) for b in live.poll().sent] == [("AAPL", date(2024, 3, 4)), ("SAP", date(2024, 3, 4))]
    assert live.poll().sent == []  # polling again emits nothing twice
    clock[0] = at("2024-03-05T21:05:00")
    assert len(live.poll().sent) == 2
    assert [o.key for o in sink.sent] == ["AAPL", "SAP", "AAPL", "SAP"]


def test_restart_resumes_after_the_last_emitted_bar() -> None:
    source = FakeSource(BARS)
    last = last_dates([b for b in BARS if b.date == date(2024, 3, 4)])
    live = LiveProducer(source, Sink(), ["AAPL", "SAP"], CAL, lambda: at("2024-03-06T12:00:00"), last)
    assert {b.date for b in live.poll().sent} == {date(2024, 3, 5)}
    assert source.asked[0][0] == date(2024, 3, 5)


def test_rejected_rows_are_dead_lettered_with_the_reason() -> None:
    sink = Sink()
    source = FakeSource([], [Rejected("AAPL", date(2024, 3, 4), "missing close")])
    LiveProducer(source, sink, ["AAPL"], CAL, lambda: at("2024-03-05T12:00:00"), {}).poll()
    (letter,) = [o.event for o in sink.sent]
    assert isinstance(letter, DeadLetter) and letter.reason == "missing close" and letter.stage == "producer"
