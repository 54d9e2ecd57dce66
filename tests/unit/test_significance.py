"""The tests against persistence and chance, on series whose answer is known by hand."""

from __future__ import annotations

import math
import random
from datetime import date

import pytest

from consumers.leaderboard import ModelStanding, Significance, verdicts
from consumers.significance import (
    DieboldMariano,
    DirectionTest,
    diebold_mariano,
    differentials,
    direction_test,
    holm,
    pooled_differentials,
)
from redblue.core.metrics import NaiveScale, ScoredForecast
from tests.factories import days

D = days(date(2024, 1, 2), 300)


def scored(i: int, predicted: float, last: float, actual: float, symbol: str = "AAPL") -> ScoredForecast:
    return ScoredForecast("red", "m", symbol, D[i], D[i + 1], predicted, last, actual)


def test_dm_statistic_by_hand() -> None:
    """d = 1..5: mean 3, gamma0 = 2, DM = 3 / sqrt(2/5); HLN factor sqrt(4/5): 3 * sqrt(2), t with 4 df."""
    test = diebold_mariano([1.0, 2.0, 3.0, 4.0, 5.0])
    assert test is not None
    assert test.statistic == pytest.approx(3 * math.sqrt(2), rel=1e-12)
    assert test.pvalue == pytest.approx(0.013236, abs=1e-6)  # 2 * (1 - T4(4.2426)), from a t table
    assert test.days == 5 and test.mean == pytest.approx(3.0)


def test_persistence_against_itself_is_not_tested() -> None:
    same = [scored(i, 100.0 + i, 100.0 + i, 101.0 + i) for i in range(30)]
    assert differentials(same) == [0.0] * 30
    assert diebold_mariano(differentials(same)) is None
    assert diebold_mariano([1.0, -1.0]) is None  # too short


def test_a_model_that_knows_tomorrow_is_distinguishable_and_noise_is_not() -> None:
    rnd = random.Random(3)
    closes = [100.0]
    for _ in range(200):
        closes.append(closes[-1] * math.exp(rnd.gauss(0, 0.01)))
    oracle = [scored(i, closes[i + 1] + rnd.gauss(0, 0.05), closes[i], closes[i + 1]) for i in range(200)]
    noise = [scored(i, closes[i] * math.exp(rnd.gauss(0, 0.0005)), closes[i], closes[i + 1]) for i in range(200)]
    good = diebold_mariano(differentials(oracle))
    meh = diebold_mariano(differentials(noise))
    assert good is not None and good.mean < 0 and good.pvalue < 1e-6
    assert meh is not None and meh.pvalue > 0.05


def test_direction_excludes_days_without_a_move() -> None:
    rows = [scored(i, 101.0, 100.0, 102.0) for i in range(60)]  # right
    rows += [scored(60 + i, 101.0, 100.0, 99.0) for i in range(40)]  # wrong
    rows += [scored(100 + i, 101.0, 100.0, 100.0) for i in range(50)]  # no actual move: excluded
    rows += [scored(150 + i, 100.0, 100.0, 99.0) for i in range(50)]  # no predicted move: excluded
    test = direction_test(rows)
    assert test is not None and (test.trials, test.hits) == (100, 60)
    assert test.pvalue == pytest.approx(0.056888, abs=1e-6)  # two-sided binomial, 60 of 100
    assert direction_test([scored(0, 100.0, 100.0, 101.0)]) is None  # persistence predicts no move


def test_pooled_differentials_weigh_symbols_by_their_scale_not_their_price() -> None:
    cheap = [scored(i, 10.5, 10.0, 11.0, "CHEAP") for i in range(3)]  # error 0.5, persistence's 1: d = -0.5
    dear = [scored(i, 1000.0, 1100.0, 1050.0, "DEAR") for i in range(3)]  # both off by 50: d = 0
    scales = {"CHEAP": NaiveScale(count=1, abs_diff=0.5), "DEAR": NaiveScale(count=1, abs_diff=100.0)}
    pooled = pooled_differentials({"CHEAP": cheap, "DEAR": dear}, scales)
    assert pooled == [(-0.5 / 0.5 + 0.0 / 100.0) / 2] * 3
    assert pooled_differentials({"CHEAP": cheap}, {}) is None


def test_holm_adjustment_is_statsmodels_holm() -> None:
    from statsmodels.stats.multitest import multipletests

    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.3})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.08, "c": 0.3})
    assert holm({}) == {}
    rnd = random.Random(5)
    family = {f"m{i}": rnd.random() ** 3 for i in range(40)} | {"tie1": 0.02, "tie2": 0.02, "one": 1.0}
    names = sorted(family)
    expected = multipletests([family[n] for n in names], method="holm")[1]
    assert [holm(family)[n] for n in names] == pytest.approx(list(expected), rel=1e-12)


def standing(member: str, dm: float | None, mean: float = -1.0, direction: float | None = None) -> ModelStanding:
    team, model = member.split("/")
    tests = Significance(
        dm=None if dm is None else DieboldMariano(100, mean, -2.0, dm),
        direction=None if direction is None else DirectionTest(100, 58, direction),
        dm_adjusted=dm,
        direction_adjusted=direction,
    )
    return ModelStanding(team, model, ("AAPL",), None, None, tests)


def test_the_board_says_in_words_when_nothing_beats_persistence() -> None:
    lines = verdicts([standing("baseline/persistence", None), standing("red/a", 0.4, direction=0.7)])
    assert lines[0].startswith("No model is distinguishable from persistence (at the 5 % level, Holm-adjusted over 1")
    assert lines[1].startswith("No model's direction accuracy is distinguishable from a coin flip (at the 5 % level")


def test_the_board_names_the_distinguishable_models() -> None:
    lines = verdicts([standing("red/a", 0.01), standing("blue/b", 0.02, mean=+0.3), standing("blue/c", 0.5)])
    assert "over 3 models): blue/b worse (p = 0.0200), red/a better (p = 0.0100); no other model is." in lines[0]
    assert lines[1] == "No model has enough days with a move for a direction test."


def test_the_board_says_so_when_only_worse_models_are_distinguishable() -> None:
    lines = verdicts([standing("baseline/trend", 0.001, mean=+0.5), standing("red/a", 0.6)])
    assert lines[0].endswith("baseline/trend worse (p = 0.0010); no other model is. No model beats persistence.")


@pytest.mark.parametrize("lags", [0, 1, 3])
def test_dm_variance_is_statsmodels_hac(lags: int) -> None:
    """The written-out Newey-West variance of the mean is statsmodels' OLS-on-a-constant HAC."""
    import numpy as np
    from statsmodels.regression.linear_model import OLS

    from consumers.significance import hac_variance_of_mean

    rnd = random.Random(lags)
    d = np.array([rnd.gauss(0.1, 1.0) + (0.5 * i % 3) for i in range(57)])
    fit = OLS(d, np.ones(len(d))).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False})
    assert hac_variance_of_mean(d, lags) == pytest.approx(float(fit.bse[0]) ** 2, rel=1e-12)


def test_dm_pvalue_is_scipy_student_t() -> None:
    from scipy import stats

    rnd = random.Random(5)
    for n in (3, 4, 17, 180):
        test = diebold_mariano([rnd.gauss(0.2, 1.0) for _ in range(n)])
        assert test is not None
        assert test.pvalue == pytest.approx(float(2 * stats.t.sf(abs(test.statistic), df=n - 1)), rel=1e-10)


def test_direction_pvalue_is_scipy_binomtest() -> None:
    from scipy.stats import binomtest

    from consumers.significance import binomial_pvalue

    for trials in (1, 2, 7, 30, 101, 180):
        for hits in range(trials + 1):
            expected = binomtest(hits, trials, 0.5).pvalue
            assert binomial_pvalue(hits, trials) == pytest.approx(expected, rel=1e-9, abs=1e-15), (hits, trials)
