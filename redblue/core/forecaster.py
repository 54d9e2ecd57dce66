"""What the processor serves: a forecaster turns the window of past bars into tomorrow's close.

The port between the processors and whatever implements a model: the baselines
(:mod:`processors.baselines`) and the exported team models (:mod:`redblue.adapters.onnx`).
A forecaster sees only the window (oldest first, the last bar is the as-of day), so it cannot
look ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, runtime_checkable

from redblue.core.errors import RedblueError
from schemas import Bar


class ModelError(RedblueError):
    """A model could not be built or could not forecast; the message says which and why."""


class Forecaster(Protocol):
    """What the processor calls: ``predict`` gets at least ``min_history`` bars."""

    @property
    def version(self) -> str: ...

    @property
    def min_history(self) -> int: ...

    def predict(self, window: Sequence[Bar]) -> float: ...


def predict_many(forecaster: Forecaster, windows: Sequence[Sequence[Bar]]) -> list[float]:
    """The predictions for several windows: in one call when the forecaster has a ``predict_many``
    (a team model runs one batch through ONNX Runtime), else one :meth:`Forecaster.predict` each.

    Either way each window's prediction is what ``predict`` gives for it alone.
    """
    if not windows:
        return []
    many = getattr(forecaster, "predict_many", None)
    if many is not None:
        return [float(p) for p in many(windows)]
    return [float(forecaster.predict(window)) for window in windows]


@runtime_checkable
class Trained(Protocol):
    """A forecaster fitted on data: its training cutoff and the hash of its training data.

    Baselines are fitted on nothing and have neither. ``trained_until`` is the last day whose
    close the training data holds: the model may serve forecasts as of that day or later.
    """

    @property
    def trained_until(self) -> date: ...

    @property
    def data_hash(self) -> str | None: ...
