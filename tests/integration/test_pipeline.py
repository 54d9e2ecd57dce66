"""The whole pipeline against the real broker and Redis: replay → forecasts → orders → scores.

Each test has its own run id, hence its own topics, consumer groups and Redis keys.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from consumers.leaderboard import progress, summary
from consumers.scorer import rebuild, run_scorer
from producers.replay import plan_replay, replay
from redblue.adapters.kafka import EventProducer, read_topic
from redblue.adapters.redis_store import RedisStore
from redblue.app.outputs import write
from redblue.app.simulate import SimulationRequest, running_pipeline, simulate
from redblue.core.arena import DEFAULT_ARENA, load_arena
from redblue.core.bars import DATA_DIR
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.settings import Settings
from schemas import DeadLetter
from schemas.topics import BARS, DEADLETTER
from tests.factories import BASELINES
from tests.integration.conftest import TrainedStore

pytestmark = pytest.mark.integration


def request(symbols: tuple[str, ...], start: date, days: int, run_id: str, out: Path) -> SimulationRequest:
    arena = load_arena(BASELINES).with_symbols(symbols)
    return SimulationRequest(
        start=start, days=days, arena=arena, arena_path=BASELINES, run_id=run_id, out=out, timeout=120
    )


def persistence_mae_from_csv(symbol: str, start: str, days: int) -> float:
    """Independently of redblue: |close(t) - close(t-1)| averaged over the ``days`` rows from ``start``."""
    df = pd.read_csv(DATA_DIR / f"{symbol}.csv")
    df["error"] = (df["close"] - df["close"].shift(1)).abs()
    first = df.index[df["date"] == start][0]
    return float(df["error"].iloc[first : first + days].mean())


def test_reference_run_scores_180_days_per_symbol_and_model(settings: Settings, run_id: str, tmp_path: Path) -> None:
    result = simulate(settings, request(("AAPL", "AMZN", "SAP"), date(2024, 1, 2), 180, run_id, tmp_path))
    series = {(r["team"], r["model"], r["symbol"]): r for r in result.summary["series"]}  # type: ignore[attr-defined]
    assert len(series) == 9
    assert {r["count"] for r in series.values()} == {180}
    for symbol in ("AAPL", "AMZN", "SAP"):
        expected = persistence_mae_from_csv(symbol, "2024-01-02", 180)
        assert series["baseline", "persistence", symbol]["mae"] == pytest.approx(expected, rel=1e-9)
    with (tmp_path / "forecasts.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 * 180
    assert min(r["target"] for r in rows) == "2024-01-02" and max(r["target"] for r in rows) == "2024-09-18"
    assert "Simulation period: 2024-01-02 + 180 days" in result.report
    _check_fills_at_next_open(tmp_path)


@pytest.mark.timeout(2400)  # the session's team models are trained in this test's setup if it runs first
def test_the_reference_simulation_with_the_ludwig_team_models(
    ludwig_store: TrainedStore, run_id: str, tmp_path: Path
) -> None:
    """``make demo``'s simulation: the reference arena, its six trained team models served from the registry."""
    req = SimulationRequest(
        date(2024, 1, 2), 180, load_arena(DEFAULT_ARENA), DEFAULT_ARENA, run_id=run_id, out=tmp_path
    )
    result = simulate(ludwig_store.settings, req, say=lambda _: None)
    summary = result.summary
    series = {(r["team"], r["model"], r["symbol"]): r for r in summary["series"]}  # type: ignore[index]
    assert len(series) == 5 * 3 and {r["count"] for r in series.values()} == {180}
    assert summary["failed_forecasts"] == {}  # type: ignore[index]
    team_pins = [p for p in summary["served"] if p["team"] in ("red", "blue")]  # type: ignore[index]
    assert len(team_pins) == 6 and {(p["trained_until"], p["error"]) for p in team_pins} == {("2023-12-29", "")}
    assert all(p["data_hash"] for p in team_pins)
    for model in ("red/mlp", "blue/seq"):
        row = next(r for r in summary["models"] if f"{r['team']}/{r['model']}" == model)  # type: ignore[index]
        assert 0.9 < row["rel_mae"] < 1.1 and row["dm_pvalue"] is not None and row["direction_trials"] > 400
    assert len(summary["statistics"]["verdicts"]) == 2  # type: ignore[index]
    assert {t["team"]: t["trades"] > 0 for t in summary["teams"]} == {"blue": True, "red": True}  # type: ignore[index]
    assert "Apple, red/mlp\nMean Absolute Error (MAE): " in result.report
    _check_fills_at_next_open(tmp_path)


def _check_fills_at_next_open(out: Path) -> None:
    """Every fill is on its order's target day, at that day's open plus or minus slippage (5 bps)."""
    orders = {
        r["client_order_id"]: r for r in csv.DictReader((out / "orders.csv").open()) if r["status"] == "submitted"
    }
    fills = list(csv.DictReader((out / "fills.csv").open()))
    assert fills, "the reference run should trade"
    opens = {}
    for symbol in {f["symbol"] for f in fills}:
        df = pd.read_csv(DATA_DIR / f"{symbol}.csv", index_col="date")
        opens[symbol] = df["open"]
    for fill in fills:
        order = orders[fill["client_order_id"]]
        assert fill["date"] == order["target"] > order["as_of"]
        open_ = opens[fill["symbol"]][fill["date"]]
        sign = 1 if fill["side"] == "buy" else -1
        assert float(fill["price"]) == pytest.approx(open_ * (1 + sign * 5e-4), rel=1e-12)


def test_same_simulation_twice_gives_identical_files(settings: Settings, run_id: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    simulate(settings, request(("AAPL", "SAP"), date(2024, 3, 1), 15, run_id, first))
    simulate(settings, request(("AAPL", "SAP"), date(2024, 3, 1), 15, run_id, second))
    for name in ("forecasts.csv", "orders.csv", "fills.csv", "equity.csv", "summary.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_malformed_bar_is_dead_lettered_and_duplicates_make_no_second_order(
    settings: Settings, run_id: str, tmp_path: Path
) -> None:
    req = request(("AAPL", "AMZN"), date(2024, 2, 1), 20, run_id, tmp_path)
    calendar = get_calendar()
    plan = plan_replay(DATA_DIR, req.arena.symbols, req.start, req.days, req.arena.window, calendar)
    with running_pipeline(settings, run_id, req, plan, tmp_path / "logs") as pipeline:
        producer = EventProducer(settings, run_id)
        producer.send_raw(BARS, "AAPL", b'{"type": "bar", "v": 1, "data": {"symbol": "AAPL"}}')
        replay(producer, plan.rows, calendar, utc_now)
        replay(producer, plan.rows[-40:], calendar, utc_now)  # the last days again: duplicates
        pipeline.wait_until_complete()
    written = write(settings, run_id, req.arena, plan, tmp_path)
    letters = [e for e in read_topic(settings, run_id, DEADLETTER) if isinstance(e, DeadLetter)]
    assert len(letters) == 1
    assert letters[0].stage == "processor" and "date: Field required" in letters[0].reason
    assert letters[0].original.startswith(b'{"type": "bar"')
    assert written.summary["counts"]["dead_letters"] == 1
    orders = list(csv.DictReader((tmp_path / "orders.csv").open()))
    ids = [o["client_order_id"] for o in orders if o["status"] == "submitted"]
    assert ids and len(ids) == len(set(ids))
    series = json.loads((tmp_path / "summary.json").read_text())["series"]
    assert {r["count"] for r in series} == {20}


def test_the_leaderboard_is_rebuilt_from_the_topics_alone(settings: Settings, run_id: str, tmp_path: Path) -> None:
    req = request(("AAPL", "AMZN"), date(2024, 4, 1), 15, run_id, tmp_path)
    original = simulate(settings, req).summary
    replayed = rebuild(settings, run_id, req.arena)
    assert replayed > 0
    with RedisStore.from_settings(settings, run_id) as store:
        assert summary(store, req.arena) == {k: v for k, v in original.items() if k in summary(store, req.arena)}


def test_a_restarted_scorer_reads_from_the_start_despite_committed_offsets(
    settings: Settings, run_id: str, tmp_path: Path
) -> None:
    req = request(("SAP",), date(2024, 4, 1), 10, run_id, tmp_path)
    original = simulate(settings, req).summary
    with RedisStore.from_settings(settings, run_id) as store:
        store.delete_run()
        stop = threading.Event()
        scorer = threading.Thread(target=run_scorer, args=(settings, run_id, req.arena, stop))
        scorer.start()
        try:
            deadline = time.monotonic() + 60
            last = get_calendar().offset(req.start, req.days - 1)
            while progress(store).equity.get("red") != last and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop.set()
            scorer.join()
        assert summary(store, req.arena) == {k: v for k, v in original.items() if k in summary(store, req.arena)}


def test_runs_are_isolated(settings: Settings, run_id: str, tmp_path: Path) -> None:
    other = f"{run_id}-b"
    a = simulate(settings, request(("SAP",), date(2024, 5, 1), 5, run_id, tmp_path / "a"))
    b = simulate(settings, request(("AAPL",), date(2024, 5, 1), 5, other, tmp_path / "b"))
    assert {r["symbol"] for r in a.summary["series"]} == {"SAP"}  # type: ignore[attr-defined]
    assert {r["symbol"] for r in b.summary["series"]} == {"AAPL"}  # type: ignore[attr-defined]


def test_symbols_enter_with_their_own_warm_up_and_leave_at_their_last_bar(
    settings: Settings, run_id: str, tmp_path: Path
) -> None:
    """TSLA's data begin 2010-06-29 and end 2025-02-14: it joins AAPL late in one run and leaves early in another."""
    calendar = get_calendar()
    arena = load_arena(BASELINES).with_symbols(("AAPL", "TSLA"))
    late = SimulationRequest(
        start=date(2010, 8, 2), days=None, end=date(2010, 10, 29), arena=arena, arena_path=BASELINES,
        run_id=run_id, out=tmp_path / "late", timeout=120,
    )  # fmt: skip
    result = simulate(settings, late)
    coverage = result.summary["coverage"]  # type: ignore[index]
    tsla_first = calendar.offset(date(2010, 6, 29), 60)  # after its own 60-bar warm-up
    assert coverage["TSLA"]["first_target"] == tsla_first.isoformat()
    assert coverage["AAPL"]["first_target"] == "2010-08-02"
    series = {(r["model"], r["symbol"]): r["count"] for r in result.summary["series"]}  # type: ignore[attr-defined]
    assert series["persistence", "TSLA"] == len(calendar.sessions(tsla_first, date(2010, 10, 29)))
    assert series["persistence", "AAPL"] == len(calendar.sessions(date(2010, 8, 2), date(2010, 10, 29)))
    forecasts = list(csv.DictReader((tmp_path / "late" / "forecasts.csv").open()))
    assert min(r["target"] for r in forecasts if r["symbol"] == "TSLA") == tsla_first.isoformat()
    equity = [r["date"] for r in csv.DictReader((tmp_path / "late" / "equity.csv").open()) if r["team"] == "red"]
    assert equity == [d.isoformat() for d in calendar.sessions(date(2010, 7, 30), date(2010, 10, 29))]
    assert "Per symbol" in result.report and "Simulation period: 2010-08-02 to 2010-10-29" in result.report

    gone = SimulationRequest(
        start=date(2025, 1, 2), days=None, end=date(2025, 3, 31), arena=arena, arena_path=BASELINES,
        run_id=f"{run_id}-b", out=tmp_path / "gone", timeout=120,
    )  # fmt: skip
    result = simulate(settings, gone)
    assert result.summary["coverage"]["TSLA"]["last_target"] == "2025-02-14"  # type: ignore[index]
    equity = [r["date"] for r in csv.DictReader((tmp_path / "gone" / "equity.csv").open()) if r["team"] == "red"]
    assert equity[-1] == "2025-03-31"  # TSLA's last mark counts on after it left
