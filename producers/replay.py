"""Historical replay: emits a simulation's bars onto the run's bars topic, in market-time order.

A simulation "START + N trading days" (or "START to END") scores exactly N target days per
symbol and model, START being the first. The replay therefore emits the ``window`` warm-up bars
before START (the last of them is the first as-of day) and then the bars of the N target days.
A symbol whose data begin later enters with its own warm-up once its data give one (its first
target is then later than START); one whose data end earlier leaves at its last bar.
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
from redblue.core.spans import Span
from schemas import Bar
from schemas.topics import BARS


@dataclass(frozen=True)
class ReplayPlan:
    """What a simulation replays: each symbol's span, the run's bounds and every row in emit order.

    ``first_target``/``last_target``, ``first_as_of`` and ``warmup_first`` are the earliest (or
    latest) over the symbols; ``spans`` says when each symbol takes part.
    """

    first_target: date
    last_target: date
    first_as_of: date
    warmup_first: date
    rows: tuple[Row, ...]
    spans: dict[str, Span]

    @property
    def days(self) -> int:
        """Target trading days of the run (of any symbol)."""
        return len({r.date for r in self.rows if r.date >= self.first_target})

    @property
    def uniform(self) -> bool:
        """Whether every symbol takes part over the whole run (no late entry or early exit)."""
        return len(set(self.spans.values())) <= 1


def plan_replay(
    data_dir: Path,
    symbols: tuple[str, ...],
    start: date,
    days: int | None,
    window: int,
    calendar: TradingCalendar,
    *,
    end: date | None = None,
) -> ReplayPlan:
    """Each symbol's span within ``start`` + ``days`` trading days (or ``start`` to ``end``) and
    its rows (every session of the span and its warm-up present), ordered by (day, symbol).

    A symbol whose data begin later than ``window`` sessions before ``start`` enters once its
    data give it a full warm-up; one whose data end earlier leaves at its last bar.
    """
    try:
        last = _last_target(start, days, end, calendar)
    except CalendarError as err:
        raise DataError(f"{err}; {coverage(data_dir, symbols)}") from err
    rows: list[Row] = []
    spans: dict[str, Span] = {}
    for symbol in symbols:
        data = read_rows(data_dir, symbol, _earliest(start, window, calendar), last)  # only what the run can use
        spans[symbol] = _span(symbol, data, start, last, window, calendar)
        rows.extend(window_rows(data, spans[symbol].warmup_first, spans[symbol].last, calendar))
    rows.sort(key=lambda r: (r.date, r.symbol))
    first = min(s.first_target for s in spans.values())
    return ReplayPlan(
        first_target=first,
        last_target=max(s.last for s in spans.values()),
        first_as_of=min(s.first_as_of for s in spans.values()),
        warmup_first=min(s.warmup_first for s in spans.values()),
        rows=tuple(rows),
        spans=spans,
    )


def _last_target(start: date, days: int | None, end: date | None, calendar: TradingCalendar) -> date:
    """The run's last target day; a date outside the calendar raises :class:`CalendarError`."""
    if (days is None) == (end is None):
        raise DataError("give either a number of trading days or an end date")
    if days is not None and days < 1:
        raise DataError(f"--days must be at least 1 (got {days})")
    if not calendar.is_session(start):
        following = calendar.next_session(start)
        raise DataError(f"{start} is not a {calendar.name} trading day; the next one is {following}")
    if days is not None:
        return calendar.offset(start, days - 1)
    assert end is not None
    sessions = calendar.sessions(start, end)
    if not sessions:
        raise DataError(f"--end {end} is before --start {start}")
    return sessions[-1]


def _earliest(start: date, window: int, calendar: TradingCalendar) -> date:
    """The first day a warm-up can begin: ``window`` sessions before ``start``."""
    try:
        return calendar.offset(start, -window)
    except CalendarError as err:
        raise DataError(str(err)) from err


def _span(symbol: str, data: list[Row], start: date, last: date, window: int, calendar: TradingCalendar) -> Span:
    """The symbol's part: its warm-up begins ``window`` sessions before ``start`` or at its first bar.

    ``data`` are the symbol's rows from that earliest warm-up day to ``last``.
    """
    earliest = _earliest(start, window, calendar)
    try:
        first_target = (
            calendar.offset(max(earliest, calendar.first_on_or_after(data[0].date)), window) if data else None
        )
    except CalendarError as err:
        raise DataError(f"{symbol}: {err}") from err
    if first_target is None or first_target > min(last, data[-1].date):
        covered = f"{data[0].date} .. {data[-1].date}" if data else "none"
        raise DataError(
            f"{symbol}: its data between {earliest} and {last} ({covered}) leave no target day "
            f"after a {window}-bar warm-up"
        )
    warmup_first = calendar.offset(first_target, -window)
    end = min(last, data[-1].date)
    return Span(warmup_first, calendar.offset(first_target, -1), first_target, calendar.sessions(first_target, end)[-1])


def replay(
    producer: EventProducer,
    rows: tuple[Row, ...] | list[Row],
    calendar: TradingCalendar,
    clock: Clock,
    source: str = "replay",
    progress: Callable[[int, int], None] | None = None,
    block: int = 500,
) -> int:
    """Produce one validated Bar per row (keyed by symbol); return how many were sent.

    The rows go out ``block`` at a time, the bars of one partition of a block in one message
    (a batch, see :meth:`~redblue.adapters.kafka.EventProducer.send_many`): each symbol's bars
    stay in market-time order, and the processor gets them a stretch at a time.
    """
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        bars = [Bar.model_validate({**to_bar_fields(row, calendar, source), "produced_at": clock()}) for row in chunk]
        producer.send_many([Outgoing(BARS, bar.symbol, bar) for bar in bars], revalidate=False)  # validated above
        if progress is not None:
            progress(start + len(chunk), len(rows))
    producer.flush()
    return len(rows)
