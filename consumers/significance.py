"""Is a model distinguishable from persistence, and its direction from a coin flip?

Computed at read time (leaderboard, summary) from the scored forecasts the store keeps per
series, never per event: the scorer's writes stay O(1).

- **Diebold-Mariano** (1995) against persistence, loss = **absolute error**, forecast horizon
  h = 1: the loss differential of day t is ``|e_model(t)| - |e_persistence(t)|`` (negative: the
  model was closer). Its mean is tested against 0 with the HAC (Newey-West, Bartlett weights)
  variance of the mean over ``h - 1 = 0`` lags, then the Harvey-Newbold-Leybourne (1997)
  small-sample correction ``sqrt((n + 1 - 2h + h(h - 1)/n) / n)`` and a two-sided Student t
  p-value with ``n - 1`` degrees of freedom (``scipy.special.stdtr``). A model over several symbols is tested on
  the daily mean of its symbols' differentials, each divided by that symbol's in-sample naive
  MAE (MASE's scale), so that no symbol weighs by its price.
- **Direction**: a two-sided exact binomial test (``scipy.special.bdtr``) of the share of correct
  directions against 1/2, on the days where both the actual close and the forecast moved
  (no-change days excluded: persistence, which never predicts a move, is not tested).
- Several models on one board are several tests: :func:`holm` adjusts their p-values
  (Holm-Bonferroni, valid whatever the dependence between the tests) before the board says
  which are distinguishable.

The variance and the two p-values are written out with numpy and ``scipy.special`` (0.3 s to
import) rather than taken from statsmodels' OLS/HAC and ``scipy.stats`` (3-5 s to import, in every
simulation and web server); the unit tests check them against statsmodels and scipy.stats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from redblue.core.metrics import NaiveScale, ScoredForecast


def preload() -> None:
    """Import what the tests compute with (numpy, ``scipy.special``) ahead of time, e.g. in a
    thread while a simulation runs: the board is then ready as soon as the run is."""
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401


LOSS = "absolute error"
HORIZON = 1
ALPHA = 0.05
DM_TEST = (
    f"Diebold-Mariano against persistence (loss: {LOSS}, horizon {HORIZON}, HAC variance, "
    "Harvey-Newbold-Leybourne small-sample correction, two-sided)"
)
DIRECTION_TEST = (
    "binomial test of direction against 1/2 (days without an actual or a predicted move excluded, two-sided)"
)


@dataclass(frozen=True)
class DieboldMariano:
    """The test of one loss-differential series: ``mean`` < 0 means the model's loss was lower."""

    days: int
    mean: float
    statistic: float
    pvalue: float


@dataclass(frozen=True)
class DirectionTest:
    trials: int
    hits: int
    pvalue: float


def diebold_mariano(differentials: Sequence[float], horizon: int = HORIZON) -> DieboldMariano | None:
    """The HLN-corrected DM test of ``differentials`` (in day order); ``None`` with < 3 days or no variation."""
    import numpy as np
    from scipy.special import stdtr

    n = len(differentials)
    d = np.asarray(differentials, dtype=np.float64)
    if n < 3 or float(np.ptp(d)) == 0.0:
        return None
    mean = float(d.mean())
    variance = hac_variance_of_mean(d, lags=horizon - 1)
    if not variance > 0:
        return None
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic = correction * mean / math.sqrt(variance)
    pvalue = float(2 * stdtr(n - 1, -abs(statistic)))
    return DieboldMariano(n, mean, statistic, pvalue)


def hac_variance_of_mean(values: Any, lags: int) -> float:
    """Newey-West variance of the mean of ``values`` (a numpy array) with Bartlett weights over
    ``lags`` lags, without a small-sample correction: ``(g0 + 2 sum_j (1 - j/(L+1)) g_j) / n``,
    ``g_j`` the lag-j autocovariance divided by n (statsmodels' OLS on a constant, HAC, the same)."""
    n = len(values)
    u = values - values.mean()
    spectrum = float(u @ u) / n
    for j in range(1, lags + 1):
        spectrum += 2 * (1 - j / (lags + 1)) * float(u[j:] @ u[:-j]) / n
    return spectrum / n


def differentials(scored: Sequence[ScoredForecast], scale: float = 1.0) -> list[float]:
    """``(|e_model| - |e_persistence|) / scale`` per forecast, in the given order."""
    return [(s.abs_error - s.naive_abs_error) / scale for s in scored]


def pooled_differentials(
    by_symbol: Mapping[str, Sequence[ScoredForecast]], scales: Mapping[str, NaiveScale]
) -> list[float] | None:
    """Per target day, the mean over symbols of the scaled differentials; ``None`` if a scale is unknown."""
    by_day: dict[date, list[float]] = {}
    for symbol, scored in by_symbol.items():
        naive = scales[symbol].mae if symbol in scales else None
        if naive is None:
            return None
        for s, d in zip(scored, differentials(scored, naive), strict=True):
            by_day.setdefault(s.target, []).append(d)
    return [math.fsum(values) / len(values) for _, values in sorted(by_day.items())]


def direction_test(scored: Sequence[ScoredForecast]) -> DirectionTest | None:
    """Two-sided binomial test of correct directions on days with a move; ``None`` without such days."""
    moved = [s for s in scored if s.last_close not in (s.actual, s.predicted)]
    if not moved:
        return None
    hits = sum(s.direction_correct for s in moved)
    return DirectionTest(len(moved), hits, binomial_pvalue(hits, len(moved)))


def binomial_pvalue(hits: int, trials: int) -> float:
    """The exact two-sided p-value of ``hits`` in ``trials`` against 1/2: the distribution is
    symmetric, so twice the tail beyond the nearer end (scipy ``binomtest``'s answer, at most 1)."""
    from scipy.special import bdtr

    return float(min(1.0, 2 * bdtr(min(hits, trials - hits), trials, 0.5)))


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values of a family of tests (by name).

    Written out (sort, multiply the k-th smallest by ``m - k + 1``, running maximum, at most 1)
    rather than taken from statsmodels' ``multipletests(method="holm")``, which calls
    ``gc.collect()`` on every call: 0.4-1 s on the web server's heap, per leaderboard. The unit
    test checks the result against statsmodels.
    """
    names = sorted(pvalues, key=lambda n: (pvalues[n], n))
    m = len(names)
    adjusted: dict[str, float] = {}
    running = 0.0
    for k, name in enumerate(names):
        running = max(running, min(1.0, (m - k) * pvalues[name]))
        adjusted[name] = running
    return dict(sorted(adjusted.items()))
