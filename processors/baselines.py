"""The baselines the processor serves next to the team models, and how a served model is named.

Each is a :class:`~redblue.core.forecaster.Forecaster`: ``persistence`` (tomorrow = today),
``drift`` (mean past log return) and ``trend`` (least-squares line through the last log
closes). Trained team models (Ludwig, exported to ONNX and served from the MLflow registry, see
:mod:`redblue.adapters.mlflow.registry`) implement the same interface; :mod:`processors.book`
decides which forecaster serves which (team, model, symbol).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from redblue.core.arena import ModelSpec
from redblue.core.forecaster import Forecaster, ModelError, Trained
from schemas import Bar


@dataclass(frozen=True)
class Persistence:
    version: str = "persistence-1"
    min_history: int = 1

    def predict(self, window: Sequence[Bar]) -> float:
        return window[-1].close


@dataclass(frozen=True)
class Drift:
    """Tomorrow's close = today's close grown by the mean log return of the last ``lookback`` days."""

    lookback: int = 20
    version: str = "drift-1"

    @property
    def min_history(self) -> int:
        return self.lookback + 1

    def predict(self, window: Sequence[Bar]) -> float:
        closes = [b.close for b in window[-(self.lookback + 1) :]]
        mean = (math.log(closes[-1]) - math.log(closes[0])) / self.lookback
        return closes[-1] * math.exp(mean)


@dataclass(frozen=True)
class Trend:
    """Extrapolates a least-squares line through the last ``lookback`` log closes one day ahead."""

    lookback: int = 10
    version: str = "trend-1"

    @property
    def min_history(self) -> int:
        return self.lookback

    def predict(self, window: Sequence[Bar]) -> float:
        ys = [math.log(b.close) for b in window[-self.lookback :]]
        n = len(ys)
        x_mean, y_mean = (n - 1) / 2, sum(ys) / n
        sxx = sum((x - x_mean) ** 2 for x in range(n))
        slope = sum((x - x_mean) * (y - y_mean) for x, y in enumerate(ys)) / sxx if sxx else 0.0
        return math.exp(y_mean + slope * (n - x_mean))


BASELINES: dict[str, Callable[..., Forecaster]] = {"persistence": Persistence, "drift": Drift, "trend": Trend}


def build_baseline(spec: ModelSpec) -> Forecaster:
    """A baseline from its arena entry; unknown kinds or parameters raise :class:`ModelError`."""
    factory = BASELINES.get(spec.kind)
    if factory is None:
        raise ModelError(f"model {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(sorted(BASELINES))})")
    try:
        model = factory(**spec.params)
    except TypeError as err:
        raise ModelError(f"model {spec.name!r}: bad params {spec.params}: {err}") from err
    if model.min_history < 1:
        raise ModelError(f"model {spec.name!r}: lookback must be at least 1")
    return model


@dataclass(frozen=True)
class ServedModel:
    """One (team, model, symbol) as the processor serves it: the forecaster, or why there is none.

    In a walk-forward simulation a version serves the as-of days from ``serve_from`` up to, not
    including, ``serve_until`` (the next version's first day); ``None``: no bound.
    """

    team: str
    name: str
    symbol: str
    forecaster: Forecaster | None
    error: str = ""
    serve_from: date | None = None
    serve_until: date | None = None

    def serves(self, as_of: date) -> bool:
        """Whether this entry makes the forecasts as of ``as_of``."""
        return (self.serve_from is None or self.serve_from <= as_of) and (
            self.serve_until is None or as_of < self.serve_until
        )

    @property
    def key(self) -> str:
        return f"{self.team}/{self.name}"

    @property
    def trained_until(self) -> date | None:
        """The forecaster's training cutoff; ``None`` for a baseline (or nothing served)."""
        return self.forecaster.trained_until if isinstance(self.forecaster, Trained) else None

    @property
    def data_hash(self) -> str | None:
        return self.forecaster.data_hash if isinstance(self.forecaster, Trained) else None
