"""The Faust processor: ONE worker serves every model of the arena.

The agent is a short loop over batches of bars: decode each bar (or dead-letter it), move its
symbol's window (kept in memory, stored in a Faust table so it survives restarts, see
:mod:`processors.windows`), call the pure :func:`processors.forecasting.step_many` and send, bar
by bar in the order they came, the forecasts and then the ``bar_processed`` marker keyed by symbol.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event  # what Faust sets while a stream iterates one event

from processors import app_id
from processors.book import ModelBook, ModelSource
from processors.forecasting import Horizon, step_many
from processors.windows import Windows
from redblue.adapters.kafka import Received, dead_letter
from redblue.core.arena import Arena
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.settings import Settings
from schemas import Bar, Event, SchemaError, decode_all, encode, topic_name
from schemas.topics import BARS, DEADLETTER, FORECASTS
from schemas.wire import pack

log = logging.getLogger(__name__)


# Verdicts that mean corrupt market data: dead-lettered with this reason. A plain duplicate
# (a redelivered or replayed bar) and a stale bar are skipped without a letter.
REJECTED = {
    "conflict": "conflicting bar: {bar.symbol} {bar.date} was already processed with other values",
    "not_a_session": "{bar.date} is not a trading day of the arena's calendar ({bar.symbol})",
}


# A batch is what arrived within BATCH_WAIT seconds (at most BATCH_SIZE bars): a day of every
# symbol live, a long stretch of history in a replay. Every model predicts a batch in one call.
BATCH_SIZE = 2000  # messages (a replay's message holds many bars)
BATCH_WAIT = 0.05
STEP_SIZE = 1000  # bars stepped, and their results sent, at a time: the next stage starts early
PRODUCER_LINGER = 0.005  # seconds the producer waits to fill a request


def create_app(
    settings: Settings,
    run: str,
    arena: Arena,
    horizon: Horizon,
    sources: Mapping[str, ModelSource] | None = None,
) -> faust.App:
    """Build the worker's app for one run (no connection is opened until it starts).

    ``sources`` maps model kinds (e.g. ``ludwig``) to where their versions come from; the
    baselines need none. Every ``model_refresh_seconds`` the worker picks up moved versions.
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
        producer_linger=PRODUCER_LINGER,
    )
    bars = app.topic(topic_name(settings.topic_prefix, run, BARS), value_type=bytes, value_serializer="raw")
    forecasts = topic_name(settings.topic_prefix, run, FORECASTS)
    dead = app.topic(topic_name(settings.topic_prefix, run, DEADLETTER), value_type=bytes, value_serializer="raw")
    table = app.Table("windows", default=list, partitions=BARS.partitions)
    windows = Windows(table)
    book = ModelBook(arena, sources, background=True)  # models load while the worker starts
    calendar = get_calendar(arena.calendar)

    async def reject(message: Any, reason: str) -> None:
        received = Received(message.topic, message.partition, message.offset, message.key, message.value)
        letter = dead_letter(received, "processor", reason, utc_now)
        log.warning("dead-lettered %s@%d: %s", message.topic, message.offset, reason)
        await dead.send(key=message.topic.encode(), value=encode(letter, revalidate=False))

    @app.agent(bars)
    async def process(stream: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, book.ready.wait)  # every model, before any bar
        async for batch in stream.take_events(BATCH_SIZE, within=BATCH_WAIT):
            await handle(batch)

    async def handle(events: list[Any]) -> None:
        """Decode a batch of messages (dead-letter the undecodable), step their bars and send the
        results, a stretch of at most STEP_SIZE bars at a time; then store the moved windows."""
        received: list[tuple[Any, Bar]] = []
        for event in events:
            try:
                bars = decode_all(event.message.value, (Bar,))  # one bar, or a replay's batch of them
            except SchemaError as err:
                await reject(event.message, str(err))
                continue
            received += [(event, bar) for bar in bars if isinstance(bar, Bar)]
        for start in range(0, len(received), STEP_SIZE):
            await step_and_send(received[start : start + STEP_SIZE])
        last = {bar.symbol: event for event, bar in received}

        def write(symbol: str, stored: Any) -> None:
            with _processing(last[symbol]):  # the table's changelog partition is that of the bar
                table[symbol] = stored

        windows.save(write)

    async def step_and_send(received: list[tuple[Any, Bar]]) -> None:
        current = windows.load({bar.symbol for _, bar in received})
        steps = step_many(
            run, current, [bar for _, bar in received], book.models,
            size=arena.window, calendar=calendar, horizon=horizon, now=utc_now(),
        )  # fmt: skip
        windows.update(current)
        outgoing: list[tuple[str, Event]] = []
        for (event, bar), result in zip(received, steps, strict=True):
            if result.verdict in REJECTED:
                await reject(event.message, REJECTED[result.verdict].format(bar=bar))
            elif result.verdict != "ok":
                log.info("skipped %s %s: %s", bar.symbol, bar.date, result.verdict)
            outgoing += [(bar.symbol, out) for out in result.events]
        # per partition, the forecasts and markers in order, in as few messages as can be (built
        # and validated just now: not validated again), straight to Faust's producer
        for partition, key, value in pack(outgoing, FORECASTS.partitions, revalidate=False):
            await app.producer.send(forecasts, key.encode(), value, partition, None, None)

    @app.timer(interval=settings.model_refresh_seconds)  # type: ignore[untyped-decorator]
    async def refresh_models() -> None:
        if book.ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, book.refresh)

    return app


@contextmanager
def _processing(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event, as while iterating a stream one event at a time.

    A table write goes to the changelog partition of the current event; a batch (``take_events``)
    has none of its own, so each window is written as part of the last bar that moved it.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def changelogs(app: faust.App) -> dict[str, int]:
    """The app's table changelog topics and their partitions (create them before the worker
    starts: a first batch right after start-up would otherwise meet one not in the metadata yet)."""
    return {table.changelog_topic_name: table.partitions or BARS.partitions for table in app.tables.values()}


def build_worker(app: faust.App, loglevel: str = "warn") -> faust.Worker:
    """The worker of ``app``, logging at ``loglevel`` and above."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner turns the root logger down to DEBUG so that it can spin on every
    # record: a log record for every message sent. A worker logging to a file needs no spinner.
    worker.spinner = None
    return worker


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    build_worker(app, loglevel).execute_from_commandline()
