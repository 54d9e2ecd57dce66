"""The scorer service: projects a run's forecasts, orders and fills topics into the Redis leaderboard.

Its state lives in Redis (the projection, written idempotently) and in memory (forecasts waiting
for their target bar); it re-reads its topics from the beginning on every start to rebuild the
latter. It also writes the arena into the run's description (:mod:`consumers.runs`), so the
leaderboard can be read from Redis alone.
"""

from __future__ import annotations

import threading

from consumers.leaderboard import Scoreboard
from redblue.adapters.kafka import ConsumerStats, Outgoing, consume, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.core.arena import Arena
from redblue.core.runs import note_arena
from redblue.core.settings import Settings
from redblue.core.store import LeaderboardStore
from schemas import BarProcessed, BarRevision, Event, Fill, Forecast, Order, PositionMark
from schemas.topics import FILLS, FORECASTS, ORDERS

TOPICS = (FORECASTS, ORDERS, FILLS)


def run_scorer(
    settings: Settings, run: str, arena: Arena, stop: threading.Event, store: LeaderboardStore | None = None
) -> ConsumerStats:
    """Consume until ``stop`` is set, from the topics' beginning on every start.

    The leaderboard is idempotent, so re-reading is harmless and a restarted scorer recovers the
    forecasts that were waiting for their target bar.
    """
    store = store or RedisStore.from_settings(settings, run)
    note_arena(store, arena)
    board = Scoreboard(store, arena)

    def handle(event: Event) -> list[Outgoing]:
        board.handle(event)
        return []

    return consume(
        settings,
        run,
        group=f"redblue-scorer-{run}",
        specs=list(TOPICS),
        expect=(Forecast, BarProcessed, BarRevision, Order, Fill, PositionMark),
        handle=handle,
        stop=stop,
        stage="scorer",
        from_start=True,  # pending forecasts live in memory: a restarted scorer re-reads (idempotently)
    )


def rebuild(settings: Settings, run: str, arena: Arena) -> int:
    """Rebuild a run's leaderboard from its topics alone (after Redis lost it); return events replayed.

    The run's keys are deleted first (its description is kept); every event of the forecasts,
    orders and fills topics is then fed to a fresh :class:`Scoreboard` in partition order.
    Undecodable messages (already dead-lettered when they were first consumed) are skipped.
    """
    store = RedisStore.from_settings(settings, run)
    description = store.meta()
    store.delete_run()
    store.set_meta(description)
    note_arena(store, arena)
    board = Scoreboard(store, arena)
    replayed = 0
    for spec in TOPICS:
        for event in read_topic(settings, run, spec):
            if isinstance(event, Event):
                board.handle(event)
                replayed += 1
    store.close()
    return replayed
