"""One team's Alpaca account as a :class:`~redblue.core.broker.BrokerGateway` (the only module importing
``alpaca.trading``).

**When to send what** (:mod:`redblue.adapters.alpaca.timing`): every order is an ``opg``
(market-on-open) order for its target session, sent inside Alpaca's window for that open — from
19:01 New York on the session before until 3 minutes before the calendar's open. An order
decided earlier is held (``SubmitResult`` ``held``) and sent by :meth:`AlpacaBroker.release`,
which the trader service calls every 30 seconds; one decided after the window closed is a
``rejected`` order with the reason ("missed the opg window ..."), never sent as anything else.

**Faults** (:mod:`redblue.adapters.alpaca.http`): 429, 5xx, timeouts and connection errors are
retried with exponential backoff; what still fails is an answer, not an exception escaping to
the trader: a submission becomes ``rejected`` with the reason, a fill poll a
:class:`~redblue.core.broker.BrokerError` the trader logs before going on with the next team.
A submission whose outcome is unknown (the POST timed out) stays tracked by its
``client_order_id``, so if it did reach Alpaca its fills are still reported.

**Idempotence.** Alpaca refuses a reused ``client_order_id`` with HTTP 422 ("client_order_id
must be unique"); our retries (and alpaca-py's, before we turned them off) resend POSTs, so a
retry can meet its own first attempt: that counts as ``submitted``; a 422 on the first attempt
(sent by an earlier process) is ``duplicate`` and the order is fetched by its id and tracked.
401/403 and other 4xx answers are ``rejected`` with Alpaca's message.

**Fills.** :meth:`AlpacaBroker.on_day` polls, by ``client_order_id``, the unfinished orders of
the bars' symbols due on or before their day and returns a :class:`~schemas.Fill` for each newly
filled quantity (a partial fill is one execution; ``Fill.execution`` numbers them per order),
at the price that makes the average come out as Alpaca's ``filled_avg_price``, with
commission 0: alpaca-py's ``Order`` carries no commission (and the
small regulatory fees Alpaca passes on for sells are not counted). An order that ends
canceled, expired or rejected with shares unfilled is handed out once by
:meth:`AlpacaBroker.take_rejections`, as the simulated broker does.

**Money and secrets.** ``paper=False`` (a real-money account) is refused unless
``allow_real_money`` is also given (the settings' ``REDBLUE_ALLOW_REAL_MONEY``), and then logged
loudly. The key and secret never appear in a reason, an error or a log line: every text built
from an Alpaca answer goes through :class:`~redblue.adapters.alpaca.http.Secrets`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position, TradeAccount
from alpaca.trading.requests import MarketOrderRequest
from pydantic import SecretStr, ValidationError

from redblue.adapters.alpaca.http import DEFAULT_TIMEOUT, Secrets, call, describe, is_transient, message, plain, tune
from redblue.adapters.alpaca.http import status as status_of
from redblue.adapters.alpaca.timing import opg_window
from redblue.core.broker import BrokerError, OrderRequest, Rejection, SubmitResult, TeamHistory
from redblue.core.calendar import TradingCalendar, get_calendar
from redblue.core.clock import Clock, utc_now
from redblue.core.errors import RedblueError
from redblue.core.retry import Backoff
from schemas import Bar, Fill

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
FINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})
_DUPLICATE = re.compile(r"client[ _]?order[ _]?id must be unique", re.IGNORECASE)
BROKER_BACKOFF = Backoff(attempts=5)  # 1 + 2 + 4 + 8 s of waiting at most


class RealMoneyRefused(RedblueError):
    """A real-money (``paper=False``) account without the explicit opt-in."""


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
    unconfirmed: bool = False  # the POST failed without an answer: Alpaca may or may not have it


class AlpacaBroker:
    """The Alpaca account of ``team`` in ``run``.

    ``url_override`` points the client elsewhere (a local stand-in in tests); ``clock`` decides
    when an order may be sent; ``backoff`` and ``timeout`` govern retries. ``paper=False`` (real
    money) needs ``allow_real_money=True`` too. Nothing is contacted at construction.
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
        allow_real_money: bool = False,
        url_override: str | None = None,
        backoff: Backoff = BROKER_BACKOFF,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not paper and not allow_real_money:
            raise RealMoneyRefused(f"team {team}: a real-money Alpaca account (paper=False) needs an explicit opt-in")
        if not paper:
            log.warning("REAL MONEY: team %s trades on a live Alpaca account, with real money", team)
        self._run, self._team = run, team
        self._clock = clock
        self._calendar = calendar or get_calendar()
        self._client = TradingClient(plain(key), plain(secret), paper=paper, url_override=url_override)
        tune(self._client, timeout)
        self._secrets = Secrets([plain(key), plain(secret)])
        self._backoff = backoff
        self._tracked: dict[str, _Tracked] = {}
        self._held: dict[str, OrderRequest] = {}
        self._rejections: list[Rejection] = []

    def submit(self, order: OrderRequest) -> SubmitResult:
        """Send ``order`` as ``opg`` if its window is open, hold it if not yet, refuse it if missed."""
        if (order.run, order.team) != (self._run, self._team):
            return SubmitResult("rejected", f"order of {order.run}/{order.team} sent to the account of {self._team}")
        if order.client_order_id in self._tracked or order.client_order_id in self._held:
            return SubmitResult("duplicate", "already submitted")
        window, now = opg_window(order.target, self._calendar), self._clock()
        verdict = window.verdict(now)
        if verdict == "send":
            return self._send(order)
        known = self._known(order.client_order_id)  # sent before, e.g. by a previous process?
        if known is not None:
            return self._reconcile(order, known)
        if verdict == "missed":
            return SubmitResult("rejected", window.missed(now))
        self._held[order.client_order_id] = order
        return SubmitResult("held", window.held())

    def release(self) -> list[tuple[OrderRequest, SubmitResult]]:
        """Send the held orders whose window has opened; give up on those whose window has closed."""
        now, released = self._clock(), []
        for cid, order in list(self._held.items()):
            window = opg_window(order.target, self._calendar)
            verdict = window.verdict(now)
            if verdict != "hold":
                del self._held[cid]
                result = self._send(order) if verdict == "send" else SubmitResult("rejected", window.missed(now))
                released.append((order, result))
        return released

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

    def resume(self, history: TeamHistory) -> str:
        """Reconcile a restarted trader's history with the account before anything is decided.

        Every pending order must be at Alpaca under its ``client_order_id`` (it is followed again,
        with the shares already reported), and the positions Alpaca reports must equal those the
        reported fills add up to plus what Alpaca filled since. "" when they agree, else why not
        (the trader then stops trading this team). An unanswered request is a disagreement:
        a missing answer is never taken as "flat".
        """
        expected = dict(history.positions)
        try:
            for cid, order in history.pending.items():
                remote = self._lookup(cid)
                if remote is None:
                    return f"pending order {cid} is unknown to Alpaca"
                tracked = _Tracked(order, reported=order.quantity - history.unfilled.get(cid, order.quantity))
                tracked.notional = sum(
                    (Decimal(f.quantity) * Decimal(str(f.price)) for f in history.fills if f.client_order_id == cid),
                    Decimal(0),
                )
                self._tracked[cid] = tracked
                since = int(_decimal(remote.filled_qty)) - tracked.reported
                expected[order.symbol] = expected.get(order.symbol, 0) + (since if order.side == "buy" else -since)
            held = self.positions()
        except BrokerError as err:
            return f"cannot reconcile with Alpaca: {err}"
        expected = {s: q for s, q in expected.items() if q}
        if held != expected:
            return f"positions disagree: Alpaca holds {held}, the trader's topics say {expected}"
        return ""

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

    def _send(self, order: OrderRequest) -> SubmitResult:
        request = MarketOrderRequest(
            symbol=order.symbol,
            qty=order.quantity,
            side=OrderSide(order.side),
            time_in_force=TimeInForce.OPG,
            client_order_id=order.client_order_id,
        )
        attempts = 0

        def post() -> object:
            nonlocal attempts
            attempts += 1
            return self._client.submit_order(request)

        try:
            call(post, self._backoff, f"Alpaca order {order.client_order_id}", self._secrets)
        except (APIError, requests.RequestException) as err:
            return self._failed(order, err, retried=attempts > 1)
        except (ValidationError, ValueError) as err:  # an answer alpaca-py cannot parse: it may be placed
            self._tracked[order.client_order_id] = _Tracked(order, unconfirmed=True)
            return SubmitResult("rejected", self._text(f"not confirmed: unexpected answer from Alpaca: {err}"))
        self._tracked[order.client_order_id] = _Tracked(order)
        return SubmitResult("submitted")

    def _failed(self, order: OrderRequest, err: APIError | requests.RequestException, retried: bool) -> SubmitResult:
        text = self._text(describe(err))
        if isinstance(err, APIError) and status_of(err) == 422 and _DUPLICATE.search(message(err)):
            if retried:  # our own earlier attempt got through, only its answer was lost
                self._tracked[order.client_order_id] = _Tracked(order)
                return SubmitResult("submitted", "confirmed on a retry (the first answer was lost)")
            return self._reconcile(order, self._known(order.client_order_id))
        if is_transient(err):
            self._tracked[order.client_order_id] = _Tracked(order, unconfirmed=True)
            return SubmitResult(
                "rejected",
                f"not confirmed: Alpaca unreachable after {self._backoff.attempts} attempts ({text}); "
                "if it arrived all the same, its fills are still reported",
            )
        return SubmitResult("rejected", f"Alpaca: {text}")

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

    def _known(self, client_order_id: str) -> AlpacaOrder | None:
        """The order Alpaca has under this id, None if none or if Alpaca cannot say now."""
        try:
            return self._lookup(client_order_id)
        except BrokerError as err:
            log.warning("%s: %s", self._team, err)
            return None

    # -- fills --------------------------------------------------------------------------

    @staticmethod
    def _is_due(tracked: _Tracked, bar: Bar) -> bool:
        order = tracked.order
        return not tracked.done and order.symbol == bar.symbol and order.target <= bar.date

    def _poll(self, tracked: _Tracked, bar: Bar) -> Fill | None:
        cid = tracked.order.client_order_id
        remote = self._lookup(cid)
        if remote is None:
            if tracked.unconfirmed:  # the lost POST never arrived: nothing to follow
                tracked.done = True
                return None
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
            found = call(
                lambda: self._client.get_order_by_client_id(client_order_id),
                self._backoff,
                f"Alpaca lookup of {client_order_id}",
                self._secrets,
            )
        except APIError as err:
            if status_of(err) == 404:
                return None
            raise BrokerError(self._text(f"Alpaca lookup of {client_order_id}: {describe(err)}")) from None
        except requests.RequestException as err:
            raise BrokerError(self._text(f"Alpaca unreachable looking up {client_order_id}: {describe(err)}")) from None
        if not isinstance(found, AlpacaOrder):
            raise BrokerError(f"Alpaca lookup of {client_order_id}: unexpected answer {type(found).__name__}")
        return found

    def _call[T](self, what: str, request: Callable[[], T]) -> T:
        try:
            return call(request, self._backoff, f"Alpaca ({what})", self._secrets)
        except APIError as err:
            raise BrokerError(self._text(f"Alpaca: cannot {what}: {describe(err)}")) from None
        except requests.RequestException as err:
            raise BrokerError(self._text(f"Alpaca unreachable, cannot {what}: {describe(err)}")) from None
        except ValidationError as err:
            raise BrokerError(self._text(f"Alpaca: cannot {what}: unexpected answer: {err}")) from None

    def _text(self, text: str) -> str:
        return self._secrets.scrub(text)


def _decimal(value: str | float | None) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
