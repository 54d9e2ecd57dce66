"""Scoring metrics: pure functions from scored forecasts, equity curves and fills to numbers.

Forecast errors are accumulated per (team, model, symbol) in :class:`ErrorSums`, whose
additions happen in the order of that symbol's partition (target-day order); symbols are
combined with :func:`combine` in sorted order, so a result never depends on how Kafka
interleaved the symbols. Percentages are in percent (45.0 means 45 %), drawdown and return are
fractions (0.05 means 5 %).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from redblue.core.exact import ExactSum, Moments
from schemas import Fill, Forecast

TRADING_DAYS_PER_YEAR = 252
FORECAST_METRICS = ("mae", "rmse", "mape", "mase", "direction")
TRADING_METRICS = ("pnl", "return", "sharpe", "max_drawdown")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "mase", "max_drawdown"})


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


@dataclass(frozen=True)
class ScoredForecast:
    """One forecast next to the realised close of its target day."""

    team: str
    model: str
    symbol: str
    as_of: date
    target: date
    predicted: float
    last_close: float
    actual: float

    @property
    def key(self) -> str:
        """The forecast's identity in its run (same as :attr:`schemas.Forecast.key`)."""
        return f"{self.team}/{self.model}/{self.symbol}/{self.target.isoformat()}"

    @property
    def abs_error(self) -> float:
        return abs(self.predicted - self.actual)

    @property
    def squared_error(self) -> float:
        return (self.predicted - self.actual) ** 2

    @property
    def pct_error(self) -> float:
        """Absolute error in percent of the actual close."""
        return 100.0 * self.abs_error / self.actual

    @property
    def naive_abs_error(self) -> float:
        """Absolute error of the persistence forecast (tomorrow's close = today's) on this day."""
        return abs(self.last_close - self.actual)

    @property
    def direction_correct(self) -> bool:
        """sign(predicted - last close) == sign(actual - last close); no move counts as a sign."""
        return _sign(self.predicted - self.last_close) == _sign(self.actual - self.last_close)


def score_forecast(forecast: Forecast, actual: float) -> ScoredForecast:
    """Score ``forecast`` against ``actual``, the close of its target day."""
    return ScoredForecast(
        team=forecast.team,
        model=forecast.model,
        symbol=forecast.symbol,
        as_of=forecast.as_of,
        target=forecast.target,
        predicted=forecast.predicted_close,
        last_close=forecast.last_close,
        actual=actual,
    )


@dataclass(frozen=True)
class ErrorSums:
    """Running sums of one series' errors; :meth:`add` one scored forecast at a time."""

    count: int = 0
    abs_error: float = 0.0
    squared_error: float = 0.0
    pct_error: float = 0.0
    naive_abs_error: float = 0.0
    direction_hits: int = 0

    def add(self, scored: ScoredForecast) -> ErrorSums:
        return ErrorSums(
            count=self.count + 1,
            abs_error=self.abs_error + scored.abs_error,
            squared_error=self.squared_error + scored.squared_error,
            pct_error=self.pct_error + scored.pct_error,
            naive_abs_error=self.naive_abs_error + scored.naive_abs_error,
            direction_hits=self.direction_hits + int(scored.direction_correct),
        )

    def merge(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(
            count=self.count + other.count,
            abs_error=self.abs_error + other.abs_error,
            squared_error=self.squared_error + other.squared_error,
            pct_error=self.pct_error + other.pct_error,
            naive_abs_error=self.naive_abs_error + other.naive_abs_error,
            direction_hits=self.direction_hits + other.direction_hits,
        )


def combine(by_symbol: Mapping[str, ErrorSums]) -> ErrorSums:
    """Sum several symbols' errors, always in sorted symbol order (bit-identical results)."""
    total = ErrorSums()
    for symbol in sorted(by_symbol):
        total = total.merge(by_symbol[symbol])
    return total


@dataclass(frozen=True)
class ForecastMetrics:
    """Accuracy of a series or of a model over several symbols.

    ``mase`` is the model's MAE divided by the persistence forecast's MAE on the same days
    (pooled over the days of every symbol included); below 1.0 beats persistence.
    """

    count: int
    mae: float
    rmse: float
    mape: float
    mase: float | None
    direction_pct: float


def forecast_metrics(sums: ErrorSums) -> ForecastMetrics | None:
    """Metrics from ``sums``; ``None`` when nothing has been scored yet."""
    n = sums.count
    if n == 0:
        return None
    return ForecastMetrics(
        count=n,
        mae=sums.abs_error / n,
        rmse=math.sqrt(sums.squared_error / n),
        mape=sums.pct_error / n,
        mase=sums.abs_error / sums.naive_abs_error if sums.naive_abs_error > 0 else None,
        direction_pct=100.0 * sums.direction_hits / n,
    )


def equity(initial_cash: float, contributions: Mapping[str, float]) -> float:
    """Initial cash plus each symbol's ``net_cash_flow + market value``, added in symbol order."""
    total = initial_cash
    for symbol in sorted(contributions):
        total += contributions[symbol]
    return total


def daily_returns(initial_cash: float, curve: Sequence[float]) -> list[float]:
    """Simple returns of ``curve`` (equity at each close), the first one against the initial cash."""
    points = [initial_cash, *curve]
    return [b / a - 1.0 for a, b in itertools.pairwise(points)]


def sharpe_ratio(returns: Sequence[float]) -> float | None:
    """Annualised Sharpe ratio (risk-free rate 0); ``None`` with < 2 returns or no variation."""
    moments = Moments()
    for r in returns:
        moments.add(r)
    return _sharpe(moments)


def _sharpe(moments: Moments) -> float | None:
    if moments.count < 2:
        return None
    sd = moments.stdev()
    if sd == 0:
        return None
    return moments.fmean() / sd * math.sqrt(TRADING_DAYS_PER_YEAR)


def drawdowns(initial_cash: float, curve: Sequence[float]) -> list[float]:
    """At each point of ``curve``, the fall from the running peak (the initial cash is the first peak)."""
    peak, falls = initial_cash, []
    for value in curve:
        peak = max(peak, value)
        falls.append((peak - value) / peak)
    return falls


def max_drawdown(initial_cash: float, curve: Sequence[float]) -> float:
    """The largest fall from a running peak (the initial cash is the first peak), as a fraction."""
    return max([0.0, *drawdowns(initial_cash, curve)])


@dataclass(frozen=True)
class TradingMetrics:
    """A team's trading over an equity curve marked at each close."""

    days: int
    final_equity: float
    pnl: float
    total_return: float
    sharpe: float | None
    max_drawdown: float
    trades: int
    commission: float


class TradingTrack:
    """A team's trading metrics kept up to date one close and one fill at a time, in O(1) each.

    Feeding a whole curve (in date order) and every fill gives exactly :func:`trading_metrics`:
    that function is this fold.
    """

    def __init__(self, initial_cash: float) -> None:
        self.initial_cash = initial_cash
        self.days = 0
        self.last = initial_cash
        self._returns = Moments()
        self._peak = initial_cash
        self.max_drawdown = 0.0
        self.trades = 0
        self._commission = ExactSum()

    def add_close(self, value: float) -> None:
        """The equity at the next close (after every earlier one)."""
        self._returns.add(value / self.last - 1.0)
        self.days += 1
        self.last = value
        self._peak = max(self._peak, value)
        self.max_drawdown = max(self.max_drawdown, (self._peak - value) / self._peak)

    def add_fill(self, commission: float) -> None:
        self.trades += 1
        self._commission.add(commission)

    def metrics(self) -> TradingMetrics:
        final = self.last
        return TradingMetrics(
            days=self.days,
            final_equity=final,
            pnl=final - self.initial_cash,
            total_return=(final - self.initial_cash) / self.initial_cash,
            sharpe=_sharpe(self._returns),
            max_drawdown=self.max_drawdown,
            trades=self.trades,
            commission=self._commission.value,  # exactly rounded, like math.fsum: order does not matter
        )


def trading_metrics(initial_cash: float, curve: Sequence[float], fills: Sequence[Fill]) -> TradingMetrics:
    """Metrics from the equity ``curve`` (in date order) and every fill of the team."""
    track = TradingTrack(initial_cash)
    for value in curve:
        track.add_close(value)
    for fill in fills:
        track.add_fill(fill.commission)
    return track.metrics()


def metric_value(metric: str, fm: ForecastMetrics | None, tm: TradingMetrics | None) -> float | None:
    """The value of a ranking metric (see :data:`FORECAST_METRICS`, :data:`TRADING_METRICS`)."""
    values: dict[str, float | None] = {}
    if fm is not None:
        values |= {"mae": fm.mae, "rmse": fm.rmse, "mape": fm.mape, "mase": fm.mase, "direction": fm.direction_pct}
    if tm is not None:
        values |= {"pnl": tm.pnl, "return": tm.total_return, "sharpe": tm.sharpe, "max_drawdown": tm.max_drawdown}
        values["trades"] = float(tm.trades)
    if metric not in {*FORECAST_METRICS, *TRADING_METRICS, "trades"}:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join((*FORECAST_METRICS, *TRADING_METRICS))}")
    return values.get(metric)
