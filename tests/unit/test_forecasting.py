"""The processor's pure core: window, baselines, horizon, and no look-ahead."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pytest

from processors.baselines import Drift, Persistence, ServedModel, Trend, build_baseline
from processors.book import ModelBook
from processors.forecasting import Horizon, advance, forecast, revise, step
from redblue.core.arena import ModelSpec, load_arena
from redblue.core.calendar import get_calendar
from redblue.core.forecaster import ModelError
from schemas import BarProcessed, BarRevision, Forecast
from tests.factories import BASELINES, T0, bar

CAL = get_calendar("XNYS")
SESSIONS = CAL.sessions(date(2023, 11, 1), date(2024, 2, 1))


def series(symbol: str = "AAPL", n: int = 30, start: float = 100.0, growth: float = 0.01) -> list:
    return [bar(symbol, d, start * (1 + growth) ** i) for i, d in enumerate(SESSIONS[:n])]


def served(team: str, name: str, model: object, symbol: str = "AAPL") -> ServedModel:
    return ServedModel(team, name, symbol, model)  # type: ignore[arg-type]


def test_baselines_on_a_geometric_series() -> None:
    window = series(growth=0.01)
    assert Persistence().predict(window) == window[-1].close
    assert Drift(lookback=5).predict(window) == pytest.approx(window[-1].close * 1.01)
    assert Trend(lookback=5).predict(window) == pytest.approx(window[-1].close * 1.01)


def test_unknown_kind_and_bad_params_are_model_errors() -> None:
    with pytest.raises(ModelError, match="unknown kind"):
        build_baseline(ModelSpec(name="x", kind="oracle"))
    with pytest.raises(ModelError, match="bad params"):
        build_baseline(ModelSpec(name="x", kind="drift", params={"window": 3}))


def test_a_broken_model_is_served_with_its_error_and_others_go_on() -> None:
    arena = load_arena(BASELINES)
    arena = arena.model_copy(update={"baselines": (*arena.baselines, ModelSpec(name="bad", kind="oracle"))})
    models = ModelBook(arena).models
    made, failed = forecast("r", series(), models, CAL, Horizon(), T0)
    assert failed == ["baseline/bad"]
    assert {f.model for f in made} == {"persistence", "drift", "trend"}


def test_forecast_targets_the_next_session_over_a_holiday() -> None:
    window = [b for b in series(n=40) if b.date <= date(2023, 12, 22)]
    made, _ = forecast("r", window, [served("baseline", "p", Persistence())], CAL, Horizon(), T0)
    assert made[0].as_of == date(2023, 12, 22) and made[0].target == date(2023, 12, 26)


def test_horizon_limits_targets() -> None:
    window = series(n=20)
    models = [served("baseline", "p", Persistence())]
    target = CAL.next_session(window[-1].date)
    assert forecast("r", window, models, CAL, Horizon(first=target, last=target), T0)[0]
    assert forecast("r", window, models, CAL, Horizon(last=window[-1].date), T0)[0] == []


def test_models_wait_for_enough_history() -> None:
    made, failed = forecast("r", series(n=5), [served("red", "d", Drift(lookback=20))], CAL, Horizon(), T0)
    assert made == [] and failed == []


def test_invalid_prediction_is_a_failure_not_a_forecast() -> None:
    class Nan:
        version, min_history = "1", 1

        def predict(self, window: object) -> float:
            return math.nan

    made, failed = forecast("r", series(), [served("red", "nan", Nan())], CAL, Horizon(), T0)
    assert made == [] and failed == ["red/nan"]


def test_a_forecast_records_the_model_s_cutoff_and_a_model_trained_later_cannot_forecast() -> None:
    @dataclass(frozen=True)
    class TrainedFixed:
        trained_until: date
        version: str = "7"
        min_history: int = 1
        data_hash: str | None = "abc"

        def predict(self, window: object) -> float:
            return 123.0

    window = series(n=20)
    as_of = window[-1].date
    ok = served("red", "mlp", TrainedFixed(as_of))
    made, failed = forecast("r", window, [ok, served("baseline", "p", Persistence())], CAL, Horizon(), T0)
    assert [(f.model, f.model_version, f.model_trained_until) for f in made] == [
        ("mlp", "7", as_of),
        ("p", "persistence-1", None),
    ]
    late = served("red", "mlp", TrainedFixed(CAL.next_session(as_of)))
    made, failed = forecast("r", window, [late], CAL, Horizon(), T0)
    assert made == [] and failed == ["red/mlp"]


def test_window_verdicts() -> None:
    window = series(n=3)
    moved, verdict = advance(window, bar("AAPL", SESSIONS[3], 1.0), size=3, calendar=CAL)
    assert verdict == "ok" and len(moved) == 3 and moved[-1].date == SESSIONS[3]
    assert advance(window, window[-1], 3, CAL)[1] == "duplicate"
    assert advance(window, bar("AAPL", window[-1].date, 55.0), 3, CAL)[1] == "conflict"
    assert advance(window, bar("AAPL", date(2023, 10, 2), 55.0), 3, CAL)[1] == "stale"
    assert advance(window, bar("AAPL", date(2023, 12, 25), 55.0), 3, CAL)[1] == "not_a_session"


def test_step_puts_the_marker_after_the_forecasts() -> None:
    window = series(n=10)
    new = bar("AAPL", SESSIONS[10], 120.0)
    result = step(
        "r", window, new, [served("baseline", "p", Persistence())], size=60, calendar=CAL, horizon=Horizon(), now=T0
    )
    assert [type(e) for e in result.events] == [Forecast, BarProcessed]
    assert result.events[-1].bar == new  # type: ignore[union-attr]


def test_a_redelivered_bar_re_emits_its_forecasts_and_marker() -> None:
    """The worker stored the window with bar D, then died before sending D's forecasts and
    marker: the redelivered D must send them again, the same, and leave the window as it is."""
    models = [served("baseline", "p", Persistence()), served("red", "d", Drift(lookback=5))]
    window = series(n=10)
    new = bar("AAPL", SESSIONS[10], 120.0)
    first = step("r", window, new, models, size=60, calendar=CAL, horizon=Horizon(), now=T0)
    again = step("r", first.window, new, models, size=60, calendar=CAL, horizon=Horizon(), now=T0)
    assert (first.verdict, again.verdict) == ("ok", "redelivered")
    assert again.events == first.events and len(again.events) == 3
    assert again.window == first.window


def test_an_older_redelivered_bar_is_re_emitted_only_from_its_exact_window() -> None:
    models = [served("red", "d", Drift(lookback=5))]
    window = series(n=10)
    made = {b.date: step("r", window[:i], b, models, size=60, calendar=CAL, horizon=Horizon(), now=T0).events
            for i, b in enumerate(window)}  # fmt: skip
    again = step("r", window, window[6], models, size=60, calendar=CAL, horizon=Horizon(), now=T0)
    assert again.verdict == "redelivered" and again.events == made[window[6].date]
    full = step("r", window, window[6], models, size=10, calendar=CAL, horizon=Horizon(), now=T0)
    assert (full.verdict, full.events) == ("duplicate", [])  # its predecessors were dropped: not rebuilt


class _FailsOnOneDay:
    """A model whose batch call fails because of one window: it must fail there only."""

    version, min_history = "1", 1

    def __init__(self, bad: date) -> None:
        self.bad = bad

    def predict(self, window: list) -> float:
        if window[-1].date == self.bad:
            raise ValueError("bad day")
        return float(window[-1].close)

    def predict_many(self, windows: list) -> list[float]:
        return [self.predict(w) for w in windows]


def test_a_batch_gives_exactly_the_events_of_one_bar_at_a_time() -> None:
    """Bars of several symbols (with a duplicate, a conflict, a stale bar) through step_many vs step."""
    from processors.forecasting import step_many

    aapl, amzn = series("AAPL", n=40), series("AMZN", n=40, start=50.0, growth=-0.003)
    bars = [b for pair in zip(aapl, amzn, strict=True) for b in pair]
    bars[30:30] = [aapl[12], bar("AAPL", aapl[13].date, 1.0), aapl[2]]  # duplicate, conflict, stale
    models = [*ModelBook(load_arena(BASELINES).with_symbols(("AAPL", "AMZN"))).models]
    models.append(served("red", "flaky", _FailsOnOneDay(aapl[20].date)))
    kwargs = {"size": 25, "calendar": CAL, "horizon": Horizon(last=SESSIONS[35]), "now": T0}
    one_by_one, windows = [], {}
    for b in bars:
        result = step("r", windows.get(b.symbol, []), b, models, **kwargs)  # type: ignore[arg-type]
        windows[b.symbol] = result.window
        one_by_one.append((result.verdict, result.events))
    batched: dict[str, list] = {}
    together = [(s.verdict, s.events) for s in step_many("r", batched, bars, models, **kwargs)]  # type: ignore[arg-type]
    assert together == one_by_one
    assert batched == windows
    markers = [e for _, events in together for e in events if isinstance(e, BarProcessed)]
    assert [m.failed for m in markers if m.failed] == [("red/flaky",)]
    assert [v for v, _ in together].count("ok") == 80


def test_a_revision_replaces_the_session_in_the_window() -> None:
    window = [bar("AAPL", d, 100.0 + i) for i, d in enumerate(SESSIONS[:3])]
    new = bar("AAPL", SESSIONS[1], 150.0)
    revision = BarRevision(bar=new, previous=window[1], produced_at=T0)
    assert revise(window, revision) == [window[0], new, window[2]]
    older = BarRevision(bar=bar("AAPL", SESSIONS[5], 1.0), previous=bar("AAPL", SESSIONS[5], 2.0), produced_at=T0)
    assert revise(window, older) == window  # not in the window: nothing to change


@dataclass
class _TrainedUntil:
    """A fitted model (a :class:`~redblue.core.forecaster.Trained`): persistence trained up to ``trained_until``."""

    trained_until: date
    data_hash: str | None = None
    version: str = "7"
    min_history: int = 1

    def predict(self, window: list) -> float:
        return float(window[-1].close)


def test_a_version_never_forecasts_as_of_a_day_its_training_data_holds() -> None:
    history = series(n=12)
    cutoff = history[8].date
    model = served("red", "mlp", _TrainedUntil(trained_until=cutoff))
    made = {b.date: step("r", history[:i], b, [model], size=60, calendar=CAL, horizon=Horizon(), now=T0)
            for i, b in enumerate(history)}  # fmt: skip
    for day, result in made.items():
        forecasts = [e for e in result.events if isinstance(e, Forecast)]
        [marker] = [e for e in result.events if isinstance(e, BarProcessed)]
        if day < cutoff:
            assert forecasts == [] and marker.failed == ("red/mlp",), day
        else:
            assert [f.model_trained_until for f in forecasts] == [cutoff] and marker.failed == (), day
