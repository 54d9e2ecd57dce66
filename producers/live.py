"""The live daily producer: after each session's close, emit every symbol's new bar once.

It asks a :class:`redblue.core.sources.BarSource` for the recent sessions, keeps only bars newer
than what the run's bars topic already holds (so a restart or a second poll emits nothing
twice), and dead-letters rows the source could not turn into bars, with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from redblue.adapters.kafka import Outgoing
from redblue.core.calendar import TradingCalendar
from redblue.core.clock import Clock
from redblue.core.sources import BarSource, Rejected
from schemas import Bar, DeadLetter
from schemas.topics import BARS, DEADLETTER

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where events go (:class:`redblue.adapters.kafka.EventProducer` in production)."""

    def send(self, out: Outgoing) -> None: ...

    def flush(self, timeout: float = 30.0) -> None: ...


@dataclass(frozen=True)
class Poll:
    sent: list[Bar]
    rejected: list[Rejected]


class LiveProducer:
    """Emits closed sessions' bars of ``symbols`` onto a run's bars topic, each exactly once."""

    def __init__(
        self,
        source: BarSource,
        producer: Sink,
        symbols: Sequence[str],
        calendar: TradingCalendar,
        clock: Clock,
        last_emitted: dict[str, date],
        backfill: int = 5,
    ) -> None:
        self._source, self._producer, self._symbols = source, producer, tuple(symbols)
        self._calendar, self._clock = calendar, clock
        self._last = dict(last_emitted)
        self._backfill = backfill

    def poll(self) -> Poll:
        """Fetch the recent sessions and emit what is new; dead-letter what the source rejected."""
        now = self._clock()
        end = now.date()
        start = self._start(end)
        bars, rejected = self._source.fetch(self._symbols, start, end, now)
        new = [b for b in bars if b.date > self._last.get(b.symbol, date.min)]
        for bar in new:
            self._producer.send(Outgoing(BARS, bar.symbol, bar))
            self._last[bar.symbol] = bar.date
        for item in rejected:
            self._producer.send(Outgoing(DEADLETTER, item.symbol, _letter(item, now)))
        self._producer.flush()
        return Poll(new, rejected)

    def _start(self, end: date) -> date:
        """From the day after the oldest last-emitted bar, or ``backfill`` sessions back."""
        known = [self._last.get(s) for s in self._symbols]
        if all(known):
            return min(d for d in known if d) + timedelta(days=1)
        return end - timedelta(days=2 * self._backfill + 7)

    def run(self, stop: threading.Event, interval: float, report: Callable[[Poll], None]) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                report(self.poll())
            except Exception as err:  # a failed poll (vendor down) is retried at the next interval
                log.error("poll failed: %s", err)
            stop.wait(interval)


def last_dates(bars: Sequence[object]) -> dict[str, date]:
    """The newest bar date per symbol among events read back from a bars topic."""
    last: dict[str, date] = {}
    for event in bars:
        if isinstance(event, Bar) and event.date > last.get(event.symbol, date.min):
            last[event.symbol] = event.date
    return last


def _letter(item: Rejected, now: datetime) -> DeadLetter:
    original = json.dumps({"symbol": item.symbol, "date": item.date and item.date.isoformat()}).encode()
    return DeadLetter.of(
        stage="producer", topic="source", partition=0, offset=0, key=item.symbol.encode(), value=original,
        reason=item.reason, produced_at=now,
    )  # fmt: skip
