"""What a run's bars topic already holds, as the live producer needs it to resume after a restart.

The topic is the producer's memory: the newest values of every published session (a bar, then
its revisions in order) and the rows already dead-lettered. :meth:`Published.read_back` rebuilds
both from the events read back from the bars and dead-letter topics, so a restarted producer
neither publishes a bar twice, nor misses a revision, nor dead-letters the same row again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import date

from schemas import Bar, BarRevision, DeadLetter
from schemas.events import BAR_VALUES

Letter = tuple[str, date | None, str]  # symbol, session (None: the whole symbol), reason


class Published:
    """The newest published values per (symbol, session), and the dead-lettered rows."""

    def __init__(self) -> None:
        self._bars: dict[str, dict[date, Bar]] = {}
        self.letters: set[Letter] = set()

    @classmethod
    def read_back(cls, events: Iterable[object], letters: Iterable[object] = ()) -> Published:
        """From a bars topic's events in partition order (and the run's dead letters)."""
        published = cls()
        for event in events:
            if isinstance(event, Bar):
                published.add(event)
            elif isinstance(event, BarRevision):
                published.add(event.bar)
        for letter in letters:
            if isinstance(letter, DeadLetter) and letter.stage == "producer":
                published.letters.add(letter_of(letter))
        return published

    def add(self, bar: Bar) -> None:
        self._bars.setdefault(bar.symbol, {})[bar.date] = bar

    def get(self, symbol: str, day: date) -> Bar | None:
        return self._bars.get(symbol, {}).get(day)

    def last(self, symbol: str) -> date | None:
        """The newest published session of ``symbol``."""
        days = self._bars.get(symbol)
        return max(days) if days else None

    def recent(self, symbol: str, n: int) -> list[Bar]:
        """The ``n`` newest published bars of ``symbol``, oldest first."""
        days = sorted(self._bars.get(symbol, {}))[-n:] if n > 0 else []
        return [self._bars[symbol][d] for d in days]


def revision(published: Bar, fetched: Bar) -> BarRevision | None:
    """A revision if the vendor's values for the session differ from what was published."""
    if all(math.isclose(getattr(published, v), getattr(fetched, v), rel_tol=1e-9) for v in BAR_VALUES):
        return None
    return BarRevision(bar=fetched, previous=published, produced_at=fetched.produced_at)


def letter_of(letter: DeadLetter) -> Letter:
    """The (symbol, session, reason) a producer dead letter was written for."""
    original = json.loads(letter.original or b"{}")
    day = original.get("date")
    return (str(original.get("symbol", letter.key or "")), date.fromisoformat(day) if day else None, letter.reason)
