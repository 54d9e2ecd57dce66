"""Historical replay: emits a simulation's bars onto the run's bars topic, in market-time order.

A simulation "START + N trading days" scores exactly N target days per symbol and model,
START being the first. The replay therefore emits the ``window`` warm-up bars before START
(the last of them is the first as-of day) and then the bars of the N target days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from redblue.adapters.kafka import EventProducer, Outgoing
from redblue.core.bars import DataError, Row, coverage, read_rows, to_bar_fields, window_rows
from redblue.core.calendar import CalendarError, TradingCalendar
from redblue.core.clock import Clock
from schemas import Bar
from schemas.topics import BARS


@dataclass(frozen=True)
class ReplayPlan:
    """What a simulation replays: the target days, the warm-up and every row in emit order."""

    first_target: date
    last_target: date
    first_as_of: date
    warmup_first: date
    rows: tuple[Row, ...]

    @property
    def days(self) -> int:
        return len({r.date for r in self.rows if r.date >= self.first_target})


def plan_replay(
    data_dir: Path, symbols: tuple[str, ...], start: date, days: int, window: int, calendar: TradingCalendar
) -> ReplayPlan:
    """Check the data covers the run (every session present) and order the rows by (day, symbol)."""
    if days < 1:
        raise DataError(f"--days must be at least 1 (got {days})")
    try:
        if not calendar.is_session(start):
            following = calendar.next_session(start)
            raise DataError(f"{start} is not a {calendar.name} trading day; the next one is {following}")
        last = calendar.offset(start, days - 1)
        warmup_first = calendar.offset(start, -window)
    except CalendarError as err:
        raise DataError(f"{err}; {coverage(data_dir, symbols)}") from err
    rows: list[Row] = []
    for symbol in symbols:
        rows.extend(window_rows(read_rows(data_dir, symbol), warmup_first, last, calendar))
    rows.sort(key=lambda r: (r.date, r.symbol))
    return ReplayPlan(start, last, calendar.offset(start, -1), warmup_first, tuple(rows))


def replay(
    producer: EventProducer,
    rows: tuple[Row, ...] | list[Row],
    calendar: TradingCalendar,
    clock: Clock,
    source: str = "replay",
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Produce one validated Bar per row (keyed by symbol); return how many were sent."""
    for n, row in enumerate(rows, start=1):
        bar = Bar.model_validate({**to_bar_fields(row, calendar, source), "produced_at": clock()})
        producer.send(Outgoing(BARS, row.symbol, bar))
        if progress is not None:
            progress(n, len(rows))
    producer.flush()
    return len(rows)
