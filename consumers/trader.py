"""The trader service: consumes a run's forecasts topic, publishes orders, fills and marks.

Where its state lives: in its own output. On every start it reads the run's ``orders`` and
``fills`` topics, rebuilds positions, pending orders and cash from them, lets each team's
gateway restore (simulated) or reconcile (a real account) before anything is decided, and then
re-reads the forecasts topic from its start, ignoring everything up to the last bar it had
processed (see :mod:`consumers.recovery`). A team whose broker disagrees is not traded.
Each consumed batch's output (fills, marks, orders) is one Kafka transaction, so a trader killed
mid-batch leaves none of it behind and the rebuild never sees half a bar. (Order events of held
orders released by the ticker are sent outside it.)

``bootstrap_trader`` wires the gateways: a replay always gets simulated brokers (it cannot reach
a paper or live account); a live run gets each team's configured account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from consumers.recovery import rebuild
from consumers.simulated_broker import SimulatedBroker
from consumers.trading import Trader
from redblue.adapters.kafka import ConsumerStats, EventProducer, Outgoing, consume, read_topic
from redblue.core.access import trader_group
from redblue.core.arena import Arena
from redblue.core.broker import BrokerGateway
from redblue.core.clock import Clock, utc_now
from redblue.core.readiness import announce_ready
from redblue.core.settings import Settings
from redblue.core.spans import Spans
from schemas import BarProcessed, BarRevision, Event, Forecast, Order, PositionMark, TeamState
from schemas.topics import FILLS, FORECASTS, ORDERS

# Forecasts and markers handled per transaction at most. A commit costs several round trips
# (~0.1 s: outputs acknowledged, offsets added, markers written); in a replay's long stretches
# 2,000 events per transaction made commits a third of the trader's time (7 symbols, 1999-2025).
TRANSACTION_EVENTS = 10_000

GatewayFactory = Callable[[str], BrokerGateway]


def simulated_gateways(run: str, arena: Arena, clock: Clock) -> dict[str, BrokerGateway]:
    """One simulated account per team, with the arena's costs and starting cash."""
    return {team: SimulatedBroker(run, team, arena.costs, arena.strategy.initial_cash, clock) for team in arena.teams}


def live_gateways(run: str, arena: Arena, settings: Settings, clock: Clock = utc_now) -> dict[str, BrokerGateway]:
    """Each team's configured account: simulated, or Alpaca with ``REDBLUE_<TEAM>_ALPACA_*`` credentials.

    A real-money account (``..._PAPER=false``) needs ``REDBLUE_ALLOW_REAL_MONEY`` to name the team.
    """
    from redblue.adapters.alpaca.broker import AlpacaBroker
    from redblue.core.calendar import get_calendar
    from redblue.core.settings import team_alpaca_credentials

    gateways = simulated_gateways(run, arena, clock)
    for team, spec in arena.teams.items():
        if spec.account.broker == "alpaca":
            creds = team_alpaca_credentials(team, settings)
            gateways[team] = AlpacaBroker(
                run, team, creds.key, creds.secret, clock=clock, calendar=get_calendar(arena.calendar),
                paper=creds.paper, allow_real_money=team.lower() in settings.real_money_teams,
                url_override=creds.url_override, timeout=creds.timeout,
            )  # fmt: skip
    return gateways


def bootstrap_trader(
    run: str,
    arena: Arena,
    *,
    clock: Clock = utc_now,
    gateways: dict[str, BrokerGateway] | None = None,
    spans: Spans | None = None,
) -> Trader:
    gateways = gateways if gateways is not None else simulated_gateways(run, arena, clock)
    return Trader(run, arena, gateways, clock, spans)


def routed(events: Sequence[Event], spans: Spans | None = None) -> list[Outgoing]:
    """Where each trader output goes: orders to ``orders``, fills and marks to ``fills``.

    With ``spans`` (a replay) a mark outside its symbol's span (its warm-up, where nothing can
    trade) is dropped.
    """
    out = []
    for event in events:
        if isinstance(event, PositionMark) and spans is not None and not _marked(spans, event):
            continue
        if isinstance(event, TeamState):
            out.append(Outgoing(ORDERS, event.team, event))
            continue
        spec = ORDERS if isinstance(event, Order) else FILLS
        out.append(Outgoing(spec, getattr(event, "symbol", ""), event))
    return out


def _marked(spans: Spans, mark: PositionMark) -> bool:
    span = spans.get(mark.symbol)
    return span is not None and span.marks(mark.as_of)


def handler(
    trader: Trader, spans: Spans | None = None, lock: threading.Lock | None = None
) -> Callable[[Event], list[Outgoing]]:
    """What the trader does with each event of the forecasts topic (under ``lock``, shared with :func:`ticker`).

    A ``bar_revision`` changes nothing here: trades are never redone and positions already
    marked stay marked (docs/market-time.md); the next day's mark uses the next close.
    """
    guard = lock or threading.Lock()

    def handle(event: Event) -> list[Outgoing]:
        with guard:
            if isinstance(event, Forecast):
                return routed(trader.on_forecast(event))
            if isinstance(event, BarProcessed):
                return routed(trader.on_bar_processed(event), spans)
            return []

    return handle


def ticker(
    trader: Trader, send: Callable[[list[Outgoing]], None], lock: threading.Lock, stop: threading.Event, every: float
) -> None:
    """Every ``every`` seconds until ``stop``: send the order events of the orders the gateways released."""
    while not stop.wait(every):
        with lock:
            events = trader.tick()
        if events:
            send(routed(events))


def run_trader(
    settings: Settings,
    run: str,
    trader: Trader,
    stop: threading.Event,
    spans: Spans | None = None,
    tick_seconds: float = 30.0,
) -> ConsumerStats:
    """Resume from the run's orders and fills topics, then consume until ``stop`` is set;
    meanwhile release held orders every ``tick_seconds``."""
    trader.resume(rebuild([*read_topic(settings, run, ORDERS), *read_topic(settings, run, FILLS)]))
    lock = threading.Lock()
    producer = EventProducer(settings, run)

    def send(outs: list[Outgoing]) -> None:
        for out in outs:
            producer.send(out)
        producer.flush()

    send(routed(trader.states()))  # the board and ``season status`` say which teams are halted, and why

    done = threading.Event()  # not ``stop``: a failing consumer must not stop other services sharing it
    tick = threading.Thread(target=ticker, args=(trader, send, lock, done, tick_seconds), daemon=True)
    tick.start()
    try:
        return consume(
            settings,
            run,
            group=trader_group(run),
            specs=[FORECASTS],
            expect=(Forecast, BarProcessed, BarRevision),
            handle=handler(trader, spans, lock),
            stop=stop,
            stage="trader",
            from_start=True,  # pending forecasts live in memory; what was already processed is skipped
            transactional_id=trader_group(run),  # a bar's fills, marks and orders: all or none
            unit=TRANSACTION_EVENTS,
            on_ready=lambda: announce_ready(settings.ready_file),  # rebuilt, reconciled, forecasts re-read
        )
    finally:
        done.set()
        tick.join()
