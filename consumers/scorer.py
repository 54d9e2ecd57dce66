"""The scorer service: projects a run's forecasts and fills topics into the Redis leaderboard."""

from __future__ import annotations

import threading
from datetime import date

from consumers.leaderboard import Scoreboard
from redblue.adapters.kafka import ConsumerStats, Outgoing, consume, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.core.arena import Arena
from redblue.core.settings import Settings
from redblue.core.spans import Span, Spans
from redblue.core.store import LeaderboardStore
from schemas import BarProcessed, Event, Fill, Forecast, PositionMark
from schemas.topics import FILLS, FORECASTS


def run_scorer(
    settings: Settings,
    run: str,
    arena: Arena,
    stop: threading.Event,
    store: LeaderboardStore | None = None,
    spans: Spans | None = None,
) -> ConsumerStats:
    """Consume until ``stop`` is set, from the topics' beginning on every start.

    The leaderboard is idempotent, so re-reading is harmless and a restarted scorer recovers the
    forecasts that were waiting for their target bar. ``spans``: when each symbol takes part
    (a simulation); without them every symbol is expected every day.
    """
    board = Scoreboard(store or RedisStore.from_settings(settings, run), arena, spans)

    def handle(event: Event) -> list[Outgoing]:
        board.handle(event)
        return []

    return consume(
        settings,
        run,
        group=f"redblue-scorer-{run}",
        specs=[FORECASTS, FILLS],
        expect=(Forecast, BarProcessed, Fill, PositionMark),
        handle=handle,
        stop=stop,
        stage="scorer",
        batch=board.batch,  # one Redis transaction per consumed batch
        from_start=True,  # pending forecasts live in memory: a restarted scorer re-reads (idempotently)
    )


def rebuild(settings: Settings, run: str, arena: Arena) -> int:
    """Rebuild a run's leaderboard from its topics alone (after Redis lost it); return events replayed.

    The run's keys are deleted first; every event of the forecasts and fills topics is then fed
    to a fresh :class:`Scoreboard` in partition order. Undecodable messages (already dead-lettered
    when they were first consumed) are skipped. Each symbol's span is taken from its marks.
    """
    events = [e for spec in (FORECASTS, FILLS) for e in read_topic(settings, run, spec) if isinstance(e, Event)]
    store = RedisStore.from_settings(settings, run)
    store.delete_run()
    board = Scoreboard(store, arena, marked_spans(events))
    for start in range(0, len(events), 1000):
        with board.batch():
            for event in events[start : start + 1000]:
                board.handle(event)
    store.close()
    return len(events)


def marked_spans(events: list[Event]) -> dict[str, Span]:
    """Each symbol's span as its position marks show it (first and last marked day).

    Only the marking days are known from the marks; the other days of the span are set to them.
    """
    days: dict[str, list[date]] = {}
    for event in events:
        if isinstance(event, PositionMark):
            days.setdefault(event.symbol, []).append(event.as_of)
    return {s: Span(min(d), min(d), min(d), max(d)) for s, d in days.items()}
