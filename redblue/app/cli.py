"""The ``redblue`` command line: one entry point for the stack, simulations and every service."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from redblue.core import calendar
from redblue.core.errors import RedblueError
from redblue.core.metrics import FORECAST_METRICS, TRADING_METRICS
from redblue.core.settings import Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redblue", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("stack", help="the local Kafka, Redis and MLflow").add_argument(
        "action", choices=["up", "down", "status", "mlflow"], help="mlflow: run the MLflow server in the foreground"
    )

    _simulate_args(sub.add_parser("simulate", help="run a historical simulation through the whole pipeline"))

    train = sub.add_parser("train", help="train the arena's Ludwig models (up-to-date ones are kept) into MLflow")
    _arena_args(train)
    train.add_argument("--until", type=_date, default=date(2023, 12, 29), help="last day of training data")
    train.add_argument("--only", default=None, help="TEAM/MODEL, e.g. red/mlp")
    train.add_argument("--data", type=Path, default=None, help="directory of SYMBOL.csv bar files")
    train.add_argument("--force", action="store_true", help="retrain even when the champion is up to date")

    board = sub.add_parser("leaderboard", help="query a run's leaderboard in Redis")
    board.add_argument("--run", required=True)
    board.add_argument("--by", default="mase", choices=(*FORECAST_METRICS, *TRADING_METRICS, "trades"))
    board.add_argument("--top", type=int, default=20)
    board.add_argument("--arena", type=Path, default=None, help="the run's arena file (default: reference)")
    board.add_argument("--rebuild", action="store_true", help="rebuild the run's leaderboard from its topics first")

    proc = sub.add_parser("process", help="run the Faust prediction processor of a run (one worker, every model)")
    _service_args(proc)
    proc.add_argument("--first-target", type=_date, default=None)
    proc.add_argument("--last-target", type=_date, default=None)
    proc.add_argument("--spans", default=None, help="per-symbol spans of a simulation (SYMBOL=W/A/T/L,...)")
    proc.add_argument(
        "--wait-for-go", action="store_true", help="get ready (models loaded), then wait for a line on stdin to start"
    )
    proc.add_argument(
        "--pins", type=Path, default=None, help="serve exactly these versions (a simulation's served.json), not aliases"
    )

    for name, text in (("trade", "run the trader of a run"), ("score", "run the scorer of a run")):
        _service_args(sub.add_parser(name, help=text))

    produce = sub.add_parser("produce", help="emit live daily bars onto a run's bars topic after each close")
    _service_args(produce)
    produce.add_argument("--source", choices=["yfinance", "alpaca"], default="yfinance")
    produce.add_argument("--once", action="store_true", help="poll once and exit (e.g. from cron)")
    produce.add_argument("--interval", type=float, default=900.0, help="seconds between polls (default 900)")

    serve = sub.add_parser("serve", help="serve the leaderboard's JSON API and web page from Redis")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--poll", type=float, default=5.0, help="seconds between the page's checks for new scores")

    _season_args(sub.add_parser("season", help="a live season's long-lived services, supervised"))

    report = sub.add_parser("report", help="write a run's leaderboard as one self-contained HTML file")
    report.add_argument("--run", required=True)
    report.add_argument("--html", type=Path, required=True, help="the file to write")

    sub.add_parser("setup", help="create a run's topics and ACLs (admin; the service commands do it too)").add_argument(
        "--run", required=True
    )

    replay = sub.add_parser("replay", help="emit bars of a date range onto a run's bars topic")
    replay.add_argument("--run", required=True)
    replay.add_argument("--start", type=_date, required=True)
    replay_span = replay.add_mutually_exclusive_group(required=True)
    replay_span.add_argument("--days", type=int)
    replay_span.add_argument("--end", type=_date)
    _arena_args(replay)
    replay.add_argument("--data", type=Path, default=None)
    return parser


def _season_args(season: argparse.ArgumentParser) -> None:
    season.add_argument("action", choices=["up", "down", "status", "supervise"], help="supervise: in the foreground")
    season.add_argument("--season", required=True, help="the season's run id (e.g. live)")
    season.add_argument("--arena", type=Path, default=None, help="arena file (default arenas/reference.yaml)")
    season.add_argument("--source", choices=["yfinance", "alpaca"], default="yfinance", help="the producer's bars")
    season.add_argument("--port", type=int, default=8080, help="the web page's port (default 8080)")
    season.add_argument("--first-target", type=_date, default=None, help="the first session forecast (and traded)")
    season.add_argument("--interval", type=float, default=None, help="seconds between the producer's polls")
    season.add_argument(
        "--processors", type=_positive, default=1, help="processor workers sharing the bars' partitions (default 1)"
    )


def _simulate_args(sim: argparse.ArgumentParser) -> None:
    sim.add_argument("--start", type=_date, default=date(2024, 1, 2), help="first target day (default 2024-01-02)")
    span = sim.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=None, help="number of target trading days (default 180)")
    span.add_argument("--end", type=_date, default=None, help="last target day (instead of --days)")
    _arena_args(sim)
    sim.add_argument("--data", type=Path, default=None, help="directory of SYMBOL.csv bar files (default data/bars)")
    sim.add_argument("--run-id", default=None, help="run id (default: derived from the inputs; re-running replaces it)")
    sim.add_argument("--out", type=Path, default=None, help="output directory (default out/RUN_ID)")
    sim.add_argument("--timeout", type=float, default=300.0, help="seconds without progress before giving up")
    sim.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    trained = sim.add_mutually_exclusive_group()
    trained.add_argument(
        "--retrain-every", type=int, default=None, metavar="N",
        help="walk forward: retrain each team model every N trading days on the bars up to then (champion untouched)",
    )  # fmt: skip
    trained.add_argument(
        "--train-missing", action="store_true",
        help="train a team model whose champion is missing or trained too late, up to the first as-of day",
    )  # fmt: skip


def _arena_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arena", type=Path, default=None, help="arena file (default arenas/reference.yaml)")
    parser.add_argument("--symbols", type=_symbols, default=None, help="e.g. AAPL,AMZN,SAP (default: the arena's)")


def _service_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run id (e.g. live)")
    _arena_args(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from redblue.app import commands

    try:
        settings = Settings()
        calendar.use_cache(settings.home / "calendars")  # no exchange_calendars import in every process
        return commands.dispatch(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except RedblueError as err:
        print(f"redblue: {err}", file=sys.stderr)
        return 2
