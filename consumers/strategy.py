"""The trading strategy: pure functions from a forecast and a position to an order decision.

A team is long a symbol when its trading model predicts the next close above the last close by
more than ``threshold``, else flat. A new position is sized in whole shares at the decision
day's close; the order it yields executes at the next trading day's open (see the broker).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date

from redblue.core.arena import StrategySpec
from redblue.core.broker import Side
from schemas import Forecast


@dataclass(frozen=True)
class Decision:
    """What to do after one forecast: a market order of ``quantity`` shares, or nothing (``side`` None)."""

    side: Side | None = None
    quantity: int = 0


HOLD = Decision()


def client_order_id(run: str, team: str, model: str, symbol: str, target: date, side: Side) -> str:
    """The deterministic id of the order (at most 38 characters; the contract allows 48).

    A readable prefix (symbol, target day, side) followed by 16 hex digits of a SHA-256 over every
    input, so resending the same decision reuses the id and any differing input gives a new one.
    """
    material = "|".join((run, team, model, symbol, target.isoformat(), side))
    digest = hashlib.sha256(material.encode()).hexdigest()[:16]
    return f"{symbol[:10]}-{target:%Y%m%d}-{side[0]}-{digest}"


def wants_long(forecast: Forecast, threshold: float) -> bool:
    """True iff the predicted close beats the last close by strictly more than ``threshold``."""
    return forecast.predicted_close > forecast.last_close * (1 + threshold)


def target_shares(forecast: Forecast, strategy: StrategySpec) -> int:
    """Whole shares the symbol's allocation buys at the decision day's close (``last_close``)."""
    return math.floor(strategy.allocation_for(forecast.symbol) / forecast.last_close)


def decide(forecast: Forecast, held_qty: int, pending: bool, strategy: StrategySpec) -> Decision:
    """The order (or none) that moves ``held_qty`` shares towards the forecast's target position.

    Nothing is ordered while an earlier order of the symbol is ``pending`` (not yet filled or
    rejected), so an order is never doubled. A held long position stays unchanged while the
    signal stays long, unless ``strategy.resize`` asks to re-size it to the allocation.
    """
    long = wants_long(forecast, strategy.threshold)
    if pending or (long and held_qty > 0 and not strategy.resize):
        return HOLD
    return _move(held_qty, target_shares(forecast, strategy) if long else 0)


def _move(held_qty: int, target_qty: int) -> Decision:
    if target_qty > held_qty:
        return Decision("buy", target_qty - held_qty)
    if target_qty < held_qty:
        return Decision("sell", held_qty - target_qty)
    return HOLD
