"""Chaos rehearsal, a skeleton: ``kill -9`` random services of a season and compare with a calm one.

    PYTHONPATH=. python scripts/chaos.py [--start 2024-01-02] [--days 20] [--kills 8] [--seed 1]

Two seasons of the same arena are started with ``season up`` (each under the supervisor, on the
local stack), and the same historical bars are replayed onto each one's bars topic. The calm
season is left alone; in the stormy one, random services (processor, trader, scorer, web,
producer) get SIGKILL at random moments while the bars flow, and the supervisor restarts them.
When every stage has caught up (consumer lag 0 for a while), both seasons' orders, fills and
position marks (without run id, client order id and production time) and their teams' equity
curves must be equal, and no ``client_order_id`` may have been submitted twice.

What it covers: restarts of every service at any moment of the stream, the processor's
re-sending of a redelivered bar, the trader's rebuild from its topics, write-once marks.
What it does NOT cover yet (issue 8): a broker restart, a Redis flush, the Alpaca stand-in
(teams trade simulated accounts), the live producer's own code under a replayed clock (bars are
replayed by ``producers.replay``, not produced "as if live"), and the 60-day / 20-kill size
(pass ``--days 60 --kills 20``). The producer polls yfinance, which is unreachable here: it
publishes nothing, it only gets killed. Prints kills per service and the recovery times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from consumers.scorer import TOPICS as SCORED
from producers.replay import plan_replay, replay
from redblue.adapters.kafka import EventProducer, ensure_topics, group_lag, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.app.provision import reset_run
from redblue.app.season import control
from redblue.app.season.services import SeasonSpec
from redblue.app.season.supervisor import SeasonFiles
from redblue.core.arena import DEFAULT_ARENA, load_arena
from redblue.core.bars import DATA_DIR
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.settings import Settings
from schemas import Fill, Order, PositionMark
from schemas.topics import BARS, FILLS, FORECASTS, ORDERS

STAGES = {"processor": [BARS], "trader": [FORECASTS], "scorer": list(SCORED)}


def caught_up(settings: Settings, run: str) -> bool:
    groups = {
        "processor": f"redblue-processor-{run}",
        "trader": f"redblue-trader-{run}",
        "scorer": f"redblue-scorer-{run}",
    }
    return all(group_lag(settings, run, groups[s], specs) == 0 for s, specs in STAGES.items())


def play(
    settings: Settings, run: str, args: argparse.Namespace, kills: int, rng: random.Random, port: int
) -> dict[str, Any]:
    """One season: up, replay, kill ``kills`` times, wait until caught up, down; what happened."""
    reset_run(settings, run)
    ensure_topics(settings, run)
    control.up(settings, SeasonSpec(run, arena=args.arena, port=port))
    files = SeasonFiles.of(settings.stack_home, run)
    arena = load_arena(args.arena)
    calendar = get_calendar(arena.calendar)
    plan = plan_replay(DATA_DIR, arena.symbols, args.start, args.days, arena.window, calendar)
    replay(EventProducer(settings, run), plan.rows, calendar, utc_now)
    killed: dict[str, int] = {}
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(1.0, 6.0))
            running = [s for s in files.read_states() if s.state == "running" and s.pid]
            victim = rng.choice(running)
            os.kill(victim.pid or 0, signal.SIGKILL)
            killed[victim.name] = killed.get(victim.name, 0) + 1
        began, calm_since = time.monotonic(), None
        while time.monotonic() - began < args.timeout:
            calm_since = (calm_since or time.monotonic()) if caught_up(settings, run) else None
            if calm_since is not None and time.monotonic() - calm_since > 15:
                break
            time.sleep(1.0)
        else:
            raise SystemExit(f"{run}: not caught up after {args.timeout:.0f} s")
        restarts = {s.name: s.restarts for s in files.read_states()}
    finally:
        control.down(settings, run)
    return {"killed": killed, "restarts": restarts, "outcome": outcome(settings, run, arena.teams)}


def outcome(settings: Settings, run: str, teams: Any) -> dict[str, Any]:
    def plain(event: Any) -> str:
        return json.dumps(
            event.model_dump(mode="json", exclude={"run", "produced_at", "client_order_id"}), sort_keys=True
        )

    orders = [e for e in read_topic(settings, run, ORDERS) if isinstance(e, Order)]
    trades = [e for e in read_topic(settings, run, FILLS) if isinstance(e, Fill | PositionMark)]
    submitted = [o.client_order_id for o in orders if o.status == "submitted"]
    with RedisStore.from_settings(settings, run) as store:
        equity = {team: store.equity_history(team) for team in sorted(teams)}
    return {
        "orders": sorted(plain(o) for o in orders),
        "trades": sorted(plain(t) for t in trades),
        "equity": {t: [(d.isoformat(), round(v, 6)) for d, v in h] for t, h in equity.items()},
        "doubled_ids": sorted({c for c in submitted if submitted.count(c) > 1}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 2))
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--arena", type=Path, default=DEFAULT_ARENA.parent / "baselines.yaml")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    settings, rng = Settings(), random.Random(args.seed)
    calm = play(settings, f"chaos{args.seed}-calm", args, 0, rng, 18601)
    storm = play(settings, f"chaos{args.seed}-storm", args, args.kills, rng, 18602)
    print(f"kills per service: {storm['killed']}; restarts seen by the supervisor: {storm['restarts']}")
    same = {k: calm["outcome"][k] == storm["outcome"][k] for k in ("orders", "trades", "equity")}
    print(f"equal to the calm season: {same}; doubled client_order_ids: {storm['outcome']['doubled_ids']}")
    print(f"orders {len(calm['outcome']['orders'])}, fills and marks {len(calm['outcome']['trades'])}")
    return 0 if all(same.values()) and not storm["outcome"]["doubled_ids"] else 1


if __name__ == "__main__":
    sys.exit(main())
