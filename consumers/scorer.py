"""The scorer service: projects a run's forecasts and fills topics into the Redis leaderboard."""

from __future__ import annotations

import threading

from consumers.leaderboard import Scoreboard
from redblue.adapters.kafka import ConsumerStats, Outgoing, consume, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.core.arena import Arena
from redblue.core.settings import Settings
from redblue.core.store import LeaderboardStore
from schemas import BarProcessed, Event, Fill, Forecast, PositionMark
from schemas.topics import FILLS, FORECASTS


def run_scorer(
    settings: Settings, run: str, arena: Arena, stop: threading.Event, store: LeaderboardStore | None = None
) -> ConsumerStats:
    """Consume until ``stop`` is set, from the topics' beginning on every start.

    The leaderboard is idempotent, so re-reading is harmless and a restarted scorer recovers the
    forecasts that were waiting for their target bar.
    """
    board = Scoreboard(store or RedisStore.from_settings(settings, run), arena)

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
        from_start=True,  # pending forecasts live in memory: a restarted scorer re-reads (idempotently)
    )


def rebuild(settings: Settings, run: str, arena: Arena) -> int:
    """Rebuild a run's leaderboard from its topics alone (after Redis lost it); return events replayed.

    The run's keys are deleted first; every event of the forecasts and fills topics is then fed
    to a fresh :class:`Scoreboard` in partition order. Undecodable messages (already dead-lettered
    when they were first consumed) are skipped.
    """
    store = RedisStore.from_settings(settings, run)
    store.delete_run()
    board = Scoreboard(store, arena)
    replayed = 0
    for spec in (FORECASTS, FILLS):
        for event in read_topic(settings, run, spec):
            if isinstance(event, Event):
                board.handle(event)
                replayed += 1
    store.close()
    return replayed
