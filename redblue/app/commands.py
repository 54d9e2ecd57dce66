"""What each ``redblue`` subcommand does (the parser is in :mod:`redblue.app.cli`)."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redblue.core.arena import DEFAULT_ARENA, Arena, load_arena
from redblue.core.bars import DATA_DIR
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings

if TYPE_CHECKING:
    from producers.live import Poll
    from redblue.core.calendar import TradingCalendar
    from redblue.core.sources import BarSource


class CommandError(RedblueError):
    """A command could not do its work; the message says why."""


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handler = {
        "stack": stack,
        "simulate": simulate,
        "leaderboard": leaderboard,
        "process": process,
        "trade": trade,
        "score": score,
        "replay": replay,
        "produce": produce,
        "train": train,
        "serve": serve,
        "report": report,
        "setup": setup,
        "season": season,
    }[args.command]
    return handler(args, settings)


def prepare_if_admin(settings: Settings, run: str) -> None:
    from redblue.app.provision import prepare_if_admin as prepare

    prepare(settings, run)


def _arena(args: argparse.Namespace) -> tuple[Arena, Path]:
    path = args.arena or DEFAULT_ARENA
    arena = load_arena(path)
    if getattr(args, "symbols", None):
        arena = arena.with_symbols(args.symbols)
    return arena, path


def stack(args: argparse.Namespace, settings: Settings) -> int:
    from redblue import stack as local_stack

    if args.action == "up":
        local_stack.up(settings)
    elif args.action == "mlflow":
        from redblue.stack.mlflow import serve_foreground

        serve_foreground(settings)
    elif args.action == "down":
        local_stack.down(settings)
    else:
        for part in local_stack.status(settings):
            pid = f" pid {part.pid}" if part.pid else ""
            log = f" log {part.log_file}" if part.log_file else ""
            note = f" ({part.note})" if part.note else ""
            print(f"{part.name:<8} {part.state:<8} {part.address}{pid}{log}{note}")
    return 0


def _collect_less_often() -> None:
    """For a simulation's processes: a young-generation collection every 10,000 allocations, not
    700. A replay allocates millions of short-lived, acyclic events; with the default every
    collection also walked the growing heap of kept ones (the 7-symbol history: 11 s -> 9 s)."""
    gc.set_threshold(10_000, 10, 10)


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.app.simulate import SimulationRequest, SimulationResult
    from redblue.app.simulate import simulate as run_simulation

    _collect_less_often()

    arena, path = _arena(args)
    req = SimulationRequest(
        start=args.start,
        days=args.days if args.days is not None or args.end is not None else 180,
        end=args.end,
        arena=arena,
        arena_path=path,
        data_dir=args.data or DATA_DIR,
        run_id=args.run_id,
        out=args.out,
        timeout=args.timeout,
        retrain_every=args.retrain_every,
        train_missing=args.train_missing,
    )

    logging = None if args.no_mlflow else _Logging(settings)

    def report(result: SimulationResult) -> None:
        print(result.report)
        print(f"\nrun {result.run} took {result.seconds:.1f}s; files in {result.out}", flush=True)
        if logging is not None:
            logging.start(result)  # while the services stop

    result = run_simulation(settings, req, say=lambda text: print(text, file=sys.stderr), on_written=report)
    if logging is not None:
        from redblue.adapters.mlflow.tracking import SIMULATIONS

        print(f"logged to MLflow: experiment {SIMULATIONS}, run {logging.result()} ({settings.mlflow_uri})")
    print(f"query it again: bin/redblue leaderboard --run {result.run} --by mase")
    print(f"see it on the web: bin/redblue serve, then open http://127.0.0.1:8080/?run={result.run}")
    return 0


class _Logging:
    """A simulation's MLflow logging, off the critical path: MLflow (2-4 s to import) is imported
    while the simulation runs, the run logged while its services stop; errors reach the caller."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings.for_service("admin")
        self._imported = threading.Thread(target=_import_tracking, name="import-mlflow", daemon=True)
        self._imported.start()
        self._thread: threading.Thread | None = None
        self._outcome: list[str | BaseException] = []

    def start(self, result: Any) -> None:
        def log() -> None:
            from redblue.adapters.mlflow.tracking import log_simulation

            self._imported.join()
            try:
                self._outcome.append(log_simulation(self._settings, result.summary, result.out))
            except BaseException as err:  # re-raised by result()
                self._outcome.append(err)

        self._thread = threading.Thread(target=log, name="log-mlflow", daemon=True)
        self._thread.start()

    def result(self) -> str:
        """The MLflow run id, once logged (raises what the logging raised)."""
        assert self._thread is not None, "start() was not called: the simulation wrote no result"
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _import_tracking() -> None:
    from redblue.adapters.mlflow.tracking import preload

    preload()


def leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.app.outputs import leaderboard_text

    arena, _ = _arena(args)
    if args.rebuild:  # rebuilding writes the leaderboard: the scorer's job, as the scorer
        from consumers.scorer import rebuild

        print(
            f"rebuilt from {rebuild(settings.for_service('scorer'), args.run, arena)} events of run {args.run}'s topics"
        )
    print(leaderboard_text(settings.for_service("leaderboard"), args.run, arena, by=args.by, top=args.top))
    return 0


def process(args: argparse.Namespace, settings: Settings) -> int:
    from processors.app import create_app, run_worker
    from processors.forecasting import Horizon
    from processors.pins import read_pins
    from redblue.adapters.kafka import ensure_compacted_topics
    from redblue.app.simulate import model_sources
    from redblue.core.access import processor_changelogs
    from redblue.core.spans import parse_spans

    arena, _ = _arena(args)
    if not args.wait_for_go:  # with it, the orchestrator sets the run up before it says go
        prepare_if_admin(settings, args.run)
    settings = settings.for_service("processor")
    horizon = Horizon(args.first_target, args.last_target, parse_spans(args.spans) if args.spans else None)
    sources = model_sources(settings, arena)  # serving reads: the stack's read-only user
    pins = None if args.pins is None else read_pins(args.pins)
    app = create_app(settings, args.run, arena, horizon, sources, pins, prepared=args.wait_for_go)
    if args.wait_for_go:  # the orchestrator created every topic of the run, the changelogs too
        _collect_less_often()  # a simulation's processor
        if not sys.stdin.readline():
            return 0  # it gave up before the run's topics were ready
    else:  # the processor may create its own <app id>- topics (a service without the admin's password)
        ensure_compacted_topics(settings, processor_changelogs(args.run))
    run_worker(app, loglevel="info" if args.verbose else "warn")
    return 0


def train(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.app.provision import prepare_teams
    from training.train import train as train_models

    arena, _ = _arena(args)
    for user in prepare_teams(settings, arena.teams):
        print(f"MLflow user {user} created (its password is in {settings.credentials_file})")
    results = train_models(arena, settings, args.until, args.only, args.data or DATA_DIR, force=args.force)
    if not results:
        print("no Ludwig models in this arena (or none matching --only)")
    for r in results:
        scores = "" if r.val_mae is None else f"  validation MAE {r.val_mae:.4f}  MASE {r.val_mase or float('nan'):.3f}"
        print(f"{r.status:<10} {r.name} version {r.version}{scores}")
    print(f"MLflow: {settings.mlflow_uri} (experiments redblue.<team>)")
    return 0


def setup(args: argparse.Namespace, settings: Settings) -> int:
    """Create a run's topics and ACLs (the admin's part; the services then need only their own passwords)."""
    from redblue.app.provision import prepare_run, provision_users

    users = provision_users(settings.for_service("admin"))
    if users:
        print(f"users ready: {', '.join(users)}")
    topics = prepare_run(settings.for_service("admin"), args.run)
    print(f"run {args.run}: topics {', '.join(topics)} ready" + (" with their ACLs" if settings.security else ""))
    return 0


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.app.web.app import serve as run_server

    print(f"serving the leaderboard of {settings.redis_url} on http://{args.host}:{args.port}/ (API docs: /docs)")
    run_server(settings.for_service("leaderboard"), args.host, args.port, args.poll)  # Redis read-only
    return 0


def report(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.adapters.redis_store import RedisStores
    from redblue.app.web.share import render_html
    from redblue.core.clock import utc_now

    stores = RedisStores.from_settings(settings.for_service("leaderboard"))
    try:
        html = render_html(stores, args.run, utc_now())
    finally:
        stores.close()
    try:
        args.html.write_text(html)
    except OSError as err:
        raise CommandError(f"cannot write {args.html}: {err.strerror}") from err
    print(f"wrote {args.html} ({len(html) / 1e6:.1f} MB, opens offline)")
    return 0


def _until_signalled() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def trade(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.trader import bootstrap_trader, live_gateways, run_trader
    from redblue.core.clock import clock_of

    arena, _ = _arena(args)
    clock = clock_of(settings)
    gateways = live_gateways(args.run, arena, settings, clock)  # refuses a real-money account before Kafka is touched
    prepare_if_admin(settings, args.run)
    trader = bootstrap_trader(args.run, arena, clock=clock, gateways=gateways)
    stats = run_trader(
        settings.for_service("trader"), args.run, trader, _until_signalled(), tick_seconds=settings.trader_tick_seconds
    )
    print(f"trader stopped after {stats.consumed} messages ({stats.dead_lettered} dead-lettered)")
    return 0


def score(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.scorer import run_scorer

    arena, _ = _arena(args)
    prepare_if_admin(settings, args.run)
    stats = run_scorer(settings.for_service("scorer"), args.run, arena, _until_signalled())
    print(f"scorer stopped after {stats.consumed} messages ({stats.dead_lettered} dead-lettered)")
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import plan_replay
    from producers.replay import replay as emit
    from redblue.adapters.kafka import EventProducer
    from redblue.core.calendar import get_calendar
    from redblue.core.clock import utc_now

    arena, _ = _arena(args)
    calendar = get_calendar(arena.calendar)
    plan = plan_replay(
        args.data or DATA_DIR, arena.symbols, args.start, args.days, arena.window, calendar, end=args.end
    )
    prepare_if_admin(settings, args.run)
    sent = emit(EventProducer(settings.for_service("producer"), args.run), plan.rows, calendar, utc_now)
    print(f"replayed {sent} bars ({plan.warmup_first} .. {plan.last_target}) onto run {args.run}")
    return 0


def produce(args: argparse.Namespace, settings: Settings) -> int:
    from producers.live import LiveProducer
    from producers.published import Published
    from redblue.adapters.kafka import EventProducer, read_topic
    from redblue.core.calendar import get_calendar
    from redblue.core.clock import clock_of
    from redblue.core.readiness import announce_ready
    from schemas.topics import BARS, DEADLETTER

    arena, _ = _arena(args)
    calendar = get_calendar(arena.calendar)
    clock = clock_of(settings)
    prepare_if_admin(settings, args.run)
    settings = settings.for_service("producer")
    published = Published.read_back(read_topic(settings, args.run, BARS), read_topic(settings, args.run, DEADLETTER))
    live = LiveProducer(_source(args.source, calendar), EventProducer(settings, args.run), arena.symbols, calendar,
                        clock, published)  # fmt: skip

    said: list[bool] = []

    def report(poll: Poll) -> None:
        print(f"{clock():%Y-%m-%d %H:%M}Z {poll_text(poll)}", flush=True)
        if not poll.error and not said:  # read back what it had published, and polled: ready
            announce_ready(settings.ready_file)
            said.append(True)

    if args.once:
        poll = live.poll()
        report(poll)
        return 1 if poll.error else 0
    live.run(_until_signalled(), args.interval, report)
    return 0


def poll_text(poll: Poll) -> str:
    """What a poll did, one line per fact: what was sent, revised, dead-lettered, paused, or why nothing."""
    if poll.error:
        return f"nothing sent: {poll.error}"
    lines = ["sent " + (", ".join(f"{b.symbol} {b.date}" for b in poll.sent) or "nothing new")]
    lines += [f"  revised {r.bar.symbol} {r.bar.date}: {', '.join(r.changed)}" for r in poll.revised]
    lines += [f"  dead-lettered {r.symbol} {r.date or ''}: {r.reason}" for r in poll.rejected]
    lines += [f"  {why}" for why in poll.paused.values()]
    return "\n".join(lines)


def _source(name: str, calendar: TradingCalendar) -> BarSource:
    if name == "yfinance":
        from redblue.adapters.yfinance import YFinanceSource

        return YFinanceSource(calendar)
    from redblue.adapters.alpaca.market_data import AlpacaBarSource
    from redblue.core.settings import alpaca_credentials

    creds = alpaca_credentials("REDBLUE_ALPACA_")
    return AlpacaBarSource(
        creds.key, creds.secret, url_override=creds.url_override, calendar=calendar, timeout=creds.timeout
    )


def season(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.app.season import control
    from redblue.app.season.services import SeasonSpec

    spec = SeasonSpec(
        args.season, arena=args.arena, source=args.source, port=args.port, first_target=args.first_target,
        interval=args.interval, processors=args.processors,
    )  # fmt: skip
    if args.action == "up":
        pid = control.up(settings, spec)
        print(f"season {args.season}: supervisor pid {pid}; see: bin/redblue season status --season {args.season}")
    elif args.action == "down":
        stopped = control.down(settings, args.season)
        print(f"season {args.season}: {'stopped' if stopped else 'was not running'}")
    elif args.action == "status":
        import time

        arena, _ = _arena(args)
        print(control.render(control.status(settings, args.season, arena), time.time()))
    else:
        from redblue.app.season.supervisor import SeasonFiles, Supervisor, Watchdog

        files = SeasonFiles.of(settings.stack_home, args.season)
        dog = Watchdog(control.progress_of(settings, args.season), settings.stall_seconds)
        Supervisor(control.supervised_commands(spec), files, control.REPO, watchdog=dog).run(_until_signalled())
    return 0
