"""When each symbol takes part in a run: symbols whose data start or end at different dates.

A replay gives every symbol its own :class:`Span`: its warm-up fills the processor's window, then
it is forecast, traded and scored from its own first target day to its own last day. The
processor, the trader and the scorer each get the spans of a simulation (a live run has none:
every symbol takes part every day).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from redblue.core.errors import RedblueError


class SpanError(RedblueError, ValueError):
    """A span list that cannot be read (e.g. a malformed ``--spans`` argument)."""


@dataclass(frozen=True)
class Span:
    """One symbol's part in a run, in trading days (inclusive).

    ``warmup_first``..``first_as_of``: the bars that fill its window (the last of them is the
    first as-of day); ``first_target``..``last``: the days its forecasts target and are scored
    on. Its positions are marked from ``first_as_of`` to ``last``.
    """

    warmup_first: date
    first_as_of: date
    first_target: date
    last: date

    def marks(self, day: date) -> bool:
        """Whether the symbol's position is marked at ``day``'s close."""
        return self.first_as_of <= day <= self.last

    def targets(self, day: date) -> bool:
        """Whether a forecast may target ``day``."""
        return self.first_target <= day <= self.last


Spans = Mapping[str, Span]


def format_spans(spans: Spans) -> str:
    """``SYMBOL=warmup_first/first_as_of/first_target/last`` joined by commas (for a command line)."""
    return ",".join(
        f"{symbol}={s.warmup_first}/{s.first_as_of}/{s.first_target}/{s.last}" for symbol, s in sorted(spans.items())
    )


def parse_spans(text: str) -> dict[str, Span]:
    """The inverse of :func:`format_spans`; raises :class:`SpanError` naming the bad part."""
    spans: dict[str, Span] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        symbol, _, days = part.partition("=")
        try:
            first, as_of, target, last = (date.fromisoformat(d) for d in days.split("/"))
        except ValueError:
            raise SpanError(f"bad span {part!r}: use SYMBOL=WARMUP_FIRST/FIRST_AS_OF/FIRST_TARGET/LAST") from None
        spans[symbol] = Span(first, as_of, target, last)
    return spans
