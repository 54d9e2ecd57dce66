"""The scorer service: projects a run's forecasts, orders and fills topics into the Redis leaderboard.

Its state lives in Redis (the projection, written idempotently) and in memory (forecasts waiting
for their target bar); it re-reads its topics from the beginning on every start to rebuild the
latter. It also writes the arena into the run's description (:mod:`consumers.runs`), so the
leaderboard can be read from Redis alone.
"""

from __future__ import annotations

import threading
from datetime import date

from consumers.leaderboard import Scoreboard
from redblue.adapters.kafka import ConsumerStats, Outgoing, consume, read_topics
from redblue.adapters.redis_store import RedisStore
from redblue.core.access import scorer_group
from redblue.core.arena import Arena
from redblue.core.readiness import announce_ready
from redblue.core.runs import note_arena
from redblue.core.settings import Settings
from redblue.core.spans import Span, Spans
from redblue.core.store import LeaderboardStore
from schemas import BarProcessed, BarRevision, Event, Fill, Forecast, Order, PositionMark, TeamState
from schemas.topics import FILLS, FORECASTS, ORDERS

TOPICS = (FORECASTS, ORDERS, FILLS)


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
    store = store or RedisStore.from_settings(settings, run)
    note_arena(store, arena)
    board = Scoreboard(store, arena, spans)

    def handle(event: Event) -> list[Outgoing]:
        board.handle(event)
        return []

    return consume(
        settings,
        run,
        group=scorer_group(run),
        specs=list(TOPICS),
        expect=(Forecast, BarProcessed, BarRevision, Order, Fill, PositionMark, TeamState),
        handle=handle,
        stop=stop,
        stage="scorer",
        batch=board.batch,  # one Redis transaction per consumed batch
        from_start=True,  # pending forecasts live in memory: a restarted scorer re-reads (idempotently)
        on_ready=lambda: announce_ready(settings.ready_file),  # re-read to the end: the board is whole again
    )


def rebuild(settings: Settings, run: str, arena: Arena) -> int:
    """Rebuild a run's leaderboard from its topics alone (after Redis lost it); return events replayed.

    The run's keys are deleted first (its description is kept); every event of the forecasts,
    orders and fills topics is then fed to a fresh :class:`Scoreboard` in partition order.
    Undecodable messages (already dead-lettered when they were first consumed) are skipped. Each
    symbol's span is taken from its marks.
    """
    topics = read_topics(settings, run, list(TOPICS))
    events = [e for spec in TOPICS for e in topics[spec] if isinstance(e, Event)]
    store = RedisStore.from_settings(settings, run)
    description = store.meta()
    store.delete_run()
    store.set_meta(description)
    note_arena(store, arena)
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
