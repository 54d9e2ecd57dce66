"""Scoring metrics: pure functions from scored forecasts, equity curves and fills to numbers.

Forecast errors are accumulated per (team, model, symbol) in :class:`ErrorSums`, whose
additions happen in the order of that symbol's partition (target-day order); symbols are
combined with :func:`combine` in sorted order, so a result never depends on how Kafka
interleaved the symbols. Percentages are in percent (45.0 means 45 %), drawdown and return are
fractions (0.05 means 5 %).

Two scaled errors, never pooled in dollars across symbols (expensive symbols would dominate):

- ``rel_mae``: a series' MAE divided by the persistence forecast's MAE on the same days; a
  model's ``rel_mae`` is the mean of its symbols' values;
- ``mase`` (Hyndman & Koehler, 2006): a series' MAE divided by the in-sample MAE of the one-step
  naive forecast over its symbol's *training period* (:class:`NaiveScale`: the bars a run saw
  before its first target day, i.e. a replay's warm-up); a model's ``mase`` is the mean of its
  symbols' values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from redblue.core.exact import ExactSum, Moments
from schemas import Fill, Forecast

TRADING_DAYS_PER_YEAR = 252
FORECAST_METRICS = ("mae", "rmse", "mape", "rel_mae", "mase", "direction")
TRADING_METRICS = ("pnl", "return", "sharpe", "max_drawdown")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mape", "rel_mae", "mase", "max_drawdown"})


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
class NaiveScale:
    """The in-sample one-step naive MAE of one symbol: MASE's denominator.

    Built from the symbol's closes before its first target day, in date order (:meth:`add`
    ignores a day not after the last one, so replays change nothing): ``abs_diff`` sums
    ``|close(t) - close(t-1)|`` over ``count`` consecutive pairs.
    """

    count: int = 0
    abs_diff: float = 0.0
    first: date | None = None
    last: date | None = None
    last_close: float = 0.0

    def add(self, day: date, close: float) -> NaiveScale:
        if self.last is not None and day <= self.last:
            return self
        if self.last is None:
            return NaiveScale(0, 0.0, day, day, close)
        return NaiveScale(self.count + 1, self.abs_diff + abs(close - self.last_close), self.first, day, close)

    @property
    def mae(self) -> float | None:
        """The naive forecast's in-sample MAE; ``None`` with fewer than two bars or no movement."""
        return self.abs_diff / self.count if self.count and self.abs_diff > 0 else None


@dataclass(frozen=True)
class ForecastMetrics:
    """Accuracy of a series or of a model over several symbols.

    ``mae``, ``rmse``, ``mape`` and ``direction_pct`` pool every scored forecast (over a model's
    symbols too); ``rel_mae`` and ``mase`` are per symbol and averaged over symbols (see the
    module docstring); below 1.0 beats persistence (``rel_mae``) or the in-sample naive
    forecast (``mase``). A ratio is ``None`` when a symbol's denominator is unknown or zero.
    """

    count: int
    mae: float
    rmse: float
    mape: float
    rel_mae: float | None
    mase: float | None
    direction_pct: float


def forecast_metrics(sums: ErrorSums, scale: NaiveScale | None = None) -> ForecastMetrics | None:
    """Metrics of one series from its ``sums`` and its symbol's ``scale``; ``None`` before any score."""
    n = sums.count
    if n == 0:
        return None
    mae = sums.abs_error / n
    naive = None if scale is None else scale.mae
    return ForecastMetrics(
        count=n,
        mae=mae,
        rmse=math.sqrt(sums.squared_error / n),
        mape=sums.pct_error / n,
        rel_mae=sums.abs_error / sums.naive_abs_error if sums.naive_abs_error > 0 else None,
        mase=None if naive is None else mae / naive,
        direction_pct=100.0 * sums.direction_hits / n,
    )


def model_metrics(by_symbol: Mapping[str, ErrorSums], scales: Mapping[str, NaiveScale]) -> ForecastMetrics | None:
    """A model's metrics over its symbols: pooled errors, ``rel_mae`` and ``mase`` as means over symbols."""
    pooled = forecast_metrics(combine(by_symbol))
    if pooled is None:
        return None
    per_symbol = [forecast_metrics(by_symbol[s], scales.get(s)) for s in sorted(by_symbol) if by_symbol[s].count]
    return replace(
        pooled,
        rel_mae=_mean([m.rel_mae for m in per_symbol if m is not None]),
        mase=_mean([m.mase for m in per_symbol if m is not None]),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of ``values`` (exactly rounded, so order does not matter); ``None`` if any is unknown."""
    known = [v for v in values if v is not None]
    if not values or len(known) < len(values):
        return None
    return math.fsum(known) / len(known)


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
        self._orders: set[str] = set()
        self._commission = ExactSum()

    def add_close(self, value: float) -> None:
        """The equity at the next close (after every earlier one)."""
        self._returns.add(value / self.last - 1.0)
        self.days += 1
        self.last = value
        self._peak = max(self._peak, value)
        self.max_drawdown = max(self.max_drawdown, (self._peak - value) / self._peak)

    def add_fill(self, fill: Fill) -> None:
        """A fill (or one part of a partially filled order: an order is one trade, every part's commission counts)."""
        self._orders.add(fill.client_order_id)
        self._commission.add(fill.commission)

    @property
    def trades(self) -> int:
        return len(self._orders)

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
    """Metrics from the equity ``curve`` (in date order) and every fill of the team.

    ``trades`` counts orders with at least one fill (the parts of a partially filled order are
    one trade); ``commission`` adds every fill's.
    """
    track = TradingTrack(initial_cash)
    for value in curve:
        track.add_close(value)
    for fill in fills:
        track.add_fill(fill)
    return track.metrics()


def metric_value(metric: str, fm: ForecastMetrics | None, tm: TradingMetrics | None) -> float | None:
    """The value of a ranking metric (see :data:`FORECAST_METRICS`, :data:`TRADING_METRICS`)."""
    values: dict[str, float | None] = {}
    if fm is not None:
        values |= {"mae": fm.mae, "rmse": fm.rmse, "mape": fm.mape, "rel_mae": fm.rel_mae, "mase": fm.mase}
        values["direction"] = fm.direction_pct
    if tm is not None:
        values |= {"pnl": tm.pnl, "return": tm.total_return, "sharpe": tm.sharpe, "max_drawdown": tm.max_drawdown}
        values["trades"] = float(tm.trades)
    if metric not in {*FORECAST_METRICS, *TRADING_METRICS, "trades"}:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join((*FORECAST_METRICS, *TRADING_METRICS))}")
    return values.get(metric)
