"""One team's Alpaca account as a :class:`~redblue.core.broker.BrokerGateway` (the only module importing
``alpaca.trading``).

**When to send what.** An order decided from day D's bar must execute at the open of its target
D+1, like the simulated broker's fill at the next bar's open. Alpaca's rules (see
``alpaca.trading.enums.TimeInForce``): an ``opg`` (market-on-open) order sent after 09:28 and
before 19:00 New York time is rejected, one sent after 19:00 goes to the next session's opening
auction; a ``day`` market order sent while the market is closed is queued for the next session.
So, by the submission time in ``America/New_York`` (see :func:`time_in_force_for`):

- from 19:01 until 09:27 (any day): ``opg``, filled in the target's opening auction;
- during a session's regular hours (09:30 until its close, 13:00 on half days): rejected, a
  market order would fill at once, on the wrong day and price;
- any other time (after the close until 19:01, 09:27-09:30, weekend or holiday daytime):
  ``day``, queued for the next session's open;

and in every case the next open must be the target's, or the order is rejected (sent late, it
would execute on another day than the one it was decided for). The minute of margin on each
side of 09:28 and 19:00 absorbs clock skew between us and Alpaca.

**Idempotence.** Alpaca refuses a reused ``client_order_id`` with HTTP 422 ("client_order_id
must be unique"); alpaca-py retries POSTs on 429/504, so a retry can meet its own first attempt.
That answer becomes :class:`SubmitResult` ``duplicate`` and the order is fetched by its id and
tracked, so its fills are still reported. Other 4xx answers are ``rejected`` with Alpaca's
message; 429/5xx after alpaca-py's retries, and connection failures, raise
:class:`~redblue.core.broker.BrokerError` (resubmitting later is safe: the id makes it a duplicate).

**Fills.** :meth:`AlpacaBroker.on_day` polls, by ``client_order_id``, the unfinished orders of
the bars' symbols due on or before their day and returns a :class:`~schemas.Fill` for each newly
filled quantity (a partial fill is one execution; ``Fill.execution`` numbers them per order),
at the price that makes the average come out as Alpaca's ``filled_avg_price``, with
commission 0: alpaca-py's ``Order`` carries no commission (and the
small regulatory fees Alpaca passes on for sells are not counted). An order that ends
canceled, expired or rejected with shares unfilled is handed out once by
:meth:`AlpacaBroker.take_rejections`, as the simulated broker does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Literal
from zoneinfo import ZoneInfo

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position, TradeAccount
from alpaca.trading.requests import MarketOrderRequest
from pydantic import SecretStr

from redblue.core.broker import BrokerError, OrderRequest, Rejection, SubmitResult
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.clock import Clock, utc_now
from schemas import Bar, Fill

NEW_YORK = ZoneInfo("America/New_York")
REGULAR_OPEN = time(9, 30)
OPG_LAST = time(9, 27)  # Alpaca rejects opg from 09:28: one minute of margin
OPG_FIRST = time(19, 1)  # ... until 19:00: one minute of margin
FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})
_DUPLICATE = re.compile(r"client[ _]?order[ _]?id must be unique", re.IGNORECASE)

TimeInForceName = Literal["opg", "day"]


class OrderTimingError(ValueError):
    """The order cannot be sent now so that it executes at its target's open; ``str`` is why."""


def next_open(at: datetime, calendar: TradingCalendar) -> date:
    """The session whose regular open (09:30 New York) is the first one after ``at``."""
    local = at.astimezone(NEW_YORK)
    if calendar.is_session(local.date()) and local.time() < REGULAR_OPEN:
        return local.date()
    return calendar.next_session(local.date())


def time_in_force_for(at: datetime, target: date, calendar: TradingCalendar) -> TimeInForceName:
    """``opg`` or ``day`` for a market order sent at ``at`` to execute at ``target``'s open.

    Raises :class:`OrderTimingError` during regular hours and when the next open is not
    ``target``'s (the table in this module's docstring).
    """
    if at.tzinfo is None:
        raise ValueError(f"submission time must be timezone-aware, got {at!r}")
    local = at.astimezone(NEW_YORK)
    day = local.date()
    if calendar.is_session(day) and local.time() >= REGULAR_OPEN and at < calendar.close_time(day):
        raise OrderTimingError(f"the market is open ({local:%Y-%m-%d %H:%M} New York): a market order would fill now")
    if (opens := next_open(at, calendar)) != target:
        raise OrderTimingError(
            f"sent at {local:%Y-%m-%d %H:%M} New York the order would execute at {opens}'s open, not at {target}'s"
        )
    return "opg" if local.time() >= OPG_FIRST or local.time() < OPG_LAST else "day"


@dataclass(frozen=True)
class AccountSummary:
    """The account's state as Alpaca reports it (amounts in the account currency)."""

    account_number: str
    status: str
    cash: float
    equity: float
    buying_power: float


@dataclass
class _Tracked:
    order: OrderRequest
    reported: int = 0  # shares already reported as fills
    notional: Decimal = Decimal(0)  # their cost at the reported prices
    executions: int = 0  # fills reported so far
    done: bool = False


class AlpacaBroker:
    """The Alpaca account of ``team`` in ``run``; ``paper=False`` would reach a live account.

    ``url_override`` points the client elsewhere (a local stand-in in tests); ``clock`` gives
    the submission time that decides the time in force. Nothing is contacted at construction.
    """

    def __init__(
        self,
        run: str,
        team: str,
        key: str | SecretStr,
        secret: str | SecretStr,
        *,
        clock: Clock = utc_now,
        calendar: TradingCalendar | None = None,
        paper: bool = True,
        url_override: str | None = None,
    ) -> None:
        self._run = run
        self._team = team
        self._clock = clock
        self._calendar = calendar or get_calendar()
        self._client = TradingClient(_plain(key), _plain(secret), paper=paper, url_override=url_override)
        self._tracked: dict[str, _Tracked] = {}
        self._rejections: list[Rejection] = []

    def submit(self, order: OrderRequest) -> SubmitResult:
        """Send ``order`` as a market order (``opg`` or ``day``); a known id answers ``duplicate``."""
        if (order.run, order.team) != (self._run, self._team):
            return SubmitResult("rejected", f"order of {order.run}/{order.team} sent to the account of {self._team}")
        if order.client_order_id in self._tracked:
            return SubmitResult("duplicate", "already submitted")
        try:
            tif = time_in_force_for(self._clock(), order.target, self._calendar)
        except OrderTimingError as err:
            known = self._lookup(order.client_order_id)  # sent before, e.g. by a previous process?
            return self._reconcile(order, known) if known else SubmitResult("rejected", str(err))
        return self._send(order, tif)

    def on_day(self, bars: Sequence[Bar]) -> list[Fill]:
        """New fills of the orders of the bars' symbols due on or before their day (each share once).

        Polled by symbol, then ``client_order_id``: the order of ``bars`` does not matter.
        """
        polled = [
            self._poll(tracked, bar)
            for bar in sorted(bars, key=lambda b: b.symbol)
            for _, tracked in sorted(self._tracked.items())
            if self._is_due(tracked, bar)
        ]
        return [f for f in polled if f is not None]

    def take_rejections(self) -> list[Rejection]:
        """Orders that ended canceled, expired or rejected with shares unfilled (each returned once)."""
        taken, self._rejections = self._rejections, []
        return taken

    def account(self) -> AccountSummary:
        """The account's status and balances; raises :class:`BrokerError` on bad credentials."""
        acct = self._call("read the account", self._client.get_account)
        if not isinstance(acct, TradeAccount):
            raise BrokerError(f"Alpaca account: unexpected answer {type(acct).__name__}")
        return AccountSummary(
            account_number=acct.account_number,
            status=str(acct.status.value),
            cash=float(acct.cash or 0),
            equity=float(acct.equity or 0),
            buying_power=float(acct.buying_power or 0),
        )

    def positions(self) -> dict[str, int]:
        """Shares held per symbol (negative: short), as Alpaca reports them."""
        held = self._call("read the positions", self._client.get_all_positions)
        if not isinstance(held, list):
            raise BrokerError(f"Alpaca positions: unexpected answer {type(held).__name__}")
        return {p.symbol: int(Decimal(p.qty)) for p in held if isinstance(p, Position)}

    # -- submitting ---------------------------------------------------------------------

    def _send(self, order: OrderRequest, tif: TimeInForceName) -> SubmitResult:
        request = MarketOrderRequest(
            symbol=order.symbol,
            qty=order.quantity,
            side=OrderSide(order.side),
            time_in_force=TimeInForce(tif),
            client_order_id=order.client_order_id,
        )
        try:
            self._client.submit_order(request)
        except APIError as err:
            return self._refused(order, err)
        except requests.RequestException as err:
            raise BrokerError(f"Alpaca unreachable sending {order.client_order_id}: {err}") from err
        self._tracked[order.client_order_id] = _Tracked(order)
        return SubmitResult("submitted")

    def _refused(self, order: OrderRequest, err: APIError) -> SubmitResult:
        status = _status(err)
        if status == 422 and _DUPLICATE.search(_message(err)):
            return self._reconcile(order, self._lookup(order.client_order_id))
        if status is not None and 400 <= status < 500 and status != 429:
            return SubmitResult("rejected", f"Alpaca: {_describe(err)}")
        raise BrokerError(f"Alpaca failed on {order.client_order_id}: {_describe(err)}") from err

    def _reconcile(self, order: OrderRequest, known: AlpacaOrder | None) -> SubmitResult:
        """Track an order Alpaca already has under ``order``'s id; say how it stands."""
        self._tracked[order.client_order_id] = _Tracked(order)
        if known is None:
            return SubmitResult("duplicate", "Alpaca knows the client_order_id but could not return its order")
        reason = f"already at Alpaca, status {known.status.value}"
        side, quantity = known.side.value if known.side else None, _decimal(known.qty)
        if (known.symbol, side, quantity) != (order.symbol, order.side, Decimal(order.quantity)):
            shown = format(quantity.normalize(), "f")
            reason += f", as {side} {shown} {known.symbol} (not {order.side} {order.quantity} {order.symbol})"
        return SubmitResult("duplicate", reason)

    # -- fills --------------------------------------------------------------------------

    @staticmethod
    def _is_due(tracked: _Tracked, bar: Bar) -> bool:
        order = tracked.order
        return not tracked.done and order.symbol == bar.symbol and order.target <= bar.date

    def _poll(self, tracked: _Tracked, bar: Bar) -> Fill | None:
        cid = tracked.order.client_order_id
        remote = self._lookup(cid)
        if remote is None:
            raise BrokerError(f"Alpaca does not know the submitted order {cid}")
        fill = self._new_fill(tracked, remote)
        if remote.status in FINAL:
            tracked.done = True
            if tracked.reported < tracked.order.quantity:
                why = f"Alpaca order {remote.status.value}: {tracked.reported} of {tracked.order.quantity} filled"
                self._rejections.append(Rejection(tracked.order, bar.date, why))
        return fill

    def _new_fill(self, tracked: _Tracked, remote: AlpacaOrder) -> Fill | None:
        filled = int(_decimal(remote.filled_qty))
        average = _decimal(remote.filled_avg_price)
        quantity = filled - tracked.reported
        if quantity <= 0 or average <= 0:
            return None
        notional = filled * average
        price = (notional - tracked.notional) / quantity
        tracked.reported, tracked.notional, tracked.executions = filled, notional, tracked.executions + 1
        order = tracked.order
        return Fill(
            run=order.run,
            team=order.team,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            side=order.side,
            quantity=quantity,
            price=float(price),
            commission=0.0,
            date=remote.filled_at.astimezone(NEW_YORK).date() if remote.filled_at else order.target,
            execution=tracked.executions,
            produced_at=self._clock(),
        )

    # -- talking to Alpaca --------------------------------------------------------------

    def _lookup(self, client_order_id: str) -> AlpacaOrder | None:
        """The order Alpaca has under ``client_order_id``, None if it has none (HTTP 404)."""
        try:
            found = self._client.get_order_by_client_id(client_order_id)
        except APIError as err:
            if _status(err) == 404:
                return None
            raise BrokerError(f"Alpaca lookup of {client_order_id}: {_describe(err)}") from err
        except requests.RequestException as err:
            raise BrokerError(f"Alpaca unreachable looking up {client_order_id}: {err}") from err
        if not isinstance(found, AlpacaOrder):
            raise BrokerError(f"Alpaca lookup of {client_order_id}: unexpected answer {type(found).__name__}")
        return found

    @staticmethod
    def _call[T](what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except APIError as err:
            raise BrokerError(f"Alpaca: cannot {what}: {_describe(err)}") from err
        except requests.RequestException as err:
            raise BrokerError(f"Alpaca unreachable, cannot {what}: {err}") from err


def _plain(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _decimal(value: str | float | None) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _status(err: APIError) -> int | None:
    code = err.status_code
    return int(code) if code is not None else None


def _message(err: APIError) -> str:
    """Alpaca's ``message`` from the error body (``{"code": ..., "message": ...}``), else the body."""
    text = str(err)
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return str(body.get("message", text)) if isinstance(body, dict) else text


def _describe(err: APIError) -> str:
    status = _status(err)
    return f"HTTP {status}: {_message(err)}" if status is not None else _message(err)
