"""The JSON API of ``redblue serve`` over in-memory run stores (FastAPI's TestClient, no services)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import leaderboard as board_module
from consumers.leaderboard import rankings, standings, verdicts
from redblue.app.web import views
from redblue.app.web.app import create_app
from redblue.core.metrics import ForecastMetrics, drawdowns
from redblue.core.runs import describe_simulation, note_arena
from redblue.core.store import InMemoryStore, InMemoryStores, LeaderboardStore, Series, StoreUnavailable
from tests.factories import T0
from tests.unit.test_leaderboard import ARENA, D, forecast, interleave, order, play, processed, simulated_streams

RUN = "sim-1"


def populated() -> InMemoryStores:
    stores = InMemoryStores()
    store = stores.open(RUN)
    describe_simulation(store, ARENA, D[1], D[11], 11)
    note_arena(store, ARENA)
    for symbol in ARENA.symbols:  # MASE's training period: bars before the first forecast
        store.add_insample_close(symbol, date(2023, 12, 28), 100.0)
        store.add_insample_close(symbol, date(2023, 12, 29), 101.0)
    play(interleave(simulated_streams(n_days=12), seed=5), store)
    store.add_order(order("red", "AAPL", 1, "red-AAPL-1"))
    store.add_order(order("red", "SAP", 2, "red-SAP-2", "rejected"))
    return stores


@pytest.fixture
def stores() -> InMemoryStores:
    return populated()


@pytest.fixture
def client(stores: InMemoryStores) -> Iterator[TestClient]:
    with TestClient(create_app(stores)) as test_client:
        yield test_client


def ok(client: TestClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_runs_are_listed_with_their_description(client: TestClient) -> None:
    [run] = ok(client, "/api/runs")
    assert run["run"] == RUN and run["kind"] == "simulation" and run["status"] == "running"
    assert (run["arena"], run["start"], run["last_target"], run["days"]) == ("test", "2024-01-03", "2024-01-17", 11)
    assert run["last_bar"] == D[11].isoformat()
    detail = ok(client, f"/api/runs/{RUN}")
    assert [s["symbol"] for s in detail["arena"]["symbols"]] == ["AAPL", "AMZN", "SAP"]
    assert {t["team"]: t["trading_model"] for t in detail["arena"]["teams"]} == {"blue": "trend", "red": "drift"}
    assert {"team": "blue", "model": "alt", "symbol": "AAPL", "versions": {"1": D[0].isoformat()}} in detail["versions"]


def test_the_leaderboard_holds_the_standings_values(client: TestClient, stores: InMemoryStores) -> None:
    body = ok(client, f"/api/runs/{RUN}/leaderboard")
    rows = {r["member"]: r for r in body["rows"]}
    for s in standings(stores.open(RUN), ARENA):
        assert rows[s.member]["values"]["mae"] == (s.forecasts.mae if s.forecasts else None)
        assert rows[s.member]["values"]["direction_pct"] == (s.forecasts.direction_pct if s.forecasts else None)
        assert rows[s.member]["values"]["pnl"] == (s.trading.pnl if s.trading else None)
        assert rows[s.member]["trades"] is (s.trading is not None)
    ranked = [e.member for e in rankings(stores.open(RUN), "mase")]
    assert [r["member"] for r in body["rows"]] == ranked  # every model has a MASE here
    assert body["by"] == "mase" and body["lower_is_better"] is True
    assert [r["rank"] for r in body["rows"]] == list(range(1, len(ranked) + 1))
    assert body["verdicts"] == verdicts(standings(stores.open(RUN), ARENA))  # in words, as the CLI's board
    assert (
        rows["red/drift"]["tests"]["dm_pvalue"] is not None
        and rows["baseline/persistence"]["tests"]["dm_pvalue"] is None
    )


@pytest.mark.parametrize("by", [m.name for m in views.metric_columns()] + ["direction", "return", "trades"])
def test_the_leaderboard_sorts_by_any_metric(client: TestClient, by: str) -> None:
    body = ok(client, f"/api/runs/{RUN}/leaderboard?by={by}")
    column = {"direction": "direction_pct", "return": "total_return"}.get(by, by)
    values = [r["values"][column] for r in body["rows"]]
    known = [v for v in values if v is not None]
    assert values == known + [None] * (len(values) - len(known))  # unknown values last
    assert known == sorted(known, reverse=not body["lower_is_better"])


def test_a_metric_added_to_the_metrics_appears_without_a_change_here(
    stores: InMemoryStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclasses.dataclass(frozen=True)
    class WithPValue(ForecastMetrics):
        dm_pvalue: float = 0.5

    real = board_module.model_metrics

    def extended(sums: Any, scales: Any) -> WithPValue | None:
        found = real(sums, scales)
        return None if found is None else WithPValue(**dataclasses.asdict(found), dm_pvalue=found.mae / 100)

    monkeypatch.setattr(board_module, "model_metrics", extended)
    monkeypatch.setattr(views, "ForecastMetrics", WithPValue)
    with TestClient(create_app(stores)) as client:
        body = ok(client, f"/api/runs/{RUN}/leaderboard?by=dm_pvalue")
    assert {"name": "dm_pvalue", "group": "forecast", "lower_is_better": False} in body["metrics"]
    assert [r["values"]["dm_pvalue"] for r in body["rows"]] == sorted(
        (r["values"]["mae"] / 100 for r in body["rows"]), reverse=True
    )


def test_rankings_come_from_the_sorted_sets(client: TestClient, stores: InMemoryStores) -> None:
    body = ok(client, f"/api/runs/{RUN}/rankings/pnl?top=1")
    [best] = rankings(stores.open(RUN), "pnl", 1)
    assert body["entries"] == [{"rank": 1, "member": best.member, "value": best.value}]


def test_a_series_is_its_forecasts_against_the_actual_closes(client: TestClient, stores: InMemoryStores) -> None:
    body = ok(client, f"/api/runs/{RUN}/series/red/drift/SAP")
    scored = stores.open(RUN).scored(Series("red", "drift", "SAP"))
    assert [(p["target"], p["predicted"], p["actual"]) for p in body["points"]] == [
        (s.target.isoformat(), s.predicted, s.actual) for s in scored
    ]
    assert body["count"] == len(scored) == 11
    rows = ok(client, f"/api/runs/{RUN}/series")["rows"]
    assert len(rows) == 3 * 3 + 1  # persistence, red/drift, blue/trend on 3 symbols; blue/alt on AAPL


def test_a_team_has_its_equity_curve_drawdown_orders_and_fills(client: TestClient, stores: InMemoryStores) -> None:
    store = stores.open(RUN)
    body = ok(client, f"/api/runs/{RUN}/teams/red")
    curve = store.equity_history("red")
    assert [(p["date"], p["equity"]) for p in body["equity"]] == [(d.isoformat(), v) for d, v in curve]
    assert [p["drawdown"] for p in body["equity"]] == drawdowns(1000.0, [v for _, v in curve])
    assert body["values"]["max_drawdown"] == max(p["drawdown"] for p in body["equity"])
    assert body["halted"] is None
    store.set_halt("red", "its broker holds 3 AAPL, its topics say 0")
    assert ok(client, f"/api/runs/{RUN}/teams/red")["halted"] == "its broker holds 3 AAPL, its topics say 0"
    fills = ok(client, f"/api/runs/{RUN}/teams/red/fills")["fills"]
    assert [f["client_order_id"] for f in fills] == [f.client_order_id for f in store.fills("red")] and fills
    orders = ok(client, f"/api/runs/{RUN}/teams/red/orders")["orders"]
    expected = [("red-AAPL-1", "submitted"), ("red-SAP-2", "rejected")]
    assert [(o["client_order_id"], o["status"]) for o in orders] == expected


def test_a_symbol_has_its_closes_and_every_teams_trades(client: TestClient, stores: InMemoryStores) -> None:
    body = ok(client, f"/api/runs/{RUN}/symbols/AMZN")
    assert [c["date"] for c in body["closes"]] == [d.isoformat() for d in D[:12]]
    assert body["name"] == "Amazon"
    assert sorted(t["team"] for t in body["trades"]) == ["blue", "red"]  # one buy each on day 1


def test_latest_forecasts_and_the_original_block(client: TestClient) -> None:
    latest = ok(client, f"/api/runs/{RUN}/forecasts/latest")["forecasts"]
    assert len(latest) == 10 and {f["as_of"] for f in latest} == {D[10].isoformat()}
    text = ok(client, f"/api/runs/{RUN}/original")["text"]
    assert text.startswith("Simulation period: 2024-01-03 + 11 days\n\nApple, baseline/persistence\n")


def test_progress_stamp_changes_when_scores_arrive(client: TestClient, stores: InMemoryStores) -> None:
    before = ok(client, f"/api/runs/{RUN}/progress")
    assert ok(client, f"/api/runs/{RUN}/progress") == before
    stores.open(RUN).advance_bar("AAPL", D[12])
    after = ok(client, f"/api/runs/{RUN}/progress")
    assert after["stamp"] != before["stamp"] and after["bars"]["AAPL"] == D[12].isoformat()


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/runs/nope", 404, "no run 'nope' (runs: sim-1)"),
        (f"/api/runs/{RUN}/leaderboard?by=luck", 422, "unknown metric 'luck': use one of"),
        (f"/api/runs/{RUN}/rankings/mae?top=0", 422, "top"),
        (f"/api/runs/{RUN}/rankings/luck", 422, "unknown ranking 'luck'"),
        (f"/api/runs/{RUN}/teams/green", 404, "no team 'green' in run 'sim-1' (teams: blue, red)"),
        (f"/api/runs/{RUN}/symbols/TSLA", 404, "no symbol 'TSLA'"),
        (f"/api/runs/{RUN}/series/red/drift/TSLA", 404, "no series red/drift/TSLA"),
        (f"/api/runs/{RUN}/series/blue/alt/SAP", 404, "no series blue/alt/SAP"),
        (f"/api/runs/{RUN}/symbols/aapl", 422, "invalid request"),
        ("/api/runs/a:b", 422, "invalid request"),
        ("/api/nothing", 404, "Not Found"),
    ],
)
def test_bad_parameters_get_a_clear_json_4xx(client: TestClient, path: str, status: int, says: str) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert says in response.json()["error"]


def test_a_run_without_description_says_how_to_get_one(stores: InMemoryStores) -> None:
    stores.open("old").advance_bar("AAPL", D[0])
    with TestClient(create_app(stores)) as client:
        response = client.get("/api/runs/old/leaderboard")
    assert response.status_code == 409
    assert "redblue leaderboard --run old --rebuild" in response.json()["error"]


class Spy:
    """Run stores that record every run id and argument that reaches a store."""

    def __init__(self, inner: InMemoryStores) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def runs(self) -> list[str]:
        return self.inner.runs()

    def open(self, run: str) -> LeaderboardStore:
        self.seen.append(run)
        store = self.inner.open(run)
        spy = self

        class Recording:
            def __getattr__(self, name: str) -> Any:
                method = getattr(store, name)

                def call(*args: Any, **kwargs: Any) -> Any:
                    spy.seen.extend(str(a) for a in args)
                    return method(*args, **kwargs)

                return call

        return Recording()  # type: ignore[return-value]


NASTY = ["a:b", "sim-1:meta", "*", "..", "-x", "x" * 65, "a b", "ä", "sim-1\n", "a/../b", "%2A", "{x}", "r?x"]


@pytest.mark.parametrize("bad", NASTY)
def test_malformed_ids_never_reach_a_store(stores: InMemoryStores, bad: str) -> None:
    spy = Spy(stores)
    raw = "".join(f"%{b:02X}" for b in bad.encode())  # every byte escaped: no client normalises it away
    paths = [
        f"/api/runs/{raw}/leaderboard",
        f"/api/runs/{RUN}/teams/{raw}",
        f"/api/runs/{RUN}/teams/{raw}/fills",
        f"/api/runs/{RUN}/symbols/{raw}",
        f"/api/runs/{RUN}/series/red/{raw}/AAPL",
    ]
    with TestClient(create_app(spy)) as client:
        for path in paths:
            response = client.get(path)
            assert 400 <= response.status_code < 500, (path, response.text)
            assert "error" in response.json()
    assert bad not in spy.seen


def test_the_views_check_ids_themselves() -> None:
    """The views refuse malformed ids even when called without the HTTP layer (the HTML report)."""
    stores = populated()
    with pytest.raises(views.BadRequest, match="malformed team 'red:equity'"):
        views.team_detail(stores, RUN, "red:equity")
    with pytest.raises(views.BadRequest, match="malformed run id"):
        views.run_detail(stores, "a:b")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=70))
def test_no_run_id_causes_a_server_error(text: str) -> None:
    response = SHARED.get(f"/api/runs/{quote(text, safe='')}/teams/red")
    assert response.status_code == 200 or (400 <= response.status_code < 500 and "error" in response.json())


SHARED = TestClient(create_app(populated()))


def test_an_unreachable_store_is_a_503() -> None:
    class Down:
        def runs(self) -> list[str]:
            raise StoreUnavailable("Redis at redis://127.0.0.1:1/0 is not reachable")

        def open(self, run: str) -> InMemoryStore:
            raise StoreUnavailable("Redis at redis://127.0.0.1:1/0 is not reachable")

    with TestClient(create_app(Down())) as client:
        response = client.get("/api/runs")
    assert response.status_code == 503 and "not reachable" in response.json()["error"]


def test_the_page_its_scripts_and_the_openapi_docs_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text and 'content="5"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and "plotly.js" in plotly.text[:2000]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = ok(client, "/openapi.json")["paths"]
    assert "/api/runs/{run}/leaderboard" in paths and "/api/runs/{run}/teams/{team}/orders" in paths


def test_the_memo_keeps_a_board_until_the_stamp_moves() -> None:
    stores, memo = populated(), views.Memo()
    first = views.leaderboard(stores, RUN, "mae", memo)
    assert views.leaderboard(stores, RUN, "mae", memo) is first
    assert views.leaderboard(stores, RUN, "mase", memo) is not first
    play([forecast("red", "drift", "AAPL", 11, 101.0, 100.0), processed("AAPL", 12, 100.5)], stores.open(RUN))
    second = views.leaderboard(stores, RUN, "mae", memo)
    counts = {r["member"]: r["count"] for r in second["rows"]}
    assert counts["red/drift"] == {r["member"]: r["count"] for r in first["rows"]}["red/drift"] + 1
    assert views.leaderboard(stores, RUN, "mae", memo) is second
    describe_simulation(stores.open(RUN), ARENA, D[1], D[11], 11, clock=lambda: T0)  # a re-run of the id
    assert views.leaderboard(stores, RUN, "mae", memo) is not second
