"""What each ``redblue`` subcommand does (the parser is in :mod:`redblue.cli`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from producers.bars import DATA_DIR
from redblue.arena import DEFAULT_ARENA, Arena, load_arena
from redblue.errors import RedblueError
from redblue.settings import Settings


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
    }[args.command]
    return handler(args, settings)


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
    elif args.action == "down":
        local_stack.down(settings)
    else:
        for part in local_stack.status(settings):
            pid = f" pid {part.pid}" if part.pid else ""
            log = f" log {part.log_file}" if part.log_file else ""
            note = f" ({part.note})" if part.note else ""
            print(f"{part.name:<8} {part.state:<8} {part.address}{pid}{log}{note}")
    return 0


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.simulate import SimulationRequest
    from redblue.simulate import simulate as run_simulation

    arena, path = _arena(args)
    req = SimulationRequest(
        start=args.start,
        days=args.days,
        arena=arena,
        arena_path=path,
        data_dir=args.data or DATA_DIR,
        run_id=args.run_id,
        out=args.out,
        timeout=args.timeout,
    )
    result = run_simulation(settings, req, say=lambda text: print(text, file=sys.stderr))
    print(result.report)
    print(f"\nrun {result.run} took {result.seconds:.1f}s; files in {result.out}")
    if not args.no_mlflow:
        from redblue.tracking import SIMULATIONS, log_simulation

        mlflow_run = log_simulation(settings, result.summary, result.out)
        print(f"logged to MLflow: experiment {SIMULATIONS}, run {mlflow_run} ({settings.mlflow_uri})")
    print(f"query it again: bin/redblue leaderboard --run {result.run} --by mase")
    return 0


def leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    from redblue.outputs import leaderboard_text

    arena, _ = _arena(args)
    print(leaderboard_text(settings, args.run, arena, by=args.by, top=args.top))
    return 0


def process(args: argparse.Namespace, settings: Settings) -> int:
    from processors.app import create_app, run_worker
    from processors.forecasting import Horizon

    arena, _ = _arena(args)
    horizon = Horizon(first=args.first_target, last=args.last_target)
    run_worker(create_app(settings, args.run, arena, horizon), loglevel="info" if args.verbose else "warn")
    return 0


def _until_signalled() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def trade(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.trader import bootstrap_trader, run_trader

    arena, _ = _arena(args)
    if any(team.account.broker != "simulated" for team in arena.teams.values()):
        raise CommandError("Alpaca accounts are not wired into `redblue trade` yet; use broker: simulated")
    stats = run_trader(settings, args.run, bootstrap_trader(args.run, arena), _until_signalled())
    print(f"trader stopped after {stats.consumed} messages ({stats.dead_lettered} dead-lettered)")
    return 0


def score(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.scorer import run_scorer

    arena, _ = _arena(args)
    stats = run_scorer(settings, args.run, arena, _until_signalled())
    print(f"scorer stopped after {stats.consumed} messages ({stats.dead_lettered} dead-lettered)")
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    from producers.replay import plan_replay
    from producers.replay import replay as emit
    from redblue.calendar import get_calendar
    from redblue.clock import utc_now
    from redblue.kafka import EventProducer, ensure_topics

    arena, _ = _arena(args)
    calendar = get_calendar(arena.calendar)
    plan = plan_replay(args.data or DATA_DIR, arena.symbols, args.start, args.days, arena.window, calendar)
    ensure_topics(settings, args.run)
    sent = emit(EventProducer(settings, args.run), plan.rows, calendar, utc_now)
    print(f"replayed {sent} bars ({plan.warmup_first} .. {plan.last_target}) onto run {args.run}")
    return 0
