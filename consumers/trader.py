"""The trader service: consumes a run's forecasts topic, publishes orders, fills and marks.

``bootstrap_trader`` wires the gateways: a replay always gets simulated brokers (it cannot reach
a paper or live account); a live run gets each team's configured account.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

from consumers.simulated_broker import SimulatedBroker
from consumers.trading import Trader
from redblue.adapters.kafka import ConsumerStats, Outgoing, consume
from redblue.core.arena import Arena
from redblue.core.broker import BrokerGateway
from redblue.core.clock import Clock, utc_now
from redblue.core.settings import Settings
from schemas import BarProcessed, Event, Forecast, Order, PositionMark
from schemas.topics import FILLS, FORECASTS, ORDERS

GatewayFactory = Callable[[str], BrokerGateway]


def simulated_gateways(run: str, arena: Arena, clock: Clock) -> dict[str, BrokerGateway]:
    """One simulated account per team, with the arena's costs and starting cash."""
    return {team: SimulatedBroker(run, team, arena.costs, arena.strategy.initial_cash, clock) for team in arena.teams}


def live_gateways(run: str, arena: Arena, clock: Clock = utc_now) -> dict[str, BrokerGateway]:
    """Each team's configured account: simulated, or Alpaca with ``REDBLUE_<TEAM>_ALPACA_*`` credentials."""
    from redblue.adapters.alpaca.broker import AlpacaBroker
    from redblue.core.calendar import get_calendar
    from redblue.core.settings import alpaca_credentials

    gateways = simulated_gateways(run, arena, clock)
    for team, spec in arena.teams.items():
        if spec.account.broker == "alpaca":
            creds = alpaca_credentials(f"REDBLUE_{team.upper()}_ALPACA_")
            gateways[team] = AlpacaBroker(
                run, team, creds.key, creds.secret, clock=clock, calendar=get_calendar(arena.calendar),
                paper=creds.paper, url_override=creds.url_override,
            )  # fmt: skip
    return gateways


def bootstrap_trader(
    run: str, arena: Arena, *, clock: Clock = utc_now, gateways: dict[str, BrokerGateway] | None = None
) -> Trader:
    return Trader(run, arena, gateways if gateways is not None else simulated_gateways(run, arena, clock), clock)


def routed(events: list[Event], first_as_of: date | None = None) -> list[Outgoing]:
    """Where each trader output goes: orders to ``orders``, fills and marks to ``fills``.

    Marks before ``first_as_of`` (the warm-up of a replay, where nothing can trade) are dropped.
    """
    out = []
    for event in events:
        if isinstance(event, PositionMark) and first_as_of is not None and event.as_of < first_as_of:
            continue
        spec = ORDERS if isinstance(event, Order) else FILLS
        out.append(Outgoing(spec, getattr(event, "symbol", ""), event))
    return out


def run_trader(
    settings: Settings,
    run: str,
    trader: Trader,
    stop: threading.Event,
    first_as_of: date | None = None,
) -> ConsumerStats:
    """Consume until ``stop`` is set."""

    def handle(event: Event) -> list[Outgoing]:
        if isinstance(event, Forecast):
            trader.on_forecast(event)
            return []
        assert isinstance(event, BarProcessed)
        return routed(trader.on_bar_processed(event), first_as_of)

    return consume(
        settings,
        run,
        group=f"redblue-trader-{run}",
        specs=[FORECASTS],
        expect=(Forecast, BarProcessed),
        handle=handle,
        stop=stop,
        stage="trader",
    )
