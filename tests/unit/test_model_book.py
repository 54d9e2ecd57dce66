"""The model book: every arena model served per symbol; moved versions picked up; failures contained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pytest

from processors.book import ModelBook
from processors.pins import Pin
from redblue.core.arena import ModelSpec, load_arena
from redblue.core.forecaster import ModelError
from schemas import Bar
from tests.factories import BASELINES


@dataclass(frozen=True)
class Fixed:
    version: str
    value: float = 1.0
    min_history: int = 1
    trained_until: date = date(2023, 12, 29)
    data_hash: str | None = "abc"

    def predict(self, window: Sequence[Bar]) -> float:
        return self.value


class FakeRegistry:
    """Versions by symbol (the alias); every version number can be loaded; a symbol in ``broken`` fails."""

    def __init__(self) -> None:
        self.versions = {"AAPL": "1", "AMZN": "1", "SAP": "1"}
        self.broken: set[str] = set()
        self.loads = 0
        self.asked = 0

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        self.asked += 1
        return self.versions[symbol]

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str | None = None) -> Fixed:
        self.loads += 1
        if symbol in self.broken:
            raise ModelError(f"cannot load {symbol}")
        version = version or self.versions[symbol]
        return Fixed(version, trained_until=date(2023, 12, 28 + int(version)))


def arena_with_trained_model():  # type: ignore[no-untyped-def]
    arena = load_arena(BASELINES)
    red = arena.teams["red"]
    models = (*red.models, ModelSpec(name="mlp", kind="ludwig"))
    return arena.model_copy(update={"teams": {**arena.teams, "red": red.model_copy(update={"models": models})}})


def served(book: ModelBook) -> dict[tuple[str, str, str], str]:
    return {
        (m.team, m.name, m.symbol): (m.forecaster.version if m.forecaster else f"error: {m.error}") for m in book.models
    }


def test_every_model_is_served_per_symbol() -> None:
    registry = FakeRegistry()
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry})
    entries = served(book)
    assert len(entries) == 4 * 3
    assert entries["red", "mlp", "SAP"] == "1" and entries["red", "drift", "SAP"] == "drift-1"


def test_a_moved_version_is_loaded_and_an_unmoved_one_is_not() -> None:
    registry = FakeRegistry()
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry})
    loads = registry.loads
    assert book.refresh() == []
    assert registry.loads == loads
    registry.versions["AMZN"] = "2"
    assert book.refresh() == ["serving red/mlp AMZN version 2 (was 1)"]
    assert served(book)["red", "mlp", "AMZN"] == "2"


def test_a_broken_model_keeps_its_previous_version_and_others_go_on() -> None:
    registry = FakeRegistry()
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry})
    registry.versions.update(AAPL="2", SAP="2")
    registry.broken.add("AAPL")
    changes = book.refresh()
    assert "red/mlp AAPL: keeping version 1: cannot load AAPL" in changes
    assert served(book)["red", "mlp", "AAPL"] == "1" and served(book)["red", "mlp", "SAP"] == "2"


def test_a_model_that_never_loaded_is_down_with_its_error() -> None:
    registry = FakeRegistry()
    registry.broken.add("SAP")
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry})
    assert served(book)["red", "mlp", "SAP"] == "error: cannot load SAP"
    assert book.refresh() == []  # the same error is not reported again
    registry.broken.clear()
    assert book.refresh() == ["serving red/mlp SAP version 1"]


class MovingRegistry(FakeRegistry):
    """The alias moves right after each question: a load must get the version that was asked for."""

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        asked = self.versions[symbol]
        self.versions[symbol] = str(int(asked) + 1)
        return asked


def test_the_version_asked_for_is_the_one_loaded() -> None:
    book = ModelBook(load_arena(BASELINES), {"trend": MovingRegistry()})
    assert {m.forecaster.version for m in book.models if m.name == "trend"} == {"1"}  # type: ignore[union-attr]


def test_a_book_can_load_in_the_background() -> None:
    book = ModelBook(load_arena(BASELINES), {"trend": FakeRegistry()}, background=True)
    assert book.ready.wait(10)
    assert len(book.models) == len(ModelBook(load_arena(BASELINES)).models)


def pins(version: str = "1", serve_from: date | None = None, until: date = date(2023, 12, 29)) -> list[Pin]:
    return [Pin("red", "mlp", s, version, until, "abc", serve_from) for s in ("AAPL", "AMZN", "SAP")]


def test_a_pinned_book_never_follows_a_moved_alias() -> None:
    registry = FakeRegistry()
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry}, pins("1"))
    asked = registry.asked
    registry.versions["AMZN"] = "2"
    assert book.refresh() == []
    assert registry.asked == asked, "a pinned book does not even ask where the alias points"
    assert served(book)["red", "mlp", "AMZN"] == "1"
    assert {m.forecaster.version for m in book.models_at(date(2024, 6, 3)) if m.name == "mlp" and m.forecaster} == {"1"}
    live = ModelBook(arena_with_trained_model(), {"ludwig": registry})
    registry.versions["AMZN"] = "3"
    assert live.refresh() == ["serving red/mlp AMZN version 3 (was 2)"], "a live book still follows the alias"


def test_walk_forward_pins_serve_each_version_from_its_day() -> None:
    registry = FakeRegistry()
    schedule = pins("1") + pins("2", serve_from=date(2024, 2, 1), until=date(2023, 12, 30))
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry}, schedule)

    def version_at(day: date) -> str:
        [entry] = [m for m in book.models_at(day) if (m.name, m.symbol) == ("mlp", "SAP")]
        assert entry.forecaster is not None
        return entry.forecaster.version

    assert (version_at(date(2024, 1, 31)), version_at(date(2024, 2, 1)), version_at(date(2024, 5, 1))) == (
        "1",
        "2",
        "2",
    )
    assert len([m for m in book.models_at(date(2024, 2, 1)) if m.name == "drift"]) == 3  # baselines as ever


def test_a_pin_that_does_not_match_what_loads_or_is_missing_is_down_with_its_error() -> None:
    registry = FakeRegistry()
    wrong = [Pin("red", "mlp", "AAPL", "1", date(2022, 1, 3), "abc")]  # the model says 2023-12-29
    book = ModelBook(arena_with_trained_model(), {"ludwig": registry}, wrong)
    entries = served(book)
    assert entries["red", "mlp", "AAPL"] == (
        "error: red/mlp AAPL version 1 says it was trained until 2023-12-29, but it was pinned as 2022-01-03"
    )
    assert entries["red", "mlp", "SAP"] == "error: no version pinned for this run"


@pytest.mark.parametrize("error", ["no registered model redblue.red.mlp.AAPL"])
def test_a_pin_with_an_error_serves_nothing(error: str) -> None:
    book = ModelBook(
        arena_with_trained_model(), {"ludwig": FakeRegistry()}, [Pin("red", "mlp", "AAPL", "", error=error)]
    )
    assert served(book)["red", "mlp", "AAPL"] == f"error: {error}"


def test_pins_of_baselines_only_and_a_failing_first_load_in_the_background() -> None:
    """A simulation of baselines pins nothing from a source: the book serves the baselines (an empty
    pin list once crashed the loading thread, and the worker then forecast nothing, silently)."""
    book = ModelBook(load_arena(BASELINES), {}, [], background=True)
    assert book.ready.wait(10) and book.failure is None
    assert len(book.models) == len(ModelBook(load_arena(BASELINES)).models) > 0
    registry = FakeRegistry()
    registry.version = None  # type: ignore[assignment,method-assign]  # not callable: the load fails
    failing = ModelBook(arena_with_trained_model(), {"ludwig": registry}, background=True)
    assert failing.ready.wait(10) and isinstance(failing.failure, TypeError)
