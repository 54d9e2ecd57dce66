"""What a restarted trader rebuilds from its own topics before it decides anything.

The trader's output is its memory: the ``orders`` topic holds every order and the broker's
answer, the ``fills`` topic every fill and every position mark. From them (in topic order) we
rebuild, per team and symbol, the position and net cash flow (fills), the orders still pending
(accepted, not yet filled, not rejected when they came due) and the last bar processed per
symbol (the newest mark). The trader then resumes exactly there: forecasts are re-read from the
start of their topic and everything up to the last processed bar is ignored; the first new
marker is handled as it would have been by a trader that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from redblue.core.broker import OrderRequest, TeamHistory
from schemas import Fill, Order, PositionMark, TeamState


@dataclass
class TraderHistory:
    """Every team's history and the last bar the trader processed per symbol."""

    teams: dict[str, TeamHistory] = field(default_factory=dict)
    last_bar: dict[str, date] = field(default_factory=dict)
    ordered: set[str] = field(default_factory=set)  # every client_order_id with an order event, any status
    halted: dict[str, str] = field(default_factory=dict)  # team -> the halt last written ("" or absent: trades)

    def team(self, name: str) -> TeamHistory:
        return self.teams.setdefault(name, TeamHistory())


def request_of(order: Order) -> OrderRequest:
    """The request an ``Order`` event records."""
    return OrderRequest(
        run=order.run, team=order.team, model=order.model, symbol=order.symbol, side=order.side,
        quantity=order.quantity, as_of=order.as_of, target=order.target, reference_price=order.reference_price,
        client_order_id=order.client_order_id,
    )  # fmt: skip


def rebuild(events: Iterable[object]) -> TraderHistory:
    """The history in ``events`` (the orders topic, then the fills topic; other objects ignored)."""
    history = TraderHistory()
    for event in events:
        if isinstance(event, Order):
            history.ordered.add(event.client_order_id)
            _order(history.team(event.team), event)
        elif isinstance(event, TeamState):  # keyed by team: its latest state comes last
            history.halted[event.team] = event.halted
        elif isinstance(event, Fill):
            _fill(history.team(event.team), event)
        elif isinstance(event, PositionMark):
            history.team(event.team)
            if event.as_of > history.last_bar.get(event.symbol, date.min):
                history.last_bar[event.symbol] = event.as_of
    return history


def _order(team: TeamHistory, order: Order) -> None:
    coid = order.client_order_id
    if order.status == "rejected":  # refused when sent, or when it came due: not pending
        team.pending.pop(coid, None)
        team.unfilled.pop(coid, None)
        return
    team.known_ids.add(coid)
    if coid not in team.pending and not any(f.client_order_id == coid for f in team.fills):
        team.pending[coid] = request_of(order)
        team.unfilled[coid] = order.quantity


def _fill(team: TeamHistory, fill: Fill) -> None:
    team.fills.append(fill)
    signed = fill.quantity if fill.side == "buy" else -fill.quantity
    team.positions[fill.symbol] = team.positions.get(fill.symbol, 0) + signed
    team.cash_flow[fill.symbol] = team.cash_flow.get(fill.symbol, 0.0) + fill.cash_flow
    left = team.unfilled.pop(fill.client_order_id, 0) - fill.quantity
    if left > 0:
        team.unfilled[fill.client_order_id] = left
    else:
        team.pending.pop(fill.client_order_id, None)


__all__ = ["TeamHistory", "TraderHistory", "rebuild", "request_of"]
