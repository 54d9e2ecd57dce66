"""The scorer service: projects a run's forecasts and fills topics into the Redis leaderboard."""

from __future__ import annotations

import threading

from consumers.leaderboard import Scoreboard
from consumers.store import LeaderboardStore
from redblue.arena import Arena
from redblue.kafka import ConsumerStats, Outgoing, consume
from redblue.redis_store import RedisStore
from redblue.settings import Settings
from schemas import BarProcessed, Event, Fill, Forecast, PositionMark
from schemas.topics import FILLS, FORECASTS


def run_scorer(
    settings: Settings, run: str, arena: Arena, stop: threading.Event, store: LeaderboardStore | None = None
) -> ConsumerStats:
    """Consume until ``stop`` is set; the leaderboard is idempotent, so redelivery is harmless."""
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
    )
