"""The Faust processor: ONE worker serves every model of the arena.

The agent is a short loop over batches of bars: decode each bar (or dead-letter it), move its
symbol's window (kept in memory, stored in a Faust table so it survives restarts, see
:mod:`processors.windows`), call the pure :func:`processors.forecasting.step_many` and send, bar
by bar in the order they came, the forecasts and then the ``bar_processed`` marker keyed by symbol.
A ``bar_revision`` updates the window (:func:`processors.forecasting.revise`) and is forwarded onto
the forecasts topic, in its place among the markers, for the scorer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event  # what Faust sets while a stream iterates one event
from faust.tables import TableManager

from processors import app_id, worker_client_id
from processors.book import ModelBook, ModelSource
from processors.forecasting import Horizon, revise, step_many
from processors.pins import Pin
from processors.windows import Windows
from redblue.adapters.kafka import Received, dead_letter
from redblue.core.access import PROCESSOR_TABLES
from redblue.core.arena import Arena
from redblue.core.calendar import get_calendar
from redblue.core.clock import clock_of
from redblue.core.readiness import announce_ready
from redblue.core.settings import Settings
from schemas import Bar, BarRevision, Event, SchemaError, decode_all, encode, topic_name
from schemas.topics import BARS, DEADLETTER, FORECASTS
from schemas.wire import pack

log = logging.getLogger(__name__)


# Verdicts that mean corrupt market data: dead-lettered with this reason. A redelivered bar
# sends its forecasts and marker again (see processors.forecasting.step); a duplicate that
# cannot be re-made exactly and a stale bar are skipped without a letter.
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
READY_EVERY = 0.5  # seconds between the worker's looks at whether it is ready (once)


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """The processor's SASL/SCRAM login (None without security)."""
    login = settings.kafka_login()
    if login is None:
        return None
    return faust.SASLCredentials(
        username=login.username, password=login.password.get_secret_value(), mechanism="SCRAM-SHA-512"
    )


def create_app(
    settings: Settings,
    run: str,
    arena: Arena,
    horizon: Horizon,
    sources: Mapping[str, ModelSource] | None = None,
    pins: Sequence[Pin] | None = None,
    prepared: bool = False,
) -> faust.App:
    """Build the worker's app for one run (no connection is opened until it starts).

    ``sources`` maps model kinds (e.g. ``ludwig``) to where their versions come from; the
    baselines need none. Every ``model_refresh_seconds`` the worker picks up moved versions,
    unless ``pins`` fix them (a simulation: see :mod:`processors.pins`). ``prepared``: every
    topic of the run, the table changelogs included, was created before the worker starts and
    is in the broker's metadata (a simulation's orchestrator does that before it says go), so
    the worker starts without Faust's pause (see :class:`_PromptTables`).
    """
    datadir = settings.home / "faust" / run
    datadir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"TableManager": _PromptTables} if prepared else {}
    app = faust.App(
        app_id(run),
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=broker_credentials(settings),
        broker_client_id=worker_client_id(os.getpid()),  # which member of the group is which process
        broker_session_timeout=settings.processor_session_seconds,  # a killed worker's partitions move after it
        broker_heartbeat_interval=min(3.0, settings.processor_session_seconds / 3),
        store="memory://",
        topic_partitions=BARS.partitions,
        web_enabled=False,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        producer_linger=PRODUCER_LINGER,
        **options,
    )
    bars = app.topic(topic_name(settings.topic_prefix, run, BARS), value_type=bytes, value_serializer="raw")
    book = ModelBook(arena, sources, pins, background=True)  # models load while the worker starts
    batches = _Batches(app, settings, run, arena, horizon, book)

    @app.agent(bars)
    async def process(stream: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, book.ready.wait)  # every model, before any bar
        if book.failure is not None:  # a worker without its book would consume bars and forecast nothing
            log.critical("the models could not be loaded: %r; the worker stops", book.failure, exc_info=book.failure)
            os._exit(3)  # Faust would restart a crashed agent forever: the process ends, its supervisor decides
        async for batch in stream.take_events(BATCH_SIZE, within=BATCH_WAIT):
            await batches.handle(batch)

    @app.timer(interval=settings.model_refresh_seconds)  # type: ignore[untyped-decorator]
    async def refresh_models() -> None:
        if book.ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, book.refresh)

    said: list[bool] = []

    @app.timer(interval=READY_EVERY)  # type: ignore[untyped-decorator]
    async def say_ready() -> None:
        """Ready once the models are loaded and the group's first assignment is recovered."""
        if not said and book.ready.is_set() and book.failure is None and app.tables.actives_ready:
            announce_ready(settings.ready_file)
            said.append(True)

    return app


class _PromptTables(TableManager):
    """Faust's table manager without the fixed one-second pause its ``on_start`` begins with
    (faust-streaming 0.11: ``await self.sleep(1.0)``, then subscribe to the changelogs and
    recover). The pause gives a changelog topic that the worker has just created time to reach
    its consumer's metadata; without it the first table write met ``PartitionsMismatch`` in a
    season's processor. Used only with ``prepared`` topics (they exist, and the broker's
    metadata shows them, before the worker's consumer first asks)."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class _Batches:
    """What the agent does with a batch of messages of the bars topic."""

    def __init__(self, app: faust.App, settings: Settings, run: str, arena: Arena, horizon: Horizon, book: ModelBook):
        self._app, self._run, self._arena, self._horizon, self._book = app, run, arena, horizon, book
        self._forecasts = topic_name(settings.topic_prefix, run, FORECASTS)
        self._dead = app.topic(
            topic_name(settings.topic_prefix, run, DEADLETTER), value_type=bytes, value_serializer="raw"
        )
        [name] = PROCESSOR_TABLES
        self._table = app.Table(name, default=list, partitions=BARS.partitions)
        self._windows = Windows(self._table)
        self._calendar = get_calendar(arena.calendar)
        self._clock = clock_of(settings)

    async def handle(self, events: list[Any]) -> None:
        """Decode a batch of messages (dead-letter the undecodable), step their bars and send the
        results, a stretch of at most STEP_SIZE bars at a time; then store the moved windows."""
        received: list[tuple[Any, Bar | BarRevision]] = []
        for event in events:
            try:
                items = decode_all(event.message.value, (Bar, BarRevision))  # one, or a replay's batch
            except SchemaError as err:
                await self._reject(event.message, str(err))
                continue
            received += [(event, item) for item in items if isinstance(item, Bar | BarRevision)]
        for start in range(0, len(received), STEP_SIZE):
            await self._step_and_send(received[start : start + STEP_SIZE])
        last = {_symbol(item): event for event, item in received}

        def write(symbol: str, stored: Any) -> None:
            with _processing(last[symbol]):  # the table's changelog partition is that of the bar
                self._table[symbol] = stored

        self._windows.save(write)

    async def _step_and_send(self, received: list[tuple[Any, Bar | BarRevision]]) -> None:
        """Step the bars, revise windows with the revisions (forwarded in their place), send it all."""
        current = self._windows.load({_symbol(item) for _, item in received})
        outgoing: list[tuple[str, Event]] = []
        stretch: list[tuple[Any, Bar]] = []
        for event, item in [*received, (None, None)]:
            if isinstance(item, Bar):
                stretch.append((event, item))
                continue
            outgoing += await self._stepped(current, stretch)
            stretch = []
            if isinstance(item, BarRevision):  # later forecasts see the new values; made ones stay
                current[item.bar.symbol] = revise(current[item.bar.symbol], item)
                outgoing.append((item.bar.symbol, item))
        self._windows.update(current)
        # per partition, the forecasts, markers and revisions in order, in as few messages as can be
        # (built and validated just now: not validated again), straight to Faust's producer
        for partition, key, value in pack(outgoing, FORECASTS.partitions, revalidate=False):
            await self._app.producer.send(self._forecasts, key.encode(), value, partition, None, None)

    async def _stepped(self, current: dict[str, list[Bar]], stretch: list[tuple[Any, Bar]]) -> list[tuple[str, Event]]:
        steps = step_many(
            self._run, current, [bar for _, bar in stretch], self._book.models, size=self._arena.window,
            calendar=self._calendar, horizon=self._horizon, now=self._clock(),
        )  # fmt: skip
        outgoing: list[tuple[str, Event]] = []
        for (event, bar), result in zip(stretch, steps, strict=True):
            if result.verdict in REJECTED:
                await self._reject(event.message, REJECTED[result.verdict].format(bar=bar))
            elif result.verdict not in ("ok", "redelivered"):  # a redelivered bar re-sends its events
                log.info("skipped %s %s: %s", bar.symbol, bar.date, result.verdict)
            outgoing += [(bar.symbol, out) for out in result.events]
        return outgoing

    async def _reject(self, message: Any, reason: str) -> None:
        received = Received(message.topic, message.partition, message.offset, message.key, message.value)
        letter = dead_letter(received, "processor", reason, self._clock)
        log.warning("dead-lettered %s@%d: %s", message.topic, message.offset, reason)
        await self._dead.send(key=message.topic.encode(), value=encode(letter, revalidate=False))


def _symbol(item: Bar | BarRevision) -> str:
    return item.symbol if isinstance(item, Bar) else item.bar.symbol


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


class _Worker(faust.Worker):
    """Faust's worker, closing its event loop as soon as the tasks it cancelled on stopping have
    finished: mode's worker runs the loop a fixed second longer for them (``_sentinel_task``),
    a second every simulation waited for its processor to exit."""

    async def _sentinel_task(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        current = asyncio.current_task()
        while loop.time() < deadline and any(t is not current for t in asyncio.all_tasks()):
            await asyncio.sleep(0.01)


def build_worker(app: faust.App, loglevel: str = "warn") -> faust.Worker:
    """The worker of ``app``, logging at ``loglevel`` and above."""
    worker = _Worker(app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner turns the root logger down to DEBUG so that it can spin on every
    # record: a log record for every message sent. A worker logging to a file needs no spinner.
    worker.spinner = None
    return worker


def run_worker(app: faust.App, loglevel: str = "warn") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    build_worker(app, loglevel).execute_from_commandline()
