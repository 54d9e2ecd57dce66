"""Exact running sums give the batch functions' results bit for bit (so summaries stay identical)."""

from __future__ import annotations

import math
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from redblue.core.exact import ExactSum, Moments
from redblue.core.metrics import TradingTrack, daily_returns, trading_metrics
from schemas import Fill
from tests.factories import T0

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
returns = st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(st.lists(finite, max_size=60))
def test_exact_sum_is_fsum(values: list[float]) -> None:
    total = ExactSum()
    for x in values:
        total.add(x)
    assert total.value == math.fsum(values)


@settings(max_examples=300)
@given(st.lists(returns, min_size=2, max_size=80))
def test_moments_are_statistics_fmean_and_stdev(values: list[float]) -> None:
    moments = Moments()
    for x in values:
        moments.add(x)
    assert moments.fmean() == statistics.fmean(values)
    assert moments.stdev() == statistics.stdev(values)


def test_stdev_of_awkward_values_and_of_constants() -> None:
    for values in ([0.1, 0.2, 0.3], [1e-300, 3e-300, 2e-300], [0.1] * 7, [1.0, 1.0 + 2**-52]):
        moments = Moments()
        for x in values:
            moments.add(x)
        assert moments.stdev() == statistics.stdev(values), values


def _fill(commission: float) -> Fill:
    return Fill(
        run="r1", team="red", symbol="AAPL", client_order_id=f"id-{commission!r}", side="buy", quantity=1,
        price=10.0, commission=commission, date=T0.date(), produced_at=T0,
    )  # fmt: skip


def _reference_sharpe(initial: float, curve: list[float]) -> float | None:
    """The definition as it was computed over the whole curve (statistics.stdev / fmean)."""
    rets = daily_returns(initial, curve)
    if len(rets) < 2 or statistics.stdev(rets) == 0:
        return None
    return statistics.fmean(rets) / statistics.stdev(rets) * math.sqrt(252)


@settings(max_examples=200)
@given(
    st.lists(st.floats(min_value=1e3, max_value=1e6, allow_nan=False), max_size=60),
    st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), max_size=10),
)
def test_a_track_fed_close_by_close_equals_the_whole_curve_metrics(curve: list[float], fees: list[float]) -> None:
    track = TradingTrack(100_000.0)
    seen = []
    for value in curve:  # the metrics after every close equal the batch metrics of the curve so far
        track.add_close(value)
        seen.append(value)
        assert track.metrics().sharpe == _reference_sharpe(100_000.0, seen)
    for fee in fees:
        track.add_fill(_fill(fee))
    batch = trading_metrics(100_000.0, curve, [_fill(f) for f in fees])
    assert track.metrics() == batch
    assert batch.commission == math.fsum(fees)
