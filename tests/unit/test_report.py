from __future__ import annotations

from datetime import date

import pytest

from consumers.leaderboard import ModelStanding, Significance
from consumers.significance import DIRECTION_TEST, DM_TEST, DieboldMariano
from redblue.app.report import leaderboard_text, render_leaderboard, render_original
from redblue.core.arena import Arena
from redblue.core.metrics import ErrorSums, NaiveScale, ScoredForecast, forecast_metrics, trading_metrics
from redblue.core.store import InMemoryStore
from tests.factories import days

ORIGINAL = """\
Simulation period: 2024-01-02 + 180 days

Apple, red/drift
Mean Absolute Error (MAE): 43.5727
Percentage of correct Gain/Loss predictions: 44.44%

SAP, red/drift
Mean Absolute Error (MAE): 13.3266
Percentage of correct Gain/Loss predictions: 45.0%

Amazon, red/drift
Mean Absolute Error (MAE): 15.92
Percentage of correct Gain/Loss predictions: 47.22%"""

ARENA = Arena.model_validate(
    {
        "name": "original",
        "symbols": ["AAPL", "SAP", "AMZN"],
        "names": {"AAPL": "Apple", "AMZN": "Amazon"},
        "teams": {"red": {"models": [{"name": "drift", "kind": "drift"}]}},
    }
)


def add_series(store: InMemoryStore, symbol: str, error: float, right: int, wrong: int) -> None:
    """``right`` forecasts with the right direction and ``wrong`` with the wrong one, all off by ``error``."""
    moves = [10.0] * right + [-10.0] * wrong  # the prediction is always above the last close
    for target, move in zip(days(date(2024, 1, 3), len(moves)), moves, strict=True):
        actual = 100.0 + move
        store.add_score(ScoredForecast("red", "drift", symbol, date(2024, 1, 2), target, actual + error, 100.0, actual))


def test_the_original_block_line_by_line() -> None:
    store = InMemoryStore()
    add_series(store, "AAPL", 43.5727, right=4, wrong=5)
    add_series(store, "SAP", 13.3266, right=9, wrong=11)
    add_series(store, "AMZN", 15.92, right=17, wrong=19)
    assert render_original(store, ARENA, date(2024, 1, 2), 180) == ORIGINAL


def test_series_without_scores_are_left_out() -> None:
    store = InMemoryStore()
    add_series(store, "SAP", 1.0, right=1, wrong=0)
    text = render_original(store, ARENA, date(2024, 1, 2), 1)
    assert "Apple" not in text and "SAP, red/drift" in text


def standing(member: str, mae: float, trading_curve: list[float] | None = None, p: float = 0.5) -> ModelStanding:
    team, model = member.split("/")
    sums = ErrorSums(count=2, abs_error=2 * mae, naive_abs_error=4.0, direction_hits=1)
    forecasts = forecast_metrics(sums, NaiveScale(count=1, abs_diff=4.0))
    trading = None if trading_curve is None else trading_metrics(1000.0, trading_curve, [])
    tests = Significance(DieboldMariano(2, mae - 2.0, 1.0, p), None, p)
    return ModelStanding(team, model, ("AAPL",), forecasts, trading, tests)


ROWS = [
    standing("baseline/persistence", 2.0),
    standing("red/drift", 1.0, [1010.0, 990.0, 1050.0], p=0.01),
    standing("blue/trend", 3.0, [1000.0, 1100.0, 1080.0]),
    standing("blue/alt", 0.5),
]


def test_leaderboard_table() -> None:
    assert render_leaderboard(ROWS, sort_by="pnl").splitlines() == [
        "Leaderboard by pnl (higher is better)",
        "#  team/model               MAE  rel MAE   MASE   DM p  direction %  dir p     P&L  return %  Sharpe"
        "  max drawdown %  trades",
        "1  blue/trend            3.0000    1.500  0.750  0.500        50.00      -  +80.00     +8.00    6.80"
        "            1.82       0",
        "2  red/drift             1.0000    0.500  0.250  0.010        50.00      -  +50.00     +5.00    6.61"
        "            1.98       0",
        "3  baseline/persistence  2.0000    1.000  0.500  0.500        50.00      -       -         -       -"
        "               -       -",
        "4  blue/alt              0.5000    0.250  0.125  0.500        50.00      -       -         -       -"
        "               -       -",
        "DM p, dir p: Holm-adjusted p-values (raw ones in summary.json); rel MAE, MASE: per symbol, averaged",
        "Distinguishable from persistence (at the 5 % level, Holm-adjusted over 4 models): red/drift better"
        " (p = 0.0100); no other model is.",
        f"  test: {DM_TEST}",
        "No model has enough days with a move for a direction test.",
        f"  test: {DIRECTION_TEST}",
    ]


def test_leaderboard_sorted_by_an_error_metric_lowest_first_with_top() -> None:
    lines = render_leaderboard(ROWS, sort_by="mae", top=2).splitlines()
    assert lines[0] == "Leaderboard by mae (lower is better)"
    assert [line.split()[1] for line in lines[2:4]] == ["blue/alt", "red/drift"]
    assert lines[4].startswith("DM p, dir p")


@pytest.mark.parametrize(
    ("sort_by", "top", "message"), [("speed", None, "cannot sort by 'speed'"), ("mae", 0, "--top")]
)
def test_leaderboard_refuses_bad_options(sort_by: str, top: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_leaderboard(ROWS, sort_by=sort_by, top=top)


def test_leaderboard_of_an_empty_store_lists_every_model() -> None:
    text = leaderboard_text(InMemoryStore(), ARENA)
    assert text.splitlines()[2].split() == ["1", "red/drift", *["-"] * 11]
    assert text.splitlines()[-4] == "No model has enough scored days for a test against persistence."
