"""The look-ahead check, and models that cheat on purpose to prove it can fail.

The check: run the same pipeline on the bar files and on a copy whose bars after day X are
poisoned (every price of every later day multiplied by its own random factor, so every return
after X changes); every forecast made as of X or earlier must be byte-identical
(:func:`diverging` lists the models whose forecasts are not). Training is part of the pipeline:
a model is fitted from the data directory the run reads, so a leak through the training data,
the normalisation statistics or a feature that reads past the window shows up as a forecast
before X that moved.

The cheating models are "team-model-like": a linear model on the ONE feature function's lagged
returns, z-scored, fitted by least squares from :func:`training.dataset.build_dataset` rows
and served as ONNX through the same :class:`~redblue.adapters.onnx.OnnxForecaster` as the
Ludwig exports (:func:`fitted_onnx`); or a plain forecaster whose "feature" is the next row of
the bar file (:class:`PeekingForecaster`).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from redblue.core.bars import Row, read_rows
from redblue.core.features import feature_names, min_bars
from schemas import Bar, Forecast, encode
from tests.unit.test_onnx_model import contract_metadata, linear_model
from training.dataset import LABEL, TrainingData, build_dataset

Leak = Literal["none", "training-data", "normalisation"]
PRICES = ("open", "high", "low", "close", "adj_close")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TRAIN_FROM = date(2015, 1, 2)
RIDGE = 0.1


def poison(source: Path, target: Path, after: date, symbols: Sequence[str], seed: int = 13) -> None:
    """Copy the bar files of ``symbols``, multiplying every price of each day after ``after`` by a random factor."""
    target.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    for symbol in symbols:
        with (source / f"{symbol}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            if row["date"] > after.isoformat():
                factor = rnd.uniform(0.5, 2.0)
                for key in PRICES:
                    row[key] = repr(float(row[key]) * factor)
        with (target / f"{symbol}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def fit_linear(rows: Sequence[Row], lookback: int, until: date, leak: Leak = "none") -> tuple[list[float], float]:
    """Ridge regression weights on z-scored returns, as raw-feature weights and bias.

    ``leak`` cheats: ``training-data`` fits on every row of the file (its metadata will still
    say ``until``); ``normalisation`` fits on the rows up to ``until`` but z-scores with the
    statistics of every row of the file.
    """
    last = rows[-1].date if leak == "training-data" else until
    data = build_dataset(rows, lookback, last, train_from=TRAIN_FROM)
    features = _matrix(data)
    everything = build_dataset(rows, lookback, rows[-1].date, train_from=TRAIN_FROM)
    stats = _matrix(everything) if leak == "normalisation" else features
    mean, std = stats.mean(axis=0), stats.std(axis=0)
    scaled = np.column_stack([(features - mean) / std, np.ones(len(features))])
    label = data.frame[LABEL].to_numpy(dtype=np.float64)
    # ridge (the intercept unpenalised): unlike plain least squares, it depends on the scaling
    penalty = np.sqrt(RIDGE * len(features)) * np.eye(lookback, lookback + 1)
    solution = np.linalg.lstsq(np.vstack([scaled, penalty]), np.concatenate([label, np.zeros(lookback)]), rcond=None)[0]
    weights = solution[:-1] / std
    return [float(w) for w in weights], float(solution[-1] - np.dot(weights, mean))


def _matrix(data: TrainingData) -> np.ndarray:
    return data.frame[feature_names(data.lookback)].to_numpy(dtype=np.float64)


def fitted_onnx(
    data_dir: Path, team: str, model: str, symbol: str, until: date, leak: Leak = "none", lookback: int = 5
) -> onnx.ModelProto:
    """The served ONNX of a linear model fitted from ``data_dir``, claiming training data up to ``until``."""
    weights, bias = fit_linear(read_rows(data_dir, symbol), lookback, until, leak)
    metadata = contract_metadata(team, model, symbol, lookback) | {"redblue.trained_until": until.isoformat()}
    return linear_model(weights, bias, metadata=metadata)


class PeekingForecaster:
    """Cheats through a "feature": the next row of the bar file after the window's last day."""

    version = "peek-1"

    def __init__(self, data_dir: Path, symbol: str, lookback: int = 5) -> None:
        self._rows = read_rows(data_dir, symbol)
        self.min_history = min_bars(lookback)

    def predict(self, window: Sequence[Bar]) -> float:
        later = [r for r in self._rows if r.date > window[-1].date]
        return later[0].close if later else window[-1].close


def diverging(clean: Sequence[Forecast], poisoned: Sequence[Forecast], until: date) -> dict[str, int]:
    """``team/model`` -> how many of its forecasts as of ``until`` or earlier differ (or exist in one run only).

    Forecasts are compared byte for byte as published (``encode``), wall-clock ``produced_at`` aside.
    """

    def published(forecasts: Sequence[Forecast]) -> dict[str, bytes]:
        return {
            f.key: encode(f.model_copy(update={"produced_at": _EPOCH, "run": "x"}))
            for f in forecasts
            if f.as_of <= until
        }

    a, b = published(clean), published(poisoned)
    counts: dict[str, int] = {}
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            member = "/".join(key.split("/")[:2])
            counts[member] = counts.get(member, 0) + 1
    return counts
