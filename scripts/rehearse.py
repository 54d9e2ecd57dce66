"""A rehearsal of a live season through the real services, on a replayed clock, with chaos on top.

    PYTHONPATH=. python scripts/rehearse.py [--start 2024-01-02] [--days 20] [--arena arenas/baselines.yaml]
        [--kills 8 --broker-restart --redis-flush] [--seed 1] [--compare-simulate]

What runs: ``season up`` (the supervisor and every service: web, scorer, trader, processor,
producer, each its own process) with the producer on ``--source alpaca`` and every team on an
Alpaca paper account — all pointed at local stand-ins (``tests/standins``): Alpaca's data API
serves the bundled bars (``data/bars``) as a vendor would show them at the replayed time
(partial during the session, without the closing auction just after it), and each team's
trading API keeps its own account (orders by ``client_order_id``, fills at the session's open
price, positions, cash). The season's warm-up (the arena's ``window`` sessions before
``--start``) is replayed onto the bars topic first; the processor forecasts from ``--start`` on.

The clock (``REDBLUE_CLOCK_FILE``, see :mod:`redblue.core.clock`) is moved by this driver, event
by event, and never by the wall clock. Per session D:

1. close(D) + the Alpaca source's settle delay + 1 min: the producer publishes D's final bars;
   wait until the bars are on the topic, every consumer group's lag is 0 and every team's
   marks of D are written (the trader has collected D's fills and decided D's orders: held);
2. 19:02 New York: the trader's ticker sends the held ``opg`` orders; wait until the trader
   has caught up and ticked a few times (the stand-in fills them at the next session's open,
   which the next step's clock passes).

So a rehearsal is deterministic however slow or often killed a service is. ``--kills N`` kills
a random service (``kill -9``) at N random steps, a random fraction of a second after the clock
moved; ``--broker-restart`` stops and starts the stack's Kafka once; ``--redis-flush`` deletes
the run's Redis keys once and kills the scorer (which rebuilds the leaderboard from Kafka).
``--compare-calm`` also runs the same season undisturbed first and compares orders, fills,
marks, equity and the leaderboard; ``--compare-simulate`` compares forecasts and orders with
``redblue simulate`` of the same days (see :func:`against_simulation` for what may differ).
``--vendor-faults`` serves the season through misbehaving vendors (partial bars, late revisions,
missing sessions, 429/503 bursts, timeouts, a secret-echoing error; :mod:`scripts.vendor_faults`)
and judges it against the clean replay and for leaked secrets.

Only for a stack of your own (``REDBLUE_STACK_DIR``, ``REDBLUE_KAFKA_BOOTSTRAP``,
``REDBLUE_REDIS_URL``): the broker restart stops that stack's Kafka.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from producers.replay import replay
from redblue.adapters.alpaca.market_data import SETTLE
from redblue.adapters.kafka import EventProducer, KafkaUnavailable, ensure_topics, group_backlog, read_topics
from redblue.adapters.redis_store import RedisStore
from redblue.app.outputs import leaderboard_text
from redblue.app.provision import reset_run
from redblue.app.season import control
from redblue.app.season.services import SeasonSpec, service_args
from redblue.app.season.supervisor import SeasonFiles
from redblue.core import credentials
from redblue.core.arena import DEFAULT_ARENA, load_arena
from redblue.core.bars import DATA_DIR, Row, read_rows
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.clock import FileClock, set_clock_file
from redblue.core.settings import Settings, as_env
from redblue.stack.kafka import start_kafka, stop_kafka
from schemas import Bar, BarRevision, Event, Fill, Forecast, Order, PositionMark
from schemas.topics import BARS, FILLS, FORECASTS, ORDERS
from scripts.vendor_faults import OFFERED, VendorFaults, Verdict, verdict
from tests.leaks import files_under
from tests.standins.alpaca import EMBARGO, AlpacaStandIn
from tests.standins.clock import ny
from tests.standins.faults import credentials as standin_credentials
from tests.standins.market import Timeline

BASELINES = DEFAULT_ARENA.parent / "baselines.yaml"
TICK = 0.2  # the trader's ticker (REDBLUE_TRADER_TICK_SECONDS) in a rehearsal
POLL = 0.2  # the producer's polls
STALL = 60.0  # the supervisor's watchdog (REDBLUE_STALL_SECONDS) in a rehearsal
SESSION = 10.0  # a killed processor worker leaves its group after this (REDBLUE_PROCESSOR_SESSION_SECONDS)


def killable(processors: int = 1) -> tuple[str, ...]:
    """The season's services (every processor worker among them)."""
    return tuple(service_args(SeasonSpec("any", processors=processors)))


@dataclass
class Kill:
    service: str
    pid: int
    at: float  # monotonic
    step: str
    recovered: float | None = None  # seconds until it ran again with its group's lag back to 0


@dataclass
class Chaos:
    """What to do to the season, and what was done."""

    kills: int = 0
    broker_restart: bool = False
    redis_flush: bool = False
    seed: int = 1
    victims: tuple[str, ...] = ()  # who is killed, in order (cycled); empty: a random running service

    def plan(self, steps: int) -> dict[int, str]:
        """Step index -> what happens there: 'kill', 'broker' or 'redis' (never in the first two steps)."""
        rng = random.Random(self.seed)
        extra = ["broker"] * self.broker_restart + ["redis"] * self.redis_flush
        slots = rng.sample(range(2, steps), min(steps - 2, self.kills + len(extra)))
        return dict(zip(slots, ["kill"] * self.kills + extra, strict=False))


@dataclass
class Outcome:
    run: str
    orders: list[str]
    trades: list[str]
    equity: dict[str, list[tuple[str, float]]]
    board: str
    forecasts: list[tuple[Any, ...]]
    order_keys: list[tuple[Any, ...]]  # the orders' (team, symbol, side, quantity, as of, target)
    posts: dict[str, int]  # client_order_id -> POSTs that reached the stand-in (more than 1: re-sent)
    accepted: int  # orders the stand-ins accepted
    submitted_events: int  # order events saying "submitted" or "duplicate"
    restarts: dict[str, int]
    seconds: float
    shares: list[dict[int, list[int]]]  # the processor workers' bars partitions (pid -> partitions), as seen
    verdict: Verdict | None = None  # with vendor faults: what they did, and the checks


def repeated(outcome: Outcome) -> dict[tuple[Any, ...], int]:
    """Forecasts (team, model, symbol, as of) that came with more than one value (none may)."""
    values: dict[tuple[Any, ...], set[Any]] = {}
    for f in outcome.forecasts:
        values.setdefault(f[:4], set()).add(f[4:])
    return {key: len(v) for key, v in values.items() if len(v) > 1}


class Rehearsal:
    """One season of ``days`` sessions from ``start`` through the real services and the stand-ins."""

    def __init__(
        self,
        settings: Settings,
        run: str,
        arena_path: Path,
        start: date,
        days: int,
        say: Callable[[str], None] = print,
        faults: bool = False,
        processors: int = 1,
    ) -> None:
        self.settings, self.run, self.say, self.processors = settings, run, say, processors
        self.arena = load_arena(arena_path)
        self.arena_path = arena_path
        self.calendar: TradingCalendar = get_calendar(self.arena.calendar)
        self.season = self.calendar.sessions(start, self.calendar.offset(start, days - 1))
        first_warm = self.calendar.offset(self.season[0], -self.arena.window)
        self.warmup = self.calendar.sessions(first_warm, self.calendar.offset(self.season[0], -1))
        self.root = settings.stack_home / "rehearsals" / run
        self.clock_file = self.root / "clock"
        self.files = SeasonFiles.of(settings.stack_home, run)
        self.standins: dict[str, AlpacaStandIn] = {}
        self.kills: list[Kill] = []
        teams = sorted(self.arena.teams)
        self.faults = VendorFaults.of(self.season, self.arena.symbols, teams, self.calendar) if faults else None
        self.market: Timeline | None = None
        self.moment = ny(self.warmup[-1], 20)  # where the driver set the clock
        self.shares: list[dict[int, list[int]]] = []

    # -- setting up ---------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        first, last = self.warmup[0], self.calendar.offset(self.season[-1], 1)
        return [r for s in self.arena.symbols for r in read_rows(DATA_DIR, s) if first <= r.date <= last]

    @contextmanager
    def running(self) -> Iterator[Rehearsal]:
        """Stand-ins up, warm-up replayed, ``season up``; then ``season down`` and the stand-ins stopped."""
        self.root.mkdir(parents=True, exist_ok=True)
        set_clock_file(self.clock_file, ny(self.warmup[-1], 20))
        clock = FileClock(self.clock_file)
        rows = self.rows()
        market = self.market = Timeline(rows, self.calendar)
        with ExitStack() as stack:
            key, secret = standin_credentials("data")
            data = stack.enter_context(AlpacaStandIn(clock, key=key, secret=secret, timeline=market))
            data.page_size = 1000
            keys = {team: standin_credentials(team) for team in sorted(self.arena.teams)}
            self.standins = {
                team: stack.enter_context(AlpacaStandIn(clock, key=key, secret=secret, timeline=market))
                for team, (key, secret) in keys.items()
            }
            env = {**as_env(self.settings), **_passwords(self.settings), "REDBLUE_CLOCK_FILE": str(self.clock_file)}
            env |= {"REDBLUE_TRADER_TICK_SECONDS": str(TICK), "REDBLUE_STALL_SECONDS": str(STALL)}
            env |= {"REDBLUE_PROCESSOR_SESSION_SECONDS": str(SESSION)}
            env |= {"REDBLUE_ALPACA_KEY": data.key, "REDBLUE_ALPACA_SECRET": data.secret}
            env |= {"REDBLUE_ALPACA_URL_OVERRIDE": data.url}
            for team, standin in self.standins.items():
                prefix = f"REDBLUE_{team.upper()}_ALPACA_"
                env |= {f"{prefix}KEY": standin.key, f"{prefix}SECRET": standin.secret}
                env |= {f"{prefix}URL_OVERRIDE": standin.url}
            if self.faults is not None:
                self.faults.serve(market, data, self.standins)
                env |= self.faults.env(self.standins)
            arena_file = self._alpaca_arena()
            reset_run(self.settings, self.run)
            ensure_topics(self.settings, self.run)
            warm = [r for r in rows if r.date in set(self.warmup)]
            replay(EventProducer(self.settings, self.run), sorted(warm, key=lambda r: (r.date, r.symbol)),
                   self.calendar, clock)  # fmt: skip
            saved = dict(os.environ)
            os.environ.update(env)  # the supervisor and its services inherit these
            try:
                spec = SeasonSpec(self.run, arena=arena_file, source="alpaca", port=_free_port(),
                                  first_target=self.season[0], interval=POLL, processors=self.processors)  # fmt: skip
                control.up(self.settings, spec)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            try:
                yield self
            finally:
                control.down(self.settings, self.run)

    def _alpaca_arena(self) -> Path:
        """The arena file with every team on an Alpaca account."""
        raw = yaml.safe_load(self.arena_path.read_text())
        for spec in raw["teams"].values():
            spec["account"] = {"broker": "alpaca"}
        path = self.root / "arena.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    # -- driving ------------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, datetime, date]]:
        """The clock's moves: (what, when, session)."""
        out = [("warm-up", ny(self.warmup[-1], 20), self.warmup[-1])]
        for day in self.season:
            out += self.faults.steps(day) if self.faults is not None else []
            out.append(("close", self.calendar.close_time(day) + SETTLE + timedelta(minutes=1), day))
            out.append(("evening", ny(day, 19, 2), day))
        return out

    def drive(self, chaos: Chaos, timeout: float = 300.0) -> None:
        steps = self.steps()
        plan = chaos.plan(len(steps))
        rng = random.Random(chaos.seed + 1)
        for n, (what, moment, day) in enumerate(steps):
            if self.faults is not None:
                self.faults.before(what, moment, day)
            set_clock_file(self.clock_file, moment)
            self.moment = moment
            action = plan.get(n)
            if action is not None:
                time.sleep(rng.uniform(0.0, 0.8))  # somewhere in the middle of the services' work
                self._disturb(action, rng, f"{what} {day}", chaos.victims)
            self._wait(what, day, timeout)
        self._wait_recovered(timeout)

    def _disturb(self, action: str, rng: random.Random, step: str, victims: tuple[str, ...]) -> None:
        if action == "kill":
            running = [s for s in self.files.read_states() if s.state in ("running", "starting") and s.pid]
            turn = sum(1 for k in self.kills if not k.step.endswith("(redis flush)"))
            named = [s for s in running if victims and s.name == victims[turn % len(victims)]]
            victim = named[0] if named else rng.choice(sorted(running, key=lambda s: s.name))
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            self.kills.append(Kill(victim.name, victim.pid, time.monotonic(), step))
            self.say(f"  kill -9 {victim.name} (pid {victim.pid}) at {step}")
        elif action == "broker":
            began = time.monotonic()
            stop_kafka(self.settings, out=lambda _: None)
            time.sleep(rng.uniform(0.5, 2.0))
            start_kafka(self.settings, out=lambda _: None)
            self.say(f"  broker restarted at {step} ({time.monotonic() - began:.1f} s down)")
        elif action == "redis":
            with RedisStore.from_settings(self.settings, self.run) as store:
                deleted = store.delete_run()
            scorer = next(s for s in self.files.read_states() if s.name == "scorer")
            if scorer.pid:
                os.kill(scorer.pid, signal.SIGKILL)
                self.kills.append(Kill("scorer", scorer.pid, time.monotonic(), f"{step} (redis flush)"))
            self.say(f"  Redis: the run's {deleted} keys deleted, scorer killed at {step}")

    def _wait(self, what: str, day: date, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._done(what, day):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.run}: step {what} {day} not done after {timeout:.0f} s; see {self.files.root}")
            time.sleep(0.1)

    def _lags(self) -> dict[str, int] | None:
        try:
            groups = control.consumer_groups(self.run)
            return {s: group_backlog(self.settings, self.run, group, specs) for s, (group, specs) in groups.items()}
        except KafkaUnavailable:
            return None

    def _done(self, what: str, day: date) -> bool:
        if what in OFFERED:  # the vendor offered the producer a bar it must not publish (judged at the end)
            assert self.faults is not None
            return self.faults.offered(self.moment)
        lags = self._lags()
        self._note_recoveries(lags)
        self._note_shares()
        if lags is None or any(lags.values()) or not self._all_ready():
            return False
        try:
            specs = [BARS, FILLS, ORDERS] if self.faults is not None else [BARS, FILLS]
            topics = read_topics(self.settings, self.run, specs, timeout=10.0)
        except KafkaUnavailable:
            return False
        bars = {(b.symbol, b.date) for b in topics[BARS] if isinstance(b, Bar)}
        due = self._due()
        if not due <= bars:
            return False
        marks = {(m.team, m.symbol, m.as_of) for m in topics[FILLS] if isinstance(m, PositionMark)}
        complete = {d for _, d in due if all((s, d) in due for s in self.arena.symbols)}  # the trader marks those
        if any((t, s, d) not in marks for t in self.arena.teams for s in self.arena.symbols for d in complete):
            return False
        if self.faults is not None and not self._answered(topics[BARS], topics[ORDERS], due):
            return False
        if what != "close":  # the held orders are sent by the ticker of a ready trader: let it tick a few times
            trader = self._state("trader")
            time.sleep(4 * TICK)
            again = self._state("trader")
            lags = self._lags()
            return again is not None and again.pid == trader.pid and lags is not None and not any(lags.values())
        return True

    def _due(self) -> set[tuple[str, date]]:
        """The (symbol, session)s that must be on the bars topic now: closed (plus the source's settle
        delay), each symbol's sessions up to the first one the vendor still withholds."""
        assert self.market is not None
        due = set()
        shown_at = self.moment - EMBARGO
        for symbol in self.arena.symbols:
            for day in [self.warmup[-1], *self.season]:
                if self.calendar.close_time(day) + SETTLE > self.moment or self.market.hidden(symbol, day, shown_at):
                    break
                due.add((symbol, day))
        return due

    def _answered(self, bars: list[Event], orders: list[Event], due: set[tuple[str, date]]) -> bool:
        """Every revision the vendor shows by now is on the bars topic, no stand-in is still answering,
        and every order POSTed to a stand-in has its order event (the trader is not between retries)."""
        assert self.market is not None
        revised = {(e.bar.symbol, e.bar.date) for e in bars if isinstance(e, BarRevision)}
        fixed = {k for k, first in self.market.revisions().items() if first.until <= self.moment - EMBARGO}
        if not (fixed & due) <= revised or any(s.busy for s in self.standins.values()):
            return False
        posted = {p["client_order_id"] for s in self.standins.values() for p in s.posted}
        return posted <= {o.client_order_id for o in orders if isinstance(o, Order)}

    def _all_ready(self) -> bool:
        """Every service runs and its current process said it is ready (rebuilt, reconciled, caught up)."""
        states = self.files.read_states()
        return bool(states) and all(s.state == "running" and s.ready_at is not None for s in states)

    def _note_shares(self) -> None:
        """With several processor workers: which bars partitions each holds now (when that changed)."""
        if self.processors < 2:
            return
        shares = control.processor_shares(self.settings, self.run)
        if isinstance(shares, dict) and (not self.shares or shares != self.shares[-1]):
            self.shares.append(shares)

    def _state(self, name: str) -> Any:
        return next((s for s in self.files.read_states() if s.name == name), None)

    def _note_recoveries(self, lags: dict[str, int] | None) -> None:
        lags_of = control.consumer_groups(self.run)
        states = {s.name: s for s in self.files.read_states()}
        for kill in self.kills:
            if kill.recovered is not None:
                continue
            st = states.get(kill.service)
            if st is None or st.state != "running" or st.pid in (None, kill.pid) or st.ready_at is None:
                continue
            if kill.service in lags_of and (lags is None or lags[kill.service]):
                continue
            kill.recovered = time.monotonic() - kill.at

    def _wait_recovered(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(k.recovered is None for k in self.kills) and time.monotonic() < deadline:
            self._note_recoveries(self._lags())
            time.sleep(0.2)

    # -- the outcome --------------------------------------------------------------------------

    def outcome(self, began: float) -> Outcome:
        topics = read_topics(self.settings, self.run, [FORECASTS, ORDERS, FILLS])
        orders = [e for e in topics[ORDERS] if isinstance(e, Order)]
        trades = [e for e in topics[FILLS] if isinstance(e, Fill | PositionMark)]
        with RedisStore.from_settings(self.settings, self.run) as store:
            equity = {t: [(d.isoformat(), round(v, 6)) for d, v in store.equity_history(t)] for t in self.arena.teams}
        posts: Counter[str] = Counter()
        accepted = 0
        for standin in self.standins.values():
            posts.update(p["client_order_id"] for p in standin.posted)
            accepted += len(standin.orders)
        return Outcome(
            run=self.run,
            orders=sorted(plain(o) for o in orders),
            trades=sorted(plain(t) for t in trades),
            equity=equity,
            board=leaderboard_text(self.settings, self.run, self.arena, by="mase", top=50).replace(self.run, "RUN"),
            forecasts=sorted(brief(f) for f in topics[FORECASTS] if isinstance(f, Forecast)),
            order_keys=sorted(order_key(o) for o in orders),
            posts=dict(posts),
            accepted=accepted,
            submitted_events=sum(o.status in ("submitted", "duplicate") for o in orders),
            restarts={s.name: s.restarts for s in self.files.read_states()},
            seconds=time.monotonic() - began,
            shares=list(self.shares),
        )


@dataclass
class CleanReplay:
    """The same sessions replayed in this process: final bars, the processor's own step, the trader on
    simulated accounts (fills at the open plus the arena's slippage and commission)."""

    forecasts: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    forecast_events: list[Forecast]
    trading: list[Event]  # the orders, fills and marks


def clean_replay(rehearsal: Rehearsal) -> CleanReplay:
    from consumers.trader import simulated_gateways
    from consumers.trading import Trader
    from processors.book import ModelBook
    from processors.forecasting import Horizon, step
    from redblue.app.simulate import model_sources
    from redblue.core.bars import to_bar_fields
    from schemas import BarProcessed

    arena, calendar, season = rehearsal.arena, rehearsal.calendar, rehearsal.season
    moment = ny(season[-1], 20)
    trader = Trader("clean", arena, simulated_gateways("clean", arena, lambda: moment), lambda: moment)
    sources = model_sources(rehearsal.settings.for_service("processor"), arena)  # e.g. the teams' Ludwig models
    models = ModelBook(arena, sources).models
    windows: dict[str, list[Bar]] = {}
    forecasts: list[Forecast] = []
    trading: list[Event] = []
    days = set(rehearsal.warmup) | set(season)
    for row in sorted((r for r in rehearsal.rows() if r.date in days), key=lambda r: (r.date, r.symbol)):
        fields = to_bar_fields(row, calendar, "replay")
        bar = Bar.model_validate({**fields, "produced_at": calendar.close_time(row.date)})
        done = step("clean", windows.get(row.symbol, []), bar, models, size=arena.window, calendar=calendar,
                    horizon=Horizon(first=season[0]), now=moment)  # fmt: skip
        windows[row.symbol] = done.window
        for out in done.events:
            if isinstance(out, Forecast):
                forecasts.append(out)
                trader.on_forecast(out)
            elif isinstance(out, BarProcessed):
                trading += trader.on_bar_processed(out)
    orders = sorted(order_key(e) for e in trading if isinstance(e, Order))
    return CleanReplay(sorted(brief(f) for f in forecasts), orders, forecasts, trading)


def order_key(o: Order) -> tuple[Any, ...]:
    return (o.team, o.symbol, o.side, o.quantity, o.as_of.isoformat(), o.target.isoformat())


def plain(event: Any) -> str:
    """An event without what differs between two runs of the same season (run id, wall time).

    An order's status ``duplicate`` counts as ``submitted``: a trader killed between Alpaca's
    answer and its order event sends the order again after its restart, and Alpaca's refusal of
    the reused ``client_order_id`` confirms it (nothing doubled at the broker).
    """
    data = event.model_dump(mode="json", exclude={"run", "produced_at", "client_order_id", "reason"})
    if data.get("status") == "duplicate":
        data["status"] = "submitted"
    return json.dumps(data, sort_keys=True)


def brief(f: Forecast) -> tuple[Any, ...]:
    return (f.team, f.model, f.symbol, f.as_of.isoformat(), f.target.isoformat(), f.predicted_close)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rehearse(
    settings: Settings,
    run: str,
    arena: Path,
    start: date,
    days: int,
    chaos: Chaos,
    say: Callable[[str], None] = print,
    faults: bool = False,
    processors: int = 1,
) -> tuple[Outcome, list[Kill]]:
    """Run one rehearsal (with ``chaos``, ``processors`` processor workers, through misbehaving vendors
    if ``faults``); its outcome and the kills."""
    began = time.monotonic()
    rehearsal = Rehearsal(settings, run, arena, start, days, say, faults, processors)
    with rehearsal.running():
        rehearsal.drive(chaos)
        outcome = rehearsal.outcome(began)
    if rehearsal.faults is not None:  # after ``season down``: the services' logs are complete
        outcome.verdict = judged(rehearsal)
    return outcome, rehearsal.kills


def judged(rehearsal: Rehearsal) -> Verdict:
    """A rehearsal through vendor faults against the clean replay of its sessions, and scanned for secrets."""
    assert rehearsal.faults is not None
    settings, run = rehearsal.settings, rehearsal.run
    topics = read_topics(settings, run, [BARS, FORECASTS, ORDERS, FILLS])
    clean = clean_replay(Rehearsal(settings, "clean", rehearsal.arena_path, rehearsal.season[0], len(rehearsal.season)))
    logs = [*files_under(rehearsal.files.root), *files_under(rehearsal.root)]
    return verdict(settings, run, rehearsal.faults, {t.suffix: topics[t] for t in topics},
                   (clean.forecast_events, clean.trading), rehearsal.arena.symbols, sorted(rehearsal.arena.teams),
                   logs)  # fmt: skip


def against_clean_replay(settings: Settings, outcome: Outcome, arena: Path, start: date, days: int) -> dict[str, bool]:
    """The rehearsal against the clean replay of the same sessions: the same forecasts (each
    once: a redelivered bar's re-sent forecasts are duplicates, compared as a set) and the same
    orders (side, quantity, as-of day, target). Fill prices differ by design: the stand-in fills
    at the open, the simulated broker adds the arena's slippage and commission."""
    clean = clean_replay(Rehearsal(settings, "clean", arena, start, days))
    return {
        "forecasts as the clean replay": sorted(set(outcome.forecasts)) == sorted(set(clean.forecasts)),
        "orders as the clean replay": outcome.order_keys == clean.orders,
    }


def differences(calm: Outcome, storm: Outcome) -> dict[str, bool]:
    """Which parts of two rehearsals of the same season are equal."""
    return {
        "forecasts": sorted(set(calm.forecasts)) == sorted(set(storm.forecasts)),  # re-sent ones are duplicates
        "orders": calm.orders == storm.orders,
        "fills and marks": calm.trades == storm.trades,
        "equity": calm.equity == storm.equity,
        "leaderboard": calm.board == storm.board,
        "accepted orders": calm.accepted == storm.accepted,
    }


def doubled(outcome: Outcome) -> dict[str, int]:
    """Client order ids POSTed more than once (each refused by the stand-in after the first)."""
    return {cid: n for cid, n in outcome.posts.items() if n > 1}


def recovery_table(kills: list[Kill]) -> str:
    by: dict[str, list[Kill]] = {}
    for k in kills:
        by.setdefault(k.service, []).append(k)
    lines = [f"{'service':<10} {'kills':>5} {'recovery s (median / max)':>28}"]
    for name, ks in sorted(by.items()):
        times = sorted(k.recovered for k in ks if k.recovered is not None)
        shown = f"{times[len(times) // 2]:.1f} / {times[-1]:.1f}" if times else "never"
        lines.append(f"{name:<10} {len(ks):>5} {shown:>28}")
    return "\n".join(lines)


def verdict_text(v: Verdict) -> str:
    lines = ["through the vendor faults:", *(f"  {name}: {value}" for name, value in v.figures.items())]
    lines += ["what differs from the clean replay:", *(f"  {d}" for d in v.differed)]
    lines += ["checks:", *(f"  {'ok  ' if good else 'FAIL'} {name}" for name, good in v.checks.items())]
    return "\n".join(lines)


def _passwords(settings: Settings) -> dict[str, str]:
    """Every password these settings know, as variables: the season's services (each its own
    user) inherit them from the supervisor. ``as_env`` alone blanks all but the caller's, and a
    rehearsal's broker may be one of its own, whose passwords are not in the stack's file."""
    found = {name: getattr(settings, name) for name in credentials.secret_fields()}
    return {f"REDBLUE_{name.upper()}": value.get_secret_value() for name, value in found.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 2))
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--arena", type=Path, default=BASELINES)
    parser.add_argument("--run", default="rehearsal")
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--broker-restart", action="store_true")
    parser.add_argument("--redis-flush", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare-calm", action="store_true", help="also run the season undisturbed and compare")
    parser.add_argument(
        "--vendor-faults", action="store_true", help="serve the season through misbehaving vendors and judge it"
    )
    parser.add_argument("--processors", type=int, default=1, help="processor workers (the calm run has one)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the stand-ins' request lines
    settings = Settings()
    services = killable(args.processors)
    order = tuple(random.Random(args.seed).sample(services, len(services)))  # every service in turn
    chaos = Chaos(args.kills, args.broker_restart, args.redis_flush, args.seed, victims=order)
    calm = None
    if args.compare_calm:
        print(f"calm rehearsal of {args.days} sessions from {args.start}")
        calm, _ = rehearse(settings, f"{args.run}-calm", args.arena, args.start, args.days, Chaos())
        print(f"  {calm.seconds:.0f} s, {len(calm.orders)} orders, {len(calm.trades)} fills and marks")
    print(f"rehearsal {args.run}: {args.days} sessions, {args.processors} processor worker(s), {args.kills} kills, "
          f"broker restart {args.broker_restart}, Redis flush {args.redis_flush}, "
          f"vendor faults {args.vendor_faults}")  # fmt: skip
    storm, kills = rehearse(settings, args.run, args.arena, args.start, args.days, chaos, faults=args.vendor_faults,
                            processors=args.processors)  # fmt: skip
    print(f"  {storm.seconds:.0f} s, {len(storm.orders)} orders, {len(storm.trades)} fills and marks")
    print(recovery_table(kills))
    print(f"restarts seen by the supervisor: {storm.restarts}")
    print(f"accepted by the Alpaca stand-ins: {storm.accepted}; order events submitted: {storm.submitted_events}")
    print(f"client_order_ids POSTed more than once (refused after the first): {doubled(storm) or 'none'}")
    counts = Counter(f[:4] for f in storm.forecasts)
    print(f"forecasts: {len(counts)} (team, model, symbol, as of), {len(storm.forecasts)} sent "
          f"({sum(n - 1 for n in counts.values())} re-sent); with two values: {repeated(storm) or 'none'}")  # fmt: skip
    if args.processors > 1:
        print("processor workers' bars partitions, as they changed: " + "; ".join(map(str, storm.shares)))
    ok = storm.accepted == storm.submitted_events and not repeated(storm)
    if storm.verdict is not None:
        print(verdict_text(storm.verdict))
        ok = ok and all(storm.verdict.checks.values())
    else:
        clean = against_clean_replay(settings, storm, args.arena, args.start, args.days)
        print(f"against the clean replay: {clean}")
        ok = ok and all(clean.values())
    if calm is not None:
        same = differences(calm, storm)
        print(f"equal to the calm rehearsal: {same}")
        ok = ok and all(same.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
