from __future__ import annotations

import math
from datetime import date

import pytest

from redblue.core.metrics import (
    ErrorSums,
    NaiveScale,
    ScoredForecast,
    combine,
    daily_returns,
    equity,
    forecast_metrics,
    max_drawdown,
    metric_value,
    model_metrics,
    score_forecast,
    sharpe_ratio,
    trading_metrics,
)
from schemas import Fill, Forecast
from tests.factories import T0, days

D0, D1 = date(2024, 1, 2), date(2024, 1, 3)


def scored(predicted: float, last: float, actual: float) -> ScoredForecast:
    return ScoredForecast("red", "drift", "AAPL", D0, D1, predicted, last, actual)


def test_score_forecast_keeps_identity_and_prices() -> None:
    f = Forecast(
        run="r1", team="red", model="drift", model_version="1", symbol="AAPL", as_of=D0, target=D1,
        predicted_close=102.0, last_close=100.0, produced_at=T0,
    )  # fmt: skip
    s = score_forecast(f, 101.0)
    assert s.key == f.key
    assert (s.predicted, s.last_close, s.actual) == (102.0, 100.0, 101.0)


def test_errors_of_one_forecast() -> None:
    s = scored(predicted=102.0, last=100.0, actual=101.0)
    assert s.abs_error == 1.0
    assert s.squared_error == 1.0
    assert s.pct_error == pytest.approx(100 / 101)
    assert s.naive_abs_error == 1.0


@pytest.mark.parametrize(
    ("predicted", "actual", "correct"),
    [
        (102.0, 101.0, True),  # up, up
        (98.0, 99.0, True),  # down, down
        (99.0, 101.0, False),  # down, up
        (101.0, 99.0, False),  # up, down
        (100.0, 100.0, True),  # flat, flat
        (100.0, 101.0, False),  # flat, up
        (101.0, 100.0, False),  # up, flat
    ],
)
def test_direction_compares_signs_against_last_close(predicted: float, actual: float, correct: bool) -> None:
    assert scored(predicted, 100.0, actual).direction_correct is correct


def test_metrics_of_a_series() -> None:
    sums = ErrorSums().add(scored(102.0, 100.0, 101.0)).add(scored(97.0, 100.0, 100.0))
    m = forecast_metrics(sums)
    assert m is not None
    assert m.count == 2
    assert m.mae == 2.0  # errors 1 and 3
    assert m.rmse == math.sqrt(5.0)
    assert m.mape == pytest.approx((100 / 101 + 3.0) / 2)
    assert m.rel_mae == 4.0  # naive errors 1 and 0: MAE 0.5
    assert m.mase is None  # no in-sample scale given
    assert m.direction_pct == 50.0  # up/up right, down/flat wrong
    scaled = forecast_metrics(sums, scale=in_sample([100.0, 101.0, 99.0, 99.5]))  # naive MAE (1 + 2 + 0.5) / 3
    assert scaled is not None and scaled.mase == pytest.approx(2.0 / (3.5 / 3))


def in_sample(closes: list[float]) -> NaiveScale:
    scale = NaiveScale()
    for day, close in zip(days(date(2023, 10, 2), len(closes)), closes, strict=True):
        scale = scale.add(day, close)
    return scale


def test_naive_scale_is_the_in_sample_one_step_naive_mae_and_ignores_replays() -> None:
    scale = in_sample([10.0, 12.0, 11.0, 11.0, 15.0])
    assert (scale.count, scale.abs_diff, scale.mae) == (4, 7.0, 1.75)
    assert scale.first == date(2023, 10, 2) and scale.last == date(2023, 10, 6)
    assert scale.add(date(2023, 10, 4), 1000.0) == scale  # a day already seen (a replay) changes nothing
    assert in_sample([10.0]).mae is None and in_sample([10.0, 10.0]).mae is None  # no movement: undefined


def test_no_scores_no_metrics_and_zero_naive_error_no_rel_mae() -> None:
    assert forecast_metrics(ErrorSums()) is None
    m = forecast_metrics(ErrorSums().add(scored(101.0, 100.0, 100.0)))
    assert m is not None and m.rel_mae is None


def test_persistence_has_rel_mae_one() -> None:
    sums = ErrorSums().add(scored(100.0, 100.0, 103.0)).add(scored(100.0, 100.0, 98.5))
    m = forecast_metrics(sums)
    assert m is not None and m.rel_mae == 1.0 and m.direction_pct == 0.0


def test_a_model_s_ratios_are_means_over_symbols_not_pooled_dollars() -> None:
    """An expensive symbol (errors in the hundreds) must not outweigh a cheap one."""
    cheap = ErrorSums(count=10, abs_error=5.0, naive_abs_error=10.0)  # half of persistence's error
    dear = ErrorSums(count=10, abs_error=2200.0, naive_abs_error=2000.0)  # 10 % worse than persistence
    scales = {"CHEAP": in_sample([10.0, 11.0]), "DEAR": in_sample([1000.0, 1200.0])}  # naive MAE 1 and 200
    m = model_metrics({"DEAR": dear, "CHEAP": cheap}, scales)
    assert m is not None
    assert m.rel_mae == pytest.approx((0.5 + 1.1) / 2)  # pooled dollars would say 2205 / 2010 = 1.097
    assert m.mase == pytest.approx((0.5 / 1.0 + 220.0 / 200.0) / 2)
    assert m.mae == pytest.approx(2205.0 / 20)  # MAE itself stays pooled (it is in dollars)
    assert model_metrics({"DEAR": dear, "CHEAP": cheap}, {"DEAR": scales["DEAR"]}).mase is None  # type: ignore[union-attr]


def test_direction_share_prints_like_the_original() -> None:
    sums = ErrorSums(count=180, direction_hits=81, naive_abs_error=1.0)
    m = forecast_metrics(sums)
    assert m is not None and str(round(m.direction_pct, 2)) == "45.0"


def test_combine_is_independent_of_symbol_order() -> None:
    a, b, c = (ErrorSums(count=1, abs_error=x) for x in (0.1, 0.2, 0.3))
    assert (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3)  # so the order is observable
    assert combine({"SAP": c, "AAPL": a, "AMZN": b}) == combine({"AMZN": b, "AAPL": a, "SAP": c})
    assert combine({"SAP": c, "AAPL": a, "AMZN": b}).abs_error == (0.1 + 0.2) + 0.3


def test_equity_adds_contributions_in_symbol_order() -> None:
    assert equity(1000.0, {"B": 0.2, "A": 0.1, "C": 0.3}) == ((1000.0 + 0.1) + 0.2) + 0.3


def test_sharpe_and_drawdown_on_a_hand_computed_curve() -> None:
    curve = [110.0, 99.0, 108.9]  # +10 %, -10 %, +10 %
    returns = daily_returns(100.0, curve)
    assert returns == pytest.approx([0.1, -0.1, 0.1])
    # mean 1/30, sample sd 0.2/sqrt(3): Sharpe = sqrt(3)/6 * sqrt(252) = sqrt(756)/6
    assert sharpe_ratio(returns) == pytest.approx(math.sqrt(756) / 6)
    assert max_drawdown(100.0, curve) == pytest.approx(0.1)


def test_drawdown_counts_from_the_initial_cash_and_is_zero_when_rising() -> None:
    assert max_drawdown(100.0, [90.0, 95.0]) == pytest.approx(0.1)
    assert max_drawdown(100.0, [101.0, 102.0]) == 0.0


@pytest.mark.parametrize("curve", [[], [105.0], [100.0, 100.0]])
def test_sharpe_undefined_without_two_returns_or_variation(curve: list[float]) -> None:
    assert sharpe_ratio(daily_returns(100.0, curve)) is None


def fill(coid: str, commission: float) -> Fill:
    return Fill(
        run="r1", team="red", symbol="AAPL", client_order_id=coid, side="buy", quantity=1, price=100.0,
        commission=commission, date=D1, produced_at=T0,
    )  # fmt: skip


def test_trading_metrics() -> None:
    m = trading_metrics(100.0, [110.0, 99.0, 108.9], [fill("a", 1.0), fill("b", 0.5)])
    assert m.days == 3
    assert m.final_equity == 108.9
    assert m.pnl == pytest.approx(8.9)
    assert m.total_return == pytest.approx(0.089)
    assert m.max_drawdown == pytest.approx(0.1)
    assert (m.trades, m.commission) == (2, 1.5)


def test_trading_metrics_before_any_close() -> None:
    m = trading_metrics(100.0, [], [])
    assert (m.days, m.pnl, m.total_return, m.sharpe, m.max_drawdown, m.trades) == (0, 0.0, 0.0, None, 0.0, 0)


def test_metric_value_names_unknown_metrics() -> None:
    assert metric_value("pnl", None, None) is None
    with pytest.raises(ValueError, match="unknown metric 'profit'"):
        metric_value("profit", None, None)
