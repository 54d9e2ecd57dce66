"""The Alpaca adapters, with the real alpaca-py clients pointed (``url_override``) at a local stand-in.

The stand-in serves only what redblue uses, with the JSON shapes of Alpaca's API as recorded
in alpaca-py's own tests: ``POST /v2/orders`` (422 ``{"code": 40010001, "message":
"client_order_id must be unique"}`` on a reused id), ``GET /v2/orders:by_client_order_id``,
``GET /v2/account``, ``GET /v2/positions`` and the data API's ``GET /v2/stocks/bars`` (paged).
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from redblue.adapters.alpaca.broker import AlpacaBroker, OrderTimingError, time_in_force_for
from redblue.adapters.alpaca.market_data import AlpacaBarSource
from redblue.core.broker import BrokerError, BrokerGateway, OrderRequest, SubmitResult
from redblue.core.calendar import get_calendar
from redblue.core.sources import BarSource, Rejected, SourceError
from schemas import Bar

NY = ZoneInfo("America/New_York")
CAL = get_calendar()
KEY, SECRET = "PKTEST", "secret-test"
D1, D2, D3 = date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the stand-in --------------------------------------------------------------------------


class StandIn:
    """Alpaca's trading and data endpoints that redblue uses, in memory, on 127.0.0.1."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = ny(D1, 17)  # the stand-in's wall clock (order timestamps, the opg rule)
        self.orders: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.posted: list[dict[str, Any]] = []
        self.refuse: tuple[int, str] | None = None  # the answer to the next POST, if set
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.page_size = 2
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fill(self, client_order_id: str, filled: int, average: float) -> None:
        """Fill the order up to ``filled`` shares at an average of ``average``."""
        with self.lock:
            order = self.orders[client_order_id]
            done = Decimal(filled) == Decimal(order["qty"])
            order.update(
                filled_qty=str(filled),
                filled_avg_price=str(average),
                status="filled" if done else "partially_filled",
                filled_at=iso(self.now) if done else None,
                updated_at=iso(self.now),
            )

    def cancel(self, client_order_id: str, status: str = "canceled") -> None:
        with self.lock:
            self.orders[client_order_id].update(status=status, canceled_at=iso(self.now))

    # request handling (called from the server's threads)

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path, query))
            route = {
                ("POST", "/v2/orders"): self._post_order,
                ("GET", "/v2/orders:by_client_order_id"): self._get_order,
                ("GET", "/v2/account"): self._account,
                ("GET", "/v2/positions"): self._positions,
                ("GET", "/v2/stocks/bars"): self._bars,
            }.get((method, path))
            if route is None:
                return 404, {"code": 40410000, "message": "endpoint not found"}
            return route(query, body)

    def _post_order(self, _: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        self.posted.append(body)
        if self.refuse is not None:
            (status, message), self.refuse = self.refuse, None
            return status, {"code": status * 100000 + 10000, "message": message}
        cid = body["client_order_id"]
        if cid in self.orders:
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        local = self.now.astimezone(NY).time()
        if body["time_in_force"] == "opg" and time(9, 28) <= local < time(19, 0):
            return 422, {"code": 42210000, "message": "opg orders are not accepted between 9:28am and 7:00pm ET"}
        self.orders[cid] = _order_json(body, self.now)
        return 200, self.orders[cid]

    def _get_order(self, query: dict[str, list[str]], _: Any) -> tuple[int, Any]:
        order = self.orders.get(query["client_order_id"][0])
        return (200, order) if order else (404, {"code": 40410000, "message": "order not found"})

    def _account(self, *_: Any) -> tuple[int, Any]:
        return 200, ACCOUNT

    def _positions(self, *_: Any) -> tuple[int, Any]:
        return 200, [POSITION]

    def _bars(self, query: dict[str, list[str]], _: Any) -> tuple[int, Any]:
        start = datetime.fromisoformat(query["start"][0])
        end = datetime.fromisoformat(query["end"][0])
        rows = [
            (symbol, bar)
            for symbol in query["symbols"][0].split(",")
            for bar in self.bars.get(symbol, [])
            if start <= datetime.fromisoformat(bar["t"]) <= end
        ]
        offset = int(query.get("page_token", ["0"])[0])
        page = rows[offset : offset + self.page_size]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            grouped.setdefault(symbol, []).append(bar)
        more = offset + self.page_size < len(rows)
        return 200, {"bars": grouped, "next_page_token": str(offset + self.page_size) if more else None}


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            if (self.headers["APCA-API-KEY-ID"], self.headers["APCA-API-SECRET-KEY"]) != (KEY, SECRET):
                self._send(401, {"code": 40110000, "message": "request is not authorized"})
                return
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            self._send(*standin.answer(method, parts.path, parse_qs(parts.query), body))

        def _send(self, status: int, payload: Any) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


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


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join()


def broker(standin: StandIn, key: str = KEY) -> AlpacaBroker:
    """A broker whose clock is the stand-in's clock."""
    return AlpacaBroker("live-1", "red", key, SECRET, clock=lambda: standin.now, url_override=standin.url)


def order(target: date = D2, side: str = "buy", quantity: int = 10, cid: str = "") -> OrderRequest:
    as_of = CAL.offset(target, -1)
    return OrderRequest(
        run="live-1",
        team="red",
        model="drift",
        symbol="AAPL",
        side="buy" if side == "buy" else "sell",
        quantity=quantity,
        as_of=as_of,
        target=target,
        reference_price=185.64,
        client_order_id=cid or f"live-1-red-drift-AAPL-{target:%Y%m%d}-{side}",
    )


def bar(day: date, symbol: str = "AAPL") -> Bar:
    return Bar(
        symbol=symbol,
        date=day,
        open=184.22,
        high=185.88,
        low=183.43,
        close=184.25,
        volume=58414500,
        source="alpaca",
        ts_event=CAL.close_time(day),
        produced_at=CAL.close_time(day),
    )


def posts(standin: StandIn) -> list[str]:
    return [p["time_in_force"] for p in standin.posted]


def test_the_adapters_fit_their_interfaces(standin: StandIn) -> None:
    gateway: BrokerGateway = broker(standin)  # checked by mypy
    bars: BarSource = AlpacaBarSource(KEY, SECRET, url_override=standin.url)
    assert callable(gateway.take_rejections)  # the trader takes its rejections
    assert bars is not None and standin.requests == []  # nothing contacted at construction


# -- time in force -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "target", "expected"),
    [
        (ny(D1, 16, 1), D2, "day"),  # after the close: queued for the next session
        (ny(D1, 19, 0), D2, "day"),  # Alpaca's opg boundary itself: keep the margin
        (ny(D1, 19, 1), D2, "opg"),
        (ny(D1, 23, 30), D2, "opg"),
        (ny(D2, 2, 0), D2, "opg"),
        (ny(D2, 9, 26), D2, "opg"),
        (ny(D2, 9, 27), D2, "day"),  # pre-open, too close to 09:28 for opg
        (ny(date(2024, 1, 5), 20, 0), date(2024, 1, 8), "opg"),  # Friday evening for Monday
        (ny(date(2024, 1, 6), 12, 0), date(2024, 1, 8), "day"),  # Saturday daytime
        (ny(date(2024, 11, 29), 13, 30), date(2024, 12, 2), "day"),  # after a 13:00 half-day close
        (ny(date(2024, 7, 4), 11, 0), date(2024, 7, 5), "day"),  # Independence Day
    ],
)
def test_time_in_force_by_new_york_time(at: datetime, target: date, expected: str) -> None:
    assert time_in_force_for(at.astimezone(UTC), target, CAL) == expected


@pytest.mark.parametrize(
    ("at", "target", "why"),
    [
        (ny(D2, 9, 30), D2, "market is open"),
        (ny(D1, 15, 59), D2, "market is open"),
        (ny(D1, 17, 0), D3, "execute at 2024-01-03's open, not at 2024-01-04's"),  # too early
        (ny(D2, 17, 0), D2, "execute at 2024-01-04's open, not at 2024-01-03's"),  # too late
    ],
)
def test_orders_that_cannot_meet_their_open_are_refused(at: datetime, target: date, why: str) -> None:
    with pytest.raises(OrderTimingError, match=why):
        time_in_force_for(at, target, CAL)


# -- submitting ----------------------------------------------------------------------------


def test_after_the_close_a_day_order_is_submitted(standin: StandIn) -> None:
    result = broker(standin).submit(order())

    assert result == SubmitResult("submitted")
    (sent,) = standin.posted
    assert sent == {
        "symbol": "AAPL",
        "qty": 10.0,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "live-1-red-drift-AAPL-20240103-buy",
    }


def test_in_the_evening_an_opg_order_is_submitted(standin: StandIn) -> None:
    standin.now = ny(D1, 21, 15)
    assert broker(standin).submit(order()).status == "submitted"
    assert posts(standin) == ["opg"]


def test_during_market_hours_nothing_is_sent(standin: StandIn) -> None:
    standin.now = ny(D2, 10, 0)
    result = broker(standin).submit(order())
    assert result.status == "rejected" and "market is open" in result.reason
    assert standin.posted == []


def test_a_resubmission_in_the_same_process_is_a_duplicate_without_a_request(standin: StandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    assert gateway.submit(order()) == SubmitResult("duplicate", "already submitted")
    assert len(standin.posted) == 1 and len(standin.orders) == 1


def test_a_reused_id_is_a_duplicate_and_is_reconciled(standin: StandIn) -> None:
    broker(standin).submit(order())
    restarted = broker(standin)  # a new process, e.g. after a crash

    result = restarted.submit(order())

    assert result == SubmitResult("duplicate", "already at Alpaca, status accepted")
    assert len(standin.posted) == 2 and len(standin.orders) == 1  # the 422 created nothing
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.3)
    assert [f.quantity for f in restarted.on_day([bar(D2)])] == [10]  # tracked after reconciling


def test_a_reused_id_for_a_different_order_says_so(standin: StandIn) -> None:
    broker(standin).submit(order(quantity=10))
    result = broker(standin).submit(order(quantity=12))
    assert result.status == "duplicate"
    assert result.reason.endswith("as buy 10 AAPL (not buy 12 AAPL)")


def test_a_late_resubmission_of_a_known_order_is_a_duplicate(standin: StandIn) -> None:
    broker(standin).submit(order())
    standin.now = ny(D2, 11, 0)  # market open: too late to send, but the order was sent
    assert broker(standin).submit(order()).status == "duplicate"
    assert len(standin.posted) == 1


def test_alpaca_refusals_are_rejections_with_its_message(standin: StandIn) -> None:
    standin.refuse = (403, "insufficient buying power")
    assert broker(standin).submit(order()) == SubmitResult("rejected", "Alpaca: HTTP 403: insufficient buying power")


def test_server_errors_and_bad_connections_raise(standin: StandIn) -> None:
    standin.refuse = (500, "internal server error")
    with pytest.raises(BrokerError, match="HTTP 500: internal server error"):
        broker(standin).submit(order())

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = AlpacaBroker("live-1", "red", KEY, SECRET, clock=lambda: standin.now, url_override=closed)
    with pytest.raises(BrokerError, match="unreachable"):
        unreachable.submit(order())


def test_orders_of_another_account_are_refused(standin: StandIn) -> None:
    foreign = OrderRequest(**{**order().__dict__, "team": "blue"})
    assert broker(standin).submit(foreign).status == "rejected"
    assert standin.posted == []


# -- fills ---------------------------------------------------------------------------------


def test_a_fill_is_reported_once(standin: StandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    assert gateway.on_day([bar(D1)]) == []  # not due before its target

    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 10, 184.31)
    lookups = len(standin.requests)
    assert gateway.on_day([bar(D2, "AMZN")]) == []  # another symbol: nothing polled
    assert len(standin.requests) == lookups

    (fill,) = gateway.on_day([bar(D2)])
    assert (fill.symbol, fill.side, fill.quantity, fill.price, fill.commission, fill.date) == (
        "AAPL",
        "buy",
        10,
        184.31,
        0.0,
        D2,
    )
    assert (fill.run, fill.team, fill.client_order_id) == ("live-1", "red", order().client_order_id)
    assert gateway.on_day([bar(D2)]) == []
    assert gateway.on_day([bar(D3)]) == []
    assert len(standin.requests) == lookups + 1  # a filled order is not polled again


def test_partial_fills_are_reported_as_increments(standin: StandIn) -> None:
    gateway = broker(standin)
    gateway.submit(order())
    standin.now = ny(D2, 9, 30)
    standin.fill(order().client_order_id, 4, 100.0)
    assert [(f.quantity, f.price) for f in gateway.on_day([bar(D2)])] == [(4, 100.0)]

    standin.fill(order().client_order_id, 10, 101.0)
    ((quantity, price),) = [(f.quantity, f.price) for f in gateway.on_day([bar(D3)])]
    assert quantity == 6 and price == pytest.approx((1010 - 400) / 6)
    assert gateway.take_rejections() == []


def test_an_order_that_expired_unfilled_is_handed_out_as_a_rejection_once(standin: StandIn) -> None:
    gateway = broker(standin)
    standin.now = ny(D1, 20, 0)
    gateway.submit(order())
    standin.cancel(order().client_order_id, "expired")

    assert gateway.on_day([bar(D2)]) == []
    (rejection,) = gateway.take_rejections()
    assert rejection.order == order() and rejection.date == D2
    assert rejection.reason == "Alpaca order expired: 0 of 10 filled"
    assert gateway.take_rejections() == []
    assert gateway.on_day([bar(D3)]) == [] and gateway.take_rejections() == []


# -- account -------------------------------------------------------------------------------


def test_account_and_positions(standin: StandIn) -> None:
    gateway = broker(standin)
    account = gateway.account()
    assert (account.account_number, account.status, account.cash, account.buying_power) == (
        "PA3ZQ5WFXN1T",
        "ACTIVE",
        100000.0,
        200000.0,
    )
    assert gateway.positions() == {"AAPL": 10}


def test_bad_credentials_fail_loudly(standin: StandIn) -> None:
    with pytest.raises(BrokerError, match="HTTP 401: request is not authorized"):
        broker(standin, key="PKWRONG").account()


# -- market data ---------------------------------------------------------------------------


def raw_bar(t: str, o: float, h: float, low: float, c: float, v: int) -> dict[str, Any]:
    return {"t": t, "o": o, "h": h, "l": low, "c": c, "v": v, "n": 1000, "vw": round((h + low) / 2, 4)}


@pytest.fixture
def with_bars(standin: StandIn) -> StandIn:
    standin.bars = {
        "AAPL": [
            raw_bar("2024-01-02T05:00:00Z", 187.15, 188.44, 183.89, 185.64, 82488700),
            raw_bar("2024-01-03T05:00:00Z", 184.22, 185.88, 183.43, 184.25, 58414500),
            raw_bar("2024-01-04T05:00:00Z", 182.15, 183.09, 180.88, 181.91, 71983600),
        ],
        "AMZN": [
            raw_bar("2024-01-02T05:00:00Z", 151.54, 152.38, 148.39, 149.93, 47339400),
            raw_bar("2024-01-03T05:00:00Z", 149.2, 147.0, 151.05, 148.47, 49425500),  # high < low
            raw_bar("2024-07-03T04:00:00Z", 199.94, 200.03, 196.76, 197.59, 31597900),  # summer: 04:00Z
        ],
    }
    return standin


def source(standin: StandIn) -> AlpacaBarSource:
    return AlpacaBarSource(KEY, SECRET, url_override=standin.url, calendar=CAL)


def test_daily_bars_become_bar_events(with_bars: StandIn) -> None:
    now = ny(D3, 12, 0)  # D3 still running: Alpaca would show a partial bar

    bars, rejected = source(with_bars).fetch(["AAPL", "AMZN", "MSFT"], D1, D3, now)

    assert [(b.symbol, b.date, b.close) for b in bars] == [
        ("AAPL", D1, 185.64),
        ("AMZN", D1, 149.93),
        ("AAPL", D2, 184.25),
    ]
    first = bars[0]
    assert (first.volume, first.adjustment, first.source) == (82488700, "split", "alpaca")
    assert first.ts_event == datetime(2024, 1, 2, 21, 0, tzinfo=UTC) and first.produced_at == now
    assert rejected[0] == Rejected("MSFT", None, "the source returned no data for MSFT")
    assert rejected[1].date == D2 and "inconsistent bar AMZN 2024-01-03" in rejected[1].reason


def test_the_request_asks_for_split_adjusted_daily_bars_and_follows_pages(with_bars: StandIn) -> None:
    source(with_bars).fetch(["AAPL", "AMZN"], D1, D3, ny(D3, 12, 0))

    calls = [q for method, path, q in with_bars.requests if path == "/v2/stocks/bars"]
    assert len(calls) == 3  # five bars in range, two per page
    first = calls[0]
    assert (first["symbols"], first["timeframe"], first["adjustment"]) == (["AAPL,AMZN"], ["1Day"], ["split"])
    assert first["start"] == ["2024-01-02T05:00:00+00:00"]
    assert first["end"] == ["2024-01-04T16:45:00+00:00"]  # now - 15 min: the free plan's SIP embargo
    assert [q.get("page_token") for q in calls] == [None, ["2"], ["4"]]


def test_a_summer_bar_is_dated_in_new_york(with_bars: StandIn) -> None:
    day = date(2024, 7, 3)  # 04:00Z is midnight EDT; a half day closing at 13:00
    bars, _ = source(with_bars).fetch(["AMZN"], day, day, ny(date(2024, 7, 5), 9, 0))
    assert [(b.date, b.ts_event) for b in bars] == [(day, datetime(2024, 7, 3, 17, 0, tzinfo=UTC))]


def test_data_api_errors_raise_source_errors(with_bars: StandIn) -> None:
    wrong = AlpacaBarSource("PKWRONG", SECRET, url_override=with_bars.url, calendar=CAL)
    with pytest.raises(SourceError, match="HTTP 401: request is not authorized"):
        wrong.fetch(["AAPL"], D1, D3, ny(D3, 20, 0))
