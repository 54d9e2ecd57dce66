"""The events themselves (version 1 of each contract).

Market time and wall time are kept apart: every event says which trading day it is about
(``date`` / ``as_of`` / ``target``) and carries ``produced_at``, the UTC wall-clock moment it
was made. Wall-clock fields never enter a simulation's output files, so reruns are identical.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SYMBOL_PATTERN = r"^[A-Z][A-Z0-9.\-]{0,9}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,47}$"  # teams and models
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Side = Literal["buy", "sell"]


class SchemaError(ValueError):
    """A message that does not satisfy its contract; ``str(err)`` is the reason."""


class Event(BaseModel):
    """Base of every contract: immutable, no unknown fields, typed on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    produced_at: datetime


class Bar(Event):
    """The daily bar of ``symbol`` for trading day ``date``; it exists only after that close.

    Prices are split-adjusted and not dividend-adjusted (``adjustment="split"``), as Yahoo's
    "Close" column; ``ts_event`` is the session close (UTC) at which the bar became final.
    """

    TYPE: ClassVar[str] = "bar"
    symbol: Symbol
    date: date
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Annotated[int, Field(ge=0)]
    adjustment: Literal["split", "split_dividend", "none"] = "split"
    source: str
    ts_event: datetime

    @model_validator(mode="after")
    def _consistent_range(self) -> Bar:
        if self.high < max(self.open, self.close, self.low) or self.low > min(self.open, self.close):
            raise ValueError(
                f"inconsistent bar {self.symbol} {self.date}: high {self.high} / low {self.low} "
                f"do not bound open {self.open} and close {self.close}"
            )
        if self.ts_event.date() < self.date:
            raise ValueError(f"bar {self.symbol} {self.date} claims to be final before its day ({self.ts_event})")
        return self


BAR_VALUES = ("open", "high", "low", "close", "volume")


class BarRevision(Event):
    """The vendor changed a bar after it was published: ``bar`` has the new values, ``previous``
    the values published before (the first print, or the last revision).

    It travels on the bars topic after the bar it revises (same key: the symbol) and the
    processor forwards it onto the forecasts topic. Downstream: the processor's window takes
    the new values (later forecasts use them); the scorer re-scores the forecasts whose
    target is ``bar.date`` against the new close; forecasts already made from the old values
    and trades already decided are never redone (see docs/market-time.md).
    """

    TYPE: ClassVar[str] = "bar_revision"
    bar: Bar
    previous: Bar

    @model_validator(mode="after")
    def _same_session_other_values(self) -> BarRevision:
        if (self.bar.symbol, self.bar.date) != (self.previous.symbol, self.previous.date):
            raise ValueError(
                f"a revision of {self.previous.symbol} {self.previous.date} "
                f"carries the bar of {self.bar.symbol} {self.bar.date}"
            )
        if not self.changed:
            raise ValueError(f"revision of {self.bar.symbol} {self.bar.date} changes nothing")
        return self

    @property
    def changed(self) -> tuple[str, ...]:
        """The names of the values that differ (``open``, ``high``, ``low``, ``close``, ``volume``)."""
        return tuple(name for name in BAR_VALUES if getattr(self.bar, name) != getattr(self.previous, name))


class Forecast(Event):
    """A prediction, made from bars up to and including ``as_of``, of the close on ``target``.

    ``model_trained_until`` is the training cutoff of the model version that made it (``None``
    for a baseline, which is fitted on nothing, and in events written before the field existed);
    it is never after ``as_of``.
    """

    TYPE: ClassVar[str] = "forecast"
    run: Name
    team: Name
    model: Name
    model_version: str
    symbol: Symbol
    as_of: date
    target: date
    predicted_close: Price
    last_close: Price
    model_trained_until: date | None = None

    @model_validator(mode="after")
    def _target_after_as_of(self) -> Forecast:
        if self.target <= self.as_of:
            raise ValueError(f"forecast target {self.target} is not after as_of {self.as_of}")
        if self.model_trained_until is not None and self.model_trained_until > self.as_of:
            raise ValueError(
                f"forecast as of {self.as_of} by {self.team}/{self.model} version {self.model_version}, "
                f"trained on data up to {self.model_trained_until}: it has seen the answer"
            )
        return self

    @property
    def key(self) -> str:
        """Identity of the forecast within its run (one per team, model, symbol and target)."""
        return f"{self.team}/{self.model}/{self.symbol}/{self.target.isoformat()}"


class BarProcessed(Event):
    """Written by the processor after all forecasts made from ``bar``: the bar is now known.

    ``failed`` names the models (``team/model``) that could not forecast from this bar.
    """

    TYPE: ClassVar[str] = "bar_processed"
    run: Name
    bar: Bar
    forecasts: Annotated[int, Field(ge=0)]
    failed: tuple[str, ...] = ()


class Order(Event):
    """A market order decided from the forecast as of ``as_of``, to execute at ``target``'s open.

    ``status`` is what the broker gateway answered: ``submitted``, ``duplicate`` (the
    ``client_order_id`` was already known: it was sent before) or ``rejected`` (see ``reason``).
    """

    TYPE: ClassVar[str] = "order"
    run: Name
    team: Name
    model: Name
    symbol: Symbol
    side: Side
    quantity: Annotated[int, Field(gt=0)]
    as_of: date
    target: date
    reference_price: Price
    client_order_id: Annotated[str, Field(min_length=1, max_length=48)]
    status: Literal["submitted", "duplicate", "rejected"]
    reason: str = ""


class Fill(Event):
    """An execution of an order on trading day ``date`` at ``price`` (slippage included).

    An order filled in parts (Alpaca's partial fills) has one fill per part, numbered by
    ``execution`` from 1; an order filled at once has one fill, execution 1.
    """

    TYPE: ClassVar[str] = "fill"
    run: Name
    team: Name
    symbol: Symbol
    client_order_id: Annotated[str, Field(min_length=1, max_length=48)]
    side: Side
    quantity: Annotated[int, Field(gt=0)]
    price: Price
    commission: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    date: date
    execution: Annotated[int, Field(ge=1)] = 1

    @property
    def key(self) -> str:
        """Identity of the fill within its team: the order's id and the execution number."""
        return f"{self.client_order_id}/{self.execution}"

    @property
    def cash_flow(self) -> float:
        """Cash this fill moved into (+) or out of (-) the account, commission included."""
        sign = -1.0 if self.side == "buy" else 1.0
        return sign * self.quantity * self.price - self.commission


class PositionMark(Event):
    """A team's position in ``symbol`` marked to market at ``as_of``'s close.

    ``net_cash_flow`` is the sum of every fill's cash flow in this symbol up to and including
    ``as_of``, so the symbol's contribution to the team's P&L is ``net_cash_flow + market_value``
    and team equity is the initial cash plus the sum of those contributions.
    """

    TYPE: ClassVar[str] = "position_mark"
    run: Name
    team: Name
    symbol: Symbol
    as_of: date
    quantity: Annotated[int, Field(ge=0)]
    close: Price
    net_cash_flow: Annotated[float, Field(allow_inf_nan=False)]

    @property
    def market_value(self) -> float:
        return self.quantity * self.close


class TeamState(Event):
    """Whether the trader trades ``team`` of ``run``: ``halted`` says why it does not ("" while it does).

    Written for every team each time the trader starts. A team is halted (the trader fails
    closed) when its reconciliation with the team's broker fails (positions, orders or cash
    disagree, or the broker cannot be asked); once an operator has mended the account, the next
    start's state clears it.
    """

    TYPE: ClassVar[str] = "team_state"
    run: Name
    team: Name
    halted: str = ""


class DeadLetter(Event):
    """A message that could not be used, with the reason and its original bytes (base64)."""

    TYPE: ClassVar[str] = "dead_letter"
    stage: str
    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    original_b64: str

    @classmethod
    def of(
        cls,
        *,
        stage: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        produced_at: datetime,
    ) -> DeadLetter:
        return cls(
            stage=stage,
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key.decode("utf-8", "replace"),
            reason=reason,
            original_b64=base64.b64encode(value or b"").decode("ascii"),
            produced_at=produced_at,
        )

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


EVENTS: tuple[type[Event], ...] = (
    Bar, BarRevision, Forecast, BarProcessed, Order, Fill, PositionMark, TeamState, DeadLetter,
)  # fmt: skip
REGISTRY: dict[str, type[Event]] = {cls.TYPE: cls for cls in EVENTS}


def reason(err: ValidationError) -> str:
    """A validation error as one readable line: ``field: message; ...``."""
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
