"""The model book: every arena model served per symbol; moved versions picked up; failures contained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from processors.book import ModelBook
from redblue.core.arena import ModelSpec, load_arena
from redblue.core.forecaster import ModelError
from schemas import Bar
from tests.factories import BASELINES


@dataclass(frozen=True)
class Fixed:
    version: str
    value: float = 1.0
    min_history: int = 1

    def predict(self, window: Sequence[Bar]) -> float:
        return self.value


class FakeRegistry:
    """Versions by symbol; a symbol in ``broken`` fails to load."""

    def __init__(self) -> None:
        self.versions = {"AAPL": "1", "AMZN": "1", "SAP": "1"}
        self.broken: set[str] = set()
        self.loads = 0

    def version(self, team: str, spec: ModelSpec, symbol: str) -> str:
        return self.versions[symbol]

    def load(self, team: str, spec: ModelSpec, symbol: str, version: str | None = None) -> Fixed:
        self.loads += 1
        if symbol in self.broken:
            raise ModelError(f"cannot load {symbol}")
        return Fixed(version or self.versions[symbol])


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
