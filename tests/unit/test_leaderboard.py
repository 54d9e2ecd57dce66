from __future__ import annotations

import json
import random
from datetime import date

import pytest

from consumers.leaderboard import Scoreboard, progress, rank_of, rankings, standings, summary
from redblue.core.arena import Arena
from redblue.core.store import InMemoryStore, LeaderboardStore, Series
from schemas import BarProcessed, BarRevision, Event, Fill, Forecast, Order, PositionMark
from tests.factories import T0, bar, days

ARENA = Arena.model_validate(
    {
        "name": "test",
        "symbols": ["AAPL", "AMZN", "SAP"],
        "names": {"AAPL": "Apple", "AMZN": "Amazon"},
        "baselines": [{"name": "persistence", "kind": "persistence"}],
        "teams": {
            "red": {"models": [{"name": "drift", "kind": "drift"}]},
            "blue": {
                "trade_with": "trend",
                "models": [{"name": "trend", "kind": "trend"}, {"name": "alt", "kind": "drift", "symbols": ["AAPL"]}],
            },
        },
        "strategy": {"initial_cash": 1000.0},
    }
)
D = days(date(2024, 1, 2), 40)


def forecast(team: str, model: str, symbol: str, i: int, predicted: float, last: float) -> Forecast:
    """A forecast as of day ``D[i]`` for ``D[i + 1]``."""
    return Forecast(
        run="r1", team=team, model=model, model_version="1", symbol=symbol, as_of=D[i], target=D[i + 1],
        predicted_close=predicted, last_close=last, produced_at=T0,
    )  # fmt: skip


def processed(symbol: str, i: int, close: float) -> BarProcessed:
    return BarProcessed(run="r1", bar=bar(symbol, D[i], close), forecasts=0, produced_at=T0)


def mark(team: str, symbol: str, i: int, quantity: int, close: float, net_cash_flow: float) -> PositionMark:
    return PositionMark(
        run="r1", team=team, symbol=symbol, as_of=D[i], quantity=quantity, close=close,
        net_cash_flow=net_cash_flow, produced_at=T0,
    )  # fmt: skip


def fill(team: str, symbol: str, i: int, coid: str, price: float, commission: float = 1.0) -> Fill:
    return Fill(
        run="r1", team=team, symbol=symbol, client_order_id=coid, side="buy", quantity=1, price=price,
        commission=commission, date=D[i], produced_at=T0,
    )  # fmt: skip


def order(team: str, symbol: str, i: int, coid: str, status: str = "submitted") -> Order:
    """A buy of one share decided as of ``D[i]`` for ``D[i + 1]``."""
    return Order.model_validate(
        {"run": "r1", "team": team, "model": "drift", "symbol": symbol, "side": "buy", "quantity": 1, "as_of": D[i],
         "target": D[i + 1], "reference_price": 100.0, "client_order_id": coid, "status": status, "produced_at": T0}
    )  # fmt: skip


def play(events: list[Event], store: LeaderboardStore | None = None) -> LeaderboardStore:
    store = store if store is not None else InMemoryStore()
    board = Scoreboard(store, ARENA)
    for event in events:
        board.handle(event)
    return store


WARMUP = 3  # bars of each symbol before its first forecast: the training period of MASE's scale


def simulated_streams(n_days: int = 25, seed: int = 7, warmup: int = 1) -> list[list[Event]]:
    """Per symbol, the forecasts topic (forecasts, then the bar marker) and the fills topic, in order.

    Prices are awkward floats so that the order of float additions would show in the sums. The
    first forecasts are made from bar ``warmup - 1`` (the bars before them are MASE's training period).
    """
    rnd = random.Random(seed)
    streams: list[list[Event]] = []
    for symbol in ARENA.symbols:
        closes = [100.0 + rnd.random() * 50 for _ in range(n_days)]
        scored: list[Event] = []
        fills: list[Event] = []
        for i, close in enumerate(closes):
            scored.append(processed(symbol, i, close))
            if warmup - 1 <= i < n_days - 1:
                for team, spec in ARENA.all_models():
                    if symbol in ARENA.symbols_of(spec):
                        guess = close if spec.name == "persistence" else close * (1 + rnd.uniform(-0.03, 0.03))
                        scored.append(forecast(team, spec.name, symbol, i, guess, close))
            for team in ("blue", "red"):
                if i == 1:
                    fills.append(fill(team, symbol, i, f"{team}-{symbol}-{i}", close * 1.0005, rnd.random()))
                qty = 1 if i >= 1 else 0
                fills.append(mark(team, symbol, i, qty, close, -closes[1] * 1.0005 if qty else 0.0))
        streams += [scored, fills]
    return streams


def interleave(streams: list[list[Event]], seed: int) -> list[Event]:
    """Merge ``streams`` at random, keeping each stream's own order (like partitions of a topic)."""
    rnd = random.Random(seed)
    queues = [list(s) for s in streams]
    merged: list[Event] = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        merged.append(queue.pop(0))
    return merged


def test_a_forecast_is_scored_when_its_target_bar_is_processed() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    board.on_forecast(forecast("red", "drift", "AAPL", 0, 102.0, 100.0))
    assert board.pending == 1 and store.error_sums() == {}
    assert board.on_bar_processed(processed("AAPL", 0, 100.0)) == []  # as_of day: not the target
    [scored] = board.on_bar_processed(processed("AAPL", 1, 101.0))
    assert (scored.actual, scored.abs_error, scored.direction_correct) == (101.0, 1.0, True)
    assert board.pending == 0
    assert store.error_sums()[Series("red", "drift", "AAPL")].count == 1


def test_a_bar_of_another_symbol_scores_nothing() -> None:
    board = Scoreboard(InMemoryStore(), ARENA)
    board.on_forecast(forecast("red", "drift", "AAPL", 0, 102.0, 100.0))
    assert board.on_bar_processed(processed("AMZN", 1, 101.0)) == []
    assert board.pending == 1


def test_a_forecast_arriving_after_its_bar_is_scored_at_once() -> None:
    board = Scoreboard(InMemoryStore(), ARENA)
    board.on_bar_processed(processed("AAPL", 1, 101.0))
    scored = board.on_forecast(forecast("red", "drift", "AAPL", 0, 102.0, 100.0))
    assert scored is not None and scored.actual == 101.0


def test_rel_mae_mase_and_direction() -> None:
    warmup = [90.0, 95.0, 93.0, 100.0]  # the training period: naive one-step errors 5, 2, 7
    events: list[Event] = [processed("AAPL", i, close) for i, close in enumerate(warmup)]
    closes = [100.0, 102.0, 101.0, 104.0]
    for i, close in enumerate(closes[:-1]):
        events += [
            forecast("red", "drift", "AAPL", 3 + i, close + 1.0, close),  # always "up"
            forecast("baseline", "persistence", "AAPL", 3 + i, close, close),
        ]
        events.append(processed("AAPL", 4 + i, closes[i + 1]))
    store = play(events)
    rows = {r["model"]: r for r in summary(store, ARENA)["series"] if r["symbol"] == "AAPL"}
    # actual moves +2, -1, +3: drift (+1) errors 1, 2, 2; persistence errors 2, 1, 3 (MAE 2)
    assert rows["drift"]["mae"] == pytest.approx(5 / 3) and rows["persistence"]["mae"] == 2.0
    assert rows["drift"]["rel_mae"] == pytest.approx(5 / 6) and rows["persistence"]["rel_mae"] == 1.0
    assert rows["drift"]["mase_scale"] == pytest.approx(14 / 3)  # only the bars before the first target
    assert rows["drift"]["mase"] == pytest.approx((5 / 3) / (14 / 3))
    assert rows["persistence"]["mase"] == pytest.approx(2 / (14 / 3))
    assert rows["drift"]["direction_pct"] == pytest.approx(66.666667)
    assert rows["persistence"]["direction_pct"] == 0.0  # "no move" never matches a move
    assert (rows["drift"]["direction_trials"], rows["drift"]["direction_hits"]) == (3, 2)
    assert rows["persistence"]["direction_trials"] is None and rows["persistence"]["dm_pvalue"] is None
    assert rows["drift"]["dm_days"] == 3 and rows["drift"]["dm_mean_differential"] == pytest.approx(-1 / 3)
    scale = store.naive_scales()["AAPL"]
    assert (scale.first, scale.last, scale.count) == (D[0], D[3], 3)


def test_duplicates_and_replays_are_not_double_counted() -> None:
    events = interleave(simulated_streams(), seed=1)
    once = summary(play(events), ARENA)
    doubled = [e for event in events for e in (event, event)]
    assert summary(play(doubled), ARENA) == once
    store = play(events)
    play(events, store)  # a rebuild over a store that already holds the run
    assert summary(store, ARENA) == once


def test_interleavings_give_identical_results() -> None:
    streams = simulated_streams(warmup=WARMUP)
    a, b = play(interleave(streams, seed=1)), play(interleave(streams, seed=2))
    assert a.error_sums() == b.error_sums()
    assert standings(a, ARENA) == standings(b, ARENA)  # bit-identical floats, across symbols too
    assert json.dumps(summary(a, ARENA)) == json.dumps(summary(b, ARENA))
    assert summary(a, ARENA)["series"][0]["count"] == 25 - WARMUP
    assert all(m["mase"] is not None and m["dm_pvalue"] is not None for m in summary(a, ARENA)["models"][1:])


def test_equity_only_when_every_traded_symbol_is_marked() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    assert board.on_position_mark(mark("red", "AAPL", 0, 2, 100.0, -201.0)) is None
    assert board.on_position_mark(mark("red", "SAP", 0, 0, 50.0, 0.0)) is None
    assert store.equity_history("red") == []
    assert board.on_position_mark(mark("red", "AMZN", 0, 1, 30.0, -31.0)) == 1000.0 - 1.0 - 1.0
    assert store.equity_history("red") == [(D[0], 998.0)]
    assert progress(store).equity == {"red": D[0]}


def test_trading_metrics_on_a_hand_computed_curve() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    for i, aapl_close in enumerate([110.0, 99.0, 108.9]):  # 10 shares bought for 1000: +10 %, -10 %, +10 %
        for symbol in ARENA.symbols:
            quantity, close = (10, aapl_close) if symbol == "AAPL" else (0, 50.0)
            board.on_position_mark(mark("red", symbol, i, quantity, close, -1000.0 if quantity else 0.0))
    board.on_fill(fill("red", "AAPL", 0, "red-1", 100.0, commission=0.0))
    board.on_fill(fill("red", "AAPL", 0, "red-1", 100.0, commission=0.0))
    [team] = [t for t in summary(store, ARENA)["teams"] if t["team"] == "red"]
    assert team["pnl"] == pytest.approx(89.0)
    assert team["total_return"] == pytest.approx(0.089)
    assert team["sharpe"] == pytest.approx(4.582576, abs=1e-6)  # sqrt(756) / 6
    assert team["max_drawdown"] == pytest.approx(0.1)
    assert (team["days"], team["trades"], team["last_date"]) == (3, 1, D[2].isoformat())
    assert [point["equity"] for point in team["equity"]] == [1100.0, 990.0, 1089.0]


def test_rankings_order_and_my_rank() -> None:
    store = play(interleave(simulated_streams(), seed=3))
    by_mae = rankings(store, "mae")
    assert [e.value for e in by_mae] == sorted(e.value for e in by_mae)  # lower is better
    assert {e.member for e in by_mae} == {"baseline/persistence", "blue/alt", "blue/trend", "red/drift"}
    by_direction = rankings(store, "direction")
    assert [e.value for e in by_direction] == sorted((e.value for e in by_direction), reverse=True)
    me = rank_of(store, "direction", "red/drift")
    assert me is not None and by_direction[me.rank - 1].value == me.value
    by_pnl = rankings(store, "pnl")
    assert {e.member for e in by_pnl} == {"red", "blue"}  # trading rankings rank teams
    assert [e.value for e in by_pnl] == sorted((e.value for e in by_pnl), reverse=True)
    assert rank_of(store, "pnl", "nobody") is None
    assert len(rankings(store, "mae", top=2)) == 2


def test_tied_values_share_a_rank() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    for team, model in [("red", "drift"), ("blue", "trend")]:
        board.on_forecast(forecast(team, model, "AAPL", 0, 101.0, 100.0))
    board.on_forecast(forecast("baseline", "persistence", "AAPL", 0, 100.0, 100.0))
    board.on_bar_processed(processed("AAPL", 1, 101.5))
    ranked = [(e.rank, e.member) for e in rankings(store, "direction")]
    assert ranked == [(1, "blue/trend"), (1, "red/drift"), (3, "baseline/persistence")]
    assert rank_of(store, "direction", "red/drift") == rankings(store, "direction")[1]


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        rankings(InMemoryStore(), "speed")


def test_progress_counts_scored_forecasts_and_last_bars() -> None:
    store = play(interleave(simulated_streams(n_days=5), seed=4))
    done = progress(store)
    assert done.scored["red/drift/AAPL"] == 4 and done.scored["blue/alt/AAPL"] == 4
    assert "blue/alt/AMZN" not in done.scored
    assert done.bars == dict.fromkeys(ARENA.symbols, D[4])
    assert done.equity == {"blue": D[4], "red": D[4]}


def test_standings_show_trading_only_for_trading_models() -> None:
    rows = {s.member: s for s in standings(play(interleave(simulated_streams(), seed=5)), ARENA)}
    assert rows["blue/trend"].trading is not None and rows["red/drift"].trading is not None
    assert rows["blue/alt"].trading is None and rows["baseline/persistence"].trading is None
    assert rows["blue/alt"].symbols == ("AAPL",)


def test_summary_is_json_and_lists_models_without_scores() -> None:
    result = summary(InMemoryStore(), ARENA)
    assert json.loads(json.dumps(result)) == result
    assert {(r["team"], r["model"]) for r in result["models"]} == {
        ("baseline", "persistence"), ("blue", "alt"), ("blue", "trend"), ("red", "drift"),
    }  # fmt: skip
    assert all(r["count"] == 0 and r["mae"] is None for r in result["series"])


class CountingStore(InMemoryStore):
    """Counts the store calls made, by method name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def __getattribute__(self, name: str) -> object:
        attr = super().__getattribute__(name)
        if not name.startswith("_") and callable(attr) and name != "calls":
            calls = super().__getattribute__("calls")
            calls[name] = calls.get(name, 0) + 1
        return attr


READS = {"scored", "error_sums", "error_sums_of", "fills", "marks", "equity_history", "equity_dates", "bar_dates"}


def test_an_event_costs_the_same_however_long_the_history() -> None:
    """The scoreboard never reads the store while projecting, and one more day costs the same calls."""

    def calls_for_the_last_day(n_days: int) -> dict[str, int]:
        events = interleave(simulated_streams(n_days=n_days), seed=6)
        last = D[n_days - 1]  # each stream is in day order, so splitting by day keeps every stream's order
        store = CountingStore()
        board = Scoreboard(store, ARENA)
        for event in (e for e in events if _day(e) < last):
            board.handle(event)
        store.calls.clear()
        for event in (e for e in events if _day(e) >= last):
            board.handle(event)
        return store.calls

    short, long = calls_for_the_last_day(5), calls_for_the_last_day(40)
    assert not READS & set(long), long
    assert short == long


def _day(event: Event) -> date:
    if isinstance(event, BarProcessed):
        return event.bar.date
    if isinstance(event, Fill):
        return event.date
    assert isinstance(event, Forecast | PositionMark)
    return event.as_of


def test_closes_latest_forecasts_and_orders_for_the_page() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    board.handle(processed("AAPL", 0, 100.0))
    early, late = forecast("red", "drift", "AAPL", 0, 101.0, 100.0), forecast("red", "drift", "AAPL", 1, 99.0, 100.5)
    board.handle(early)
    assert store.latest_forecasts() == []  # noted when the bar's marker arrives: one write per bar
    board.handle(processed("AAPL", 1, 100.5))
    board.handle(late)
    board.handle(processed("AAPL", 2, 98.0))
    board.handle(order("red", "AAPL", 1, "x"))
    board.handle(order("red", "AAPL", 1, "x", "duplicate"))
    assert store.closes("AAPL") == [(D[0], 100.0), (D[1], 100.5), (D[2], 98.0)]
    assert store.latest_forecasts() == [late]
    assert store.model_versions() == {Series("red", "drift", "AAPL"): {"1": D[0]}}
    assert [o.status for o in store.orders("red")] == ["submitted"]


def test_the_page_data_survives_a_replay() -> None:
    events = interleave(simulated_streams(n_days=6), seed=3)
    once = play(events)
    twice = play(events, play(events))
    for store in (once, twice):
        assert isinstance(store, InMemoryStore)
    assert once.latest_forecasts() == twice.latest_forecasts()
    assert once.closes("SAP") == twice.closes("SAP") and len(once.closes("SAP")) == 6


# -- revisions ---------------------------------------------------------------------------------


def revised(symbol: str, i: int, old: float, new: float) -> BarRevision:
    return BarRevision(bar=bar(symbol, D[i], new), previous=bar(symbol, D[i], old), produced_at=T0)


def test_a_revised_close_rescores_its_days_forecasts_as_if_known_from_the_start() -> None:
    first_print = [
        processed("AAPL", 0, 100.0),
        forecast("red", "drift", "AAPL", 0, 102.0, 100.0),
        forecast("baseline", "persistence", "AAPL", 0, 100.0, 100.0),
        processed("AAPL", 1, 101.0),  # first print of D1: 101
        forecast("red", "drift", "AAPL", 1, 101.5, 101.0),  # made from the first print: keeps last close 101
        revised("AAPL", 1, 101.0, 103.0),  # the vendor's final close of D1: 103
        processed("AAPL", 2, 104.0),
    ]
    clean = [
        processed("AAPL", 0, 100.0),
        forecast("red", "drift", "AAPL", 0, 102.0, 100.0),
        forecast("baseline", "persistence", "AAPL", 0, 100.0, 100.0),
        processed("AAPL", 1, 103.0),
        forecast("red", "drift", "AAPL", 1, 101.5, 101.0),
        processed("AAPL", 2, 104.0),
    ]
    live, replay = play(first_print), play(clean)
    assert live.error_sums() == replay.error_sums()  # bit for bit
    (d1, d2) = live.scored(Series("red", "drift", "AAPL"))
    assert (d1.actual, d1.direction_correct) == (103.0, True)
    assert (d2.last_close, d2.actual) == (101.0, 104.0)  # a forecast made from the old close keeps it
    assert summary(live, ARENA) == summary(replay, ARENA)


def test_a_revision_is_idempotent_and_reaches_forecasts_that_arrive_later() -> None:
    store = InMemoryStore()
    board = Scoreboard(store, ARENA)
    board.on_bar_processed(processed("AAPL", 1, 101.0))
    assert board.on_bar_revision(revised("AAPL", 1, 101.0, 103.0)) == []  # nothing scored yet
    scored = board.on_forecast(forecast("red", "drift", "AAPL", 0, 102.0, 100.0))
    assert scored is not None and scored.actual == 103.0
    assert board.on_bar_revision(revised("AAPL", 1, 101.0, 103.0)) == []  # replayed: no change
    assert board.on_bar_revision(revised("AAPL", 7, 1.0, 2.0)) == []  # a bar never processed here


def test_a_scorer_rereading_its_topics_after_a_revision_ends_in_the_same_state() -> None:
    events: list[Event] = [
        processed("AAPL", 0, 100.0),
        forecast("red", "drift", "AAPL", 0, 102.0, 100.0),
        processed("AAPL", 1, 101.0),
        revised("AAPL", 1, 101.0, 103.0),
    ]
    once = play(events)
    twice = play(events, play(events))  # a restarted scorer re-reads from the start into the same store
    assert once.error_sums() == twice.error_sums()
    assert [s.actual for s in twice.scored(Series("red", "drift", "AAPL"))] == [103.0]
    assert isinstance(twice, InMemoryStore) and twice.closes("AAPL") == [(D[0], 100.0), (D[1], 103.0)]
