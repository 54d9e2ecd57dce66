"""A trader killed at any point and rebuilt from its own topics continues exactly as if it never stopped."""

from __future__ import annotations

import pytest

from consumers.recovery import rebuild
from consumers.simulated_broker import SimulatedBroker
from consumers.trading import Trader
from redblue.core.broker import BrokerGateway, OrderRequest, SubmitResult
from schemas import BarProcessed, Event, Fill, Forecast, Order, PositionMark
from tests.unit.test_trading import (
    ARENA,
    D1,
    D2,
    D3,
    D4,
    D5,
    RUN,
    ScriptedGateway,
    clock,
    forecast,
    processed,
    simulated,
)

# Two symbols, both teams: buys, holds, sells (so fills, pending orders and cash all matter).
SCRIPT: list[Forecast | BarProcessed] = [
    forecast(D1, 110.0, 100.0), forecast(D1, 90.0, 50.0, symbol="AMZN"),
    forecast(D1, 110.0, 100.0, team="blue", model="trend"),
    processed(D1, 99.0, 100.0), processed(D1, 49.0, 50.0, symbol="AMZN"),
    forecast(D2, 120.0, 101.0), forecast(D2, 60.0, 51.0, symbol="AMZN"),
    forecast(D2, 90.0, 101.0, team="blue", model="trend"),
    processed(D2, 100.0, 101.0), processed(D2, 50.0, 51.0, symbol="AMZN"),
    forecast(D3, 90.0, 102.0), forecast(D3, 60.0, 52.0, symbol="AMZN"),
    forecast(D3, 110.0, 102.0, team="blue", model="trend"),
    processed(D3, 101.0, 102.0), processed(D3, 51.0, 52.0, symbol="AMZN"),
    forecast(D4, 90.0, 103.0), forecast(D4, 40.0, 53.0, symbol="AMZN"),
    processed(D4, 102.0, 103.0), processed(D4, 52.0, 53.0, symbol="AMZN"),
    processed(D5, 103.0, 104.0), processed(D5, 53.0, 54.0, symbol="AMZN"),
]  # fmt: skip


def feed(trader: Trader, events: list[Forecast | BarProcessed]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, Forecast):
            out += trader.on_forecast(event)
        else:
            out += trader.on_bar_processed(event)
    return out


def as_topics(events: list[Event]) -> list[Event]:
    """What a restarted trader reads: the orders topic, then the fills topic (fills and marks)."""
    return [e for e in events if isinstance(e, Order)] + [e for e in events if not isinstance(e, Order)]


def test_the_script_trades() -> None:
    out = feed(Trader(RUN, ARENA, simulated(), clock), SCRIPT)
    assert sum(isinstance(e, Fill) for e in out) >= 4
    assert {e.side for e in out if isinstance(e, Fill)} == {"buy", "sell"}


@pytest.mark.parametrize("killed_after", range(1, len(SCRIPT)))
def test_a_trader_killed_mid_run_and_rebuilt_from_its_topics_equals_an_uninterrupted_run(killed_after: int) -> None:
    uninterrupted = feed(Trader(RUN, ARENA, simulated(), clock), SCRIPT)

    before = feed(Trader(RUN, ARENA, simulated(), clock), SCRIPT[:killed_after])
    restarted = Trader(RUN, ARENA, simulated(), clock)  # fresh brokers: a simulated account has no memory
    restarted.resume(rebuild(as_topics(before)))
    after = feed(restarted, SCRIPT)  # forecasts are re-read from the start of their topic
    assert restarted.halted == {}
    assert before + after == uninterrupted


def restarted_with_blue_unreconcilable() -> tuple[list[Event], Trader]:
    """What a trader wrote before a kill, and the trader restarted with blue's gateway unable to reconcile."""
    before = feed(Trader(RUN, ARENA, simulated(), clock), SCRIPT[:9])
    gateways = simulated()
    gateways["blue"] = ScriptedGateway([])
    restarted = Trader(RUN, ARENA, gateways, clock)
    restarted.resume(rebuild(as_topics(before)))
    return before, restarted


def test_a_team_whose_gateway_cannot_reconcile_is_not_traded_after_a_restart() -> None:
    _, restarted = restarted_with_blue_unreconcilable()
    assert set(restarted.halted) == {"blue"} and "cannot reconcile" in restarted.halted["blue"]
    after = feed(restarted, SCRIPT)
    assert {e.team for e in after if isinstance(e, Order | Fill | PositionMark)} == {"red"}


class Holding(SimulatedBroker):
    """Holds every order in memory until :meth:`release` (Alpaca's gateway holds opg orders until 19:01)."""

    def __init__(self, team: str) -> None:
        super().__init__(RUN, team, ARENA.costs, 10_000.0, clock)
        self.held: list[OrderRequest] = []

    def submit(self, order: OrderRequest) -> SubmitResult:
        if order.client_order_id in {o.client_order_id for o in self.held}:
            return SubmitResult("duplicate", "already submitted")
        self.held.append(order)
        return SubmitResult("held", "until the window opens")

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        taken, self.held = self.held, []
        return [(order, super().submit(order)) for order in taken]


def holding() -> dict[str, BrokerGateway]:
    return {team: Holding(team) for team in ARENA.teams}


def feed_and_tick(trader: Trader, events: list[Forecast | BarProcessed], tick_after: set[int]) -> list[Event]:
    out: list[Event] = []
    for n, event in enumerate(events):
        out += feed(trader, [event])
        if n in tick_after:
            out += trader.tick()
    return out


EVENINGS = {n for n, e in enumerate(SCRIPT) if isinstance(e, BarProcessed) and e.bar.symbol == "AMZN"}


@pytest.mark.parametrize("killed_after", sorted(EVENINGS))
def test_an_order_held_when_the_trader_was_killed_is_decided_again_after_the_restart(killed_after: int) -> None:
    """Killed after a day's markers (orders decided, held in memory) and before the evening's tick."""
    uninterrupted = feed_and_tick(Trader(RUN, ARENA, holding(), clock), SCRIPT, EVENINGS)
    before = feed_and_tick(Trader(RUN, ARENA, holding(), clock), SCRIPT[: killed_after + 1], EVENINGS - {killed_after})
    restarted = Trader(RUN, ARENA, holding(), clock)
    restarted.resume(rebuild(as_topics(before)))
    after = feed_and_tick(restarted, SCRIPT, EVENINGS | {killed_after})
    assert restarted.halted == {}
    assert sorted(map(repr, before + after)) == sorted(map(repr, uninterrupted))


def test_a_halted_team_is_told_to_the_board_and_to_season_status() -> None:
    from consumers.leaderboard import Scoreboard
    from consumers.trader import routed
    from redblue.app.season.control import Account, SeasonStatus, render
    from redblue.core.store import InMemoryStore
    from schemas import TeamState
    from schemas.topics import ORDERS

    before, restarted = restarted_with_blue_unreconcilable()
    [blue] = routed(restarted.states())  # red trades as before: nothing to say
    assert (blue.spec, blue.key) == (ORDERS, "blue") and isinstance(blue.event, TeamState)
    told = [*as_topics(before), blue.event]
    assert rebuild(told).halted == {"blue": restarted.halted["blue"]}
    again = Trader(RUN, ARENA, {**simulated(), "blue": ScriptedGateway([])}, clock)
    again.resume(rebuild(told))
    assert again.states() == [], "a restart with nothing changed writes nothing"
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    board.handle(blue.event)
    assert store.halts() == {"blue": restarted.halted["blue"]}
    status = SeasonStatus("live", None, [], {}, {}, {}, [Account("blue", None, None, None, {}, store.halts()["blue"])])
    assert f"HALTED, not traded: {restarted.halted['blue']}" in render(status, 0.0)
    mended = Trader(RUN, ARENA, simulated(), clock)  # the account mended, the trader started again
    mended.resume(rebuild(told))
    for state in mended.states():
        board.handle(state)
    assert store.halts() == {}, "a start that reconciles clears the halt"
