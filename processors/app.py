"""The Faust processor: ONE worker serves every model of the arena.

The agent is a short loop: decode the bar (or dead-letter it), move the symbol's window (a
Faust table, so it survives restarts), call the pure :func:`processors.forecasting.step`, send
the forecasts and the ``bar_processed`` marker keyed by symbol. A ``bar_revision`` updates the
window (:func:`processors.forecasting.revise`) and is forwarded onto the forecasts topic, in its
place among the markers, for the scorer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from processors.book import ModelBook, ModelSource
from processors.forecasting import Horizon, revise, step
from processors.pins import Pin
from redblue.adapters.kafka import Received, dead_letter
from redblue.core.arena import Arena
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.settings import Settings
from schemas import Bar, BarRevision, SchemaError, decode, encode, topic_name
from schemas.topics import BARS, DEADLETTER, FORECASTS

log = logging.getLogger(__name__)


# Verdicts that mean corrupt market data: dead-lettered with this reason. A redelivered bar
# sends its forecasts and marker again (see processors.forecasting.step); a duplicate that
# cannot be re-made exactly and a stale bar are skipped without a letter.
REJECTED = {
    "conflict": "conflicting bar: {bar.symbol} {bar.date} was already processed with other values",
    "not_a_session": "{bar.date} is not a trading day of the arena's calendar ({bar.symbol})",
}


def app_id(run: str) -> str:
    """The Faust app (and consumer group) of a run; its internal topics start with this too."""
    return f"redblue-processor-{run}"


def create_app(
    settings: Settings,
    run: str,
    arena: Arena,
    horizon: Horizon,
    sources: Mapping[str, ModelSource] | None = None,
    pins: Sequence[Pin] | None = None,
) -> faust.App:
    """Build the worker's app for one run (no connection is opened until it starts).

    ``sources`` maps model kinds (e.g. ``ludwig``) to where their versions come from; the
    baselines need none. Every ``model_refresh_seconds`` the worker picks up moved versions,
    unless ``pins`` fix them (a simulation: see :mod:`processors.pins`).
    """
    datadir = settings.home / "faust" / run
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id(run),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=BARS.partitions,
        web_enabled=False,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        producer_linger_ms=1,
    )
    bars = app.topic(topic_name(settings.topic_prefix, run, BARS), value_type=bytes, value_serializer="raw")
    forecasts = app.topic(topic_name(settings.topic_prefix, run, FORECASTS), value_type=bytes, value_serializer="raw")
    dead = app.topic(topic_name(settings.topic_prefix, run, DEADLETTER), value_type=bytes, value_serializer="raw")
    windows = app.Table("windows", default=list, partitions=BARS.partitions)
    book = ModelBook(arena, sources, pins)
    calendar = get_calendar(arena.calendar)

    async def reject(message: Any, reason: str) -> None:
        received = Received(message.topic, message.partition, message.offset, message.key, message.value)
        letter = dead_letter(received, "processor", reason, utc_now)
        log.warning("dead-lettered %s@%d: %s", message.topic, message.offset, reason)
        await dead.send(key=message.topic.encode(), value=encode(letter))

    async def take_revision(revision: BarRevision) -> None:
        symbol = revision.bar.symbol
        windows[symbol] = [b.model_dump(mode="json") for b in revise(_window(windows[symbol]), revision)]
        await forecasts.send(key=symbol.encode(), value=encode(revision))

    @app.agent(bars)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            try:
                bar = decode(event.message.value, (Bar, BarRevision))
            except SchemaError as err:
                await reject(event.message, str(err))
                continue
            if isinstance(bar, BarRevision):
                await take_revision(bar)
                continue
            assert isinstance(bar, Bar)
            window = _window(windows[bar.symbol])
            models = book.models_at(bar.date)
            result = step(
                run, window, bar, models, size=arena.window, calendar=calendar, horizon=horizon, now=utc_now()
            )
            if result.verdict in REJECTED:
                await reject(event.message, REJECTED[result.verdict].format(bar=bar))
                continue
            if result.verdict not in ("ok", "redelivered"):
                log.info("skipped %s %s: %s", bar.symbol, bar.date, result.verdict)
                continue
            if result.verdict == "ok":  # a redelivered bar re-sends its events; the window stays
                windows[bar.symbol] = [b.model_dump(mode="json") for b in result.window]
            for out in result.events:
                await forecasts.send(key=bar.symbol.encode(), value=encode(out))

    @app.timer(interval=settings.model_refresh_seconds)  # type: ignore[untyped-decorator]
    async def refresh_models() -> None:
        await asyncio.get_running_loop().run_in_executor(None, book.refresh)

    return app


def _window(stored: list[Any]) -> list[Bar]:
    return [Bar.model_validate(b) for b in stored]


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
