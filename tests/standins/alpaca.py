"""Alpaca's trading and market-data endpoints that redblue uses, on a local HTTP server.

Built on pytest-httpserver (werkzeug, threaded), with the JSON shapes of Alpaca's API as recorded
in alpaca-py's own tests: ``POST /v2/orders`` (422 ``{"code": 40010001, "message":
"client_order_id must be unique"}`` on a reused id; an ``opg`` order between 09:28 and 19:00 New
York is refused), ``GET /v2/orders:by_client_order_id``, ``GET /v2/account``, ``GET
/v2/positions`` and the data API's ``GET /v2/stocks/bars`` (paged). Point alpaca-py at it with
``url_override=standin.url``.

Two modes for bars: ``bars`` (raw JSON rows, served as they are) or ``timeline`` (a
:class:`~tests.standins.market.Timeline`, served as the free plan does: the market as of
``now`` - 15 min, and a 403 for a request whose ``end`` is more recent than that). With a
timeline the stand-in is also the exchange: an order accepted before a session's open is filled
at that session's open price once the clock has passed it.

Faults are scripted per route (``orders``, ``order``, ``account``, ``positions``, ``bars``) with
:meth:`AlpacaStandIn.fail`: each request of the route takes the next answer from its queue —
an HTTP status (e.g. 429, 503), ``(status, message)``, ``"slow"`` (the request is handled, but
the answer comes after ``slow_seconds``: a client timeout, and for a POST an order that exists
although the client never heard so) or ``"echo"`` (a 500 whose body echoes the request's
headers, key and secret included, as a misbehaving proxy might). ``fail(..., since=moment)``
keeps the answers for the first requests at or after that moment of the clock (a rehearsal
scripts a step's trouble before it moves the clock there). :attr:`AlpacaStandIn.served` counts the
scripted answers given, :attr:`AlpacaStandIn.answered` the requests answered by route and clock
time, :attr:`AlpacaStandIn.busy` the requests being answered right now.
"""

from __future__ import annotations

import json
import re
import threading
import time as wall
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from redblue.core.calendar import TradingCalendar, get_calendar
from tests.standins.clock import ReplayClock, ny
from tests.standins.market import Timeline

NEW_YORK = ZoneInfo("America/New_York")
KEY, SECRET = "PKTEST", "secret-test"
EMBARGO = timedelta(minutes=15)
Answer = int | tuple[int, str] | str


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlpacaStandIn:
    """Alpaca's endpoints in memory; ``start()`` it (or use it as a context manager)."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        key: str = KEY,
        secret: str = SECRET,
        timeline: Timeline | None = None,
        calendar: TradingCalendar | None = None,
        slow_seconds: float = 0.5,
    ) -> None:
        self.clock: Callable[[], datetime] = clock or ReplayClock(ny(date(2024, 1, 2), 17))
        self.key, self.secret = key, secret
        self.timeline = timeline
        self.calendar = calendar or get_calendar()
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.orders: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, date] = {}  # client_order_id -> the session it executes in
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.posted: list[dict[str, Any]] = []
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.page_size = 2
        self.faults: dict[str, list[tuple[Answer, datetime | None]]] = {}
        self.served: Counter[str] = Counter()  # "bars 503", "orders slow": scripted answers given
        self.busy = 0  # requests being answered (a slow answer keeps its request busy)
        self.answered: Counter[tuple[str, datetime]] = Counter()  # (route, the clock's time): requests answered
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._serve)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def start(self) -> AlpacaStandIn:
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop()

    def __enter__(self) -> AlpacaStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def now(self) -> datetime:
        return self.clock()

    @now.setter
    def now(self, moment: datetime) -> None:
        self.clock = ReplayClock(moment)

    # -- scripting ------------------------------------------------------------------------------

    def fail(self, route: str, *answers: Answer, since: datetime | None = None) -> None:
        """Answer the next requests of ``route`` (those at or after ``since``) with ``answers``, then normally."""
        self.faults.setdefault(route, []).extend((answer, since) for answer in answers)

    @property
    def refuse(self) -> tuple[int, str] | None:
        queue = self.faults.get("orders")
        return queue[0][0] if queue and isinstance(queue[0][0], tuple) else None

    @refuse.setter
    def refuse(self, answer: tuple[int, str]) -> None:
        self.fail("orders", answer)

    def fill(self, client_order_id: str, filled: int, average: float) -> None:
        """Fill the order up to ``filled`` shares at an average of ``average``."""
        with self.lock:
            self._fill(self.orders[client_order_id], filled, average)

    def cancel(self, client_order_id: str, status: str = "canceled") -> None:
        with self.lock:
            self.orders[client_order_id].update(status=status, canceled_at=iso(self.now))

    # -- serving --------------------------------------------------------------------------------

    def _serve(self, request: Request) -> Response:
        with self.lock:
            self.busy += 1
        try:
            return self._handle(request)
        finally:
            with self.lock:
                self.busy -= 1

    def _handle(self, request: Request) -> Response:
        if (request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")) != (
            self.key,
            self.secret,
        ):
            return _json(401, {"code": 40110000, "message": "request is not authorized"})
        body = json.loads(request.get_data() or b"null")
        query = {k: request.args.getlist(k) for k in request.args}
        route = _ROUTES.get((request.method, request.path))
        if route == "orders":
            with self.lock:
                self.posted.append(body)  # every POST that reached Alpaca, answered or not
        fault = self._fault(route)
        if isinstance(fault, int | tuple):
            status, message = fault if isinstance(fault, tuple) else (fault, f"scripted HTTP {fault}")
            return _json(status, {"code": status * 100000, "message": message})
        if fault == "echo":
            echoed = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
            return _json(500, {"code": 50000000, "message": f"upstream proxy error, request headers {echoed}"})
        status, payload = self.answer(request.method, request.path, query, body)
        if fault == "slow":
            wall.sleep(self.slow_seconds)  # handled, but the client gives up before it hears so
        return _json(status, payload)

    def _fault(self, route: str | None) -> Answer | None:
        with self.lock:
            queue = self.faults.get(route or "", [])
            if not queue or (queue[0][1] is not None and self.now < queue[0][1]):
                return None
            answer, _ = queue.pop(0)
            self.served[f"{route} {answer[0] if isinstance(answer, tuple) else answer}"] += 1
            return answer

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path, query))
            self._execute()
            route = _ROUTES.get((method, path))
            if route is None:
                return 404, {"code": 40410000, "message": "endpoint not found"}
            self.answered[(route, self.now)] += 1
            handler: Callable[[dict[str, list[str]], Any], tuple[int, Any]] = getattr(self, f"_{route}")
            return handler(query, body)

    def _orders(self, _: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        cid = body["client_order_id"]
        if cid in self.orders:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        local = self.now.astimezone(NEW_YORK).time()
        if body["time_in_force"] == "opg" and time(9, 28) <= local < time(19, 0):
            return 422, {"code": 42210000, "message": "opg orders are not accepted between 9:28am and 7:00pm ET"}
        self.orders[cid] = _order_json(body, self.now)
        self.sessions[cid] = self._next_session()
        return 200, self.orders[cid]

    def _order(self, query: dict[str, list[str]], _: Any) -> tuple[int, Any]:
        order = self.orders.get(query["client_order_id"][0])
        return (200, order) if order else (404, {"code": 40410000, "message": "order not found"})

    def _account(self, *_: Any) -> tuple[int, Any]:
        if self.timeline is None:
            return 200, ACCOUNT
        cash = str(self.cash())
        return 200, {**ACCOUNT, "cash": cash, "equity": cash, "portfolio_value": cash, "buying_power": cash}

    def _positions(self, *_: Any) -> tuple[int, Any]:
        if self.timeline is None:
            return 200, [POSITION]
        return 200, [_position_json(s, q) for s, q in sorted(self.holdings().items()) if q]

    # -- the account's own state (with a timeline: the orders it filled) -----------------------

    def holdings(self) -> dict[str, int]:
        """Shares held per symbol (negative: short), from the filled quantities of its orders."""
        held: dict[str, int] = {}
        for order in self.orders.values():
            signed = int(Decimal(order["filled_qty"])) * (1 if order["side"] == "buy" else -1)
            held[order["symbol"]] = held.get(order["symbol"], 0) + signed
        return held

    def cash(self, initial: Decimal = Decimal(100000)) -> Decimal:
        """Cash after every fill (no commission: Alpaca charges none on stock trades)."""
        for order in self.orders.values():
            if order["filled_avg_price"] is not None:
                paid = Decimal(order["filled_qty"]) * Decimal(order["filled_avg_price"])
                initial += -paid if order["side"] == "buy" else paid
        return initial

    def _bars(self, query: dict[str, list[str]], _: Any) -> tuple[int, Any]:
        start = datetime.fromisoformat(query["start"][0])
        end = datetime.fromisoformat(query["end"][0])
        symbols = query["symbols"][0].split(",")
        if self.timeline is not None:
            if end > self.now - EMBARGO:
                return 403, {"code": 40310000, "message": "subscription does not permit querying recent SIP data"}
            rows = [(s, bar) for s in symbols for bar in self._timeline_bars(s, start, end)]
        else:
            rows = [(s, bar) for s in symbols for bar in self.bars.get(s, [])]
            rows = [(s, bar) for s, bar in rows if start <= datetime.fromisoformat(bar["t"]) <= end]
        offset = int(query.get("page_token", ["0"])[0])
        page = rows[offset : offset + self.page_size]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        more = offset + self.page_size < len(rows)
        return 200, {"bars": grouped, "next_page_token": str(offset + self.page_size) if more else None}

    def _timeline_bars(self, symbol: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        assert self.timeline is not None
        first, last = start.astimezone(NEW_YORK).date(), end.astimezone(NEW_YORK).date()
        delayed = self.now - EMBARGO  # the free plan shows the market as of 15 minutes ago
        stamped = [(datetime.combine(r.date, time(0), tzinfo=NEW_YORK), r) for r in
                   self.timeline.rows([symbol], first, last, delayed)]  # fmt: skip
        return [bar_json(iso(t), r) for t, r in stamped if start <= t <= end]  # a daily bar's t: its midnight

    # -- the exchange ---------------------------------------------------------------------------

    def _next_session(self) -> date:
        local = self.now.astimezone(NEW_YORK)
        day = local.date()
        if self.calendar.is_session(day) and self.now < self.calendar.open_time(day):
            return day
        return self.calendar.next_session(day)

    def _execute(self) -> None:
        """With a timeline: fill every open order whose session has opened, at that open."""
        if self.timeline is None:
            return
        for cid, order in self.orders.items():
            session = self.sessions[cid]
            if order["status"] == "accepted" and self.now >= self.calendar.open_time(session):
                price = self.timeline.final(order["symbol"], session).open
                self._fill(order, int(Decimal(order["qty"])), price, self.calendar.open_time(session))

    def _fill(self, order: dict[str, Any], filled: int, average: float, at: datetime | None = None) -> None:
        done = Decimal(filled) == Decimal(order["qty"])
        when = iso(at or self.now)
        order.update(
            filled_qty=str(filled),
            filled_avg_price=str(average),
            status="filled" if done else "partially_filled",
            filled_at=when if done else None,
            updated_at=when,
        )


_ROUTES = {
    ("POST", "/v2/orders"): "orders",
    ("GET", "/v2/orders:by_client_order_id"): "order",
    ("GET", "/v2/account"): "account",
    ("GET", "/v2/positions"): "positions",
    ("GET", "/v2/stocks/bars"): "bars",
}


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json; charset=UTF-8")


def bar_json(t: str, row: Any) -> dict[str, Any]:
    """A daily bar as Alpaca's data API answers it (``row``: anything with open..volume)."""
    h, low = row.high, row.low
    return {
        "t": t,
        "o": row.open,
        "h": h,
        "l": low,
        "c": row.close,
        "v": int(row.volume),
        "n": 1000,
        "vw": round((h + low) / 2, 4),
    }


def _position_json(symbol: str, quantity: int) -> dict[str, Any]:
    """A position as Alpaca answers it (only the fields the gateway reads are meaningful)."""
    qty = str(quantity)
    return {**POSITION, "symbol": symbol, "qty": qty, "qty_available": qty, "side": "long" if quantity > 0 else "short"}


def _order_json(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An order as Alpaca answers it (fields as in alpaca-py's recorded responses)."""
    at = iso(now)
    return {
        "id": str(uuid.uuid4()),
        "client_order_id": body["client_order_id"],
        "created_at": at,
        "updated_at": at,
        "submitted_at": at,
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": body["symbol"],
        "asset_class": "us_equity",
        "notional": None,
        "qty": format(Decimal(str(body["qty"])).normalize(), "f"),  # 10.0 -> "10"
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "",
        "order_type": body["type"],
        "type": body["type"],
        "side": body["side"],
        "position_intent": "buy_to_open" if body["side"] == "buy" else "sell_to_close",
        "time_in_force": body["time_in_force"],
        "limit_price": None,
        "stop_price": None,
        "status": "accepted",
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
        "expires_at": iso(now + timedelta(days=1)),
    }


ACCOUNT = {
    "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
    "account_number": "PA3ZQ5WFXN1T",
    "status": "ACTIVE",
    "crypto_status": "ACTIVE",
    "currency": "USD",
    "buying_power": "200000",
    "regt_buying_power": "200000",
    "daytrading_buying_power": "0",
    "non_marginable_buying_power": "100000",
    "cash": "100000",
    "accrued_fees": "0",
    "portfolio_value": "100000",
    "pattern_day_trader": False,
    "trading_blocked": False,
    "transfers_blocked": False,
    "account_blocked": False,
    "created_at": "2024-01-02T14:00:00.000000Z",
    "trade_suspended_by_user": False,
    "multiplier": "2",
    "shorting_enabled": True,
    "equity": "100000",
    "last_equity": "100000",
    "long_market_value": "0",
    "short_market_value": "0",
    "initial_margin": "0",
    "maintenance_margin": "0",
    "last_maintenance_margin": "0",
    "sma": "0",
    "daytrade_count": 0,
}
POSITION = {
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "exchange": "NASDAQ",
    "asset_class": "us_equity",
    "asset_marginable": True,
    "avg_entry_price": "185.64",
    "qty": "10",
    "qty_available": "10",
    "side": "long",
    "market_value": "1842.5",
    "cost_basis": "1856.4",
    "unrealized_pl": "-13.9",
    "unrealized_plpc": "-0.0074876",
    "unrealized_intraday_pl": "-13.9",
    "unrealized_intraday_plpc": "-0.0074876",
    "current_price": "184.25",
    "lastday_price": "185.64",
    "change_today": "-0.0074876",
}
