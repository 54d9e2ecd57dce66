"""No look-ahead, by a check that can fail: the processor's path on bars poisoned after day X.

Replaces a test that kept only the forecasts made before the poisoned bars arrived, which no
stateless model could ever fail. Here the models are fitted from the data directory the run
reads (training is part of the path), served as ONNX through the model book, and fed bar by bar
through :func:`processors.forecasting.step` exactly as the Faust agent does. Every forecast as of
X or earlier must be byte-identical on clean and poisoned data; three models that cheat on
purpose (through the training data, the normalisation statistics and a feature that reads the
next bar) are the control: the same check must catch each of them, and nothing else.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from processors.book import ModelBook
from processors.forecasting import Horizon, step
from producers.replay import plan_replay
from redblue.adapters.onnx import OnnxForecaster
from redblue.core.arena import Arena, ModelSpec
from redblue.core.bars import DATA_DIR, to_bar_fields
from redblue.core.calendar import get_calendar
from redblue.core.forecaster import Forecaster
from schemas import Bar, Forecast
from tests.factories import T0
from tests.lookahead import Leak, PeekingForecaster, diverging, fitted_onnx, poison

UNTIL = date(2023, 12, 29)  # the models' training cutoff
X = date(2024, 1, 31)  # every bar after X is poisoned
START, DAYS = date(2024, 1, 2), 40
LEAKS: dict[tuple[str, str], Leak] = {
    ("honest", "lin"): "none",
    ("leak", "train"): "training-data",
    ("leak", "norm"): "normalisation",
}
ARENA = Arena.model_validate(
    {
        "name": "look-ahead",
        "symbols": ["AAPL", "SAP"],
        "window": 30,
        "baselines": [{"name": n, "kind": n} for n in ("persistence", "drift", "trend")],
        "teams": {
            "honest": {"models": [{"name": "lin", "kind": "linear"}]},
            "leak": {
                "models": [
                    {"name": "train", "kind": "linear"},
                    {"name": "norm", "kind": "linear"},
                    {"name": "peek", "kind": "peek"},
                ]
            },
        },
    }
)


class FittedSource:
    """Team-model-like ONNX, fitted from the run's data directory when loaded (training is in the path)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        return "1"

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str) -> Forecaster:
        proto = fitted_onnx(self.data_dir, team, spec.name, symbol, UNTIL, LEAKS[team, spec.name])
        return OnnxForecaster(proto, version=version, symbol=symbol, team=team, name=spec.name)


class PeekSource(FittedSource):
    def load(self, team: str, spec: ModelSpec, symbol: str, version: str) -> Forecaster:
        return PeekingForecaster(self.data_dir, symbol)


def processor_forecasts(data_dir: Path) -> list[Forecast]:
    """Every forecast of a replay of ``data_dir``, made as the processor makes them."""
    calendar = get_calendar(ARENA.calendar)
    plan = plan_replay(data_dir, ARENA.symbols, START, DAYS, ARENA.window, calendar)
    book = ModelBook(ARENA, {"linear": FittedSource(data_dir), "peek": PeekSource(data_dir)})
    assert all(m.forecaster is not None for m in book.models), [m.error for m in book.models]
    horizon = Horizon(plan.first_target, plan.last_target)
    windows: dict[str, list[Bar]] = {}
    made: list[Forecast] = []
    for row in plan.rows:
        bar = Bar.model_validate({**to_bar_fields(row, calendar, "replay"), "produced_at": T0})
        result = step(
            "look-ahead", windows.get(bar.symbol, []), bar, book.models_at(bar.date),
            size=ARENA.window, calendar=calendar, horizon=horizon, now=T0,
        )  # fmt: skip
        windows[bar.symbol] = result.window
        made += [e for e in result.events if isinstance(e, Forecast)]
    return made


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Forecast], list[Forecast]]:
    poisoned = tmp_path_factory.mktemp("poisoned")
    poison(DATA_DIR, poisoned, X, ARENA.symbols)
    return processor_forecasts(DATA_DIR), processor_forecasts(poisoned)


def test_forecasts_before_the_poisoned_bars_are_byte_identical_and_every_cheat_is_caught(
    runs: tuple[list[Forecast], list[Forecast]],
) -> None:
    clean, poisoned = runs
    assert len(clean) == len(poisoned) == 2 * 7 * DAYS
    caught = diverging(clean, poisoned, X)
    assert set(caught) == {"leak/train", "leak/norm", "leak/peek"}, caught
    assert caught["leak/train"] > 20 and caught["leak/norm"] > 20  # every forecast before X moved
    assert caught["leak/peek"] == 2  # the forecasts as of X itself (they read X+1's poisoned close)


def test_the_poison_reaches_every_model_after_x(runs: tuple[list[Forecast], list[Forecast]]) -> None:
    """So an identical forecast before X means something: after X nothing is the same."""
    clean, poisoned = runs
    assert diverging(clean, poisoned, date.max).keys() == {
        "baseline/persistence", "baseline/drift", "baseline/trend", "honest/lin", "leak/train", "leak/norm",
        "leak/peek",
    }  # fmt: skip
