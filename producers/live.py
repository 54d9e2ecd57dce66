"""The live daily producer: publish each session's final bar once, in session order, per symbol.

Every poll asks the :class:`~redblue.core.sources.BarSource` for the sessions that are final at
its vendor (the calendar's close, early closes included, plus the vendor's settle delay) and

1. **revisions**: re-reads the ``watch`` newest published sessions of each symbol; a vendor
   value that changed since it was published becomes a :class:`~schemas.BarRevision` on the
   bars topic (never a second, conflicting bar);
2. **new bars, without gaps**: publishes a symbol's sessions strictly in calendar order. A
   session the vendor does not serve is asked for again at once; if it is still missing (or
   its row was rejected), the symbol **pauses**: nothing later is published, since a model
   would read the two-day move as one day's, and :attr:`Poll.paused` says why. Every poll asks
   again, and the symbol resumes as soon as the session arrives;
3. **bad rows** are dead-lettered once per run (not on every poll), with the reason;
4. **an unreachable vendor** is not bad data: the poll reports :attr:`Poll.error`
   ("yfinance unreachable: ...") and publishes and dead-letters nothing.

State lives in the run's bars and dead-letter topics (:class:`producers.published.Published`),
so a restarted producer resumes exactly where it stopped. Time comes from the injected clock only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from producers.published import Published, revision
from redblue.adapters.kafka import Outgoing
from redblue.core.calendar import TradingCalendar
from redblue.core.clock import Clock
from redblue.core.sources import BarSource, Rejected, SourceError
from schemas import Bar, BarRevision, DeadLetter
from schemas.topics import BARS, DEADLETTER

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where events go (:class:`redblue.adapters.kafka.EventProducer` in production)."""

    def send(self, out: Outgoing) -> None: ...

    def flush(self, timeout: float = 30.0) -> None: ...


@dataclass(frozen=True)
class Poll:
    """What one poll did."""

    sent: list[Bar] = field(default_factory=list)
    revised: list[BarRevision] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)  # dead-lettered now (each row once per run)
    paused: dict[str, str] = field(default_factory=dict)  # symbol -> why its next bars are held back
    error: str | None = None  # the source failed (e.g. unreachable): nothing was learned


class LiveProducer:
    """Publishes the final bars of ``symbols`` onto a run's bars topic, each session once and in order.

    ``backfill``: how many sessions a symbol never published before starts with; ``watch``: how
    many of a symbol's newest published sessions are re-read for revisions (Yahoo may revise a
    close until the next open and a volume until the second-next: 2).
    """

    def __init__(
        self,
        source: BarSource,
        producer: Sink,
        symbols: Sequence[str],
        calendar: TradingCalendar,
        clock: Clock,
        published: Published | None = None,
        *,
        backfill: int = 5,
        watch: int = 2,
    ) -> None:
        self._source, self._producer, self._symbols = source, producer, tuple(symbols)
        self._calendar, self._clock = calendar, clock
        self._published = published or Published()
        self._backfill, self._watch = backfill, watch
        self._asked: dict[tuple[str, date], int] = {}

    def poll(self) -> Poll:
        """Fetch the final sessions, publish revisions and new bars, dead-letter new bad rows."""
        now = self._clock()
        final = self._calendar.closed_by(now, self._source.settle)
        if final is None:
            return Poll()
        try:
            bars, rejected = self._source.fetch(self._symbols, self._start(final), final, now)
        except SourceError as err:
            log.info("poll at %s: %s", now, err)  # reported in Poll.error
            return Poll(error=str(err))
        fetched = _Fetched(now, {(b.symbol, b.date): b for b in bars}, rejected)
        self._dead_letter(fetched, rejected)
        revised = [r for s in self._symbols for r in self._revisions(s, fetched)]
        paused = {s: why for s in self._symbols if (why := self._advance(s, fetched, final))}
        for why in paused.values():
            log.info("%s", why)  # reported in Poll.paused
        self._producer.flush()
        return Poll(fetched.sent, revised, fetched.letters, paused)

    def run(self, stop: threading.Event, interval: float, report: Callable[[Poll], None]) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set; nothing a poll raises stops the loop."""
        while not stop.is_set():
            try:
                report(self.poll())
            except Exception as err:  # e.g. Kafka briefly gone: the next poll tries again
                log.error("poll failed: %s", err)
            stop.wait(interval)

    # -- what to ask for ----------------------------------------------------------------------

    def _start(self, final: date) -> date:
        """The oldest session needed: a watched one, the one after a symbol's last, or the backfill."""
        return min(self._first_needed(s, final) for s in self._symbols)

    def _first_needed(self, symbol: str, final: date) -> date:
        recent = self._published.recent(symbol, self._watch)
        if not recent:
            return self._calendar.offset(final, 1 - self._backfill)
        return min(recent[0].date, self._calendar.next_session(recent[-1].date))

    def _expected(self, symbol: str, final: date) -> list[date]:
        """The sessions of ``symbol`` to publish next, in order, up to ``final``."""
        last = self._published.last(symbol)
        first = self._calendar.next_session(last) if last else self._calendar.offset(final, 1 - self._backfill)
        return self._calendar.sessions(first, final) if first <= final else []

    # -- revisions, new bars, gaps ------------------------------------------------------------

    def _revisions(self, symbol: str, fetched: _Fetched) -> list[BarRevision]:
        found = []
        for bar in self._published.recent(symbol, self._watch):
            latest = fetched.bars.get((symbol, bar.date))
            change = revision(bar, latest) if latest else None
            if change is not None:
                self._send(change.bar, change)
                found.append(change)
        return found

    def _advance(self, symbol: str, fetched: _Fetched, final: date) -> str | None:
        """Publish ``symbol``'s next sessions in order; at the first that stays missing, say why."""
        for day in self._expected(symbol, final):
            bar = fetched.bars.get((symbol, day)) or self._ask_again(symbol, day, fetched)
            if bar is None:
                return self._paused(symbol, day, fetched.rejected)
            self._send(bar, bar)
            fetched.sent.append(bar)
            self._asked.pop((symbol, day), None)
        return None

    def _ask_again(self, symbol: str, day: date, fetched: _Fetched) -> Bar | None:
        """Re-request one missing session (a vendor skips a day now and then)."""
        self._asked[(symbol, day)] = self._asked.get((symbol, day), 0) + 1
        try:
            bars, again = self._source.fetch([symbol], day, day, fetched.now)
        except SourceError as err:
            fetched.rejected.append(Rejected(symbol, day, f"asking again failed: {err}"))
            return None
        bad = [r for r in again if r.date is not None]  # "no data" for one day: still missing, not bad
        fetched.rejected.extend(bad)
        self._dead_letter(fetched, bad)
        return next((b for b in bars if (b.symbol, b.date) == (symbol, day)), None)

    def _paused(self, symbol: str, day: date, rejected: list[Rejected]) -> str:
        reasons = [r.reason for r in rejected if r.symbol == symbol and r.date in (day, None)]
        why = reasons[-1] if reasons else f"the source has no bar for {symbol} {day}"
        last = self._published.last(symbol)
        held = f"nothing after {last} is published" if last else "nothing is published"
        asked = self._asked.get((symbol, day), 0)
        return f"{symbol} paused at {day}: {why} (asked {asked}x); {held} until the source serves {day}"

    # -- sending ------------------------------------------------------------------------------

    def _send(self, bar: Bar, event: Bar | BarRevision) -> None:
        self._producer.send(Outgoing(BARS, bar.symbol, event))
        self._published.add(bar)

    def _dead_letter(self, fetched: _Fetched, rejected: list[Rejected]) -> None:
        for item in rejected:
            if (item.symbol, item.date, item.reason) in self._published.letters:
                continue
            self._producer.send(Outgoing(DEADLETTER, item.symbol, _letter(item, fetched.now)))
            self._published.letters.add((item.symbol, item.date, item.reason))
            fetched.letters.append(item)


@dataclass
class _Fetched:
    """One poll's answer from the source and what the poll did with it so far."""

    now: datetime
    bars: dict[tuple[str, date], Bar]
    rejected: list[Rejected]
    sent: list[Bar] = field(default_factory=list)
    letters: list[Rejected] = field(default_factory=list)


def _letter(item: Rejected, now: datetime) -> DeadLetter:
    original = json.dumps({"symbol": item.symbol, "date": item.date and item.date.isoformat()}).encode()
    return DeadLetter.of(
        stage="producer", topic="source", partition=0, offset=0, key=item.symbol.encode(), value=original,
        reason=item.reason, produced_at=now,
    )  # fmt: skip
