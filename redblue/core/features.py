"""The ONE feature function: used to build training data and, unchanged, to serve forecasts.

Models predict something stationary — the next trading day's log return — from the last
``lookback`` daily log returns, and the price is recovered as ``close * exp(return)``. So a
model works outside the price range it was trained on. The feature vector of a window depends
only on the bars in that window (nothing after its last day), which is what makes it free of
look-ahead in training and serving alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from schemas import Bar

FEATURES_VERSION = 1


def feature_names(lookback: int) -> list[str]:
    """``ret_1`` is the return into the as-of day, ``ret_2`` the one before, and so on."""
    return [f"ret_{k}" for k in range(1, lookback + 1)]


def min_bars(lookback: int) -> int:
    """Bars a window needs: one more than the returns it yields."""
    return lookback + 1


def log_returns(closes: Sequence[float]) -> list[float]:
    return [math.log(b / a) for a, b in pairwise(closes)]


def features(window: Sequence[Bar] | Sequence[float], lookback: int) -> list[float]:
    """The feature vector of the window's last day: ``[ret_1, ..., ret_lookback]``.

    Accepts bars or plain closes (oldest first). Raises ``ValueError`` on a short window.
    """
    closes = [b.close if isinstance(b, Bar) else float(b) for b in window[-min_bars(lookback) :]]
    if len(closes) < min_bars(lookback):
        raise ValueError(f"need {min_bars(lookback)} bars for {lookback} returns, got {len(closes)}")
    return log_returns(closes)[::-1]


def price_from_return(last_close: float, log_return: float) -> float:
    """The predicted close implied by a predicted log return."""
    return last_close * math.exp(log_return)
