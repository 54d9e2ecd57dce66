"""Training data for one symbol: a row per as-of day, built with the ONE feature function.

A row for as-of day D holds ``features(window ending at D)`` (``ret_1..ret_L``, exactly what
serving computes) and the label ``next_return``, the log return from D's close to the next
trading day's close. A row exists only if that next bar is dated on or before ``until``: the
last label lies on or before ``until`` and nothing after it is read. Rows are in time order;
the last ``validation_fraction`` of them form the validation split (``split`` = 1), so the model
is validated on days after every day it was trained on.

No Ludwig here: the frame is plain pandas, and Ludwig computes its normalisation statistics
from exactly this frame, which is why it must not contain anything after ``until``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from redblue.core.bars import DataError, Row, window_rows
from redblue.core.calendar import TradingCalendar
from redblue.core.features import feature_names, features, log_returns, min_bars

LABEL = "next_return"  # the log return from the as-of close to the next session's close
SPLIT = "split"  # 0 training, 1 validation (Ludwig's ``fixed`` split)
AS_OF = "as_of"
TARGET = "target"  # the day whose close the label is about
CLOSE = "close"  # close of the as-of day (the persistence forecast)
NEXT_CLOSE = "next_close"  # close of the target day
TRAINING, VALIDATION = 0, 1
DEFAULT_TRAIN_FROM = date(2010, 1, 4)
VALIDATION_FRACTION = 0.15
MIN_ROWS = 20
SEQUENCE_SCALE = 100.0  # timeseries inputs hold returns in percent (a unit, not a fitted statistic)


@dataclass(frozen=True)
class TrainingData:
    """The rows one model of one symbol is trained and validated on."""

    symbol: str
    lookback: int
    frame: pd.DataFrame
    data_hash: str  # sha256 of the rows (dates, closes, features, labels, split)

    @property
    def first(self) -> date:
        """The first as-of day."""
        first: date = self.frame[AS_OF].iloc[0]
        return first

    @property
    def last_target(self) -> date:
        """The day of the last label: never after ``until``."""
        last: date = self.frame[TARGET].iloc[-1]
        return last

    @property
    def validation(self) -> pd.DataFrame:
        return self.frame[self.frame[SPLIT] == VALIDATION]

    @property
    def training(self) -> pd.DataFrame:
        return self.frame[self.frame[SPLIT] == TRAINING]

    def matrix(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """The served model's input: float32 ``[rows, lookback]`` of ``ret_1..ret_L``."""
        rows = self.frame if frame is None else frame
        matrix: np.ndarray = rows[feature_names(self.lookback)].to_numpy(dtype=np.float32)
        return matrix


def sequence_text(vector: Sequence[float]) -> str:
    """A feature vector as a Ludwig ``timeseries`` cell: the same returns in percent, oldest first.

    Percent (``SEQUENCE_SCALE``), because Ludwig does not normalise timeseries inputs and a
    recurrent encoder barely sees raw daily returns (~0.01); the served graph applies the same
    fixed factor (``training.ludwig.export``). Ludwig parses the cell as space-separated numbers;
    ``repr`` keeps every digit.
    """
    return " ".join(repr(float(x) * SEQUENCE_SCALE) for x in reversed(vector))


def build_dataset(
    rows: Sequence[Row],
    lookback: int,
    until: date,
    train_from: date = DEFAULT_TRAIN_FROM,
    sequence_columns: Sequence[str] = (),
    validation_fraction: float = VALIDATION_FRACTION,
    calendar: TradingCalendar | None = None,
) -> TrainingData:
    """Rows for as-of days from ``train_from`` whose next bar is on or before ``until``.

    ``rows`` are one symbol's bars in date order (``redblue.core.bars.read_rows``); bars after
    ``until`` are dropped before anything else. Each name in ``sequence_columns`` gets a
    timeseries column (see :func:`sequence_text`). With a ``calendar``, every session between
    the first bar read and ``until``'s last label must have a bar (else :class:`DataError`).
    """
    known = [r for r in rows if r.date <= until]
    closes = [r.close for r in known]
    first = max(min_bars(lookback) - 1, next((i for i, r in enumerate(known) if r.date >= train_from), len(known)))
    days = range(first, len(known) - 1)  # the last known bar is a label only, never an as-of day
    if len(days) < MIN_ROWS:
        symbol = known[0].symbol if known else (rows[0].symbol if rows else "?")
        raise DataError(
            f"{symbol}: only {max(len(days), 0)} training rows from {train_from} to {until} "
            f"with lookback {lookback}; need at least {MIN_ROWS}"
        )
    if calendar is not None:
        window_rows(list(known), known[first - lookback].date, known[days[-1] + 1].date, calendar)
    frame = _frame(known, closes, lookback, days, sequence_columns, validation_fraction)
    return TrainingData(symbol=known[0].symbol, lookback=lookback, frame=frame, data_hash=_hash(frame, lookback))


def _frame(
    known: Sequence[Row],
    closes: Sequence[float],
    lookback: int,
    days: range,
    sequence_columns: Sequence[str],
    validation_fraction: float,
) -> pd.DataFrame:
    vectors = [features(closes[i - lookback : i + 1], lookback) for i in days]
    frame = pd.DataFrame(vectors, columns=feature_names(lookback))
    frame.insert(0, AS_OF, [known[i].date for i in days])
    frame.insert(1, TARGET, [known[i + 1].date for i in days])
    frame.insert(2, CLOSE, [closes[i] for i in days])
    frame.insert(3, NEXT_CLOSE, [closes[i + 1] for i in days])
    frame[LABEL] = [log_returns(closes[i : i + 2])[0] for i in days]
    for column in sequence_columns:
        frame[column] = [sequence_text(v) for v in vectors]
    validation = max(1, round(len(days) * validation_fraction))
    frame[SPLIT] = [TRAINING] * (len(days) - validation) + [VALIDATION] * validation
    return frame


def _hash(frame: pd.DataFrame, lookback: int) -> str:
    """sha256 over the rows' dates, closes, features, label and split (not derived columns)."""
    columns = [AS_OF, TARGET, CLOSE, NEXT_CLOSE, *feature_names(lookback), LABEL, SPLIT]
    digest = hashlib.sha256(f"lookback={lookback}\n".encode())
    for values in frame[columns].itertuples(index=False, name=None):
        digest.update((",".join(v.isoformat() if isinstance(v, date) else repr(v) for v in values) + "\n").encode())
    return digest.hexdigest()


def validation_metrics(frame: pd.DataFrame, predicted_returns: np.ndarray) -> dict[str, float]:
    """Price-space MAE, persistence MAE, MASE and direction accuracy of predicted log returns on ``frame``'s rows.

    The predicted close is ``close * exp(return)`` (``redblue.core.features.price_from_return``); the
    persistence forecast is the as-of close itself.
    """
    close = frame[CLOSE].to_numpy(dtype=np.float64)
    actual = frame[NEXT_CLOSE].to_numpy(dtype=np.float64)
    returns = np.asarray(predicted_returns, dtype=np.float64)
    predicted = close * np.exp(returns)
    mae = float(np.mean(np.abs(predicted - actual)))
    persistence = float(np.mean(np.abs(close - actual)))
    return {
        "val_mae": mae,
        "val_persistence_mae": persistence,
        "val_mase": mae / persistence,
        "val_direction_pct": 100.0 * float(np.mean(np.sign(predicted - close) == np.sign(actual - close))),
        "val_mae_return": float(np.mean(np.abs(frame[LABEL].to_numpy(dtype=np.float64) - returns))),
    }
