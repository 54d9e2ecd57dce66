"""Benchmark: the scorer's cost per event along a long run (it must not grow with the history).

Reads the forecasts and fills topics of a finished run (default ``bench-drift7``: the drift arena
over all seven symbols 1999-2025, left by ``bench/throughput.py``), orders the events by market day
(each topic's per-symbol order kept) and projects them into a fresh leaderboard: the in-memory
store one event at a time, and Redis in units of 2,000 events as the scorer does. Prints the
CPU microseconds per event in each fifth of the run (CPU, not wall: the machine may be busy).

``python bench/scorer_cost.py [RUN]`` with the stack up.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from consumers.leaderboard import Scoreboard  # noqa: E402
from consumers.scorer import marked_spans  # noqa: E402
from redblue.adapters.kafka import read_topics  # noqa: E402
from redblue.adapters.redis_store import RedisStore  # noqa: E402
from redblue.core.arena import load_arena  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from redblue.core.store import InMemoryStore, LeaderboardStore  # noqa: E402
from schemas import BarProcessed, Event, Fill  # noqa: E402
from schemas.topics import FILLS, FORECASTS  # noqa: E402


def day(event: Event) -> date:
    if isinstance(event, BarProcessed):
        return event.bar.date
    if isinstance(event, Fill):
        return event.date
    return event.as_of  # type: ignore[attr-defined,no-any-return]


def fifths(events: list[Event], store: LeaderboardStore, unit: int) -> list[float]:
    symbols = tuple(sorted({getattr(e, "symbol", "") for e in events} - {""}))
    board = Scoreboard(store, load_arena(REPO / "arenas" / "drift.yaml").with_symbols(symbols), marked_spans(events))
    size = len(events) // 5
    out = []
    for k in range(5):
        part = events[k * size : (k + 1) * size]
        began = time.process_time()
        for start in range(0, len(part), unit):
            with board.batch():
                for event in part[start : start + unit]:
                    board.handle(event)
        out.append((time.process_time() - began) / len(part) * 1e6)
    return out


def main() -> None:
    run = sys.argv[1] if len(sys.argv) > 1 else "bench-drift7"
    settings = Settings()
    topics = read_topics(settings, run, [FORECASTS, FILLS])
    events = sorted((e for spec in (FORECASTS, FILLS) for e in topics[spec] if isinstance(e, Event)), key=day)
    print(f"run {run}: {len(events):,} events of the forecasts and fills topics, in market-day order")
    print("| store | CPU µs per event, fifth 1 | 2 | 3 | 4 | 5 |")
    print("|---|---:|---:|---:|---:|---:|")
    memory = fifths(events, InMemoryStore(), unit=1)
    print("| in memory, one event at a time | " + " | ".join(f"{x:.1f}" for x in memory) + " |")
    redis = RedisStore.from_settings(settings.for_service("scorer"), f"scorer-cost-{uuid.uuid4().hex[:6]}")
    try:
        batched = fifths(events, redis, unit=2000)
    finally:
        redis.delete_run()
        redis.close()
    print("| Redis, 2,000 events per transaction | " + " | ".join(f"{x:.1f}" for x in batched) + " |")


if __name__ == "__main__":
    main()
