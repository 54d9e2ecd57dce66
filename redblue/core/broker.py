"""The broker gateway: the one interface the trader uses to reach a market.

Implemented by :class:`consumers.simulated_broker.SimulatedBroker` (replays: fills at the next
bar's open) and by :class:`redblue.adapters.alpaca.broker.AlpacaBroker` (paper/live). A replay is
wired with the simulated broker only, so it cannot reach a paper or live account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

from schemas import Bar, Fill

Side = Literal["buy", "sell"]


@dataclass(frozen=True)
class OrderRequest:
    """A market order for ``quantity`` shares, decided as of ``as_of`` to execute at ``target``'s open."""

    run: str
    team: str
    model: str
    symbol: str
    side: Side
    quantity: int
    as_of: date
    target: date
    reference_price: float  # the decision day's close
    client_order_id: str


@dataclass(frozen=True)
class SubmitResult:
    """What the gateway answered: ``submitted``, ``duplicate`` (id already known), ``rejected``, or
    ``held`` (kept by the gateway until its broker's window for the order opens; sent later by
    :meth:`BrokerGateway.release`)."""

    status: Literal["submitted", "duplicate", "rejected", "held"]
    reason: str = ""


@dataclass(frozen=True)
class Rejection:
    """An order the broker accepted but did not execute (e.g. no cash at the open, expired)."""

    order: OrderRequest
    date: date
    reason: str


@dataclass
class TeamHistory:
    """One team's trading as the trader's own topics tell it (rebuilt by ``consumers.recovery``).

    A gateway with ``resume(history) -> str`` restores its account from it (simulated) or
    reconciles the real account with it, answering "" when they agree, else why not.
    """

    fills: list[Fill] = field(default_factory=list)
    pending: dict[str, OrderRequest] = field(default_factory=dict)  # client_order_id -> order not (fully) filled
    unfilled: dict[str, int] = field(default_factory=dict)  # client_order_id -> shares still to fill
    known_ids: set[str] = field(default_factory=set)  # every id the broker accepted
    positions: dict[str, int] = field(default_factory=dict)
    cash_flow: dict[str, float] = field(default_factory=dict)


class BrokerGateway(Protocol):
    """One team's account at a broker."""

    def submit(self, order: OrderRequest) -> SubmitResult:
        """Send ``order``. A reused ``client_order_id`` answers ``duplicate`` and changes nothing."""
        ...

    def on_day(self, bars: Sequence[Bar]) -> list[Fill]:
        """Report the fills that happened up to these bars' opens (one bar per symbol, all of one day).

        The fills come in the order they were applied to the account, which depends only on the
        orders, never on the order of ``bars``.
        """
        ...

    def take_rejections(self) -> list[Rejection]:
        """Accepted orders that ended without (full) execution, each reported once."""
        ...

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        """The held orders sent now (or given up on, their window past), with the broker's answer."""
        ...


class BrokerError(RuntimeError):
    """The broker could not be reached or answered something we cannot use (after retries).

    The trader logs it and goes on with the next team: one account's trouble never stops the others.
    """
