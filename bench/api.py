"""Benchmark: ``redblue serve`` under concurrent load against a synthetic 100-model run.

Run with the stack up (``make bench``). Writes a run of 10 teams x 10 models on 3 symbols
(120 scored days each, equity curves, fills, orders, closes, latest forecasts) into Redis under
a fresh key prefix, starts ``redblue serve`` as its own process on a free loopback port, and
measures side by side in this one run:

1. per endpoint, the view computed in-process straight from Redis (no HTTP, no JSON);
2. the same endpoints over HTTP from ``CLIENTS`` concurrent keep-alive clients, a bounded
   number of requests each: p50 / p99 latency and requests per second.

The run's keys are deleted at the end. Loopback only.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from consumers.leaderboard import Scoreboard, standings  # noqa: E402
from redblue.adapters.redis_store import RedisStore, RedisStores  # noqa: E402
from redblue.app.web import views  # noqa: E402
from redblue.core.arena import Arena  # noqa: E402
from redblue.core.calendar import get_calendar  # noqa: E402
from redblue.core.metrics import ScoredForecast  # noqa: E402
from redblue.core.runs import describe_simulation, finish  # noqa: E402
from redblue.core.settings import Settings, as_env  # noqa: E402
from schemas import Fill, Forecast, Order  # noqa: E402

SYMBOLS = ("AAPL", "AMZN", "SAP")
TEAMS, MODELS, DAYS = 10, 10, 120
CLIENTS, REQUESTS = 8, 300  # per client
T0 = datetime(2024, 1, 2, 22, tzinfo=UTC)


def arena() -> Arena:
    teams = {f"team{t}": {"models": [{"name": f"m{m}", "kind": "drift"} for m in range(MODELS)]} for t in range(TEAMS)}
    return Arena.model_validate({"name": "bench-100", "symbols": SYMBOLS, "teams": teams})


def populate(store: RedisStore, a: Arena) -> None:
    """Scores, closes, latest forecasts, equity, fills and orders of a 100-model run."""
    rnd = random.Random(7)
    days = get_calendar().sessions(date(2024, 1, 2), date(2024, 12, 31))[: DAYS + 1]
    describe_simulation(store, a, days[1], days[-1], DAYS)
    for symbol in SYMBOLS:
        closes = [100.0 + 40 * rnd.random() for _ in days]
        for day, close in zip(days, closes, strict=True):
            store.set_close(symbol, day, close)
        latest = []
        for team, spec in a.all_models():
            for i in range(DAYS):
                guess = closes[i] * (1 + rnd.uniform(-0.02, 0.02))
                store.add_score(ScoredForecast(team, spec.name, symbol, days[i], days[i + 1], guess, closes[i],
                                               closes[i + 1]))  # fmt: skip
            latest.append(Forecast(run="bench", team=team, model=spec.name, model_version="1", symbol=symbol,
                                   as_of=days[-1], target=date(2025, 1, 2), predicted_close=closes[-1] * 1.01,
                                   last_close=closes[-1], produced_at=T0))  # fmt: skip
        store.note_forecasts(latest)
        store.advance_bar(symbol, days[-1])
    for team in a.teams:
        value = a.strategy.initial_cash
        for day in days[1:]:
            value *= 1 + rnd.gauss(0.0005, 0.01)
            store.set_equity(team, day, value)
        for i in range(0, DAYS, 6):
            coid = f"{team}-{i}"
            store.add_order(Order(run="bench", team=team, model="m0", symbol="AAPL", side="buy",
                                  quantity=10, as_of=days[i], target=days[i + 1], reference_price=120.0,
                                  client_order_id=coid, status="submitted", produced_at=T0))  # fmt: skip
            store.add_fill(Fill(run="bench", team=team, symbol="AAPL", client_order_id=coid, side="buy", quantity=10,
                                price=120.0, commission=1.0, date=days[i + 1], produced_at=T0))  # fmt: skip
    Scoreboard(store, a).refresh_rankings()
    finish(store, "complete")


def endpoints(run: str) -> dict[str, str]:
    return {
        "leaderboard?by=mase": f"/api/runs/{run}/leaderboard?by=mase",
        "progress (the page's poll)": f"/api/runs/{run}/progress",
        "rankings/mae?top=10": f"/api/runs/{run}/rankings/mae?top=10",
        "teams/{team}": f"/api/runs/{run}/teams/team3",
        "series/{team}/{model}/{symbol}": f"/api/runs/{run}/series/team3/m4/AMZN",
        "symbols/{symbol}": f"/api/runs/{run}/symbols/AAPL",
        "forecasts/latest": f"/api/runs/{run}/forecasts/latest",
    }


def in_process(stores: RedisStores, run: str) -> dict[str, float]:
    """Median ms of each view called directly (Redis reads and computation, no HTTP)."""
    calls = {
        "leaderboard?by=mase": lambda: views.leaderboard(stores, run, "mase"),
        "progress (the page's poll)": lambda: views.run_progress(stores, run),
        "rankings/mae?top=10": lambda: views.ranking(stores, run, "mae", 10),
        "teams/{team}": lambda: views.team_detail(stores, run, "team3"),
        "series/{team}/{model}/{symbol}": lambda: views.series_detail(stores, run, "team3", "m4", "AMZN"),
        "symbols/{symbol}": lambda: views.symbol_detail(stores, run, "AAPL"),
        "forecasts/latest": lambda: views.latest_forecasts(stores, run),
    }
    result = {}
    for name, call in calls.items():
        times = []
        for _ in range(30):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        result[name] = 1000 * statistics.median(times)
    return result


def tests_share(store: RedisStore, a: Arena) -> tuple[float, float]:
    """Median ms of the standings (what the leaderboard computes) and of reading every scored forecast,
    the input of the Diebold-Mariano and direction tests (read at request time, never per event)."""

    def median_ms(call: Callable[[], object]) -> float:
        times = []
        for _ in range(10):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        return 1000 * statistics.median(times)

    every = sorted(store.error_sums())
    return median_ms(lambda: standings(store, a)), median_ms(lambda: store.scored_many(every))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "redblue", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **as_env(settings)}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("redblue serve did not start")


def load(port: int, paths: list[str], clients: int = CLIENTS) -> tuple[dict[str, list[float]], float]:
    """``clients`` threads, each ``REQUESTS`` GETs over one keep-alive connection, cycling ``paths``."""
    latencies: dict[str, list[float]] = {p: [] for p in paths}
    lock = threading.Lock()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[tuple[str, float]] = []
        for i in range(REQUESTS):
            path = paths[(i + offset) % len(paths)]
            began = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}")
            mine.append((path, time.perf_counter() - began))
        conn.close()
        with lock:
            for path, seconds in mine:
                latencies[path].append(seconds)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    settings = Settings().model_copy(update={"redis_prefix": f"bench-api-{uuid.uuid4().hex[:8]}"})
    run, a = "bench-100-models", arena()
    store = RedisStore.from_settings(settings, run)
    stores = RedisStores.from_settings(settings)
    server = None
    try:
        began = time.perf_counter()
        populate(store, a)
        print(f"synthetic run: {len(a.all_models())} models x {len(SYMBOLS)} symbols x {DAYS} days, "
              f"{TEAMS} teams, written in {time.perf_counter() - began:.1f} s")  # fmt: skip
        direct = in_process(stores, run)
        board, scored = tests_share(store, a)
        port = free_port()
        server = start_server(settings, port)
        named = endpoints(run)
        load(port, list(named.values()), clients=1)  # warm up
        alone, _ = load(port, list(named.values()), clients=1)
        latencies, wall = load(port, list(named.values()))
        total = sum(len(v) for v in latencies.values())
        print(f"HTTP over loopback to one server process (uvicorn); {REQUESTS} requests per client, endpoints in turn")
        print("in-process: the view computed straight from Redis (no HTTP, no JSON, no memo)")
        head = f"{'endpoint':32}{'in-process':>11}{'1 client p50':>14}{f'{CLIENTS} clients p50':>17}{'p99':>8}"
        print(head + "   (ms)")
        for name, path in named.items():
            print(f"{name:32}{direct[name]:>11.2f}{pct(alone[path], 0.5):>14.2f}{pct(latencies[path], 0.5):>17.2f}"
                  f"{pct(latencies[path], 0.99):>8.2f}")  # fmt: skip
        every = [x for v in latencies.values() for x in v]
        single = [x for v in alone.values() for x in v]
        print(f"{'all endpoints':32}{'':>11}{pct(single, 0.5):>14.2f}{pct(every, 0.5):>17.2f}{pct(every, 0.99):>8.2f}")
        print(f"throughput with {CLIENTS} clients: {total / wall:.0f} requests/s ({total} requests in {wall:.1f} s)")
        print(f"standings of the leaderboard {board:.1f} ms, of which reading the {sum(1 for _ in store.error_sums())} "
              f"series' scored forecasts for the tests {scored:.1f} ms ({scored / board:.0%})")  # fmt: skip
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        store.delete_run()
        store.close()
        stores.close()


if __name__ == "__main__":
    main()
